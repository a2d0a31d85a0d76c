/* Unit tests for proto/sasl: strict base64, RFC 4616 PLAIN split, CRAM-MD5 answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "proto/sasl.h"

static int dec(const char *in, unsigned char *out, size_t cap, size_t *n)
{
	return sasl_b64_decode(in, strlen(in), out, cap, n);
}

static void test_base64(void **state)
{
	unsigned char out[64];
	size_t n;
	assert_int_equal(dec("AGFsaWNlAGFsaWNlLVNlY3JldC0x", out, sizeof(out), &n), 0);
	assert_int_equal(n, 21);
	assert_memory_equal(out, "\0alice\0alice-Secret-1", 21);
	assert_int_equal(dec("YWxpY2U=", out, sizeof(out), &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(dec("YQ==", out, sizeof(out), &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(dec("YQ", out, sizeof(out), &n), 0); /* unpadded is accepted */
	assert_int_equal(n, 1);
	assert_int_equal(dec("=", out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(dec("", out, sizeof(out), &n), 0);
	assert_int_equal(dec("Y", out, sizeof(out), &n), -1);
	assert_int_equal(dec("YQ=", out, sizeof(out), &n), -1);
	assert_int_equal(dec("Y===", out, sizeof(out), &n), -1);
	assert_int_equal(dec("YW=x", out, sizeof(out), &n), -1);
	assert_int_equal(dec("!!!!", out, sizeof(out), &n), -1);
	assert_int_equal(dec("YWxpY2U=", out, 4, &n), -1); /* over capacity */
	char enc[64];
	assert_int_equal(sasl_b64_encode((const unsigned char *)"Username:", 9, enc), 12);
	assert_string_equal(enc, "VXNlcm5hbWU6");
	sasl_b64_encode((const unsigned char *)"ab", 2, enc);
	assert_string_equal(enc, "YWI=");
	/* Round trip of every byte value. */
	unsigned char all[256], back[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	char big[400];
	size_t el = sasl_b64_encode(all, 256, big);
	assert_int_equal(sasl_b64_decode(big, el, back, sizeof(back), &n), 0);
	assert_int_equal(n, 256);
	assert_memory_equal(all, back, 256);
}

static void test_plain(void **state)
{
	struct sasl_slice z, u, p;
	assert_true(sasl_plain_split((const unsigned char *)"\0alice\0pw", 9, &z, &u, &p));
	assert_int_equal(z.len, 0);
	assert_int_equal(u.len, 5);
	assert_memory_equal(u.p, "alice", 5);
	assert_int_equal(p.len, 2);
	assert_true(sasl_plain_split((const unsigned char *)"boss\0a\0", 7, &z, &u, &p));
	assert_int_equal(z.len, 4);
	assert_int_equal(p.len, 0);
	assert_false(sasl_plain_split((const unsigned char *)"alice", 5, &z, &u, &p));
	assert_false(sasl_plain_split((const unsigned char *)"\0alice", 6, &z, &u, &p));
	assert_false(sasl_plain_split((const unsigned char *)"\0a\0b\0c", 6, &z, &u, &p));
	assert_false(sasl_plain_split((const unsigned char *)"", 0, &z, &u, &p));
}

static void test_cram(void **state)
{
	struct sasl_slice u, d;
	const char *ok = "tim b913a602c7eda7a495b4e6e7334d3890";
	assert_true(sasl_cram_split((const unsigned char *)ok, strlen(ok), &u, &d));
	assert_int_equal(u.len, 3);
	assert_memory_equal(d.p, "b913a602c7eda7a495b4e6e7334d3890", 32);
	const char *sp = "a b c b913a602c7eda7a495b4e6e7334d3890";
	assert_true(sasl_cram_split((const unsigned char *)sp, strlen(sp), &u, &d));
	assert_int_equal(u.len, 5);
	const char *bad[] = {"tim", "tim b913", " b913a602c7eda7a495b4e6e7334d3890",
			     "tim B913A602C7EDA7A495B4E6E7334D3890",
			     "tim b913a602c7eda7a495b4e6e7334d389z"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(sasl_cram_split((const unsigned char *)bad[i], strlen(bad[i]), &u, &d));
}

/* The one credential rule: NUL or over SASL_CRED_MAX refuses; otherwise exact copies. */
static void test_cred_rule(void **state)
{
	struct sasl_cred c;
	struct sasl_slice u = {"alice", 5}, p = {"se\0cret", 7}, z = {"", 0};
	assert_false(sasl_cred_take(NULL, &u, &p, &c));
	assert_null(c.user);
	p = (struct sasl_slice){"secret", 6};
	assert_true(sasl_cred_take(&z, &u, &p, &c));
	assert_string_equal(c.user, "alice");
	assert_string_equal(c.pass, "secret");
	assert_null(c.authzid); /* empty: none */
	sasl_cred_free(&c);
	assert_null(c.pass);
	/* no password (CRAM-MD5) */
	assert_true(sasl_cred_take(NULL, &u, NULL, &c));
	assert_null(c.pass);
	sasl_cred_free(&c);
	/* a NUL in the user name or the authzid */
	struct sasl_slice bad = {"al\0ice", 6};
	assert_false(sasl_cred_take(NULL, &bad, &p, &c));
	assert_false(sasl_cred_take(&bad, &u, &p, &c));
	/* exactly SASL_CRED_MAX is taken, one more is not */
	char *big = malloc(SASL_CRED_MAX + 1);
	memset(big, 'x', SASL_CRED_MAX + 1);
	struct sasl_slice at = {big, SASL_CRED_MAX}, over = {big, SASL_CRED_MAX + 1};
	assert_true(sasl_cred_take(NULL, &u, &at, &c));
	assert_int_equal(strlen(c.pass), SASL_CRED_MAX);
	sasl_cred_free(&c);
	assert_false(sasl_cred_take(NULL, &u, &over, &c));
	assert_false(sasl_cred_take(NULL, &over, &p, &c));
	assert_false(sasl_cred_take(&over, &u, &p, &c));
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_cram),
		cmocka_unit_test(test_cred_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
