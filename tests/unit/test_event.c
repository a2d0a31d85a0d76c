/* Unit tests for store/event: JSON rendering of hostile values and common fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "store/event.h"

static void test_json_escapes_attacker_bytes(void **state)
{
	struct buf out;
	buf_init(&out, 0);
	const char raw[] = "a\"b\\c\r\n\x01\x7f\xff\xc3\xa9\xe2\x82";
	assert_int_equal(json_append_string(&out, raw, sizeof(raw) - 1), 0);
	assert_string_equal(out.data,
			    "\"a\\\"b\\\\c\\r\\n\\u0001\\u007f\\u00ff\xc3\xa9\\u00e2\\u0082\"");
	buf_free(&out);
}

static void test_event_line(void **state)
{
	struct mxb_event *ev = mxb_event_new("auth");
	mxb_event_str(ev, "mechanism", "PLAIN");
	mxb_event_strn(ev, "username", "al\0ce", 5);
	mxb_event_bool(ev, "success", false);
	mxb_event_int(ev, "size", -5);
	mxb_event_str(ev, "nothing", NULL);
	mxb_event_stamp(ev, 1795762363123456LL, "S1", "127.0.0.1", 4242, "smtp");
	struct buf out;
	buf_init(&out, 0);
	assert_int_equal(mxb_event_to_json(ev, &out), 0);
	assert_string_equal(out.data,
			    "{\"event\":\"auth\",\"ts\":\"2026-11-27T06:52:43.123456Z\","
			    "\"session\":\"S1\",\"src_ip\":\"127.0.0.1\",\"src_port\":4242,"
			    "\"proto\":\"smtp\",\"mechanism\":\"PLAIN\",\"username\":\"al\\u0000ce\","
			    "\"success\":false,\"size\":-5,\"nothing\":null}");
	buf_free(&out);
	mxb_event_free(&ev);
	assert_null(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_escapes_attacker_bytes),
		cmocka_unit_test(test_event_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
