/*
 * test_analyze_fixtures: every crafted obfuscation fixture in tests/analyze/obfuscation
 * and every labeled real message in tests/analyze/labeled gives exactly its expected
 * link set (and the flags named there); labeled messages also their recipients and
 * attachments (tests/analyze/labeled/NAME.expect).  tests/analyze/independent holds real
 * messages whose link sets were written by hand from the raw bytes, never from the
 * analyzer's output (docs/ANALYSIS.md).  And mbox splitting: only "From SENDER DATE"
 * lines separate messages.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analyze/analyze.h"
#include "analyze/input.h"
#include "analyze/url.h"

#ifndef ANALYZE_FIXTURES
#define ANALYZE_FIXTURES "tests/analyze"
#endif

static bool has_flag(const struct an_link *l, const char *name)
{
	for (size_t i = 0; i < url_flag_count(); i++)
		if (strcmp(url_flag_names[i], name) == 0)
			return (l->flags & (1u << i)) != 0;
	fail_msg("unknown flag name %s", name);
	return false;
}

static bool has_where(const struct an_link *l, const char *name)
{
	for (size_t i = 0; i < an_where_count(); i++)
		if (strcmp(an_where_names[i], name) == 0)
			return (l->where & (1u << i)) != 0;
	fail_msg("unknown where name %s", name);
	return false;
}

/* Compare a's links with the expectation file; returns the number of mismatches and
 * prints them. */
static int check_links(const struct analysis *a, const char *links_path)
{
	FILE *f = fopen(links_path, "r");
	char line[8192];
	int bad = 0;
	size_t nexp = 0;
	assert_non_null(f);
	bool *seen = calloc(a->n_links + 1, sizeof(bool));
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (line[0] == '#' || line[0] == 0)
			continue;
		char *tab = strchr(line, '\t');
		if (tab)
			*tab++ = 0;
		nexp++;
		const struct an_link *l = NULL;
		for (size_t i = 0; i < a->n_links; i++)
			if (strcmp(a->links[i].norm, line) == 0) {
				l = &a->links[i];
				seen[i] = true;
			}
		if (!l) {
			fprintf(stderr, "%s: missing %s\n", links_path, line);
			bad++;
			continue;
		}
		for (char *fl = tab ? strtok(tab, ",") : NULL; fl; fl = strtok(NULL, ",")) {
			if (strncmp(fl, "where=", 6) == 0) {
				if (!has_where(l, fl + 6)) {
					fprintf(stderr, "%s: %s not seen in %s\n", links_path, line,
						fl + 6);
					bad++;
				}
			} else if (fl[0] == '!') {
				if (has_flag(l, fl + 1)) {
					fprintf(stderr, "%s: %s has flag %s\n", links_path, line,
						fl + 1);
					bad++;
				}
			} else if (!has_flag(l, fl)) {
				fprintf(stderr, "%s: %s lacks flag %s\n", links_path, line, fl);
				bad++;
			}
		}
	}
	for (size_t i = 0; i < a->n_links; i++)
		if (!seen[i]) {
			fprintf(stderr, "%s: unexpected %s\n", links_path, a->links[i].norm);
			bad++;
		}
	free(seen);
	fclose(f);
	return bad;
}

/* .expect: lines "rcpt ADDR", "att SHA256 DETECTED_TYPE", "finding KIND". */
static int check_expect(const struct analysis *a, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int bad = 0;
	size_t nr = 0, na = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *sp = strchr(line, ' ');
		if (line[0] == '#' || !sp)
			continue;
		*sp++ = 0;
		bool found = false;
		if (strcmp(line, "rcpt") == 0) {
			nr++;
			for (size_t i = 0; i < a->n_rcpts; i++)
				found |= strcmp(a->rcpts[i].addr, sp) == 0;
		} else if (strcmp(line, "att") == 0) {
			na++;
			char *ty = strchr(sp, ' ');
			if (ty)
				*ty++ = 0;
			for (size_t i = 0; i < a->n_atts; i++)
				found |= strcmp(a->atts[i].sha256, sp) == 0 &&
					 (!ty || strcmp(a->atts[i].detected, ty) == 0);
		} else if (strcmp(line, "attname") == 0) {
			for (size_t i = 0; i < a->n_atts; i++)
				found |= a->atts[i].filename && strcmp(a->atts[i].filename, sp) == 0;
		} else if (strcmp(line, "member") == 0) {
			/* "member NAME [SHA256|encrypted|truncated]" */
			char *what = strchr(sp, ' ');
			if (what)
				*what++ = 0;
			for (size_t i = 0; i < a->n_atts; i++)
				for (size_t k = 0; k < a->atts[i].n_mdet; k++) {
					const struct an_member *m = &a->atts[i].mdet[k];
					if (strcmp(m->name, sp) != 0)
						continue;
					found |= !what || (strcmp(what, "encrypted") == 0 && m->encrypted) ||
						 (strcmp(what, "truncated") == 0 && m->truncated) ||
						 strcmp(what, m->sha256) == 0;
				}
		} else if (strcmp(line, "finding") == 0) {
			for (size_t i = 0; i < a->n_findings; i++)
				found |= strcmp(a->findings[i].kind, sp) == 0;
		} else {
			continue;
		}
		if (!found) {
			fprintf(stderr, "%s: missing %s %s\n", path, line, sp);
			bad++;
		}
	}
	fclose(f);
	if (nr != a->n_rcpts) {
		fprintf(stderr, "%s: %zu recipients expected, got %zu\n", path, nr, a->n_rcpts);
		bad++;
	}
	if (na != a->n_atts) {
		fprintf(stderr, "%s: %zu attachments expected, got %zu\n", path, na, a->n_atts);
		bad++;
	}
	return bad;
}

static void run_dir(const char *sub, int min_files)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%s", ANALYZE_FIXTURES, sub);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	int files = 0, bad = 0;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".eml") != 0)
			continue;
		char path[8192], links[8192], expect[8192];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		snprintf(links, sizeof(links), "%s/%.*s.links", dir, (int)(n - 4), de->d_name);
		snprintf(expect, sizeof(expect), "%s/%.*s.expect", dir, (int)(n - 4), de->d_name);
		size_t len = 0;
		const void *data = an_map_file(path, &len);
		assert_non_null(data);
		struct analysis *a = analyze_message(data, len, NULL, NULL);
		assert_non_null(a);
		bad += check_links(a, links);
		bad += check_expect(a, expect);
		analysis_free(&a);
		an_unmap(data, len);
		files++;
	}
	closedir(d);
	assert_true(files >= min_files);
	assert_int_equal(bad, 0);
}

static void test_obfuscation_fixtures(void **state)
{
	run_dir("obfuscation", 10);
}

static void test_labeled_real_messages(void **state)
{
	run_dir("labeled", 20);
}

static void test_independently_labeled(void **state)
{
	run_dir("independent", 15);
}

/* ../shared/analysis-cases (public domain, copied): one message per way real spam
 * hides a link from a naive extractor or makes one invent a host */
static void test_extraction_cases(void **state)
{
	run_dir("cases", 24);
}

/* attachments/ (written by make-fixtures.py): TNEF, a PDF object stream, OOXML,
 * archives listed with member hashes, a decompression bomb cut by the budget */
static void test_attachment_fixtures(void **state)
{
	run_dir("attachments", 5);
}

/* our own variants of each class of cases/ */
static void test_extraction_variants(void **state)
{
	run_dir("variants", 24);
}

static int count_msg(void *arg, const char *source, const void *data, size_t len)
{
	(*(int *)arg)++;
	return 0;
}

/* A header written "From  :<addr>" and a body line "From here on" are not mbox
 * separators; "From sender date" is. */
static void test_mbox_separators(void **state)
{
	char path[] = "/tmp/mxb-mbox-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char mbox[] = "From a@example.com  Fri Dec  7 11:07:41 2001\n"
			    "From  :<tst1@example.com>\nSubject: one\n\nbody\n"
			    "From here on it is still the first message\n"
			    "\n"
			    "From b@example.com Sat Dec  8 10:00:00 2001\nSubject: two\n\nx\n";
	assert_int_equal(write(fd, mbox, sizeof(mbox) - 1), (ssize_t)(sizeof(mbox) - 1));
	close(fd);
	int n = 0;
	assert_int_equal(an_input_each(path, count_msg, &n), 0);
	assert_int_equal(n, 2);
	unlink(path);
}

int main(void)
{
	analyze_global_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_obfuscation_fixtures),
		cmocka_unit_test(test_labeled_real_messages),
		cmocka_unit_test(test_independently_labeled),
		cmocka_unit_test(test_extraction_cases),
		cmocka_unit_test(test_extraction_variants),
		cmocka_unit_test(test_attachment_fixtures),
		cmocka_unit_test(test_mbox_separators),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
