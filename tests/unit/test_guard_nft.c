/*
 * test_guard_nft: the nft helper's pure parts (src/guard/nft.c): what a message must be
 * to be acted on, the scripts it writes, the parser of `nft -j` listings; and, as root
 * with nft installed, that the kernel's nftables accepts the generated rulesets (nft -c
 * in a network namespace of its own: nothing is changed anywhere).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "guard/nft.h"

static struct netaddr A(const char *s)
{
	struct netaddr a;
	assert_int_equal(netaddr_parse(s, &a), 0);
	return a;
}

static void test_validate(void **state)
{
	(void)state;
	struct nft_msg m;
	struct netaddr a = A("203.0.113.7"), p = A("2001:db8:1::/48");
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, 3600);
	assert_int_equal(nft_msg_validate(&m), 0);
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_BAN, &p, 60);
	assert_int_equal(nft_msg_validate(&m), 0);
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_ALLOW, &a, 0);
	assert_int_equal(nft_msg_validate(&m), 0); /* an allow may be permanent */
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, 0);
	assert_int_equal(nft_msg_validate(&m), -1); /* a divert always expires */
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, NFT_MAX_TIMEOUT_S + 1);
	assert_int_equal(nft_msg_validate(&m), -1);
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, 60);
	m.magic ^= 1;
	assert_int_equal(nft_msg_validate(&m), -1);
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, 60);
	m.op = 9;
	assert_int_equal(nft_msg_validate(&m), -1);
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, 60);
	m.set = 7;
	assert_int_equal(nft_msg_validate(&m), -1);
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, 60);
	m.family = 5;
	assert_int_equal(nft_msg_validate(&m), -1);
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, 60);
	m.bits = 33;
	assert_int_equal(nft_msg_validate(&m), -1);
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, 60);
	m.bits = 24; /* 203.0.113.7/24 has host bits */
	assert_int_equal(nft_msg_validate(&m), -1);
	nft_msg_make(&m, NFT_OP_ADD, NFT_SET_DIVERT, &a, 60);
	m.addr[9] = 1; /* bytes past an IPv4 address */
	assert_int_equal(nft_msg_validate(&m), -1);
	nft_msg_make(&m, NFT_OP_LIST, NFT_SET_NONE, NULL, 0);
	assert_int_equal(nft_msg_validate(&m), 0);
	m.set = NFT_SET_BAN;
	assert_int_equal(nft_msg_validate(&m), -1);
}

static void test_batch_script(void **state)
{
	(void)state;
	struct nft_msg m[2];
	struct netaddr a = A("203.0.113.7"), p = A("2001:db8:1::/48");
	nft_msg_make(&m[0], NFT_OP_ADD, NFT_SET_DIVERT, &a, 90);
	nft_msg_make(&m[1], NFT_OP_DEL, NFT_SET_BAN, &p, 0);
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(nft_batch_script(m, 2, &b), 0);
	assert_string_equal(b.data,
			    "add element inet mxbait divert4 { 203.0.113.7 }\n"
			    "delete element inet mxbait divert4 { 203.0.113.7 }\n"
			    "add element inet mxbait divert4 { 203.0.113.7 timeout 90s }\n"
			    "add element inet mxbait ban6 { 2001:db8:1::/48 timeout 1s }\n"
			    "delete element inet mxbait ban6 { 2001:db8:1::/48 }\n");
	buf_free(&b);
}

/* Run argv with text on stdin; the exit status. */
static int run(char *const argv[], const char *text)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[0], 0);
		close(p[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[0]);
	ssize_t w = write(p[1], text, strlen(text));
	assert_int_equal(w, (ssize_t)strlen(text));
	close(p[1]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_ruleset(void **state)
{
	(void)state;
	struct mxb_config cfg;
	config_defaults(&cfg);
	char *err = NULL;
	const char *text = "divert = yes\ndivert_ports = 25, 587, 993:9993\n";
	assert_int_equal(config_parse(&cfg, "t", text, strlen(text), &err), 0);
	struct netaddr trusted[] = { A("127.0.0.0/8"), A("127.0.0.1"), A("::1"),
				     A("192.0.2.1") };
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(nft_ruleset_script(&cfg, trusted, 4, &b), 0);
	/* the map of real to honeypot ports, the redirect, the ban, the dnat-only access */
	assert_non_null(strstr(b.data, "add element inet mxbait trapport { 25 : 2525, 587 : 2587, "
				       "993 : 9993 }"));
	assert_non_null(strstr(b.data, "ip saddr @divert4 tcp dport { 25, 587, 993 } counter "
				       "redirect to :tcp dport map @trapport"));
	assert_non_null(strstr(b.data, "ct status dnat accept"));
	assert_non_null(strstr(b.data, "flags interval, timeout; size 65536;"));
	/* an interval set refuses overlaps: 127.0.0.1 is inside 127.0.0.0/8 */
	assert_non_null(strstr(b.data, "add element inet mxbait allow4 { 127.0.0.0/8, 192.0.2.1 }"));
	assert_non_null(strstr(b.data, "add element inet mxbait allow6 { ::1 }"));
	bool root = geteuid() == 0 && access("/usr/sbin/nft", X_OK) == 0 &&
		    access("/usr/bin/unshare", X_OK) == 0;
	char a0[] = "unshare", a1[] = "--net", a2[] = "/usr/sbin/nft", a3[] = "-c", a4[] = "-f",
	     a5[] = "-";
	char *const argv[] = { a0, a1, a2, a3, a4, a5, NULL };
	if (root)
		assert_int_equal(run(argv, b.data), 0);
	else
		fprintf(stderr, "(not root or no nft: the kernel check of the ruleset is skipped)\n");
	config_free(&cfg);

	/* a second host: dnat there, no local honeypot port rules */
	config_defaults(&cfg);
	text = "divert = yes\ndivert_to = 192.0.2.10\n";
	assert_int_equal(config_parse(&cfg, "t", text, strlen(text), &err), 0);
	buf_reset(&b);
	assert_int_equal(nft_ruleset_script(&cfg, trusted, 0, &b), 0);
	assert_non_null(strstr(b.data, "counter dnat ip to 192.0.2.10 : tcp dport map @trapport"));
	assert_null(strstr(b.data, "ct status dnat"));
	if (root)
		assert_int_equal(run(argv, b.data), 0);
	buf_free(&b);
	config_free(&cfg);
}

struct seen {
	int n;
	char last[64];
	uint64_t exp;
};

static void on_elem(void *arg, const struct nft_elem *e)
{
	struct seen *s = arg;
	s->n++;
	netaddr_format(&e->addr, s->last, sizeof(s->last));
	if (e->set == NFT_SET_DIVERT && e->addr.family == AF_INET)
		s->exp = e->expires_ms;
}

static void test_listing(void **state)
{
	(void)state;
	const char *json =
		"{\"nftables\": [{\"metainfo\": {\"version\": \"1.0.6\", \"json_schema_version\": 1}},"
		" {\"table\": {\"family\": \"inet\", \"name\": \"mxbait\", \"handle\": 1}},"
		" {\"set\": {\"family\": \"inet\", \"name\": \"divert4\", \"table\": \"mxbait\","
		" \"type\": \"ipv4_addr\", \"handle\": 2, \"flags\": [\"interval\", \"timeout\"],"
		" \"elem\": [{\"elem\": {\"val\": \"198.51.100.10\", \"timeout\": 3600,"
		" \"expires\": 3541}}, {\"elem\": {\"val\": {\"prefix\": {\"addr\": \"203.0.113.0\","
		" \"len\": 24}}, \"timeout\": 60, \"expires\": 1}}]}},"
		" {\"set\": {\"family\": \"inet\", \"name\": \"allow6\", \"table\": \"mxbait\","
		" \"type\": \"ipv6_addr\", \"elem\": [\"::1\"]}},"
		" {\"set\": {\"family\": \"inet\", \"name\": \"other\", \"table\": \"elsewhere\","
		" \"elem\": [\"192.0.2.1\"]}}]}";
	struct seen s = { 0 };
	assert_int_equal(nft_parse_listing(json, strlen(json), on_elem, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.last, "::1");
	assert_int_equal(s.exp, 1000);
	assert_int_equal(nft_parse_listing("[1]", 3, on_elem, &s), -1);
	assert_int_equal(nft_parse_listing("garbage", 7, on_elem, &s), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_batch_script),
		cmocka_unit_test(test_ruleset),
		cmocka_unit_test(test_listing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
