/*
 * test_analyze_url: the URL normaliser on each trick it must see through, the IPv4
 * forms browsers accept, redirector unwrapping, and refusal of what is not a web URL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyze/url.h"

static const struct {
	const char *in, *norm, *host, *domain;
	unsigned flags; /* must all be set */
} cases[] = {
	{"HTTP://WWW.Example.COM", "http://www.example.com/", "www.example.com", "example.com", 0},
	{"http://example.com:80/", "http://example.com/", "example.com", "example.com", 0},
	{"https://example.com:443/a", "https://example.com/a", "example.com", "example.com", 0},
	{"https://example.com:8443/a", "https://example.com:8443/a", "example.com", "example.com",
	 URL_F_PORT},
	{"http://0x7f000001/", "http://127.0.0.1/", "127.0.0.1", "127.0.0.1",
	 URL_F_IP | URL_F_IP_OBFUSCATED},
	{"http://2130706433/", "http://127.0.0.1/", "127.0.0.1", "127.0.0.1",
	 URL_F_IP | URL_F_IP_OBFUSCATED},
	{"http://0177.0.0.01/", "http://127.0.0.1/", "127.0.0.1", "127.0.0.1",
	 URL_F_IP | URL_F_IP_OBFUSCATED},
	{"http://127.1/", "http://127.0.0.1/", "127.0.0.1", "127.0.0.1", URL_F_IP_OBFUSCATED},
	{"http://10.0.0.1/", "http://10.0.0.1/", "10.0.0.1", "10.0.0.1", URL_F_IP},
	{"http://[::FFFF:1.2.3.4]/", "http://[::ffff:1.2.3.4]/", "[::ffff:1.2.3.4]", NULL, URL_F_IP},
	{"hxxp://evil[.]com/a", "http://evil.com/a", "evil.com", "evil.com", URL_F_DEFANGED},
	{"http://b\xc3\xbc" "cher.de/", "http://xn--bcher-kva.de/", "xn--bcher-kva.de",
	 "xn--bcher-kva.de", URL_F_IDN},
	{"http://xn--bcher-kva.de/", "http://xn--bcher-kva.de/", "xn--bcher-kva.de", NULL, URL_F_IDN},
	{"http://pay\xe2\x80\x8bpal.com/", "http://paypal.com/", "paypal.com", "paypal.com",
	 URL_F_ZERO_WIDTH},
	{"http://paypal.com\xe2\x80\xae/x", "http://paypal.com/x", "paypal.com", NULL, URL_F_BIDI},
	{"http://a.example.com/%7Euser/%2f%zz", "http://a.example.com/~user/%2F%25zz", NULL, NULL, 0},
	{"http://example.com/a b", "http://example.com/a%20b", NULL, NULL, 0},
	{"http://paypal.com@evil.example/", "http://paypal.com@evil.example/", "evil.example", NULL,
	 URL_F_USERINFO},
	{"http:\\\\example.com\\x", "http://example.com/x", "example.com", NULL, URL_F_BACKSLASH},
	{"www.example.co.uk/p", "http://www.example.co.uk/p", NULL, "example.co.uk",
	 URL_F_NO_SCHEME},
	{"http://%65vil.com/", "http://evil.com/", "evil.com", NULL, URL_F_ENCODED_HOST},
	{"http://EXAMPLE.com./", "http://example.com/", "example.com", NULL, 0},
	{"http://example.com/#Frag", "http://example.com/#Frag", NULL, NULL, 0},
	/* found by fuzz_url_normalise: IDNA maps SUBSCRIPT ZERO to "0", an IPv4 literal */
	{"\xe2\x82\x80", "http://0.0.0.0/", "0.0.0.0", "0.0.0.0", URL_F_IP | URL_F_IP_OBFUSCATED},
};

static void test_normalise(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct url_norm n;
		int r = url_normalise(cases[i].in, strlen(cases[i].in), &n);
		if (r != URL_OK)
			fail_msg("case %zu (%s): result %d", i, cases[i].in, r);
		if (strcmp(n.norm, cases[i].norm) != 0)
			fail_msg("case %zu: %s gave %s, want %s", i, cases[i].in, n.norm, cases[i].norm);
		if (cases[i].host)
			assert_string_equal(n.host, cases[i].host);
		if (cases[i].domain)
			assert_string_equal(n.domain, cases[i].domain);
		if ((n.flags & cases[i].flags) != cases[i].flags)
			fail_msg("case %zu (%s): flags %#x lack %#x", i, cases[i].in, n.flags,
				 cases[i].flags);
		url_norm_clear(&n);
	}
}

static void test_not_web_or_bad(void **state)
{
	static const char *const not_web[] = {"mailto:x@example.com", "javascript:alert(1)",
					      "data:text/html,hi", "cid:part1"};
	static const char *const bad[] = {"http://", "http://exa mple.com/", "http://a..b.com/",
					  "http://example.com:99999/", "http://[zz::1]/", "http:foo"};
	struct url_norm n;
	for (size_t i = 0; i < sizeof(not_web) / sizeof(not_web[0]); i++)
		assert_int_equal(url_normalise(not_web[i], strlen(not_web[i]), &n), URL_NOT_WEB);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (url_normalise(bad[i], strlen(bad[i]), &n) != URL_BAD)
			fail_msg("%s should be refused", bad[i]);
	/* found by fuzz_url_normalise: NUL in the host is refused, in the path encoded */
	assert_int_equal(url_normalise("http://a\0b.com/", 15, &n), URL_BAD);
	assert_int_equal(url_normalise("http://a.com/x\0y", 16, &n), URL_OK);
	assert_string_equal(n.norm, "http://a.com/x%00y");
	url_norm_clear(&n);
	char *big = malloc(URL_MAX_LEN + 100);
	memset(big, 'a', URL_MAX_LEN + 100);
	memcpy(big, "http://", 7);
	assert_int_equal(url_normalise(big, URL_MAX_LEN + 100, &n), URL_BAD);
	free(big);
}

static void test_ipv4_forms(void **state)
{
	unsigned long ip;
	assert_true(url_parse_ipv4("1.2.3.4", 7, &ip));
	assert_int_equal(ip, 0x01020304);
	assert_true(url_parse_ipv4("0x1.0x2.3", 9, &ip));
	assert_int_equal(ip, 0x01020003);
	assert_true(url_parse_ipv4("4294967295", 10, &ip));
	assert_int_equal(ip, 0xFFFFFFFFul);
	assert_false(url_parse_ipv4("4294967296", 10, &ip));
	assert_false(url_parse_ipv4("1.2.3.256", 9, &ip));
	assert_false(url_parse_ipv4("1.2.3.4.5", 9, &ip));
	assert_false(url_parse_ipv4("08.1.1.1", 8, &ip)); /* 8 is not octal */
	assert_false(url_parse_ipv4("example.com", 11, &ip));
}

static void unwrap_is(const char *in, const char *want)
{
	struct url_norm n;
	assert_int_equal(url_normalise(in, strlen(in), &n), URL_OK);
	char *got = url_unwrap(&n);
	if (want) {
		assert_non_null(got);
		assert_string_equal(got, want);
	} else {
		assert_null(got);
	}
	free(got);
	url_norm_clear(&n);
}

/* Several targets in one wrapper: each is returned in order, then NULL; single-target
 * forms have no second. */
static void test_unwrap_nth(void **state)
{
	struct url_norm n;
	const char *w = "http://wrap.example/r?u=https%3A%2F%2Fa.example%2F&x=1&v=http://b.example/p";
	assert_int_equal(url_normalise(w, strlen(w), &n), URL_OK);
	char *t0 = url_unwrap_nth(&n, 0), *t1 = url_unwrap_nth(&n, 1), *t2 = url_unwrap_nth(&n, 2);
	assert_non_null(t0);
	assert_non_null(t1);
	assert_string_equal(t0, "https://a.example/");
	assert_string_equal(t1, "http://b.example/p");
	assert_null(t2);
	free(t0);
	free(t1);
	url_norm_clear(&n);
	const char *p = "https://x.example/redirect/https://target.example/a?b=http://c.example/";
	assert_int_equal(url_normalise(p, strlen(p), &n), URL_OK);
	t0 = url_unwrap_nth(&n, 0);
	assert_non_null(t0);
	assert_null(url_unwrap_nth(&n, 1));
	free(t0);
	url_norm_clear(&n);
}

static void test_unwrap(void **state)
{
	unwrap_is("https://www.google.com/url?q=https%3A%2F%2Fevil.com%2Fx&sa=D",
		  "https://evil.com/x");
	unwrap_is("https://eur01.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.com%2F&data=0",
		  "http://a.com/");
	unwrap_is("https://urldefense.proofpoint.com/v2/url?u=https-3A__b.com_p&d=1",
		  "https://b.com/p");
	unwrap_is("https://l.facebook.com/l.php?u=http%3A%2F%2Fc.com%2F&h=x", "http://c.com/");
	unwrap_is("https://x.example/go/https://d.com/q", "https://d.com/q");
	unwrap_is("https://example.com/page?x=1&y=2", NULL);
	assert_true(url_is_shortener("bit.ly"));
	assert_true(url_is_shortener("www.tinyurl.com"));
	assert_false(url_is_shortener("example.com"));
}

static void test_public_suffix(void **state)
{
	assert_true(url_has_public_suffix("example.com", 11));
	assert_true(url_has_public_suffix("a.b.example.co.uk", 17));
	assert_false(url_has_public_suffix("co.uk", 5));
	assert_false(url_has_public_suffix("file.notatld", 12));
	assert_false(url_has_public_suffix("localhost", 9));
}

/* normalise(normalise(x)) == normalise(x), and the canonical form of x is want (when
 * want is not NULL); x is len bytes (the fuzz reproducer holds NULs). */
static void idempotent_n(const char *in, size_t len, const char *want)
{
	struct url_norm n, n2;
	if (url_normalise(in, len, &n) != URL_OK)
		fail_msg("%s: not normalised", in);
	if (want && strcmp(n.norm, want) != 0)
		fail_msg("%s gave %s, want %s", in, n.norm, want);
	if (url_normalise(n.norm, strlen(n.norm), &n2) != URL_OK)
		fail_msg("%s: its canonical form %s is refused", in, n.norm);
	if (strcmp(n.norm, n2.norm) != 0)
		fail_msg("%s: not idempotent: %s -> %s", in, n.norm, n2.norm);
	url_norm_clear(&n2);
	url_norm_clear(&n);
}

static void idempotent(const char *in, const char *want)
{
	idempotent_n(in, strlen(in), want);
}

/* Found by fuzz_url_normalise (tests/fuzz/corpus/fuzz_url_normalise/regress-pct-dot-refang):
 * the query ends in "[[%2e].]"; percent-decoding made "[[.].]" after refanging was done,
 * and the next normalisation refanged the "[.]" it now held.  Percent-encoded dots are
 * decoded (unreserved, RFC 3986 6.2.2.2) but dot segments are left as they are: the
 * analyst sees the path that was sent. */
static const char fuzz_pct_dot_refang[] =
	"xn--hftrg/" "\x3f" "u=3/__//http://" "\xc2" "\x00" "\x5c" "\xad" "hr," "\x00" "s" "\x00"
	"e.com/fo" "\x00" "\x00" "\x00" "\x00" "\x00" "\x00" "\x00" "\x00" "\x00" "\x00" "\x00"
	"\x00" "\x00" "\x00" "\x00" "\x00" "\x00" "t|t:0[p/[[%2e].]";

static void test_idempotent(void **state)
{
	idempotent_n(fuzz_pct_dot_refang, sizeof(fuzz_pct_dot_refang) - 1, NULL);
	/* percent-encoded dots in path and query; dot segments kept */
	idempotent("http://example.com/a/%2e%2e/b", "http://example.com/a/../b");
	idempotent("http://example.com/a/%2E/b", "http://example.com/a/./b");
	idempotent("http://example.com/?x=/%2e%2e/", "http://example.com/?x=/../");
	idempotent("/a/%2e%2e/b", NULL);
	idempotent("/a/%2E/b", NULL);
	idempotent("example.com?x=/%2e%2e/", "http://example.com/?x=/../");
	idempotent("example.com/[%2e]", "http://example.com/.");
	/* alone they have no host: refused, the same way every time */
	struct url_norm n;
	assert_int_equal(url_normalise("?x=/%2e%2e/", 11, &n), URL_BAD);
	assert_int_equal(url_normalise("[%2e]", 5, &n), URL_BAD);
	/* a defang marker completed by decoding is refanged like any other */
	idempotent("http://example.com/[%2e]", "http://example.com/.");
	idempotent("http://example.com/p?q=[%2E]x#[%2e]", "http://example.com/p?q=.x#.");
	idempotent("http://example.com/(%64%6F%74)", "http://example.com/.");
	idempotent("http://example.com/[[%2e].]", "http://example.com/[..]");
	idempotent("http://[%2e]@example.com/", "http://.@example.com/");
	/* backslashes read as slashes make a marker too */
	idempotent("http://example.com/[:\\\\]", "http://example.com/://");
	/* decoded once only: "%252e" is "%2e" as text, not a dot */
	idempotent("http://example.com/[%252e]", "http://example.com/[%252e]");
	/* found by fuzz_url_normalise (regress-wj-joined-by-strip): removing a word joiner
	 * joined "\xE2" and "\x81\xA0" into another; IDNA mapped that one to nothing,
	 * leaving "http:///", which is refused when normalised again */
	assert_int_equal(url_normalise("\xe2\xe2\x81\xa0\x81\xa0", 6, &n), URL_BAD);
	idempotent("http://a.com/\xe2\xe2\x80\x8b\x80\x8b", "http://a.com/");
	idempotent("http://a\xe2\xe2\x81\xa0\x81\xa0.com/", "http://a.com/");
	/* an invisible between spaces: trimmed after stripping */
	idempotent(" \xe2\x80\x8b example.com", "http://example.com/");
	/* IDNA drops U+034F (not one of ours) and leaves nothing, or a trailing dot */
	assert_int_equal(url_normalise("http://\xcd\x8f/", 8, &n), URL_BAD);
	idempotent("http://a.\xcd\x8f/x", "http://a/x");
	/* nesting deeper than any round limit */
	char deep[256] = "http://example.com/";
	for (int i = 0; i < 40; i++)
		strcat(deep, "[");
	strcat(deep, ".");
	for (int i = 0; i < 40; i++)
		strcat(deep, "]");
	idempotent(deep, "http://example.com/.");

	assert_int_equal(url_normalise("http://example.com/[%2e]", 24, &n), URL_OK);
	assert_true(n.flags & URL_F_DEFANGED);
	url_norm_clear(&n);
}

int main(void)
{
	url_psl_init(NULL);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_normalise),      cmocka_unit_test(test_not_web_or_bad),
		cmocka_unit_test(test_ipv4_forms),     cmocka_unit_test(test_unwrap),
		cmocka_unit_test(test_unwrap_nth),
		cmocka_unit_test(test_public_suffix),  cmocka_unit_test(test_idempotent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
