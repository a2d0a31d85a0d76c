/*
 * test_analyze_limits: hostile sizes stay bounded.  A 50 MB message and a 10,000-part
 * message are analysed with the maximum resident set size (getrusage) growing by less
 * than a fixed budget; limits that are passed become findings; deep nesting does not
 * crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

#include "analyze/analyze.h"
#include "util/buf.h"

static long maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static bool has_finding(const struct analysis *a, const char *kind)
{
	for (size_t i = 0; i < a->n_findings; i++)
		if (strcmp(a->findings[i].kind, kind) == 0)
			return true;
	return false;
}

#define HDR "From: a@example.com\r\nTo: b@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n"

/* Budget for RSS growth during one analysis.  Measured without sanitizers: 6 MiB for
 * the 50 MB message, 20 MiB for 10,000 parts (GMime keeps one object per part); ASan's
 * redzones and quarantine multiply that by about 8. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_BUDGET_KB (256 * 1024)
#else
#define RSS_BUDGET_KB (48 * 1024)
#endif

static void test_50mb_message(void **state)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, HDR "Content-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n--BB\r\n"
			 "Content-Type: text/plain\r\n\r\nsee http://big.example.com/x\r\n--BB\r\n"
			 "Content-Type: application/octet-stream; name=\"big.bin\"\r\n"
			 "Content-Transfer-Encoding: base64\r\n\r\n");
	/* 50 MB of base64 lines */
	static const char line[] =
		"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
	while (b.len < 50u * 1024 * 1024)
		buf_append(&b, line, sizeof(line) - 1);
	buf_puts(&b, "--BB--\r\n");
	long before = maxrss_kb();
	struct analysis *a = analyze_message(b.data, b.len, NULL, NULL);
	long grew = maxrss_kb() - before;
	assert_non_null(a);
	assert_int_equal(a->n_atts, 1);
	assert_true(a->atts[0].size > 36u * 1000 * 1000);
	assert_int_equal(a->n_links, 1);
	assert_string_equal(a->links[0].norm, "http://big.example.com/x");
	fprintf(stderr, "50 MB message: max RSS grew by %ld KiB\n", grew);
	assert_true(grew < RSS_BUDGET_KB);
	analysis_free(&a);
	/* the same with a decoded-bytes limit: a finding, the attachment cut */
	struct analyze_limits lim;
	analyze_limits_default(&lim);
	lim.max_decoded = 1u << 20;
	a = analyze_message(b.data, b.len, &lim, NULL);
	assert_true(has_finding(a, "decoded_limit"));
	assert_true(a->parts[2].truncated);
	analysis_free(&a);
	buf_free(&b);
}

static void many_parts(struct buf *b, int n)
{
	buf_puts(b, HDR "Content-Type: multipart/mixed; boundary=\"PP\"\r\n\r\n");
	for (int i = 0; i < n; i++)
		buf_printf(b, "--PP\r\nContent-Type: text/plain\r\n\r\npart %d http://p%d.example.com/\r\n",
			   i, i % 50);
	buf_puts(b, "--PP--\r\n");
}

static void test_10000_parts(void **state)
{
	struct buf b;
	buf_init(&b, 0);
	many_parts(&b, 10000);
	long before = maxrss_kb();
	struct analysis *a = analyze_message(b.data, b.len, NULL, NULL);
	assert_non_null(a);
	/* default limit 2000 parts: a finding, the first parts analysed */
	assert_true(has_finding(a, "parts_limit"));
	assert_int_equal(a->n_parts, 2000);
	assert_int_equal(a->n_links, 50);
	analysis_free(&a);
	struct analyze_limits lim;
	analyze_limits_default(&lim);
	lim.max_parts = 20000;
	a = analyze_message(b.data, b.len, &lim, NULL);
	long grew = maxrss_kb() - before;
	assert_false(has_finding(a, "parts_limit"));
	assert_int_equal(a->n_parts, 10001);
	fprintf(stderr, "10,000 parts: max RSS grew by %ld KiB\n", grew);
	assert_true(grew < RSS_BUDGET_KB);
	analysis_free(&a);
	buf_free(&b);
}

static void test_deep_nesting(void **state)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, HDR);
	int depth = 400;
	for (int i = 0; i < depth; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
	buf_puts(&b, "Content-Type: text/plain\r\n\r\ndeep http://deep.example.com/\r\n");
	for (int i = depth - 1; i >= 0; i--)
		buf_printf(&b, "--b%d--\r\n", i);
	struct analysis *a = analyze_message(b.data, b.len, NULL, NULL);
	assert_non_null(a);
	assert_true(has_finding(a, "depth_limit"));
	assert_true(a->n_parts <= 21);
	analysis_free(&a);
	buf_free(&b);
}

/* GMime's cost grows with the square of the boundary stack: 100,000 nested multiparts
 * would take minutes.  The analyzer cuts the message after 1000 boundaries (a finding)
 * and stays fast. */
static void test_boundary_bomb(void **state)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, HDR);
	int depth = 100000;
	for (int i = 0; i < depth; i++)
		buf_printf(&b, "Content-Type: multipart/mixed; BOUNDARY = \"b%d\"\r\n\r\n--b%d\r\n",
			   i, i);
	buf_puts(&b, "Content-Type: text/plain\r\n\r\nx\r\n");
	for (int i = depth - 1; i >= 0; i--)
		buf_printf(&b, "--b%d--\r\n", i);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct analysis *a = analyze_message(b.data, b.len, NULL, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double el = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr, "100,000 nested multiparts (%zu bytes): %.2f s\n", b.len, el);
	assert_non_null(a);
	assert_true(has_finding(a, "structure_limit"));
	assert_true(has_finding(a, "depth_limit"));
	assert_true(el < 10.0);
	analysis_free(&a);
	buf_free(&b);
}

/* A bought list in one To: header: recipients deduplicated in linear time, the limit
 * one finding, per-domain counts right. */
static void test_many_recipients(void **state)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "From: a@example.com\r\nTo: ");
	for (int i = 0; i < 30000; i++) /* every address twice */
		buf_printf(&b, "%sUser%d@Dom%d.example", i ? ", " : "", i % 15000, (i % 15000) % 7);
	buf_puts(&b, "\r\nSubject: list\r\n\r\nhi\r\n");
	struct analysis *a = analyze_message(b.data, b.len, NULL, NULL);
	assert_int_equal(a->n_rcpts, 10000);
	size_t n = 0;
	for (size_t i = 0; i < a->n_findings; i++)
		n += strcmp(a->findings[i].kind, "recipients_limit") == 0;
	assert_int_equal(n, 1);
	analysis_free(&a);
	struct analyze_limits lim;
	analyze_limits_default(&lim);
	lim.max_recipients = 20000;
	a = analyze_message(b.data, b.len, &lim, NULL);
	assert_int_equal(a->n_rcpts, 15000);
	assert_string_equal(a->rcpts[0].addr, "user0@dom0.example");
	struct buf out;
	buf_init(&out, 0);
	analysis_to_json(a, NULL, &out);
	/* 15000 addresses over 7 domains: 2143 or 2142 each */
	assert_non_null(strstr(out.data, "\"recipient_domains\":{\"dom0.example\":2143,"));
	buf_free(&out);
	analysis_free(&a);
	buf_free(&b);
}

static void test_garbage_and_empty(void **state)
{
	struct analysis *a = analyze_message("", 0, NULL, NULL);
	assert_non_null(a);
	analysis_free(&a);
	char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	a = analyze_message(junk, sizeof(junk), NULL, NULL);
	assert_non_null(a);
	struct buf out;
	buf_init(&out, 0);
	analysis_to_json(a, "junk", &out);
	assert_true(out.len > 10);
	buf_free(&out);
	analysis_free(&a);
}

int main(void)
{
	analyze_global_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_garbage_and_empty),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_boundary_bomb),
		cmocka_unit_test(test_many_recipients),
		cmocka_unit_test(test_10000_parts),
		cmocka_unit_test(test_50mb_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
