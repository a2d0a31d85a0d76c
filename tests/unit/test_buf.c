/* Unit tests for util/buf: growth, the hard cap, consume and steal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static void test_append_and_grow(void **state)
{
	struct buf b;
	buf_init(&b, 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_puts(&b, "abc"), 0);
	assert_int_equal(b.len, 3000);
	assert_int_equal(b.data[3000], '\0');
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "x"), 0);
	assert_string_equal(b.data + 3000, "42-x");
	buf_free(&b);
}

static void test_cap_is_hard(void **state)
{
	struct buf b;
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "12345678", 8), 0);
	assert_int_equal(buf_putc(&b, 'x'), -1);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "12345678");
	assert_int_equal(buf_printf(&b, "%s", "y"), -1);
	buf_consume(&b, 3);
	assert_string_equal(b.data, "45678");
	assert_int_equal(buf_puts(&b, "abc"), 0);
	assert_int_equal(buf_puts(&b, "d"), -1);
	size_t len;
	char *p = buf_steal(&b, &len);
	assert_int_equal(len, 8);
	assert_string_equal(p, "45678abc");
	free(p);
	assert_null(b.data);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_grow),
		cmocka_unit_test(test_cap_is_hard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
