/* Unit tests for store/event: JSON rendering of hostile values and common fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/event.h"
#include "store/event_schema.h"

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned len = 0;
	assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Issue 7: one AUTH attempt with a 9 KB password of control bytes made a 55 KB event
 * (every byte escaped as \u00XX), stored twice and logged once.  Now the value is cut
 * to MXB_EVENT_VALUE_MAX bytes, its length and SHA-256 kept. */
static void test_long_value_cut(void **state)
{
	enum { N = 9216 };
	char *pw = malloc(N);
	assert_non_null(pw);
	for (int i = 0; i < N; i++)
		pw[i] = (char)(1 + i % 31);
	struct mxb_event *ev = mxb_event_new("auth");
	mxb_event_str(ev, "mechanism", "LOGIN");
	mxb_event_strn(ev, "password", pw, N);
	mxb_event_bool(ev, "success", false);
	mxb_event_stamp(ev, 1795762363123456LL, "0123456789abcdef", "192.0.2.1", 1, "smtps");
	struct buf out;
	buf_init(&out, 0);
	assert_int_equal(mxb_event_to_json(ev, &out), 0);
	/* 1024 bytes escaped as \u00XX at most, plus the rest of the event. */
	assert_true(out.len < MXB_EVENT_VALUE_MAX * 6 + 400);
	char hex[65], want[160];
	sha256_hex(pw, N, hex);
	snprintf(want, sizeof(want), ",\"password_length\":%d,\"password_sha256\":\"%s\",\"success\"",
		 N, hex);
	assert_non_null(strstr(out.data, want));
	/* The JSON stays valid and holds exactly the first 1024 bytes. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT json_valid(?1),"
					    " length(CAST(json_extract(?1, '$.password') AS BLOB))",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, out.data, (int)out.len, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	assert_int_equal(sqlite3_column_int(st, 1), MXB_EVENT_VALUE_MAX);
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* The typed copy is cut the same way. */
	const struct mxb_event_fv *fv = mxb_event_field(ev, "password");
	assert_non_null(fv);
	size_t tl;
	const char *t = mxb_event_fv_text(ev, fv, &tl);
	assert_int_equal(tl, MXB_EVENT_VALUE_MAX);
	assert_memory_equal(t, pw, tl);
	buf_free(&out);
	mxb_event_free(&ev);

	/* A cut never splits a UTF-8 sequence: 1023 ASCII bytes then a 2-byte é. */
	char u[1100];
	memset(u, 'a', sizeof(u));
	u[1023] = (char)0xC3;
	u[1024] = (char)0xA9;
	ev = mxb_event_new("helo");
	mxb_event_strn(ev, "name", u, sizeof(u));
	fv = mxb_event_field(ev, "name");
	t = mxb_event_fv_text(ev, fv, &tl);
	assert_int_equal(tl, 1023);
	assert_non_null(strstr(ev->fields.data, "\"name_length\":1100,"));
	mxb_event_free(&ev);
	free(pw);
}

/* The typed copy's text is what json_extract() gives for the JSON: invalid bytes as
 * U+00XX, control bytes raw, the text ends at a NUL; arrays as their JSON. */
static void test_text_forms_match_json_extract(void **state)
{
	static const struct {
		const char *v;
		size_t len;
	} cases[] = {
#define C(s) {s, sizeof(s) - 1}
		C("plain"),
		C("evil\x1b[31m\xff\0x"),
		C("a\"b\\c\r\n\x01\x7f\xff\xc3\xa9\xe2\x82"),
		C("\xed\xa0\x80 surrogate, \xf4\x90\x80\x80 too big, \xc0\xaf overlong"),
		C(""),
		C("\0lead"),
#undef C
	};
	sqlite3 *db;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mxb_event *ev = mxb_event_new("x");
		mxb_event_strn(ev, "v", cases[i].v, cases[i].len);
		const char *arr[] = {"p\xffq", "r"};
		mxb_event_str_array(ev, "a", arr, 2);
		struct buf out;
		buf_init(&out, 0);
		assert_int_equal(mxb_event_to_json(ev, &out), 0);
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT json_extract(?1, '$.v'),"
						    " json_extract(?1, '$.a'),"
						    " json_array_length(?1, '$.a')",
						    -1, &st, NULL), SQLITE_OK);
		sqlite3_bind_text(st, 1, out.data, (int)out.len, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		size_t tl;
		const char *t = mxb_event_fv_text(ev, mxb_event_field(ev, "v"), &tl);
		int jl = sqlite3_column_bytes(st, 0);
		if ((size_t)jl != tl || (tl && memcmp(sqlite3_column_blob(st, 0), t, tl)))
			fail_msg("case %zu: text form (%zu bytes) != json_extract (%d bytes)", i, tl,
				 jl);
		const struct mxb_event_fv *fa = mxb_event_field(ev, "a");
		t = mxb_event_fv_text(ev, fa, &tl);
		assert_int_equal(tl, (size_t)sqlite3_column_bytes(st, 1));
		if (tl)
			assert_memory_equal(t, sqlite3_column_blob(st, 1), tl);
		assert_int_equal(fa->i, sqlite3_column_int(st, 2));
		sqlite3_finalize(st);
		buf_free(&out);
		mxb_event_free(&ev);
	}
	sqlite3_close(db);
}

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

/* The hand-written RFC 3339 formatter agrees with gmtime_r over four centuries of
 * dates, leap days and the microseconds included. */
static void test_format_ts(void **state)
{
	char got[40], want[64];
	uint64_t x = 88172645463325252ULL;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* 1970 .. ~2370 */
		int64_t us = (int64_t)(x % (400ULL * 366 * 86400 * 1000000ULL));
		if (i < 4)
			us = (int64_t[]){0, 951782400000000LL, 4107542399999999LL, 1795762363123456LL}[i];
		mxb_format_ts(us, got, sizeof(got));
		time_t sec = (time_t)(us / 1000000);
		struct tm tm;
		gmtime_r(&sec, &tm);
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (int)(us % 1000000));
		if (strcmp(got, want))
			fail_msg("%lld: %s, gmtime says %s", (long long)us, got, want);
	}
	mxb_format_ts(1795762363123456LL, got, 10); /* too small: empty, no overflow */
	assert_string_equal(got, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_escapes_attacker_bytes),
		cmocka_unit_test(test_event_line),
		cmocka_unit_test(test_long_value_cut),
		cmocka_unit_test(test_format_ts),
		cmocka_unit_test(test_text_forms_match_json_extract),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
