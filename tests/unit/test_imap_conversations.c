/*
 * IMAP conversation runner: every .conv file of tests/conversations/imap is one cmocka
 * test, driven through the IMAP engine with the recording fake host.
 *
 * A .conv file is a persona-transcript-style script (shared/persona/transcripts):
 *   C: client bytes (escapes \r \n \t \\ \xHH); consecutive C: lines are one write
 *   S: expected server line(s).  Placeholders, each matching within one line:
 *        <HOST> <DOMAIN>   the configured names
 *        <TIMING>          Dovecot's timing "0.001 + 0.000" (a third term allowed)
 *        <NUM> <UIDVALIDITY>  digits
 *        <DATE> <ANY>      any bytes (shortest match)
 *      and an S: line that is exactly <ANYLINES> matches any number of whole lines
 *      (generated mailbox content that differs from the recording).
 *   # connect: imap|imaps ...     start a new session (ends the previous)
 *   # config: key=value ...       before a connect: accounts=u:p,u2:p2 tls=0|1
 *                                 bad_limit=N literal_max=N line_max=N delay=MS
 *                                 penalty=MS
 *   # closed by server            the engine must have closed the session
 *   # open                        the engine must not have closed it
 *   # expect-close-reason: WORD   the reason the engine gave ops->close
 *   # commit: ok|nospace|fail     the answer to the next msg_commit
 *   # msgopen: fail               the next msg_open fails
 *   # hangup: REASON
 *   # expect-event: NAME FRAG...  an event NAME whose JSON fields contain every FRAG
 *   # expect-no-event: NAME
 *   # expect-wait: MS             a wait(MS) happened since the last expect-wait
 *   # expect-no-wait              no wait since the last expect-wait
 *   # expect-msg: BYTES           the last captured message (escapes)
 *   # expect-state: NAME
 *   # expect-counters: C E M
 *   # expect-discarded            bytes after STARTTLS were dropped by the host
 * Other "#" lines are comments (the recordings' "# delay", "# tls:" ...).  Before each
 * client write and at the end, everything the server sent so far must match the S:
 * lines so far.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deceive/auth_policy.h"
#include "imap_fake_host.h"
#include "proto/imap.h"
#include "util/buf.h"

#define HOST "mail.example.test"
#define DOMAIN "example.test"

static const char *conv_dir;

struct run {
	const char *file;
	int lineno;
	struct imap_config cfg;
	uint8_t secret[32];
	char accounts_text[512];
	const char *accounts[8];
	size_t n_accounts;
	struct auth_policy *auth;
	bool implicit;
	struct imap_fake h;
	struct imap_session *s;
	bool started;
	struct buf expect;  /* expected lines, '\n'-separated, escapes decoded */
	struct buf pending; /* C: bytes not yet written */
	unsigned wait_seen;
	bool failed;
};

static void fail_at(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_at(struct run *r, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: ", r->file, r->lineno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	r->failed = true;
}

/* Decode \r \n \t \\ \xHH. */
static void unescape(const char *s, struct buf *out)
{
	for (const char *p = s; *p; p++) {
		if (*p != '\\' || !p[1]) {
			buf_putc(out, *p);
			continue;
		}
		p++;
		switch (*p) {
		case 'r':
			buf_putc(out, '\r');
			break;
		case 'n':
			buf_putc(out, '\n');
			break;
		case 't':
			buf_putc(out, '\t');
			break;
		case 'x': {
			unsigned v = 0;
			int n = 0;
			while (n < 2 && p[1] && strchr("0123456789abcdefABCDEF", p[1])) {
				char c = *++p;
				v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 32) - 'a' + 10);
				n++;
			}
			buf_putc(out, (char)v);
			break;
		}
		default:
			buf_putc(out, *p);
		}
	}
}

/* ---------------------------------------------------------------- matching --- */

struct lines {
	const char **p;
	size_t *len;
	size_t n;
};

static void split_lines(const char *data, size_t len, bool keep_partial, struct lines *l)
{
	l->p = calloc(len + 1, sizeof(*l->p));
	l->len = calloc(len + 1, sizeof(*l->len));
	l->n = 0;
	size_t st = 0;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			l->p[l->n] = data + st;
			l->len[l->n++] = i + 1 - st;
			st = i + 1;
		}
	}
	if (keep_partial && st < len) {
		l->p[l->n] = data + st;
		l->len[l->n++] = len - st;
	}
}

static void free_lines(struct lines *l)
{
	free(l->p);
	free(l->len);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Does text (n bytes) match pattern (m bytes) with the placeholders? */
static bool match_line(const char *pat, size_t m, const char *text, size_t n, int depth)
{
	if (depth > 64)
		return false;
	size_t i = 0, j = 0;
	while (i < m) {
		if (pat[i] == '<') {
			const char *gt = memchr(pat + i, '>', m - i);
			if (gt) {
				size_t pl = (size_t)(gt - (pat + i)) + 1;
				const char *ph = pat + i;
				if ((pl == 5 && !memcmp(ph, "<ANY>", 5)) || (pl == 6 && !memcmp(ph, "<DATE>", 6))) {
					for (size_t k = j; k <= n; k++) {
						if (k > j && (text[k - 1] == '\n'))
							break;
						if (match_line(pat + i + pl, m - i - pl, text + k, n - k,
							       depth + 1))
							return true;
					}
					return false;
				}
				if ((pl == 5 && !memcmp(ph, "<NUM>", 5)) ||
				    (pl == 13 && !memcmp(ph, "<UIDVALIDITY>", 13))) {
					size_t k = j;
					while (k < n && is_digit(text[k]))
						k++;
					if (k == j)
						return false;
					i += pl;
					j = k;
					continue;
				}
				if (pl == 8 && !memcmp(ph, "<TIMING>", 8)) {
					/* d.ddd + d.ddd [+ d.ddd] */
					for (int term = 0; term < 3; term++) {
						if (term > 0) {
							if (j + 3 > n || memcmp(text + j, " + ", 3) != 0) {
								if (term >= 2)
									break;
								return false;
							}
							j += 3;
						}
						size_t k = j;
						while (k < n && is_digit(text[k]))
							k++;
						if (k == j || k + 4 > n || text[k] != '.' || !is_digit(text[k + 1]) ||
						    !is_digit(text[k + 2]) || !is_digit(text[k + 3]))
							return false;
						j = k + 4;
					}
					i += pl;
					continue;
				}
				if (pl == 6 && !memcmp(ph, "<HOST>", 6)) {
					size_t hl = strlen(HOST);
					if (j + hl > n || memcmp(text + j, HOST, hl))
						return false;
					i += pl;
					j += hl;
					continue;
				}
				if (pl == 8 && !memcmp(ph, "<DOMAIN>", 8)) {
					size_t dl = strlen(DOMAIN);
					if (j + dl > n || memcmp(text + j, DOMAIN, dl))
						return false;
					i += pl;
					j += dl;
					continue;
				}
			}
		}
		if (j >= n || pat[i] != text[j])
			return false;
		i++;
		j++;
	}
	return j == n;
}

static bool is_anylines(const char *p, size_t len)
{
	return len >= 10 && memcmp(p, "<ANYLINES>", 10) == 0;
}

static bool match_all(const struct lines *e, size_t ei, const struct lines *a, size_t ai,
		      int depth)
{
	if (depth > 32)
		return false;
	while (ei < e->n) {
		if (is_anylines(e->p[ei], e->len[ei])) {
			for (size_t k = ai; k <= a->n; k++)
				if (match_all(e, ei + 1, a, k, depth + 1))
					return true;
			return false;
		}
		if (ai >= a->n || !match_line(e->p[ei], e->len[ei], a->p[ai], a->len[ai], 0))
			return false;
		ei++;
		ai++;
	}
	return ai == a->n;
}

static void show(const char *label, const char *p, size_t len)
{
	fprintf(stderr, "--- %s (%zu bytes)\n", label, len);
	fwrite(p, 1, len, stderr);
	fprintf(stderr, "\n---\n");
}

static void check_output(struct run *r)
{
	if (r->failed)
		return; /* the first difference is the one worth reading */
	struct lines e, a;
	split_lines(r->expect.data ? r->expect.data : "", r->expect.len, false, &e);
	split_lines(r->h.out.data ? r->h.out.data : "", r->h.out.len, true, &a);
	if (!match_all(&e, 0, &a, 0, 0)) {
		fail_at(r, "server output differs");
		show("expected", r->expect.data ? r->expect.data : "", r->expect.len);
		show("actual", r->h.out.data ? r->h.out.data : "", r->h.out.len);
	}
	free_lines(&e);
	free_lines(&a);
}

/* --------------------------------------------------------------- sessions --- */

static void end_session(struct run *r)
{
	if (!r->started)
		return;
	check_output(r);
	if (r->failed && getenv("IMAP_CONV_SHOW"))
		show("final output", r->h.out.data ? r->h.out.data : "", r->h.out.len);
	imap_session_free(&r->s);
	imap_fake_free(&r->h);
	r->started = false;
}

static void flush_pending(struct run *r)
{
	if (!r->started || r->pending.len == 0)
		return;
	check_output(r);
	imap_fake_drive(&r->h, r->pending.data, r->pending.len);
	buf_reset(&r->pending);
}

static void start_session(struct run *r, bool implicit)
{
	end_session(r);
	auth_policy_free(&r->auth);
	r->auth = auth_static_new(r->accounts, r->n_accounts);
	r->cfg.auth = r->auth;
	r->cfg.implicit_tls = implicit;
	imap_fake_init(&r->h);
	buf_reset(&r->expect);
	struct proto_peer peer = {.ip = "198.51.100.7", .port = 40000};
	r->s = imap_session_new(&r->cfg, &peer, implicit, &imap_fake_ops, &r->h);
	r->h.s = r->s;
	if (implicit)
		imap_session_tls_started(r->s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
	imap_session_start(r->s);
	r->started = true;
	r->wait_seen = 0;
}

static void apply_config(struct run *r, char *args)
{
	for (char *tok = strtok(args, " "); tok; tok = strtok(NULL, " ")) {
		char *eq = strchr(tok, '=');
		if (!eq) {
			fail_at(r, "bad config token %s", tok);
			continue;
		}
		*eq = '\0';
		const char *v = eq + 1;
		if (!strcmp(tok, "accounts")) {
			snprintf(r->accounts_text, sizeof(r->accounts_text), "%s", v);
			r->n_accounts = 0;
			char *save = NULL;
			for (char *a = strtok_r(r->accounts_text, ",", &save); a && r->n_accounts < 8;
			     a = strtok_r(NULL, ",", &save))
				r->accounts[r->n_accounts++] = a;
		} else if (!strcmp(tok, "tls")) {
			r->cfg.tls_available = atoi(v) != 0;
		} else if (!strcmp(tok, "bad_limit")) {
			r->cfg.bad_command_limit = (unsigned)atoi(v);
		} else if (!strcmp(tok, "literal_max")) {
			r->cfg.literal_max = (size_t)atol(v);
		} else if (!strcmp(tok, "line_max")) {
			r->cfg.line_length_limit = (size_t)atol(v);
		} else if (!strcmp(tok, "delay")) {
			r->cfg.auth_failure_delay_ms = (unsigned)atoi(v);
		} else if (!strcmp(tok, "penalty")) {
			r->cfg.auth_penalty_max_ms = (unsigned)strtoul(v, NULL, 10);
		} else {
			fail_at(r, "unknown config key %s", tok);
		}
	}
}

static void directive(struct run *r, char *d)
{
	if (!strncmp(d, "connect:", 8)) {
		char *w = d + 8;
		while (*w == ' ')
			w++;
		flush_pending(r);
		start_session(r, !strncmp(w, "imaps", 5));
		return;
	}
	if (!strncmp(d, "config:", 7)) {
		apply_config(r, d + 7);
		return;
	}
	if (!r->started) {
		if (strncasecmp(d, "expect", 6) == 0)
			fail_at(r, "check outside a session: %s", d);
		return;
	}
	flush_pending(r);
	if (!strncmp(d, "closed by server", 16)) {
		if (!r->h.closed)
			fail_at(r, "expected the server to close");
	} else if (!strncmp(d, "expect-close-reason: ", 21)) {
		if (!r->h.closed || strcmp(r->h.close_reason, d + 21) != 0)
			fail_at(r, "close reason \"%s\"", r->h.closed ? r->h.close_reason : "(open)");
	} else if (!strcmp(d, "open")) {
		if (r->h.closed)
			fail_at(r, "server closed (%s)", r->h.close_reason);
	} else if (!strncmp(d, "commit: ", 8)) {
		const char *v = d + 8;
		r->h.next_commit = !strcmp(v, "nospace") ? IFAKE_COMMIT_NOSPACE
				   : !strcmp(v, "fail")  ? IFAKE_COMMIT_FAIL
							 : IFAKE_COMMIT_OK;
	} else if (!strcmp(d, "msgopen: fail")) {
		r->h.fail_open = true;
	} else if (!strncmp(d, "hangup: ", 8)) {
		imap_session_hangup(r->s, d + 8);
	} else if (!strncmp(d, "expect-event: ", 14)) {
		char *name = strtok(d + 14, " ");
		const char *frags[16] = {0};
		size_t n = 0;
		struct buf dec[16];
		for (char *f = strtok(NULL, " "); f && n < 15; f = strtok(NULL, " ")) {
			buf_init(&dec[n], 0);
			unescape(f, &dec[n]);
			buf_putc(&dec[n], '\0');
			frags[n] = dec[n].data;
			n++;
		}
		if (!imap_fake_has_event(&r->h, name, frags)) {
			fail_at(r, "no matching %s event", name);
			show("events", r->h.events.data ? r->h.events.data : "", r->h.events.len);
		}
		for (size_t i = 0; i < n; i++)
			buf_free(&dec[i]);
	} else if (!strncmp(d, "expect-no-event: ", 17)) {
		if (imap_fake_has_event(&r->h, d + 17, NULL))
			fail_at(r, "unexpected %s event", d + 17);
	} else if (!strncmp(d, "expect-wait: ", 13)) {
		unsigned ms = (unsigned)atoi(d + 13);
		bool found = false;
		for (unsigned i = r->wait_seen; i < r->h.n_waits; i++)
			if (r->h.waits[i] == ms)
				found = true;
		if (!found)
			fail_at(r, "no wait(%u) (waits seen: %u)", ms, r->h.n_waits - r->wait_seen);
		r->wait_seen = r->h.n_waits;
	} else if (!strcmp(d, "expect-no-wait")) {
		if (r->h.n_waits != r->wait_seen)
			fail_at(r, "unexpected wait(%u)", r->h.waits[r->wait_seen]);
	} else if (!strncmp(d, "expect-msg: ", 12)) {
		struct buf want;
		buf_init(&want, 0);
		unescape(d + 12, &want);
		if (want.len != r->h.last_msg.len ||
		    memcmp(want.data ? want.data : "", r->h.last_msg.data ? r->h.last_msg.data : "",
			   want.len) != 0) {
			fail_at(r, "captured message differs");
			show("captured", r->h.last_msg.data ? r->h.last_msg.data : "",
			     r->h.last_msg.len);
		}
		buf_free(&want);
	} else if (!strncmp(d, "expect-state: ", 14)) {
		const char *st = imap_session_state_name(r->s);
		if (strcmp(st, d + 14) != 0)
			fail_at(r, "state %s, expected %s", st, d + 14);
	} else if (!strncmp(d, "expect-counters: ", 17)) {
		unsigned c, e, m;
		struct proto_counters pc;
		imap_session_counters(r->s, &pc);
		if (sscanf(d + 17, "%u %u %u", &c, &e, &m) != 3 || pc.commands != c ||
		    pc.errors != e || pc.messages != m)
			fail_at(r, "counters %u %u %u", pc.commands, pc.errors, pc.messages);
	} else if (!strcmp(d, "expect-discarded")) {
		if (r->h.discarded == 0)
			fail_at(r, "nothing was discarded after STARTTLS");
	} else if (strncasecmp(d, "expect", 6) == 0) {
		/* a misspelt expectation must not pass for a comment */
		fail_at(r, "unknown directive: %s", d);
	}
}

static void run_file(void **state)
{
	const char *path = *state;
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	struct run r = {.file = path};
	r.cfg.hostname = HOST;
	r.cfg.domain = DOMAIN;
	r.cfg.tls_available = true;
	r.cfg.secret = r.secret;
	r.cfg.auth_failure_delay_ms = 2000;
	memset(r.secret, 7, sizeof(r.secret));
	snprintf(r.accounts_text, sizeof(r.accounts_text), "alice:alice-Secret-1");
	r.accounts[0] = r.accounts_text;
	r.n_accounts = 1;
	buf_init(&r.expect, 0);
	buf_init(&r.pending, 0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		r.lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!strncmp(line, "C: ", 3)) {
			unescape(line + 3, &r.pending);
		} else if (!strcmp(line, "C:")) {
			/* nothing */
		} else if (!strncmp(line, "S: ", 3)) {
			flush_pending(&r);
			struct buf tmp;
			buf_init(&tmp, 0);
			unescape(line + 3, &tmp);
			if (tmp.len == 10 && !memcmp(tmp.data, "<ANYLINES>", 10))
				buf_puts(&r.expect, "<ANYLINES>\n");
			else
				buf_append(&r.expect, tmp.data ? tmp.data : "", tmp.len);
			buf_free(&tmp);
		} else if (!strncmp(line, "# ", 2)) {
			directive(&r, line + 2);
		}
	}
	flush_pending(&r);
	end_session(&r);
	free(line);
	fclose(f);
	auth_policy_free(&r.auth);
	buf_free(&r.expect);
	buf_free(&r.pending);
	if (r.failed)
		fail_msg("%s failed", path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	conv_dir = argc > 1 ? argv[1] : "tests/conversations/imap";
	DIR *d = opendir(conv_dir);
	if (!d) {
		fprintf(stderr, "cannot open %s\n", conv_dir);
		return 1;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 5, ".conv") != 0)
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		size_t pl = strlen(conv_dir) + l + 2;
		names[n] = malloc(pl);
		snprintf(names[n], pl, "%s/%s", conv_dir, de->d_name);
		n++;
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "no .conv files in %s\n", conv_dir);
		return 1;
	}
	qsort(names, n, sizeof(*names), cmp_str);
	struct CMUnitTest *tests = calloc(n, sizeof(*tests));
	for (size_t i = 0; i < n; i++) {
		tests[i].name = strrchr(names[i], '/') + 1;
		tests[i].test_func = run_file;
		tests[i].initial_state = names[i];
	}
	int rc = _cmocka_run_group_tests("imap_conversations", tests, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(tests);
	return rc;
}
