/*
 * test_logparse: the log tokenizer (src/guard/logparse.c) on fixtures.
 *
 * tests/guard/postfix-3.7.log and dovecot-2.3.log were written by the real Debian
 * packages run privately (tests/guard/make_fixtures.py); hostile.log holds injection
 * attempts, look-alike lines and other framings (RFC 3339, multi-instance Postfix,
 * syslog Dovecot, the Dovecot 2.4 layout, IPv6 and IPv4-mapped addresses, a password
 * line, an over-long line).  Each NAME.log has NAME.expect: one line per input line,
 * what the parser must make of it ("-" for nothing).  Usage: test_logparse DIR
 * [--write] (--write regenerates the .expect files, for review).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guard/logparse.h"

static const char *dir;
static bool write_mode;

static void render(enum log_kind k, const struct log_obs *o, char *out, size_t len)
{
	char ip[NETADDR_STRLEN];
	switch (k) {
	case LOG_NONE:
		snprintf(out, len, "-");
		return;
	case LOG_AUTH_FAIL:
		snprintf(out, len, "auth %s %s port=%u svc=%s user=%s known=%d n=%u", o->origin,
			 netaddr_format(&o->ip, ip, sizeof(ip)), o->port, o->service, o->username,
			 o->user_known, o->attempts);
		return;
	case LOG_RCPT_UNKNOWN:
		snprintf(out, len, "rcpt %s %s port=%u to=%s", o->origin,
			 netaddr_format(&o->ip, ip, sizeof(ip)), o->port, o->recipient);
		return;
	case LOG_OFFENCE:
		snprintf(out, len, "offence %s %s port=%u kind=%s", o->origin,
			 netaddr_format(&o->ip, ip, sizeof(ip)), o->port, o->offence);
		return;
	}
}

static char *slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	if (b)
		b[n] = '\0';
	fclose(f);
	*len_r = (size_t)n;
	return b;
}

static void check_fixture(const char *name)
{
	char path[1024], epath[1024];
	snprintf(path, sizeof(path), "%s/%s.log", dir, name);
	snprintf(epath, sizeof(epath), "%s/%s.expect", dir, name);
	size_t len, elen = 0;
	char *text = slurp(path, &len);
	assert_non_null(text);
	char *expect = write_mode ? NULL : slurp(epath, &elen);
	FILE *w = write_mode ? fopen(epath, "w") : NULL;
	if (!write_mode)
		assert_non_null(expect);
	struct logparse *lp = logparse_new();
	char *line = text, *eline = expect;
	unsigned no = 0, bad = 0, hits = 0;
	while (line < text + len) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		size_t ll = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
		struct log_obs o;
		enum log_kind k = logparse_line(lp, line, ll, &o);
		char got[1200];
		render(k, &o, got, sizeof(got));
		no++;
		hits += k != LOG_NONE;
		if (w) {
			fprintf(w, "%s\n", got);
		} else {
			char *enl = eline ? strchr(eline, '\n') : NULL;
			if (!eline || !enl) {
				fprintf(stderr, "%s: line %u: no expectation\n", name, no);
				bad++;
			} else {
				*enl = '\0';
				if (strcmp(eline, got)) {
					fprintf(stderr, "%s: line %u\n  want %s\n  got  %s\n", name, no,
						eline, got);
					bad++;
				}
				eline = enl + 1;
			}
		}
		line += ll + 1;
	}
	if (w)
		fclose(w);
	logparse_free(&lp);
	free(text);
	free(expect);
	assert_int_equal(bad, 0);
	assert_true(hits > 0); /* a fixture that yields nothing tests nothing */
}

static void test_postfix(void **state)
{
	(void)state;
	check_fixture("postfix-3.7");
}

static void test_dovecot(void **state)
{
	(void)state;
	check_fixture("dovecot-2.3");
}

static void test_hostile(void **state)
{
	(void)state;
	check_fixture("hostile");
}

/* Journal entries: identifier and message apart. */
static void test_journal_entry(void **state)
{
	(void)state;
	struct logparse *lp = logparse_new();
	struct log_obs o;
	const char *id = "postfix/smtpd";
	const char *msg = "warning: unknown[203.0.113.5]:4321: SASL LOGIN authentication failed: "
			  "UGFzc3dvcmQ6, sasl_username=admin";
	assert_int_equal(logparse_entry(lp, id, strlen(id), msg, strlen(msg), &o), LOG_AUTH_FAIL);
	assert_string_equal(o.username, "admin");
	assert_int_equal(o.port, 4321);
	id = "dovecot";
	msg = "auth: passwd-file(bob,2001:db8::5,<x>): unknown user";
	assert_int_equal(logparse_entry(lp, id, strlen(id), msg, strlen(msg), &o), LOG_AUTH_FAIL);
	assert_int_equal(o.user_known, 0);
	assert_string_equal(o.username, "bob");
	/* the login line for the same address does not count that attempt again */
	msg = "imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<bob>, "
	      "method=PLAIN, rip=2001:db8::5, lip=2001:db8::1";
	assert_int_equal(logparse_entry(lp, id, strlen(id), msg, strlen(msg), &o), LOG_NONE);
	id = "sshd";
	assert_int_equal(logparse_entry(lp, id, strlen(id), msg, strlen(msg), &o), LOG_NONE);
	logparse_free(&lp);
}

int main(int argc, char **argv)
{
	dir = argc > 1 ? argv[1] : "tests/guard";
	write_mode = argc > 2 && !strcmp(argv[2], "--write");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_postfix),
		cmocka_unit_test(test_dovecot),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_journal_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
