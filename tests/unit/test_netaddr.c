/* Unit tests for util/netaddr: strict parsing, IPv4-mapped unmapping, host bits,
 * containment, canonical formatting and lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "util/netaddr.h"

static const char *fmt(const char *in)
{
	static char buf[NETADDR_STRLEN];
	struct netaddr a;
	if (netaddr_parse(in, &a))
		return "BAD";
	return netaddr_format(&a, buf, sizeof(buf));
}

static void test_parse_canonical(void **state)
{
	assert_string_equal(fmt("192.0.2.1"), "192.0.2.1");
	assert_string_equal(fmt("192.0.2.77/24"), "192.0.2.0/24");
	assert_string_equal(fmt("192.0.2.1/32"), "192.0.2.1");
	assert_string_equal(fmt("0.0.0.0/0"), "0.0.0.0/0");
	assert_string_equal(fmt("2001:DB8:0:0::1"), "2001:db8::1");
	assert_string_equal(fmt("[2001:db8::1]"), "2001:db8::1");
	assert_string_equal(fmt("[2001:db8::1]/64"), "2001:db8::/64");
	assert_string_equal(fmt("2001:db8:ab:cd:1::/48"), "2001:db8:ab::/48");
	assert_string_equal(fmt("2001:db8::/33"), "2001:db8::/33");
	assert_string_equal(fmt("192.0.2.255/25"), "192.0.2.128/25");
	/* IPv4-mapped IPv6 is the IPv4 address it maps */
	assert_string_equal(fmt("::ffff:192.0.2.9"), "192.0.2.9");
	assert_string_equal(fmt("::ffff:192.0.2.9/120"), "192.0.2.0/24");
	assert_string_equal(fmt("::ffff:0:0/96"), "0.0.0.0/0");
	assert_string_equal(fmt("::ffff:0:0/80"), "::/80");
}

static void test_parse_refuses(void **state)
{
	static const char *bad[] = {
		"", "/", "/24", "192.0.2.1/", "192.0.2.1/33", "192.0.2.1/024", "192.0.2.1/+4",
		"192.0.2.1/-1", "192.0.2", "192.0.2.1.5", "192.0.2.256", "01.2.3.4",
		"192.0.2.1:25", "[192.0.2.1]", "[2001:db8::1", "2001:db8::1]", "2001:db8::/129",
		"2001:db8:::1", "example.com", " 192.0.2.1", "192.0.2.1 ", "1.2.3.4/8/8",
		"192.0.2.1/2x", "fe80::1%eth0",
	};
	struct netaddr a;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (netaddr_parse(bad[i], &a) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
	/* an embedded NUL is refused, not cut */
	assert_int_equal(netaddr_parse_n("192.0.2.1\0/8", 12, &a), -1);
	assert_int_equal(netaddr_parse_n("192.0.2.1/24xyz", 12, &a), 0);
	assert_string_equal(netaddr_format(&a, (char[NETADDR_STRLEN]){0}, NETADDR_STRLEN),
			    "192.0.2.0/24");
}

static void test_contains_and_prefix(void **state)
{
	struct netaddr net, ip, p;
	assert_int_equal(netaddr_parse("198.51.100.0/24", &net), 0);
	assert_int_equal(netaddr_parse("198.51.100.200", &ip), 0);
	assert_true(netaddr_contains(&net, &ip));
	assert_false(netaddr_contains(&ip, &net));
	assert_int_equal(netaddr_parse("198.51.101.1", &ip), 0);
	assert_false(netaddr_contains(&net, &ip));
	assert_int_equal(netaddr_parse("::ffff:198.51.100.7", &ip), 0);
	assert_true(netaddr_contains(&net, &ip));
	assert_int_equal(netaddr_parse("2001:db8::/32", &net), 0);
	assert_false(netaddr_contains(&net, &ip));  /* families never mix */
	assert_int_equal(netaddr_parse("2001:db8:ffff::1", &ip), 0);
	assert_true(netaddr_contains(&net, &ip));
	assert_int_equal(netaddr_parse("2001:db9::1", &ip), 0);
	assert_false(netaddr_contains(&net, &ip));
	assert_int_equal(netaddr_parse("10.0.0.0/7", &net), 0);
	assert_int_equal(netaddr_parse("11.255.0.1", &ip), 0);
	assert_true(netaddr_contains(&net, &ip));
	assert_int_equal(netaddr_parse("12.0.0.1", &ip), 0);
	assert_false(netaddr_contains(&net, &ip));

	assert_int_equal(netaddr_parse("2001:db8:1:2:3:4:5:6", &ip), 0);
	netaddr_prefix(&ip, 64, &p);
	char buf[NETADDR_STRLEN];
	assert_string_equal(netaddr_format(&p, buf, sizeof(buf)), "2001:db8:1:2::/64");
	netaddr_prefix(&p, 96, &p); /* cannot lengthen */
	assert_int_equal(p.bits, 64);
	assert_false(netaddr_is_host(&p));

	struct netaddr x, y;
	assert_int_equal(netaddr_parse("192.0.2.9/24", &x), 0);
	assert_int_equal(netaddr_parse("192.0.2.0/24", &y), 0);
	assert_true(netaddr_equal(&x, &y));
	assert_int_equal(netaddr_cmp(&x, &y), 0);
	assert_int_equal(netaddr_parse("192.0.2.0", &y), 0);
	assert_int_equal(netaddr_cmp(&x, &y), -1);
	assert_int_equal(netaddr_parse("::1", &y), 0);
	assert_int_equal(netaddr_cmp(&x, &y), -1);
}

static void test_sockaddr(void **state)
{
	struct sockaddr_in6 s6;
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:203.0.113.5", &s6.sin6_addr), 1);
	struct netaddr a;
	assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&s6, &a), 0);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.bits, 32);
	char buf[NETADDR_STRLEN];
	assert_string_equal(netaddr_format(&a, buf, sizeof(buf)), "203.0.113.5");
	struct sockaddr sa = { .sa_family = AF_UNIX };
	assert_int_equal(netaddr_from_sockaddr(&sa, &a), -1);
}

static void test_netset(void **state)
{
	struct netset s;
	netset_init(&s);
	const char *bad;
	size_t bad_len;
	assert_int_equal(netset_parse_list(&s, " 192.0.2.0/24,2001:db8::/32\t198.51.100.7,,",
					   &bad, &bad_len), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(netset_parse_list(&s, "192.0.2.9/24", NULL, NULL), 0);
	assert_int_equal(s.n, 3); /* the same network once */
	const char *list = "10.0.0.0/8, nonsense, 10.1.0.0/16";
	assert_int_equal(netset_parse_list(&s, list, &bad, &bad_len), -1);
	assert_ptr_equal(bad, list + 12);
	assert_int_equal(bad_len, 8);
	assert_int_equal(s.n, 3); /* all or nothing */
	struct netaddr a;
	assert_int_equal(netaddr_parse("192.0.2.200", &a), 0);
	assert_true(netset_contains(&s, &a));
	assert_int_equal(netaddr_parse("198.51.100.8", &a), 0);
	assert_false(netset_contains(&s, &a));
	assert_int_equal(netset_add_local_addresses(&s), 0);
	assert_int_equal(netaddr_parse("127.1.2.3", &a), 0);
	assert_true(netset_contains(&s, &a));
	assert_int_equal(netaddr_parse("::1", &a), 0);
	assert_true(netset_contains(&s, &a));
	netset_free(&s);
	assert_int_equal(s.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_canonical),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_contains_and_prefix),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_netset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
