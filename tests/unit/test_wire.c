/*
 * test_wire: the analysis worker's result and request encoding (analyze/wire.h).
 *
 * Every message of tests/analyze/{labeled,attachments,independent} goes through
 * analyze -> encode -> decode, and the decoded analysis prints the same JSON and
 * encodes to the same bytes; then what a compromised worker could send is refused:
 * every truncation of a real result, a bad magic or version, counts over the limits
 * (and a count larger than the input could hold, before anything is allocated for it),
 * indexes that point outside the analysis, a NUL inside a string, text over max_text,
 * a malformed digest, trailing bytes.  With MXBAIT_WIRE_CORPUS=DIR it also writes the
 * encoded results there (the seeds of tests/fuzz/corpus/fuzz_wire_result).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyze/analyze.h"
#include "analyze/input.h"
#include "analyze/wire.h"
#include "util/buf.h"

static struct analyze_limits lim;

static int setup(void **state)
{
	(void)state;
	analyze_global_init();
	analyze_limits_default(&lim);
	return 0;
}

static void json_of(const struct analysis *a, struct buf *out)
{
	buf_reset(out);
	assert_int_equal(analysis_to_json(a, NULL, out), 0);
}

/* One message through the whole round trip; returns the count checked (0 or 1). */
static int round_trip(const char *path, const char *corpus, unsigned *n_links)
{
	size_t len = 0;
	const void *data = an_map_file(path, &len);
	if (!data)
		return 0;
	const char *rcpts[] = { "victim@example.org" };
	struct an_envelope env = { .sender = "s@bad.example", .recipients = rcpts,
				   .n_recipients = 1, .client_ip = "192.0.2.7",
				   .helo = "bad.example", .auth_user = NULL };
	struct analysis *a = analyze_message(data, len, &lim, &env);
	an_unmap(data, len);
	assert_non_null(a);
	struct buf enc, enc2, j1, j2;
	buf_init(&enc, 0);
	buf_init(&enc2, 0);
	buf_init(&j1, 0);
	buf_init(&j2, 0);
	assert_int_equal(wire_encode_result(a, &enc), 0);
	const char *err = "unset";
	struct analysis *b = wire_decode_result(enc.data, enc.len, &lim, &err);
	if (!b)
		fail_msg("%s: decoded result refused: %s", path, err);
	assert_null(err);
	json_of(a, &j1);
	json_of(b, &j2);
	assert_string_equal(j1.data, j2.data);
	assert_int_equal(wire_encode_result(b, &enc2), 0);
	assert_int_equal(enc.len, enc2.len);
	assert_memory_equal(enc.data, enc2.data, enc.len);
	*n_links += (unsigned)a->n_links;
	if (corpus) {
		const char *base = strrchr(path, '/');
		struct buf out;
		buf_init(&out, 0);
		buf_printf(&out, "%s/%s.wire", corpus, base ? base + 1 : path);
		FILE *f = fopen(out.data, "wb");
		buf_free(&out);
		if (f) {
			fwrite(enc.data, 1, enc.len, f);
			fclose(f);
		}
	}
	analysis_free(&a);
	analysis_free(&b);
	buf_free(&enc);
	buf_free(&enc2);
	buf_free(&j1);
	buf_free(&j2);
	return 1;
}

static int each_dir(const char *dir, const char *suffix, const char *corpus, unsigned *links)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name), s = strlen(suffix);
		if (l <= s || strcmp(de->d_name + l - s, suffix) != 0)
			continue;
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		n += round_trip(p, corpus, links);
	}
	closedir(d);
	return n;
}

static void test_round_trip_corpus(void **state)
{
	(void)state;
	const char *corpus = getenv("MXBAIT_WIRE_CORPUS");
	unsigned links = 0;
	int n = each_dir(ANALYZE_FIXTURES "/labeled", ".eml", corpus, &links);
	n += each_dir(ANALYZE_FIXTURES "/attachments", ".eml", corpus, &links);
	n += each_dir(ANALYZE_FIXTURES "/independent", ".eml", corpus, &links);
	assert_true(n >= 60);   /* the test saw enough to mean something */
	assert_true(links >= 50);
}

/* A small real analysis with a link, a part, a recipient, an attachment, a finding. */
#define MSG "From: Mallory <m@bad.example>\r\nTo: v@example.org\r\nSubject: hi\r\n" \
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" \
	"Content-Type: text/plain\r\n\r\nsee http://evil.example.com/x and " \
	"http://bit.ly/abc\r\n--b\r\nContent-Type: application/octet-stream\r\n" \
	"Content-Disposition: attachment; filename=a.bin\r\n" \
	"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b--\r\n"

static struct analysis *small(void)
{
	struct analysis *a = analyze_message(MSG, strlen(MSG), &lim, NULL);
	assert_non_null(a);
	assert_true(a->n_links >= 1 && a->n_parts >= 2 && a->n_atts == 1);
	return a;
}

/* Encode a (after the caller changed it) and expect the decoder to refuse it with a
 * reason containing why. */
static void expect_refused(struct analysis *a, const struct analyze_limits *l, const char *why)
{
	struct buf enc;
	buf_init(&enc, 0);
	wire_encode_result(a, &enc);
	const char *err = NULL;
	struct analysis *b = wire_decode_result(enc.data, enc.len, l, &err);
	if (b)
		fail_msg("accepted, expected refusal: %s", why);
	assert_non_null(err);
	if (!strstr(err, why))
		fail_msg("refused with \"%s\", expected \"%s\"", err, why);
	buf_free(&enc);
}

static void test_truncations_refused(void **state)
{
	(void)state;
	struct analysis *a = small();
	struct buf enc;
	buf_init(&enc, 0);
	assert_int_equal(wire_encode_result(a, &enc), 0);
	for (size_t n = 0; n < enc.len; n++) {
		const char *err = NULL;
		struct analysis *b = wire_decode_result(enc.data, n, &lim, &err);
		if (b)
			fail_msg("a result cut at %zu of %zu bytes was accepted", n, enc.len);
		assert_non_null(err);
	}
	/* one byte too many */
	buf_putc(&enc, 0);
	const char *err = NULL;
	assert_null(wire_decode_result(enc.data, enc.len, &lim, &err));
	assert_string_equal(err, "trailing bytes");
	/* magic, version, kind */
	enc.len--;
	const char *whys[] = { "bad magic", "unknown version", "wrong kind" };
	size_t at[] = { 0, 4, 5 };
	for (size_t i = 0; i < 3; i++) {
		char keep = enc.data[at[i]];
		enc.data[at[i]] ^= 0x40;
		assert_null(wire_decode_result(enc.data, enc.len, &lim, &err));
		assert_string_equal(err, whys[i]);
		enc.data[at[i]] = keep;
	}
	struct analysis *ok = wire_decode_result(enc.data, enc.len, &lim, &err);
	assert_non_null(ok);
	analysis_free(&ok);
	buf_free(&enc);
	analysis_free(&a);
}

static void test_bad_fields_refused(void **state)
{
	(void)state;
	struct analysis *a = small();
	/* counts over the limits the worker was given */
	struct analyze_limits l = lim;
	l.max_links = (unsigned)a->n_links - 1;
	expect_refused(a, &l, "too many links");
	l = lim;
	l.max_parts = 1;
	expect_refused(a, &l, "too many parts");
	l = lim;
	l.max_text = a->text.len - 1;
	expect_refused(a, &l, "text over max_text");
	/* indexes outside the analysis */
	int keep = a->links[0].parent;
	a->links[0].parent = (int)a->n_links;
	expect_refused(a, &lim, "link parent out of range");
	a->links[0].parent = 0;
	expect_refused(a, &lim, "link is its own parent");
	a->links[0].parent = keep;
	keep = a->links[0].part;
	a->links[0].part = (int)a->n_parts;
	expect_refused(a, &lim, "link part out of range");
	a->links[0].part = keep;
	keep = a->parts[1].parent;
	a->parts[1].parent = 1;
	expect_refused(a, &lim, "part parent out of range");
	a->parts[1].parent = keep;
	keep = a->atts[0].part;
	a->atts[0].part = -2;
	expect_refused(a, &lim, "attachment part out of range");
	a->atts[0].part = keep;
	/* digests: hex of their exact length */
	char sha[65];
	memcpy(sha, a->atts[0].sha256, sizeof(sha));
	a->atts[0].sha256[3] = 'G';
	expect_refused(a, &lim, "bad digest");
	a->atts[0].sha256[10] = 0;
	expect_refused(a, &lim, "bad digest");
	memcpy(a->atts[0].sha256, sha, sizeof(sha));
	a->msg_sha256[0] = 0;
	expect_refused(a, &lim, "no message digest");
	analysis_free(&a);

	/* a NUL inside a string, and a count the input cannot hold */
	a = small();
	struct buf enc;
	buf_init(&enc, 0);
	wire_encode_result(a, &enc);
	const char *err = NULL;
	/* the subject is the first string after the 6-byte head: "hi" */
	assert_memory_equal(enc.data + 6, "\x02\0\0\0hi", 6);
	enc.data[11] = 0;
	assert_null(wire_decode_result(enc.data, enc.len, &lim, &err));
	assert_string_equal(err, "NUL in a string");
	/* a string longer than WIRE_STR_MAX */
	enc.data[11] = 'i';
	enc.data[6] = 0;
	enc.data[7] = 0;
	enc.data[8] = 0x20; /* 2 MiB */
	assert_null(wire_decode_result(enc.data, enc.len, &lim, &err));
	assert_string_equal(err, "string too long");
	buf_free(&enc);
	/* 16 NULL strings, then 1,000,000 parts claimed in a few bytes: refused as
	 * truncated before 41 MB are allocated for them */
	buf_init(&enc, 0);
	buf_append(&enc, "MXAW\x01\x01", 6);
	for (int i = 0; i < 16; i++)
		buf_append(&enc, "\xff\xff\xff\xff", 4);
	buf_append(&enc, "\x40\x42\x0f\x00", 4);
	buf_append(&enc, "\0\0\0\0\0\0\0\0", 8);
	l = lim;
	l.max_parts = 1000000;
	assert_null(wire_decode_result(enc.data, enc.len, &l, &err));
	assert_string_equal(err, "truncated");
	buf_free(&enc);
	analysis_free(&a);
}

static void test_request(void **state)
{
	(void)state;
	const char *rcpts[] = { "a@example.org", "b@example.org" };
	struct an_envelope env = { .sender = "s@bad.example", .recipients = rcpts,
				   .n_recipients = 2, .client_ip = "192.0.2.1", .helo = "h",
				   .auth_user = NULL };
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(wire_encode_request(&env, &lim, &b), 0);
	struct wire_request q;
	const char *err = NULL;
	assert_int_equal(wire_decode_request(b.data, b.len, &q, &err), 0);
	assert_true(q.has_envelope);
	assert_string_equal(q.sender, "s@bad.example");
	assert_null(q.auth_user);
	assert_int_equal(q.n_recipients, 2);
	assert_string_equal(q.recipients[1], "b@example.org");
	assert_int_equal(q.lim.max_links, lim.max_links);
	assert_int_equal(q.lim.max_text, lim.max_text);
	wire_request_clear(&q);
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(wire_decode_request(b.data, n, &q, &err), -1);
	/* a limit out of config.c's bounds (max_depth 0) */
	struct analyze_limits l = lim;
	l.max_depth = 0;
	buf_reset(&b);
	wire_encode_request(NULL, &l, &b);
	assert_int_equal(wire_decode_request(b.data, b.len, &q, &err), -1);
	assert_string_equal(err, "limit out of range");
	buf_reset(&b);
	wire_encode_request(NULL, &lim, &b);
	assert_int_equal(wire_decode_request(b.data, b.len, &q, &err), 0);
	assert_false(q.has_envelope);
	wire_request_clear(&q);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_corpus),
		cmocka_unit_test(test_truncations_refused),
		cmocka_unit_test(test_bad_fields_refused),
		cmocka_unit_test(test_request),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
