/*
 * POP3 conversation runner: every .conv file in tests/conversations/pop3 is one test.
 *
 * The format follows the persona transcripts (shared/persona/transcripts/pop3*.txt):
 *   C: client bytes (escapes \r \n \t \\ \xHH); consecutive C: lines are one write,
 *      so a group of them is a pipelined burst
 *   S: expected server bytes, with placeholders computed from the generated INBOX of
 *      the session's user (mailbox_generate, the same call the engine makes):
 *      <HOST> <DOMAIN> <COUNT> (messages) <OCTETS> (their total size)
 *      <SIZE:n> <UIDL:n> (Dovecot %08Xu%08Xv) <MSG:n> (message n, byte-stuffed)
 *      <TOP:n:l> (header, blank line and l body lines, byte-stuffed)
 *   # connect: pop3|pop3s       start a session (pop3s: implicit TLS); ends the last
 *   # config: key=value ...     before connect: tls_available= allow_plaintext=
 *                               delay= penalty= bad_limit= bad_limit_auth= line_limit=
 *                               command_limit= user= (the mailbox of placeholders)
 *   # closed by server          the engine must have closed the session
 *   # expect-open               ... and must not have
 *   # expect-event: NAME FRAG...     an event NAME with every JSON fragment FRAG
 *   # expect-no-event: NAME FRAG...  no such event
 *   # expect-wait: MS           a wait(MS) happened since the last expect-wait
 *   # expect-no-wait            none happened since the last check
 *   # expect-state: NAME        pop3_session_state_name()
 *   # expect-user: NAME|-       pop3_session_auth_user() (- : none)
 *   # expect-discarded: N       bytes thrown away after STLS (the host's RFC 2595 job)
 *   # expect-counters: C E      commands, errors
 *   # C-repeat: N TEXT          append TEXT (escapes) N times to the next write
 *   # S-repeat: N TEXT          expect TEXT N times
 *   # hangup                    the client goes away
 * Other "#" lines ("# tls: ...", "# delay 1-3s" from the recordings) are comments.
 * Before each client write and at the end, everything the server sent must equal
 * the S: lines so far, byte for byte.  The fixed account is alice / alice-Secret-1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deceive/auth_policy.h"
#include "deceive/mailbox.h"
#include "proto/pop3.h"
#include "fake_host.h"
#include "util/buf.h"

#define HOST "mail.example.test"
#define DOMAIN "example.test"

static const uint8_t secret[32] = {0x6d, 0x78, 0x62, 0x61, 0x69, 0x74};
static const char *conv_dir;

struct run {
	const char *file;
	int lineno;
	struct pop3_config cfg;
	struct auth_policy *auth;
	char user[128];
	struct mbox_set *mbox;
	struct fake_host h;
	bool started;
	struct buf expect;
	struct buf pending;
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

static void show(const char *label, const char *p, size_t len)
{
	fprintf(stderr, "  %s (%zu bytes): ", label, len);
	for (size_t i = 0; i < len && i < 3000; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r')
			fputs("\\r", stderr);
		else if (c == '\n')
			fputs("\\n\n    ", stderr);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
	fputc('\n', stderr);
}

static const struct mbox_folder *inbox(struct run *r)
{
	if (!r->mbox)
		r->mbox = mailbox_generate(r->user, DOMAIN, HOST, secret);
	return r->mbox ? mailbox_folder(r->mbox, "INBOX") : NULL;
}

static const struct mbox_msg *msg_n(struct run *r, unsigned long n)
{
	const struct mbox_folder *f = inbox(r);
	if (!f || n == 0 || n > f->n_msgs) {
		fail_at(r, "no message %lu in %s's INBOX", n, r->user);
		return NULL;
	}
	return &f->msgs[n - 1];
}

/* Byte-stuffed lines of m: the header, then at most body_lines body lines. */
static void stuffed(struct buf *out, const struct mbox_msg *m, unsigned long body_lines)
{
	const char *p = m->data, *end = m->data + m->size;
	bool body = false;
	unsigned long left = body_lines;
	while (p < end && !(body && left == 0)) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *next = lf ? lf + 1 : end;
		if (*p == '.')
			buf_putc(out, '.');
		buf_append(out, p, (size_t)(next - p));
		if (body)
			left--;
		else if (next - p == 2)
			body = true;
		p = next;
	}
}

static void placeholder(struct run *r, const char *name, size_t len, struct buf *out)
{
	char tok[64];
	snprintf(tok, sizeof(tok), "%.*s", (int)(len < 63 ? len : 63), name);
	unsigned long a = 0, b = 0;
	const struct mbox_folder *f;
	const struct mbox_msg *m;
	if (strcmp(tok, "HOST") == 0) {
		buf_puts(out, HOST);
	} else if (strcmp(tok, "DOMAIN") == 0) {
		buf_puts(out, DOMAIN);
	} else if (strcmp(tok, "COUNT") == 0 && (f = inbox(r))) {
		buf_printf(out, "%zu", f->n_msgs);
	} else if (strcmp(tok, "OCTETS") == 0 && (f = inbox(r))) {
		size_t t = 0;
		for (size_t i = 0; i < f->n_msgs; i++)
			t += f->msgs[i].size;
		buf_printf(out, "%zu", t);
	} else if (sscanf(tok, "SIZE:%lu", &a) == 1 && (m = msg_n(r, a))) {
		buf_printf(out, "%zu", m->size);
	} else if (sscanf(tok, "UIDL:%lu", &a) == 1 && (m = msg_n(r, a)) && (f = inbox(r))) {
		buf_printf(out, "%08x%08x", (unsigned)m->uid, (unsigned)f->uidvalidity);
	} else if (sscanf(tok, "MSG:%lu", &a) == 1 && (m = msg_n(r, a))) {
		stuffed(out, m, (unsigned long)-1);
	} else if (sscanf(tok, "TOP:%lu:%lu", &a, &b) == 2 && (m = msg_n(r, a))) {
		stuffed(out, m, b);
	} else {
		fail_at(r, "unknown placeholder <%s>", tok);
	}
}

/* Unescape a C:/S: payload; S: lines expand placeholders. */
static void decode(struct run *r, const char *s, struct buf *out, bool server)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			switch (*p) {
			case 'r': buf_putc(out, '\r'); break;
			case 'n': buf_putc(out, '\n'); break;
			case 't': buf_putc(out, '\t'); break;
			case '\\': buf_putc(out, '\\'); break;
			case 'x': {
				unsigned v = 0;
				if (isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]) &&
				    sscanf(p + 1, "%2x", &v) == 1) {
					buf_putc(out, (char)v);
					p += 2;
				} else {
					fail_at(r, "bad \\x escape");
				}
				break;
			}
			default: buf_putc(out, '\\'); buf_putc(out, *p); break;
			}
			continue;
		}
		if (server && *p == '<') {
			const char *e = strchr(p, '>');
			if (e && e - p > 1 && e - p < 40 && isupper((unsigned char)p[1])) {
				placeholder(r, p + 1, (size_t)(e - p - 1), out);
				p = e;
				continue;
			}
		}
		buf_putc(out, *p);
	}
}

static void default_config(struct run *r)
{
	memset(&r->cfg, 0, sizeof(r->cfg));
	r->cfg.hostname = HOST;
	r->cfg.domain = DOMAIN;
	r->cfg.tls_available = true;
	r->cfg.auth = r->auth;
	r->cfg.secret = secret;
	r->cfg.auth_failure_delay_ms = 2000;
	snprintf(r->user, sizeof(r->user), "alice");
}

static void apply_config(struct run *r, char *args)
{
	for (char *tok = strtok(args, " "); tok; tok = strtok(NULL, " ")) {
		char *eq = strchr(tok, '=');
		if (!eq) {
			fail_at(r, "config needs key=value: %s", tok);
			continue;
		}
		*eq = '\0';
		const char *v = eq + 1;
		unsigned long n = strtoul(v, NULL, 10);
		if (strcmp(tok, "tls_available") == 0)
			r->cfg.tls_available = n != 0;
		else if (strcmp(tok, "allow_plaintext") == 0)
			r->cfg.allow_plaintext = n != 0;
		else if (strcmp(tok, "delay") == 0)
			r->cfg.auth_failure_delay_ms = (unsigned)n;
		else if (strcmp(tok, "penalty") == 0)
			r->cfg.auth_penalty = n != 0;
		else if (strcmp(tok, "bad_limit") == 0)
			r->cfg.bad_command_limit = (unsigned)n;
		else if (strcmp(tok, "bad_limit_auth") == 0)
			r->cfg.bad_command_limit_auth = (unsigned)n;
		else if (strcmp(tok, "line_limit") == 0)
			r->cfg.line_length_limit = n;
		else if (strcmp(tok, "command_limit") == 0)
			r->cfg.command_limit = (unsigned)n;
		else if (strcmp(tok, "user") == 0) {
			snprintf(r->user, sizeof(r->user), "%s", v);
			mailbox_free(&r->mbox);
		} else
			fail_at(r, "unknown config key %s", tok);
	}
}

static void end_session(struct run *r)
{
	if (r->started)
		fake_host_free(&r->h);
	r->started = false;
	buf_reset(&r->expect);
	r->wait_seen = 0;
}

/* Write the pending client bytes (one write: a pipelined group). */
static void flush_pending(struct run *r)
{
	if (!r->started) {
		if (r->pending.len)
			fail_at(r, "client bytes before # connect");
		buf_reset(&r->pending);
		return;
	}
	if (r->pending.len) {
		fake_host_drive(&r->h, r->pending.data, r->pending.len);
		buf_reset(&r->pending);
	}
}

/* Write pending client bytes, then compare all output so far. */
static void sync_io(struct run *r)
{
	flush_pending(r);
	if (!r->started)
		return;
	const struct buf *got = &r->h.out;
	if (got->len != r->expect.len ||
	    (got->len && memcmp(got->data, r->expect.data, got->len) != 0)) {
		size_t i = 0;
		while (i < got->len && i < r->expect.len && got->data[i] == r->expect.data[i])
			i++;
		fail_at(r, "server bytes differ at offset %zu", i);
		size_t from = i > 200 ? i - 200 : 0;
		show("expected", r->expect.data + from, r->expect.len - from);
		show("got", got->data + from, got->len - from);
		/* Resynchronise so one difference is reported once. */
		buf_reset(&r->expect);
		buf_append(&r->expect, got->data, got->len);
	}
}

static void directive(struct run *r, char *d)
{
	if (strncmp(d, "connect:", 8) == 0) {
		sync_io(r);
		end_session(r);
		char *v = d + 8;
		while (*v == ' ')
			v++;
		r->cfg.implicit_tls = strncmp(v, "pop3s", 5) == 0;
		r->cfg.auth = r->auth;
		fake_host_start(&r->h, &pop3_engine, &r->cfg, NULL, r->cfg.implicit_tls);
		r->started = r->h.s != NULL;
		if (!r->started)
			fail_at(r, "session creation failed");
		return;
	}
	if (strncmp(d, "config:", 7) == 0) {
		apply_config(r, d + 7);
		return;
	}
	if (strncmp(d, "C-repeat:", 9) == 0 || strncmp(d, "S-repeat:", 9) == 0) {
		bool server = d[0] == 'S';
		char *p = d + 9;
		unsigned long n = strtoul(p, &p, 10);
		while (*p == ' ')
			p++;
		if (server)
			flush_pending(r);
		else if (r->pending.len == 0)
			sync_io(r); /* before a new client write */
		struct buf one;
		buf_init(&one, 0);
		decode(r, p, &one, server);
		for (unsigned long i = 0; i < n; i++)
			buf_append(server ? &r->expect : &r->pending, one.data ? one.data : "", one.len);
		buf_free(&one);
		return;
	}
	/* Everything below checks the session after the pending writes; other "#"
	 * lines are comments and change nothing (the recordings' "# delay 1-3s"). */
	if (strncasecmp(d, "expect", 6) != 0 && strcmp(d, "closed by server") != 0 &&
	    strcmp(d, "hangup") != 0)
		return;
	sync_io(r);
	if (!r->started) {
		if (strncmp(d, "expect", 6) == 0 || strncmp(d, "closed", 6) == 0)
			fail_at(r, "check outside a session: %s", d);
		return;
	}
	if (strcmp(d, "closed by server") == 0) {
		if (!r->h.closed)
			fail_at(r, "the session is still open");
	} else if (strcmp(d, "expect-open") == 0) {
		if (r->h.closed)
			fail_at(r, "the session was closed (%s)", r->h.close_reason);
	} else if (strncmp(d, "expect-event:", 13) == 0 ||
		   strncmp(d, "expect-no-event:", 16) == 0) {
		bool neg = d[7] == 'n';
		char *p = d + (neg ? 16 : 13);
		const char *frags[16];
		size_t nf = 0;
		char *name = strtok(p, " ");
		struct buf store[16];
		for (char *t = strtok(NULL, " "); t && nf < 15; t = strtok(NULL, " ")) {
			buf_init(&store[nf], 0);
			decode(r, t, &store[nf], false);
			frags[nf] = store[nf].data ? store[nf].data : "";
			nf++;
		}
		frags[nf] = NULL;
		bool has = name && fake_host_has_event(&r->h, name, frags);
		if (has == neg) {
			fail_at(r, neg ? "unexpected event %s" : "no event %s with those fields",
				name ? name : "?");
			show("events", r->h.events.data ? r->h.events.data : "", r->h.events.len);
		}
		for (size_t i = 0; i < nf; i++)
			buf_free(&store[i]);
	} else if (strncmp(d, "expect-wait:", 12) == 0) {
		unsigned ms = (unsigned)strtoul(d + 12, NULL, 10);
		bool found = false;
		for (unsigned i = r->wait_seen; i < r->h.n_waits; i++)
			found |= r->h.waits[i] == ms;
		if (!found)
			fail_at(r, "no wait(%u) since the last check", ms);
		r->wait_seen = r->h.n_waits;
	} else if (strcmp(d, "expect-no-wait") == 0) {
		if (r->h.n_waits != r->wait_seen)
			fail_at(r, "unexpected wait(%u)", r->h.waits[r->h.n_waits - 1]);
	} else if (strncmp(d, "expect-state:", 13) == 0) {
		const char *want = d + 13;
		while (*want == ' ')
			want++;
		const char *st = pop3_engine.state_name(r->h.s);
		if (strcmp(st, want) != 0)
			fail_at(r, "state %s, expected %s", st, want);
	} else if (strncmp(d, "expect-user:", 12) == 0) {
		const char *want = d + 12;
		while (*want == ' ')
			want++;
		const char *u = pop3_engine.auth_user(r->h.s);
		if (strcmp(want, "-") == 0 ? u != NULL : (!u || strcmp(u, want) != 0))
			fail_at(r, "auth user %s, expected %s", u ? u : "(none)", want);
	} else if (strncmp(d, "expect-discarded:", 17) == 0) {
		size_t n = strtoul(d + 17, NULL, 10);
		if (r->h.discarded != n)
			fail_at(r, "%zu bytes discarded after STLS, expected %zu", r->h.discarded, n);
	} else if (strncmp(d, "expect-counters:", 16) == 0) {
		unsigned c = 0, e = 0;
		struct proto_counters pc;
		pop3_engine.counters(r->h.s, &pc);
		if (sscanf(d + 16, "%u %u", &c, &e) != 2 || pc.commands != c || pc.errors != e)
			fail_at(r, "counters %u %u, expected %s", pc.commands, pc.errors, d + 16);
	} else if (strcmp(d, "hangup") == 0) {
		pop3_engine.hangup(r->h.s, "client_closed");
	} else if (strncasecmp(d, "expect", 6) == 0) {
		/* a misspelt expectation must not pass for a comment */
		fail_at(r, "unknown directive: %s", d);
	}
	/* anything else is a comment */
}

static void run_file(void **state)
{
	const char *name = *state;
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", conv_dir, name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	struct run r;
	memset(&r, 0, sizeof(r));
	r.file = name;
	const char *acc[] = {"alice:alice-Secret-1"};
	r.auth = auth_static_new(acc, 1);
	default_config(&r);
	buf_init(&r.expect, 0);
	buf_init(&r.pending, 0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool last_c = false;
	while ((n = getline(&line, &cap, f)) >= 0) {
		r.lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (strncmp(line, "C: ", 3) == 0) {
			if (!last_c && r.pending.len == 0)
				sync_io(&r); /* before each client write */
			decode(&r, line + 3, &r.pending, false);
			last_c = true;
			continue;
		}
		last_c = false;
		if (strncmp(line, "S: ", 3) == 0) {
			flush_pending(&r);
			decode(&r, line + 3, &r.expect, true);
		}
		else if (line[0] == '#')
			directive(&r, line[1] == ' ' ? line + 2 : line + 1);
		else if (line[0] != '\0')
			fail_at(&r, "unrecognised line");
	}
	sync_io(&r);
	free(line);
	fclose(f);
	end_session(&r);
	mailbox_free(&r.mbox);
	buf_free(&r.expect);
	buf_free(&r.pending);
	auth_policy_free(&r.auth);
	assert_false(r.failed);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	conv_dir = argc > 1 ? argv[1] : "tests/conversations/pop3";
	DIR *d = opendir(conv_dir);
	if (!d) {
		fprintf(stderr, "cannot open %s\n", conv_dir);
		return 1;
	}
	char *names[512];
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < 512) {
		size_t l = strlen(de->d_name);
		if (l > 5 && strcmp(de->d_name + l - 5, ".conv") == 0)
			names[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "no .conv files in %s\n", conv_dir);
		return 1;
	}
	qsort(names, n, sizeof(names[0]), cmp_names);
	struct CMUnitTest *tests = calloc(n, sizeof(*tests));
	for (size_t i = 0; i < n; i++) {
		tests[i].name = names[i];
		tests[i].test_func = run_file;
		tests[i].initial_state = names[i];
	}
	int rc = _cmocka_run_group_tests("pop3_conversations", tests, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(tests);
	return rc;
}
