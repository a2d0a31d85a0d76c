/*
 * Conversation runner: every .conv file in tests/conversations is one cmocka test.
 *
 * A .conv file is a persona-transcript-style script:
 *   C: client bytes (escapes \r \n \t \\ \xHH); consecutive C: lines are one write
 *   S: expected server bytes; <HOST>, <DOMAIN>, <QUEUEID> are expanded
 *   # config: key=value ...   (before a session starts; see apply_config())
 *   # connect: smtp|submission|smtps ...   start a new session (ends the previous)
 *   # closed by server        the engine must have closed the session
 *   # commit: ok|nospace|fail the answer to the next msg_commit
 *   # msgopen: fail           the next msg_open fails (disk budget)
 *   # write-budget: N         msg_write fails once N bytes were written
 *   # hangup: REASON          smtp_session_hangup(REASON)
 *   # expect-event: NAME FRAG...   an event NAME with every JSON fragment FRAG
 *   # expect-no-event: NAME
 *   # expect-wait: MS         some wait(MS) happened since the last expect-wait
 *   # expect-no-wait
 *   # expect-body: BYTES      the last captured message after its Received header
 *   # expect-header: TEXT     the last captured message's Received header contains TEXT
 *   # expect-state: NAME      smtp_session_state_name()
 *   # expect-counters: C E M  commands, errors, messages
 * Other "#" lines are comments.  Before each client write and at the end, everything
 * the server sent so far must equal the S: lines so far, byte for byte.
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
#include "proto/smtp.h"
#include "smtp_fake_host.h"
#include "util/buf.h"

#define HOST "mail.example.com"
#define DOMAIN "example.com"

static const char *conv_dir;

struct run {
	const char *file;
	int lineno;
	struct smtp_config cfg;
	const char *domains[2];
	char accounts_text[512];
	const char *accounts[8];
	size_t n_accounts;
	struct auth_policy *auth;
	bool implicit_tls;
	char peer_ip[64];
	char peer_rdns[128];
	struct fake_host h;
	struct smtp_session *s;
	bool started;
	struct buf expect;
	struct buf pending; /* C: bytes not yet written */
	unsigned qid_next;
	unsigned wait_seen; /* waits checked so far */
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

static void show(const char *label, const char *p, size_t len)
{
	fprintf(stderr, "  %s: \"", label);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r')
			fputs("\\r", stderr);
		else if (c == '\n')
			fputs("\\n\n          ", stderr);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
	fputs("\"\n", stderr);
}

/* Decode escapes and expand placeholders into out. */
static void decode(struct run *r, const char *s, struct buf *out, bool server)
{
	/* server == -1 style: JSON fragments keep their own escapes, see decode_json(). */
	while (*s) {
		if (s[0] == '<' && strncmp(s, "<HOST>", 6) == 0) {
			buf_puts(out, HOST);
			s += 6;
		} else if (s[0] == '<' && strncmp(s, "<DOMAIN>", 8) == 0) {
			buf_puts(out, DOMAIN);
			s += 8;
		} else if (server && s[0] == '<' && strncmp(s, "<QUEUEID>", 9) == 0) {
			char q[32];
			fake_host_qid(r->qid_next++, q, sizeof(q));
			buf_puts(out, q);
			s += 9;
		} else if (s[0] == '\\' && s[1]) {
			switch (s[1]) {
			case 'r':
				buf_putc(out, '\r');
				s += 2;
				break;
			case 'n':
				buf_putc(out, '\n');
				s += 2;
				break;
			case 't':
				buf_putc(out, '\t');
				s += 2;
				break;
			case '0':
				buf_putc(out, '\0');
				s += 2;
				break;
			case 'x': {
				unsigned v = 0;
				if (sscanf(s + 2, "%2x", &v) == 1) {
					buf_putc(out, (char)v);
					s += 4;
				} else {
					buf_putc(out, '\\');
					s++;
				}
				break;
			}
			case '\\':
				buf_putc(out, '\\');
				s += 2;
				break;
			default:
				buf_putc(out, '\\');
				s++;
				break;
			}
		} else {
			buf_putc(out, *s++);
		}
	}
}

/* expect-event fragments are JSON text: only \xHH is decoded (for spaces and
 * UTF-8), every other backslash stays as JSON wrote it. */
static void decode_json(const char *s, struct buf *out)
{
	while (*s) {
		unsigned v;
		if (s[0] == '\\' && s[1] == 'x' && sscanf(s + 2, "%2x", &v) == 1) {
			buf_putc(out, (char)v);
			s += 4;
		} else if (s[0] == '<' && strncmp(s, "<DOMAIN>", 8) == 0) {
			buf_puts(out, DOMAIN);
			s += 8;
		} else if (s[0] == '<' && strncmp(s, "<HOST>", 6) == 0) {
			buf_puts(out, HOST);
			s += 6;
		} else {
			buf_putc(out, *s++);
		}
	}
}

static void default_config(struct run *r)
{
	memset(&r->cfg, 0, sizeof(r->cfg));
	r->domains[0] = DOMAIN;
	r->cfg.hostname = HOST;
	r->cfg.local_domains = r->domains;
	r->cfg.n_local_domains = 1;
	r->cfg.role = SMTP_ROLE_MX;
	r->cfg.tls_available = true;
	r->cfg.vrfy_enabled = false;
	r->cfg.line_length_limit = 2048;
	r->cfg.message_size_limit = 10240000;
	r->cfg.recipient_limit = 1000;
	r->cfg.command_limit = 0;
	r->cfg.soft_error_limit = 10;
	r->cfg.hard_error_limit = 20;
	r->cfg.error_sleep_ms = 1000;
	r->cfg.auth_failure_delay_ms = 2000;
	snprintf(r->accounts_text, sizeof(r->accounts_text), "alice:alice-Secret-1");
	snprintf(r->peer_ip, sizeof(r->peer_ip), "192.0.2.7");
	r->peer_rdns[0] = '\0';
}

static void set_role(struct run *r, const char *v)
{
	if (strncmp(v, "submission", 10) == 0) {
		r->cfg.role = SMTP_ROLE_SUBMISSION;
		r->implicit_tls = false;
	} else if (strncmp(v, "smtps", 5) == 0) {
		r->cfg.role = SMTP_ROLE_SMTPS;
		r->implicit_tls = true;
	} else {
		r->cfg.role = SMTP_ROLE_MX;
		r->implicit_tls = false;
	}
}

static void apply_config(struct run *r, char *args)
{
	for (char *tok = strtok(args, " \t"); tok; tok = strtok(NULL, " \t")) {
		char *eq = strchr(tok, '=');
		if (!eq) {
			fail_at(r, "config: bad item %s", tok);
			continue;
		}
		*eq = '\0';
		const char *k = tok, *v = eq + 1;
		unsigned long n = strtoul(v, NULL, 10);
		if (!strcmp(k, "role"))
			set_role(r, v);
		else if (!strcmp(k, "tls"))
			r->cfg.tls_available = n != 0;
		else if (!strcmp(k, "vrfy"))
			r->cfg.vrfy_enabled = n != 0;
		else if (!strcmp(k, "auth_on_mx"))
			r->cfg.auth_on_mx = n != 0;
		else if (!strcmp(k, "cram"))
			r->cfg.cram_md5 = n != 0;
		else if (!strcmp(k, "catch_all"))
			r->cfg.catch_all = n != 0;
		else if (!strcmp(k, "size"))
			r->cfg.message_size_limit = n;
		else if (!strcmp(k, "rcpt_limit"))
			r->cfg.recipient_limit = (unsigned)n;
		else if (!strcmp(k, "cmd_limit"))
			r->cfg.command_limit = (unsigned)n;
		else if (!strcmp(k, "soft"))
			r->cfg.soft_error_limit = (unsigned)n;
		else if (!strcmp(k, "hard"))
			r->cfg.hard_error_limit = (unsigned)n;
		else if (!strcmp(k, "sleep"))
			r->cfg.error_sleep_ms = (unsigned)n;
		else if (!strcmp(k, "authdelay"))
			r->cfg.auth_failure_delay_ms = (unsigned)n;
		else if (!strcmp(k, "line"))
			r->cfg.line_length_limit = n;
		else if (!strcmp(k, "accounts"))
			snprintf(r->accounts_text, sizeof(r->accounts_text), "%s",
				 strcmp(v, "none") ? v : "");
		else if (!strcmp(k, "ip"))
			snprintf(r->peer_ip, sizeof(r->peer_ip), "%s", v);
		else if (!strcmp(k, "rdns"))
			snprintf(r->peer_rdns, sizeof(r->peer_rdns), "%s", v);
		else
			fail_at(r, "config: unknown key %s", k);
	}
}

static void end_session(struct run *r);

static void check_output(struct run *r)
{
	if (r->h.out.len != r->expect.len ||
	    (r->expect.len && memcmp(r->h.out.data, r->expect.data, r->expect.len) != 0)) {
		fail_at(r, "server output differs");
		show("expected", r->expect.data ? r->expect.data : "", r->expect.len);
		show("actual  ", r->h.out.data ? r->h.out.data : "", r->h.out.len);
		/* Re-sync so one difference is reported once. */
		buf_reset(&r->expect);
		buf_append(&r->expect, r->h.out.data ? r->h.out.data : "", r->h.out.len);
	}
}

static void start_session(struct run *r)
{
	if (r->started)
		return;
	static char acc_copy[512];
	snprintf(acc_copy, sizeof(acc_copy), "%s", r->accounts_text);
	r->n_accounts = 0;
	for (char *t = strtok(acc_copy, ","); t && r->n_accounts < 8; t = strtok(NULL, ","))
		r->accounts[r->n_accounts++] = t;
	r->auth = auth_static_new(r->accounts, r->n_accounts);
	r->cfg.auth = r->auth;
	fake_host_init(&r->h);
	struct smtp_peer peer = {.ip = r->peer_ip, .port = 40000,
				 .rdns = r->peer_rdns[0] ? r->peer_rdns : NULL};
	r->s = smtp_session_new(&r->cfg, &peer, r->implicit_tls, &fake_host_ops, &r->h);
	r->h.s = r->s;
	if (r->implicit_tls)
		smtp_session_tls_started(r->s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
	smtp_session_start(r->s);
	buf_reset(&r->expect);
	buf_reset(&r->pending);
	r->qid_next = 0;
	r->wait_seen = 0;
	r->started = true;
}

static void flush_client(struct run *r)
{
	if (!r->started)
		start_session(r);
	if (r->pending.len == 0)
		return;
	if (!r->h.closed)
		fake_host_drive(&r->h, r->pending.data, r->pending.len);
	buf_reset(&r->pending);
}

static void end_session(struct run *r)
{
	if (!r->started)
		return;
	flush_client(r);
	check_output(r);
	char why[256];
	if (!fake_host_check_schema(&r->h, why, sizeof(why)))
		fail_at(r, "event outside docs/events.md: %s", why);
	smtp_session_free(&r->s);
	fake_host_free(&r->h);
	auth_policy_free(&r->auth);
	r->started = false;
}

static void directive(struct run *r, char *d)
{
	if (strncmp(d, "config:", 7) == 0) {
		if (r->started)
			fail_at(r, "config after the session started");
		apply_config(r, d + 7);
		return;
	}
	if (strncmp(d, "connect:", 8) == 0) {
		end_session(r);
		char *v = d + 8;
		while (*v == ' ')
			v++;
		set_role(r, v);
		start_session(r);
		return;
	}
	static const char *const known[] = {
		"closed by server", "commit:", "msgopen:", "write-budget:", "hangup:",
		"expect-", NULL};
	bool is_known = false;
	for (size_t i = 0; known[i]; i++)
		if (strncmp(d, known[i], strlen(known[i])) == 0)
			is_known = true;
	if (!is_known)
		return; /* a comment (scenario, tls facts, delays) */
	/* Every other directive is about what happened so far. */
	if (!r->started)
		start_session(r);
	flush_client(r);
	if (strncmp(d, "closed by server", 16) == 0) {
		if (!r->h.closed)
			fail_at(r, "expected the server to close");
	} else if (strncmp(d, "commit:", 7) == 0) {
		const char *v = d + 7;
		while (*v == ' ')
			v++;
		r->h.next_commit = !strncmp(v, "nospace", 7) ? FAKE_COMMIT_NOSPACE
				   : !strncmp(v, "fail", 4)  ? FAKE_COMMIT_FAIL
							     : FAKE_COMMIT_OK;
	} else if (strncmp(d, "msgopen: fail", 13) == 0) {
		r->h.fail_open = true;
	} else if (strncmp(d, "write-budget:", 13) == 0) {
		r->h.write_budget = strtoll(d + 13, NULL, 10);
	} else if (strncmp(d, "hangup:", 7) == 0) {
		char *v = d + 7;
		while (*v == ' ')
			v++;
		smtp_session_hangup(r->s, v);
	} else if (strncmp(d, "expect-event:", 13) == 0 ||
		   strncmp(d, "expect-no-event:", 16) == 0) {
		bool negate = d[7] == 'n';
		char *rest = d + (negate ? 16 : 13);
		const char *frags[16];
		size_t nf = 0;
		char *name = strtok(rest, " ");
		static struct buf dec[16];
		for (char *t = strtok(NULL, " "); t && nf < 15; t = strtok(NULL, " ")) {
			buf_free(&dec[nf]);
			buf_init(&dec[nf], 0);
			decode_json(t, &dec[nf]);
			frags[nf] = dec[nf].data ? dec[nf].data : "";
			nf++;
		}
		frags[nf] = NULL;
		bool has = name && fake_host_has_event(&r->h, name, frags);
		if (has == negate) {
			fail_at(r, "%s event %s%s", negate ? "unexpected" : "missing",
				name ? name : "?", nf ? " with those fields" : "");
			show("events", r->h.events.data ? r->h.events.data : "", r->h.events.len);
		}
	} else if (strncmp(d, "expect-wait:", 12) == 0) {
		unsigned ms = (unsigned)strtoul(d + 12, NULL, 10);
		bool found = false;
		for (unsigned i = r->wait_seen; i < r->h.n_waits; i++)
			if (r->h.waits[i] == ms)
				found = true;
		if (!found)
			fail_at(r, "no wait(%u) since the last check (%u waits)", ms,
				r->h.n_waits - r->wait_seen);
		r->wait_seen = r->h.n_waits;
	} else if (strncmp(d, "expect-no-wait", 14) == 0) {
		if (r->h.n_waits != r->wait_seen)
			fail_at(r, "unexpected wait(%u)", r->h.waits[r->h.n_waits - 1]);
	} else if (strncmp(d, "expect-body:", 12) == 0) {
		const char *v = d + 12;
		if (*v == ' ')
			v++;
		struct buf want;
		buf_init(&want, 0);
		decode(r, v, &want, false);
		const char *m = r->h.last_msg.data ? r->h.last_msg.data : "";
		/* The body starts after the Received header's last continuation line. */
		const char *p = m;
		if (strncmp(p, "Received:", 9) == 0) {
			for (;;) {
				const char *eol = strstr(p, "\r\n");
				if (!eol) {
					p = m + strlen(m);
					break;
				}
				p = eol + 2;
				if (*p != '\t')
					break;
			}
		} else {
			fail_at(r, "captured message has no Received header");
		}
		size_t blen = r->h.last_msg.len - (size_t)(p - m);
		if (blen != want.len || memcmp(p, want.data ? want.data : "", blen) != 0) {
			fail_at(r, "captured body differs");
			show("expected", want.data ? want.data : "", want.len);
			show("actual  ", p, blen);
		}
		buf_free(&want);
	} else if (strncmp(d, "expect-header:", 14) == 0) {
		const char *v = d + 14;
		if (*v == ' ')
			v++;
		struct buf want;
		buf_init(&want, 0);
		decode(r, v, &want, false);
		if (!r->h.last_msg.data || !want.data || !strstr(r->h.last_msg.data, want.data)) {
			fail_at(r, "captured message lacks the header text");
			show("wanted", want.data ? want.data : "", want.len);
			show("message", r->h.last_msg.data ? r->h.last_msg.data : "",
			     r->h.last_msg.len > 600 ? 600 : r->h.last_msg.len);
		}
		buf_free(&want);
	} else if (strncmp(d, "expect-state:", 13) == 0) {
		const char *v = d + 13;
		while (*v == ' ')
			v++;
		const char *st = smtp_session_state_name(r->s);
		if (strcmp(st, v) != 0)
			fail_at(r, "state is %s, expected %s", st, v);
	} else if (strncmp(d, "expect-counters:", 16) == 0) {
		unsigned c, e, m;
		struct smtp_counters k;
		smtp_session_counters(r->s, &k);
		if (sscanf(d + 16, "%u %u %u", &c, &e, &m) != 3)
			fail_at(r, "bad expect-counters");
		else if (k.commands != c || k.errors != e || k.messages != m)
			fail_at(r, "counters %u %u %u, expected %u %u %u", k.commands, k.errors,
				k.messages, c, e, m);
	} else if (strncasecmp(d, "expect", 6) == 0) {
		/* a misspelt expectation must not pass for a comment */
		fail_at(r, "unknown directive: %s", d);
	}
}

static void run_file(void **state)
{
	const char *name = *state;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", conv_dir, name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	struct run *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	r->file = name;
	default_config(r);
	buf_init(&r->expect, 0);
	buf_init(&r->pending, 0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool last_was_server = true;
	while ((n = getline(&line, &cap, f)) >= 0) {
		r->lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (strncmp(line, "C: ", 3) == 0 || strcmp(line, "C:") == 0) {
			if (!r->started)
				start_session(r);
			if (last_was_server) {
				/* The client speaks only after reading the replies so far. */
				check_output(r);
			}
			decode(r, line + (n > 2 ? 3 : 2), &r->pending, false);
			last_was_server = false;
		} else if (strncmp(line, "S: ", 3) == 0) {
			if (!r->started)
				start_session(r);
			flush_client(r);
			decode(r, line + 3, &r->expect, true);
			last_was_server = true;
		} else if (line[0] == '#') {
			char *d = line + 1;
			while (*d == ' ')
				d++;
			directive(r, d);
		}
	}
	free(line);
	fclose(f);
	end_session(r);
	buf_free(&r->expect);
	buf_free(&r->pending);
	bool failed = r->failed;
	free(r);
	if (failed)
		fail_msg("%s failed", name);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	conv_dir = argc > 1 ? argv[1] : "tests/conversations";
	DIR *d = opendir(conv_dir);
	if (!d) {
		fprintf(stderr, "cannot open %s\n", conv_dir);
		return 1;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 5 && strcmp(de->d_name + l - 5, ".conv") == 0) {
			names = realloc(names, (n + 1) * sizeof(*names));
			names[n++] = strdup(de->d_name);
		}
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "no .conv files in %s\n", conv_dir);
		return 1;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	struct CMUnitTest *tests = calloc(n, sizeof(*tests));
	for (size_t i = 0; i < n; i++) {
		tests[i].name = names[i];
		tests[i].test_func = run_file;
		tests[i].initial_state = names[i];
	}
	int rc = _cmocka_run_group_tests("conversations", tests, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(tests);
	return rc;
}
