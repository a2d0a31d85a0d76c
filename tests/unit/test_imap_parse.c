/*
 * test_imap_parse: the IMAP command parser, sequence sets, fetch attributes, dates
 * and literal announcements, edge by edge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap_parse.h"

static struct imap_command *parse(const char *s, int want)
{
	static struct imap_command cmd;
	int r = imap_parse_command(s, strlen(s), &cmd);
	assert_int_equal(r, want);
	return &cmd;
}

static void test_tag_and_name(void **st)
{
	struct imap_command *c = parse("a001 login alice secret", 0);
	assert_true(c->tag_valid);
	assert_string_equal(c->tag, "a001");
	assert_string_equal(c->name, "LOGIN");
	assert_int_equal(c->n_args, 2);
	assert_string_equal(c->args->s, "alice");
	assert_string_equal(c->args->next->s, "secret");

	c = parse("a001", -1); /* tag only */
	assert_true(c->tag_valid);
	assert_false(c->has_name);
	c = parse("", -1);
	assert_false(c->has_tag);
	c = parse("* CAPABILITY", 0);
	assert_false(c->tag_valid);
	c = parse("a+b NOOP", 0);
	assert_false(c->tag_valid);
	c = parse("GET / HTTP/1.0", 0);
	assert_true(c->tag_valid);
	assert_string_equal(c->name, "/");
	imap_command_clear(c);
}

static void test_tag_rules(void **st)
{
	assert_true(imap_tag_valid("A1.b-c", 6));
	const char *bad[] = {"a(", "a)", "a{", "a/", "a%", "a*", "a\"", "a\\", "a+", "a\x01"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(imap_tag_valid(bad[i], strlen(bad[i])));
	char longtag[IMAP_TAG_MAX_LEN + 2];
	memset(longtag, 'a', sizeof(longtag));
	assert_true(imap_tag_valid(longtag, IMAP_TAG_MAX_LEN));
	assert_false(imap_tag_valid(longtag, IMAP_TAG_MAX_LEN + 1));
	assert_false(imap_tag_valid("", 0));
	assert_false(imap_tag_valid("\xc3\xa9", 2));
}

static void test_quoted(void **st)
{
	struct imap_command *c = parse("t LOGIN \"al ice\" \"pa\\\"ss\\\\\"", 0);
	assert_int_equal(c->args->type, IMAP_ARG_QUOTED);
	assert_string_equal(c->args->s, "al ice");
	assert_string_equal(c->args->next->s, "pa\"ss\\");
	parse("t LOGIN \"unterminated", -1);
	parse("t LOGIN \"a\"b", -1); /* missing space */
	c = parse("t LOGIN \"\" \"\"", 0);
	assert_int_equal(c->args->len, 0);
	imap_command_clear(c);
}

static void test_literals(void **st)
{
	const char in[] = "t LOGIN {5}\r\nalice {6+}\r\nse\0ret";
	struct imap_command cmd;
	memset(&cmd, 0, sizeof(cmd));
	assert_int_equal(imap_parse_command(in, sizeof(in) - 1, &cmd), 0);
	assert_int_equal(cmd.n_args, 2);
	assert_int_equal(cmd.args->type, IMAP_ARG_LITERAL);
	assert_string_equal(cmd.args->s, "alice");
	assert_false(cmd.args->nonsync);
	assert_int_equal(cmd.args->next->len, 6);
	assert_true(cmd.args->next->nonsync);
	assert_memory_equal(cmd.args->next->s, "se\0ret", 6);
	/* literal longer than what is there */
	const char shortl[] = "t LOGIN {9}\r\nabc";
	assert_int_equal(imap_parse_command(shortl, sizeof(shortl) - 1, &cmd), -1);
	/* empty literal */
	const char zero[] = "t LOGIN {0}\r\n {0}\r\n";
	assert_int_equal(imap_parse_command(zero, sizeof(zero) - 1, &cmd), 0);
	assert_int_equal(cmd.args->len, 0);
	/* bad forms */
	assert_int_equal(imap_parse_command("t X {}\r\n", 8, &cmd), -1);
	assert_int_equal(imap_parse_command("t X {5\r\n", 8, &cmd), -1);
	assert_int_equal(imap_parse_command("t X {99999999999999999999}\r\n", 28, &cmd), -1);
	imap_command_clear(&cmd);
}

static void test_line_literal(void **st)
{
	uint64_t n;
	bool ns, bad;
	assert_true(imap_line_literal("a LOGIN {5}", 11, &n, &ns, &bad));
	assert_int_equal(n, 5);
	assert_false(ns);
	assert_false(bad);
	assert_true(imap_line_literal("a LOGIN {5+}", 12, &n, &ns, &bad));
	assert_true(ns);
	assert_false(imap_line_literal("a LOGIN {5", 10, &n, &ns, &bad));
	assert_false(imap_line_literal("a LOGIN 5}", 10, &n, &ns, &bad));
	assert_true(imap_line_literal("a X {}", 6, &n, &ns, &bad));
	assert_true(bad);
	assert_true(imap_line_literal("a X {18446744073709551616}", 26, &n, &ns, &bad));
	assert_true(bad);
	assert_true(imap_line_literal("a X {18446744073709551615}", 26, &n, &ns, &bad));
	assert_false(bad);
	assert_true(n == UINT64_MAX);
	assert_false(imap_line_literal("}", 1, &n, &ns, &bad));
}

static void test_lists(void **st)
{
	struct imap_command *c = parse("t STATUS INBOX (MESSAGES UNSEEN)", 0);
	assert_int_equal(c->n_args, 2);
	const struct imap_arg *l = c->args->next;
	assert_int_equal(l->type, IMAP_ARG_LIST);
	assert_int_equal(l->n_children, 2);
	assert_string_equal(l->child->s, "MESSAGES");
	assert_string_equal(l->child->next->s, "UNSEEN");
	c = parse("t X ()", 0);
	assert_int_equal(c->args->n_children, 0);
	c = parse("t X ((a) (b (c)))", 0);
	assert_int_equal(c->args->n_children, 2);
	parse("t X (a", -1);
	parse("t X a)", -1);
	/* nesting bound */
	char deep[200] = "t X ";
	for (int i = 0; i < IMAP_MAX_DEPTH + 1; i++)
		strcat(deep, "(");
	for (int i = 0; i < IMAP_MAX_DEPTH + 1; i++)
		strcat(deep, ")");
	parse(deep, -1);
	char ok[200] = "t X ";
	for (int i = 0; i < IMAP_MAX_DEPTH; i++)
		strcat(ok, "(");
	for (int i = 0; i < IMAP_MAX_DEPTH; i++)
		strcat(ok, ")");
	parse(ok, 0);
	imap_command_clear(c);
}

static void test_arg_bound(void **st)
{
	size_t n = IMAP_MAX_ARGS + 10;
	char *s = malloc(n * 2 + 16);
	strcpy(s, "t X");
	for (size_t i = 0; i < n; i++)
		strcat(s, " a");
	struct imap_command *c = parse(s, -1);
	assert_string_equal(c->error, "Too many arguments");
	free(s);
	imap_command_clear(c);
}

static void test_atoms_sections(void **st)
{
	struct imap_command *c =
		parse("t FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM DATE)]<0.100> UID)", 0);
	const struct imap_arg *l = c->args->next;
	assert_int_equal(l->n_children, 3);
	assert_string_equal(l->child->next->s, "BODY.PEEK[HEADER.FIELDS (FROM DATE)]<0.100>");
	parse("t FETCH 1 BODY[HEADER", -1);
	parse("t X a\"b", -1);
	parse("t X a\x01", -1);
	c = parse("t X NIL nil \"NIL\"", 0);
	assert_true(imap_arg_is_nil(c->args));
	assert_true(imap_arg_is_nil(c->args->next));
	assert_false(imap_arg_is_nil(c->args->next->next));
	imap_command_clear(c);
}

static void test_seqset(void **st)
{
	struct imap_seqset ss;
	assert_int_equal(imap_seqset_parse("1", 1, &ss), 0);
	assert_true(imap_seqset_contains(&ss, 1, 3));
	assert_false(imap_seqset_contains(&ss, 2, 3));
	assert_int_equal(imap_seqset_parse("1:*", 3, &ss), 0);
	assert_true(imap_seqset_contains(&ss, 3, 3));
	assert_int_equal(imap_seqset_max(&ss, 3), 3);
	assert_int_equal(imap_seqset_parse("3:1,5", 5, &ss), 0);
	assert_true(imap_seqset_contains(&ss, 2, 9));
	assert_true(imap_seqset_contains(&ss, 5, 9));
	assert_false(imap_seqset_contains(&ss, 4, 9));
	assert_int_equal(imap_seqset_max(&ss, 9), 5);
	assert_int_equal(imap_seqset_parse("*:2", 3, &ss), 0);
	assert_true(imap_seqset_contains(&ss, 2, 1) == false || true);
	const char *bad[] = {"", "0", "1:", ":1", "1,,2", "a", "01", "4294967296", "1:0", "1 2"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(imap_seqset_parse(bad[i], strlen(bad[i]), &ss), -1);
	assert_int_equal(imap_seqset_parse("4294967294", 10, &ss), 0);
	/* range bound */
	char *many = malloc(IMAP_SEQ_MAX_RANGES * 2 + 8);
	many[0] = '\0';
	for (int i = 0; i < IMAP_SEQ_MAX_RANGES + 1; i++)
		strcat(many, i ? ",1" : "1");
	assert_int_equal(imap_seqset_parse(many, strlen(many), &ss), -1);
	free(many);
}

static void test_fetch_att(void **st)
{
	struct imap_fetch_att a;
	assert_int_equal(imap_fetch_att_parse("FLAGS", 5, &a), 0);
	assert_int_equal(a.kind, IMAP_FETCH_FLAGS);
	assert_int_equal(imap_fetch_att_parse("rfc822.size", 11, &a), 0);
	assert_int_equal(a.kind, IMAP_FETCH_RFC822_SIZE);
	assert_int_equal(imap_fetch_att_parse("BODY[]", 6, &a), 0);
	assert_int_equal(a.kind, IMAP_FETCH_BODY);
	assert_false(a.peek);
	assert_int_equal(a.text, IMAP_SECTION_ALL);
	assert_string_equal(a.section, "");
	const char *s = "body.peek[header.fields (From Subject)]<10.20>";
	assert_int_equal(imap_fetch_att_parse(s, strlen(s), &a), 0);
	assert_true(a.peek);
	assert_int_equal(a.text, IMAP_SECTION_HEADER_FIELDS);
	assert_int_equal(a.n_fields, 2);
	assert_int_equal(a.fields[1].len, 7);
	assert_true(a.partial);
	assert_int_equal(a.partial_start, 10);
	assert_int_equal(a.partial_len, 20);
	assert_string_equal(a.section, "HEADER.FIELDS (FROM SUBJECT)");
	s = "BODY[1.2.MIME]";
	assert_int_equal(imap_fetch_att_parse(s, strlen(s), &a), 0);
	assert_int_equal(a.n_path, 2);
	assert_int_equal(a.path[1], 2);
	assert_int_equal(a.text, IMAP_SECTION_MIME);
	s = "BODY[2]";
	assert_int_equal(imap_fetch_att_parse(s, strlen(s), &a), 0);
	assert_int_equal(a.path[0], 2);
	s = "BODY[HEADER.FIELDS.NOT (X)]";
	assert_int_equal(imap_fetch_att_parse(s, strlen(s), &a), 0);
	assert_int_equal(a.text, IMAP_SECTION_HEADER_FIELDS_NOT);
	const char *bad[] = {"BODY[", "BODY[MIME]", "BODY[0]", "BODY[1.]", "BODY[FOO]",
			     "BODY[HEADER.FIELDS]", "BODY[HEADER.FIELDS ()]", "BODY[]<1>",
			     "BODY[]<1.0>", "BODY[]<a.1>", "BODY[]x", "FOO", "BODY[TEXT]<0.5",
			     "BODY[1.2.3.4.5.6.7.8.9]"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(imap_fetch_att_parse(bad[i], strlen(bad[i]), &a), -1);
}

static void test_dates(void **st)
{
	int64_t t;
	assert_int_equal(imap_parse_date("1-Jan-1970", 10, &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(imap_parse_date("27-Nov-2026", 11, &t), 0);
	assert_int_equal(t, 1795737600);
	assert_int_equal(imap_parse_date("27-nov-2026", 11, &t), 0);
	assert_int_equal(imap_parse_date("32-Nov-2026", 11, &t), -1);
	assert_int_equal(imap_parse_date("27-Foo-2026", 11, &t), -1);
	assert_int_equal(imap_parse_date("27-Nov-26", 9, &t), -1);
	assert_int_equal(imap_parse_date("", 0, &t), -1);
	const char *dt = "27-Nov-2026 06:52:43 +0100";
	assert_int_equal(imap_parse_datetime(dt, strlen(dt), &t), 0);
	assert_int_equal(t, 1795762363 - 3600);
	dt = " 7-Nov-2026 06:52:43 -0000";
	assert_int_equal(imap_parse_datetime(dt, strlen(dt), &t), 0);
	dt = "27-Nov-2026 24:52:43 +0100";
	assert_int_equal(imap_parse_datetime(dt, strlen(dt), &t), -1);
	dt = "27-Nov-2026 06:52:43";
	assert_int_equal(imap_parse_datetime(dt, strlen(dt), &t), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tag_and_name), cmocka_unit_test(test_tag_rules),
		cmocka_unit_test(test_quoted),       cmocka_unit_test(test_literals),
		cmocka_unit_test(test_line_literal), cmocka_unit_test(test_lists),
		cmocka_unit_test(test_arg_bound),    cmocka_unit_test(test_atoms_sections),
		cmocka_unit_test(test_seqset),       cmocka_unit_test(test_fetch_att),
		cmocka_unit_test(test_dates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
