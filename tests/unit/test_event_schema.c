/* test_event_schema: docs/events.md (the public contract) and src/store/event_schema.h
 * must list the same events, fields, types and nullability, in the same order.
 * Usage: test_event_schema PATH/TO/docs/events.md */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/event.h"
#include "store/event_schema.h"

static const char *doc_path;

static void copy(char *d, size_t n, const char *src)
{
	size_t l = strnlen(src, n - 1);
	memcpy(d, src, l);
	d[l] = '\0';
}

struct row {
	char event[48];
	char field[48];
	char type[32];
};

/* Split a markdown table row into cells; "\|" is an escaped bar inside a cell. */
static int split_cells(const char *line, char cells[][128], int max)
{
	int n = -1;
	size_t o = 0;
	for (const char *p = line; *p && *p != '\n'; p++) {
		if (*p == '\\' && p[1] == '|') {
			if (n >= 0 && o + 1 < 128)
				cells[n][o++] = '|';
			p++;
			continue;
		}
		if (*p == '|') {
			if (n >= 0)
				cells[n][o] = '\0';
			if (++n >= max)
				return max;
			o = 0;
			continue;
		}
		if (n >= 0 && o + 1 < 128)
			cells[n][o++] = *p;
	}
	return n; /* cells between the bars */
}

static void trim(char *s)
{
	size_t len = strlen(s);
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		s[--len] = '\0';
	size_t i = 0;
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	memmove(s, s + i, len - i + 1);
}

/* "`name`" -> "name"; returns false when not backquoted. */
static bool unquote(char *s)
{
	size_t len = strlen(s);
	if (len < 2 || s[0] != '`' || s[len - 1] != '`')
		return false;
	memmove(s, s + 1, len - 2);
	s[len - 2] = '\0';
	return true;
}

static size_t parse_doc(struct row *rows, size_t max, char ids[][48], size_t *n_ids)
{
	FILE *f = fopen(doc_path, "r");
	if (!f)
		fail_msg("cannot open %s", doc_path);
	char line[1024], section[48] = "";
	size_t n = 0;
	*n_ids = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "## ", 3)) {
			copy(section, sizeof(section), strstr(line, "Common fields") ? "_" : "");
			continue;
		}
		if (!strncmp(line, "### ", 4)) {
			char name[128];
			copy(name, sizeof(name), line + 4);
			name[strcspn(name, "\n")] = '\0';
			trim(name);
			if (!unquote(name))
				fail_msg("event heading without `id`: %s", line);
			copy(section, sizeof(section), name);
			assert_true(*n_ids < 64);
			copy(ids[(*n_ids)++], 48, name);
			continue;
		}
		if (line[0] != '|' || !section[0])
			continue;
		char cells[4][128];
		if (split_cells(line, cells, 4) < 3)
			fail_msg("short table row: %s", line);
		for (int i = 0; i < 3; i++)
			trim(cells[i]);
		if (!strcmp(cells[0], "field") || cells[0][0] == '-')
			continue; /* header and separator */
		if (!unquote(cells[0]))
			fail_msg("field name not in backquotes: %s", line);
		assert_true(n < max);
		copy(rows[n].event, sizeof(rows[n].event), section);
		copy(rows[n].field, sizeof(rows[n].field), cells[0]);
		copy(rows[n].type, sizeof(rows[n].type), cells[1]);
		n++;
	}
	fclose(f);
	return n;
}

static void test_doc_matches_schema(void **state)
{
	struct row rows[256];
	char ids[64][48];
	size_t n_ids;
	size_t n = parse_doc(rows, 256, ids, &n_ids);
	size_t ns;
	const struct mxb_event_field *sch = mxb_event_schema(&ns);
	size_t i = 0;
	for (; i < n && i < ns; i++) {
		if (strcmp(rows[i].event, sch[i].event) || strcmp(rows[i].field, sch[i].name) ||
		    strcmp(rows[i].type, mxb_field_type_name(sch[i].type, sch[i].nullable)))
			fail_msg("row %zu: docs say %s.%s %s, event_schema.h says %s.%s %s", i,
				 rows[i].event, rows[i].field, rows[i].type, sch[i].event,
				 sch[i].name, mxb_field_type_name(sch[i].type, sch[i].nullable));
	}
	if (n != ns)
		fail_msg("docs list %zu fields, event_schema.h %zu (first extra: %s)", n, ns,
			 n > ns ? rows[i].field : sch[i].name);
	size_t nid;
	const char *const *sid = mxb_event_ids(&nid);
	assert_int_equal(n_ids, nid);
	for (size_t k = 0; k < nid; k++)
		assert_string_equal(ids[k], sid[k]);
	/* Every field row belongs to a listed event. */
	for (size_t k = 0; k < ns; k++)
		assert_true(!strcmp(sch[k].event, "_") || mxb_event_id_known(sch[k].event));
	assert_false(mxb_event_id_known("nonsense"));
}

/* The common fields of the table are exactly what mxb_event_to_json writes first. */
static void test_common_fields_emitted(void **state)
{
	struct mxb_event *ev = mxb_event_new("connect");
	mxb_event_stamp(ev, 1, "0123456789abcdef", "::1", 1, "smtp");
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(mxb_event_to_json(ev, &b), 0);
	size_t ns;
	const struct mxb_event_field *sch = mxb_event_schema(&ns);
	const char *p = b.data;
	for (size_t i = 0; i < ns && !strcmp(sch[i].event, "_"); i++) {
		char key[64];
		snprintf(key, sizeof(key), "\"%s\":", sch[i].name);
		const char *q = strstr(p, key);
		if (!q)
			fail_msg("common field %s missing or out of order in %s", sch[i].name, b.data);
		p = q + strlen(key);
	}
	buf_free(&b);
	mxb_event_free(&ev);
}

/* docs/events.md "Long values" states the bound of event_schema.h and the names of the
 * two fields a cut value gets, and event.c does what it says. */
static void test_long_values_documented(void **state)
{
	FILE *f = fopen(doc_path, "r");
	assert_non_null(f);
	char line[1024];
	bool in = false, said_length = false, said_sha = false;
	long bound = -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "## ", 3)) {
			in = strstr(line, "Long values") != NULL;
			continue;
		}
		if (!in)
			continue;
		const char *b = strstr(line, "**");
		if (b && bound < 0)
			bound = strtol(b + 2, NULL, 10);
		said_length |= strstr(line, "`<field>_length`") != NULL;
		said_sha |= strstr(line, "`<field>_sha256`") != NULL;
	}
	fclose(f);
	if (bound != MXB_EVENT_VALUE_MAX)
		fail_msg("docs/events.md \"Long values\" says **%ld** bytes, event_schema.h %d",
			 bound, MXB_EVENT_VALUE_MAX);
	assert_true(said_length && said_sha);

	/* The behaviour: one byte over the bound is cut, with the two fields. */
	char *v = malloc(MXB_EVENT_VALUE_MAX + 1);
	assert_non_null(v);
	memset(v, 'p', MXB_EVENT_VALUE_MAX + 1);
	struct mxb_event *ev = mxb_event_new("auth");
	mxb_event_strn(ev, "password", v, MXB_EVENT_VALUE_MAX);
	mxb_event_strn(ev, "username", v, MXB_EVENT_VALUE_MAX + 1);
	assert_null(strstr(ev->fields.data, "password_length"));
	char want[64];
	snprintf(want, sizeof(want), "\"username_length\":%d,\"username_sha256\":\"",
		 MXB_EVENT_VALUE_MAX + 1);
	assert_non_null(strstr(ev->fields.data, want));
	mxb_event_free(&ev);
	free(v);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s docs/events.md\n", argv[0]);
		return 2;
	}
	doc_path = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_doc_matches_schema),
		cmocka_unit_test(test_common_fields_emitted),
		cmocka_unit_test(test_long_values_documented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
