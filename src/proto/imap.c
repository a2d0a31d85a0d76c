/*
 * imap: the IMAP4rev1 engine (see imap.h for the host contract and the persona).
 *
 * Layout of this file, top to bottom:
 *   - session struct, state names and the one function that changes the input state;
 *   - output: untagged and tagged replies (with Dovecot's timing suffix after login),
 *     collected per step and sent when the step ends, after an ops->wait when Dovecot
 *     would have held the answer (failed login, auth penalty);
 *   - events (auth, message, message_rejected, offence);
 *   - message anatomy: header fields, a small MIME walk, ENVELOPE and BODYSTRUCTURE;
 *   - pre-login commands (imap-login) and their table;
 *   - post-login commands (imap) and their table, FETCH, SEARCH, STORE, APPEND;
 *   - the input side: command framing with literals ({n} gets "+ OK", {n+} none),
 *     SASL continuation lines and IDLE.
 *
 * Everything an attacker sends is bounded: see imap.h.  Replies echo attacker bytes
 * only where Dovecot does (the command name, mailbox names), made printable.
 */
#include "proto/imap.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deceive/auth_policy.h"
#include "deceive/mailbox.h"
#include "proto/imap_parse.h"
#include "proto/sasl.h"
#include "store/event.h"
#include "util/buf.h"

#define PRELOGIN_LINE_MAX 8192    /* imap-login MAX_IMAP_LINE */
#define AUTH_LINE_MAX 8192        /* LOGIN_MAX_AUTH_BUF_SIZE */
#define PRELOGIN_BAD_MAX 3        /* imap-login CLIENT_MAX_BAD_COMMANDS */
#define OUT_FLUSH_AT (256 * 1024) /* hand output to the host in pieces */
#define DETAIL_MAX 200
#define USER_MAX 256
#define MIME_MAX_PARTS 64
#define MIME_MAX_DEPTH 6
#define HDR_VALUE_MAX 8192
#define SEARCH_MAX_DEPTH 32
#define FETCH_MAX_ATTS 64
#define FETCH_OUT_MAX (64u * 1024 * 1024) /* bytes one FETCH may produce */

#define CAP_BASE "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE"
#define CAP_POSTLOGIN                                                                    \
	"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "            \
	"THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL "   \
	"CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 "        \
	"CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS "   \
	"BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ " \
	"NOTIFY SPECIAL-USE"
#define FLAGS_LIST "\\Answered \\Flagged \\Deleted \\Seen \\Draft"

enum istate {
	IN_LINE,    /* command text */
	IN_LITERAL, /* literal bytes of the command being framed */
	IN_AUTH,    /* a SASL continuation line */
	IN_IDLE,    /* waiting for DONE */
};

enum susp {
	SUSP_NONE,
	SUSP_WAIT,
	SUSP_COMMIT,
	SUSP_TLS,
	SUSP_CLOSED,
};

enum cstate {
	CS_NOAUTH,
	CS_AUTH,
	CS_SELECTED,
	CS_LOGOUT,
};

enum mech { MECH_NONE, MECH_PLAIN, MECH_LOGIN };

struct imap_session {
	const struct imap_config *cfg;
	const struct proto_host_ops *ops;
	void *ctx;
	char peer_ip[64];
	bool tls;
	bool starttls_done;      /* STARTTLS was issued (Dovecot client->starttls) */
	bool hung_up;            /* the client left while an APPEND was being committed */
	bool cap_seen;           /* CAPABILITY before STARTTLS: no resp-code at login */

	enum cstate cs;
	enum istate in;
	enum susp susp;

	/* framing */
	struct buf cmd;          /* the command as on the wire, literals inline */
	size_t line_text;        /* text bytes of it (literals excluded) */
	size_t seg_start;        /* where the text after the last literal starts */
	uint64_t lit_left;
	bool cmd_append;         /* the command being framed is APPEND */
	struct buf line;         /* SASL / IDLE line */
	struct imap_command *pc; /* parsed command */
	const char *feed_pos, *feed_end;

	/* the command being answered */
	char tag[IMAP_TAG_MAX_LEN + 1];
	int64_t cmd_start_us;

	/* output */
	struct buf out;
	unsigned delay_ms;
	const char *close_reason;

	/* auth */
	enum mech mech;
	int auth_step;
	char auth_tag[IMAP_TAG_MAX_LEN + 1];
	unsigned char *auth_user_tmp; /* SASL LOGIN user name until the password comes */
	size_t auth_user_len;
	unsigned auth_failures;
	char user[USER_MAX];

	/* mailbox */
	struct mbox_set *mbox;
	struct mbox_folder *sel;
	bool sel_ro;
	char idle_tag[IMAP_TAG_MAX_LEN + 1];

	/* APPEND waiting for its commit */
	struct mbox_folder *app_folder;
	const char *app_data;
	size_t app_len;
	unsigned app_flags;
	int64_t app_date;
	char app_qid[32];

	/* counters */
	unsigned commands;
	unsigned errors;
	unsigned messages;
	unsigned bad_prelogin;
	unsigned bad_row;
};

static void release_command(struct imap_session *s);

/* ------------------------------------------------------------------ state ---- */

static const char *state_name(const struct imap_session *s)
{
	if (s->susp == SUSP_CLOSED)
		return "closed";
	if (s->susp == SUSP_TLS)
		return "starttls";
	if (s->susp == SUSP_COMMIT)
		return "append";
	if (s->in == IN_AUTH)
		return "auth";
	if (s->in == IN_IDLE)
		return "idle";
	switch (s->cs) {
	case CS_NOAUTH:
		return "not_authenticated";
	case CS_AUTH:
		return "authenticated";
	case CS_SELECTED:
		return "selected";
	case CS_LOGOUT:
		return "logout";
	}
	return "?";
}

/* The one place the input state changes. */
static void set_input(struct imap_session *s, enum istate in)
{
#ifdef MXB_IMAP_TRACE
	static const char *const names[] = {"line", "literal", "auth", "idle"};
	fprintf(stderr, "imap: input %s -> %s\n", names[s->in], names[in]);
#endif
	s->in = in;
}

const char *imap_session_state_name(const struct imap_session *s)
{
	return state_name(s);
}

void imap_session_counters(const struct imap_session *s, struct proto_counters *c_r)
{
	c_r->commands = s->commands;
	c_r->errors = s->errors;
	c_r->messages = s->messages;
}

const char *imap_session_auth_user(const struct imap_session *s)
{
	return s->cs != CS_NOAUTH && s->user[0] ? s->user : NULL;
}

static bool logged_in(const struct imap_session *s)
{
	return s->cs == CS_AUTH || s->cs == CS_SELECTED;
}

/* ------------------------------------------------------------------ output --- */

static int64_t now_us(struct imap_session *s)
{
	if (s->ops->now_us)
		return s->ops->now_us(s->ctx);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void flush_out(struct imap_session *s)
{
	if (s->out.len > 0) {
		s->ops->send(s->ctx, s->out.data, s->out.len);
		if (s->out.alloc > 65536)
			buf_free(&s->out); /* after a big FETCH */
		else
			buf_reset(&s->out);
	}
}

/* Big FETCH answers leave in pieces, unless a delay holds the step's replies. */
static void out_maybe_flush(struct imap_session *s)
{
	if (s->out.len >= OUT_FLUSH_AT && s->delay_ms == 0 && s->susp == SUSP_NONE)
		flush_out(s);
}

static void out_raw(struct imap_session *s, const char *data, size_t len)
{
	buf_append(&s->out, data, len);
	out_maybe_flush(s);
}

static void out_str(struct imap_session *s, const char *str)
{
	out_raw(s, str, strlen(str));
}

static void untagged(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	buf_puts(&s->out, "* ");
	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	buf_puts(&s->out, "\r\n");
	out_maybe_flush(s);
}

/* A tagged reply.  After login Dovecot's imap adds "(t + l secs)" before the final
 * dot (added when the text has none). */
static void tagged_v(struct imap_session *s, bool timing, const char *status,
		     const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static void tagged_v(struct imap_session *s, bool timing, const char *status,
		     const char *fmt, va_list ap)
{
	char text[1200];
	vsnprintf(text, sizeof(text), fmt, ap);
	size_t tl = strlen(text);
	if (timing && tl > 0 && text[tl - 1] == '.')
		text[--tl] = '\0';
	buf_printf(&s->out, "%s %s %s", s->tag[0] ? s->tag : "*", status, text);
	if (timing) {
		int64_t el = now_us(s) - s->cmd_start_us;
		if (el < 0)
			el = 0;
		int64_t ms = el / 1000;
		buf_printf(&s->out, " (%lld.%03lld + 0.000 secs).", (long long)(ms / 1000),
			   (long long)(ms % 1000));
	}
	buf_puts(&s->out, "\r\n");
	if (strcmp(status, "OK") != 0)
		s->errors++;
	out_maybe_flush(s);
}

static void tagged(struct imap_session *s, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void tagged(struct imap_session *s, const char *status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tagged_v(s, logged_in(s) || s->cs == CS_LOGOUT, status, fmt, ap);
	va_end(ap);
}

/* Without the timing suffix ("OK Logged in" and every pre-login reply). */
static void tagged_plain(struct imap_session *s, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void tagged_plain(struct imap_session *s, const char *status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tagged_v(s, false, status, fmt, ap);
	va_end(ap);
}

static void close_after(struct imap_session *s, const char *reason)
{
	if (!s->close_reason)
		s->close_reason = reason;
}

static void do_close(struct imap_session *s)
{
	flush_out(s);
	s->susp = SUSP_CLOSED;
	s->ops->close(s->ctx, s->close_reason ? s->close_reason : "protocol");
}

/* End of a step: hold the replies for the delay Dovecot would impose, or send them,
 * then close if asked. */
static void finish_step(struct imap_session *s)
{
	if (s->susp == SUSP_CLOSED)
		return;
	if (s->susp == SUSP_TLS) {
		flush_out(s);
		s->ops->starttls(s->ctx);
		return;
	}
	if (s->susp == SUSP_COMMIT) {
		flush_out(s);
		return;
	}
	if (s->delay_ms > 0) {
		unsigned ms = s->delay_ms;
		s->delay_ms = 0;
		s->susp = SUSP_WAIT;
		s->ops->wait(s->ctx, ms);
		return;
	}
	if (s->close_reason) {
		do_close(s);
		return;
	}
	flush_out(s);
}

/* ------------------------------------------------------------------ events --- */

static void emit(struct imap_session *s, struct mxb_event *ev)
{
	if (ev)
		s->ops->event(s->ctx, ev);
}

static void offence(struct imap_session *s, const char *kind, const char *detail,
		    size_t len)
{
	struct mxb_event *ev = mxb_event_new("offence");
	if (!ev)
		return;
	mxb_event_str(ev, "kind", kind);
	mxb_event_strn(ev, "detail", detail ? detail : "", len > DETAIL_MAX ? DETAIL_MAX : len);
	emit(s, ev);
}

struct auth_ev {
	const char *mech;
	const char *user;
	size_t user_len;
	const char *pass;
	size_t pass_len;
	const char *authzid;
	size_t authzid_len;
	bool success;
	const char *result;
};

static void auth_event(struct imap_session *s, const struct auth_ev *a)
{
	struct mxb_event *ev = mxb_event_new("auth");
	if (!ev)
		return;
	mxb_event_str(ev, "mechanism", a->mech);
	if (a->user)
		mxb_event_strn(ev, "username", a->user, a->user_len);
	else
		mxb_event_null(ev, "username");
	if (a->pass)
		mxb_event_strn(ev, "password", a->pass, a->pass_len);
	else
		mxb_event_null(ev, "password");
	if (a->authzid && a->authzid_len > 0)
		mxb_event_strn(ev, "authzid", a->authzid, a->authzid_len);
	else
		mxb_event_null(ev, "authzid");
	mxb_event_bool(ev, "success", a->success);
	mxb_event_str(ev, "result", a->result);
	emit(s, ev);
}

static void auth_event_simple(struct imap_session *s, const char *mech, const char *result)
{
	struct auth_ev a = {.mech = mech, .result = result};
	auth_event(s, &a);
}

/* ------------------------------------------------------------ text helpers --- */

static void printable(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[o] = '\0';
}

/* An IMAP string: NIL, "quoted" or a {literal} for 8-bit, CR/LF and long text. */
static void put_nstring(struct buf *b, const char *p, size_t len)
{
	if (!p) {
		buf_puts(b, "NIL");
		return;
	}
	bool literal = len > 1024;
	for (size_t i = 0; i < len && !literal; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r' || c == '\n' || c == 0 || c >= 0x80)
			literal = true;
	}
	if (literal) {
		buf_printf(b, "{%zu}\r\n", len);
		buf_append(b, p, len);
		return;
	}
	buf_putc(b, '"');
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\')
			buf_putc(b, '\\');
		buf_putc(b, p[i]);
	}
	buf_putc(b, '"');
}

static void put_string(struct buf *b, const char *str)
{
	put_nstring(b, str, strlen(str));
}

/* A mailbox name as Dovecot prints it: atom when possible, else quoted. */
static void put_mailbox(struct buf *b, const char *name)
{
	bool atom = name[0] != '\0';
	for (const char *p = name; *p && atom; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c))
			atom = false;
	}
	if (atom)
		buf_puts(b, name);
	else
		put_string(b, name);
}

/* Mailbox name from the client, printable, for NO texts. */
static void shown_name(char *dst, size_t dstlen, const char *p, size_t len)
{
	printable(dst, dstlen, p, len > 200 ? 200 : len);
}

/* ------------------------------------------------------------ message anatomy --- */

/* Split at the blank line: hdr_len includes it (RFC 3501 HEADER). */
static void split_message(const char *p, size_t len, size_t *hdr_len_r)
{
	if (len >= 2 && p[0] == '\r' && p[1] == '\n') {
		*hdr_len_r = 2;
		return;
	}
	if (len >= 1 && p[0] == '\n') {
		*hdr_len_r = 1;
		return;
	}
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n') {
			*hdr_len_r = i + 2;
			return;
		}
		if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n') {
			*hdr_len_r = i + 3;
			return;
		}
	}
	*hdr_len_r = len;
}

/* Iterate header fields: returns false at the end.  Gives the name (name_len bytes)
 * and the whole field, folded lines included (field_len bytes). */
static bool next_field(const char *h, size_t hlen, size_t *pos, const char **name,
		       size_t *name_len, const char **field, size_t *field_len)
{
	while (*pos < hlen) {
		size_t start = *pos;
		size_t e = start;
		/* to the end of the field: a line not continued by SP/TAB */
		for (;;) {
			const char *lf = memchr(h + e, '\n', hlen - e);
			e = lf ? (size_t)(lf - h) + 1 : hlen;
			if (e >= hlen || (h[e] != ' ' && h[e] != '\t'))
				break;
		}
		*pos = e;
		const char *colon = memchr(h + start, ':', e - start);
		if (!colon || h[start] == '\r' || h[start] == '\n')
			continue; /* blank line or garbage */
		*name = h + start;
		*name_len = (size_t)(colon - (h + start));
		while (*name_len > 0 && ((*name)[*name_len - 1] == ' ' || (*name)[*name_len - 1] == '\t'))
			(*name_len)--;
		*field = h + start;
		*field_len = e - start;
		return true;
	}
	return false;
}

/* The unfolded value of the first field called name, into out (NUL-terminated).
 * Returns false when absent. */
static bool header_get(const char *h, size_t hlen, const char *name, char *out, size_t outlen)
{
	size_t pos = 0, nl;
	const char *n, *f;
	size_t fl;
	size_t want = strlen(name);
	while (next_field(h, hlen, &pos, &n, &nl, &f, &fl)) {
		if (nl != want || strncasecmp(n, name, want) != 0)
			continue;
		const char *v = (const char *)memchr(f, ':', fl) + 1;
		size_t vl = fl - (size_t)(v - f);
		size_t o = 0;
		bool lead = true;
		for (size_t i = 0; i < vl && o + 1 < outlen; i++) {
			char c = v[i];
			if (c == '\r' || c == '\n')
				continue;
			if (lead && (c == ' ' || c == '\t'))
				continue;
			lead = false;
			out[o++] = c == '\t' ? ' ' : c;
		}
		while (o > 0 && (out[o - 1] == ' '))
			o--;
		out[o] = '\0';
		return true;
	}
	out[0] = '\0';
	return false;
}

struct mime_part {
	const char *hdr;
	size_t hdr_len;         /* 0 for a part without headers */
	const char *body;
	size_t body_len;
	int parent;             /* index, -1 for the root */
	int first_child;        /* index or -1 */
	int next_sibling;       /* index or -1 */
	bool multipart;
	bool is_message;        /* message/rfc822 */
};

struct mime_tree {
	struct mime_part p[MIME_MAX_PARTS];
	int n;
};

static void content_type(const struct mime_part *mp, char *type, size_t tl, char *sub,
			 size_t sl, char *params, size_t pl, bool *present_r);

static const char *find_boundary(const char *p, size_t len, const char *b, size_t blen,
				 size_t from, bool *final_r, size_t *line_end_r)
{
	size_t i = from;
	while (i + 2 + blen <= len) {
		/* delimiter lines start at the body start or after an LF */
		if ((i == 0 || p[i - 1] == '\n') && p[i] == '-' && p[i + 1] == '-' &&
		    memcmp(p + i + 2, b, blen) == 0) {
			size_t e = i + 2 + blen;
			*final_r = e + 2 <= len && p[e] == '-' && p[e + 1] == '-';
			const char *lf = memchr(p + e, '\n', len - e);
			*line_end_r = lf ? (size_t)(lf - p) + 1 : len;
			return p + i;
		}
		const char *lf = memchr(p + i, '\n', len - i);
		if (!lf)
			break;
		i = (size_t)(lf - p) + 1;
	}
	return NULL;
}

static int mime_add(struct mime_tree *t, const char *p, size_t len, int parent,
		    bool has_headers, int depth);

static void mime_children(struct mime_tree *t, int idx, const char *boundary, int depth)
{
	struct mime_part *mp = &t->p[idx];
	size_t blen = strlen(boundary);
	const char *body = mp->body;
	size_t len = mp->body_len;
	bool fin;
	size_t le;
	const char *d = find_boundary(body, len, boundary, blen, 0, &fin, &le);
	int last = -1;
	while (d && !fin) {
		size_t start = le;
		size_t le2;
		bool fin2;
		const char *d2 = find_boundary(body, len, boundary, blen, start, &fin2, &le2);
		size_t end = d2 ? (size_t)(d2 - body) : len;
		/* the CRLF before the next delimiter belongs to the delimiter */
		if (d2 && end > start && body[end - 1] == '\n') {
			end--;
			if (end > start && body[end - 1] == '\r')
				end--;
		}
		int c = mime_add(t, body + start, end - start, idx, true, depth + 1);
		if (c < 0)
			return;
		if (last < 0)
			t->p[idx].first_child = c;
		else
			t->p[last].next_sibling = c;
		last = c;
		if (!d2)
			break;
		d = d2;
		fin = fin2;
		le = le2;
	}
}

static int mime_add(struct mime_tree *t, const char *p, size_t len, int parent,
		    bool has_headers, int depth)
{
	if (t->n >= MIME_MAX_PARTS)
		return -1;
	int idx = t->n++;
	struct mime_part *mp = &t->p[idx];
	memset(mp, 0, sizeof(*mp));
	mp->parent = parent;
	mp->first_child = mp->next_sibling = -1;
	size_t hl = 0;
	if (has_headers)
		split_message(p, len, &hl);
	mp->hdr = p;
	mp->hdr_len = hl;
	mp->body = p + hl;
	mp->body_len = len - hl;
	char type[64], sub[64], params[1024];
	bool present;
	content_type(mp, type, sizeof(type), sub, sizeof(sub), params, sizeof(params), &present);
	if (depth < MIME_MAX_DEPTH && strcasecmp(type, "multipart") == 0) {
		/* boundary parameter */
		char hv[HDR_VALUE_MAX];
		header_get(mp->hdr, mp->hdr_len, "Content-Type", hv, sizeof(hv));
		const char *b = strcasestr(hv, "boundary=");
		if (b) {
			b += 9;
			char bnd[256];
			size_t o = 0;
			if (*b == '"') {
				b++;
				while (*b && *b != '"' && o + 1 < sizeof(bnd))
					bnd[o++] = *b++;
			} else {
				while (*b && *b != ';' && *b != ' ' && o + 1 < sizeof(bnd))
					bnd[o++] = *b++;
			}
			bnd[o] = '\0';
			if (o > 0) {
				t->p[idx].multipart = true;
				mime_children(t, idx, bnd, depth);
			}
		}
	}
	return idx;
}

static void mime_parse(struct mime_tree *t, const char *p, size_t len)
{
	t->n = 0;
	mime_add(t, p, len, -1, true, 0);
}

/* Content-Type into type/subtype (lower case) and the parameters as an IMAP list
 * body ("charset" "utf-8" ...). */
static void content_type(const struct mime_part *mp, char *type, size_t tl, char *sub,
			 size_t sl, char *params, size_t pl, bool *present_r)
{
	char hv[HDR_VALUE_MAX];
	/* RFC 2045 default; multipart/digest children (message/rfc822) are not
	 * special-cased */
	*present_r = header_get(mp->hdr, mp->hdr_len, "Content-Type", hv, sizeof(hv));
	snprintf(type, tl, "%s", "text");
	snprintf(sub, sl, "%s", "plain");
	struct buf pb;
	buf_init(&pb, 0);
	if (!*present_r) {
		buf_puts(&pb, "\"charset\" \"us-ascii\"");
	} else {
		const char *v = hv;
		size_t o = 0;
		char t1[64] = "", s1[64] = "";
		while (*v && *v != '/' && *v != ';' && o + 1 < sizeof(t1))
			t1[o++] = (char)tolower((unsigned char)*v++);
		t1[o] = '\0';
		o = 0;
		if (*v == '/') {
			v++;
			while (*v && *v != ';' && *v != ' ' && o + 1 < sizeof(s1))
				s1[o++] = (char)tolower((unsigned char)*v++);
		}
		s1[o] = '\0';
		while (o > 0 && s1[o - 1] == ' ')
			s1[--o] = '\0';
		if (t1[0] && s1[0]) {
			snprintf(type, tl, "%s", t1);
			snprintf(sub, sl, "%s", s1);
		}
		/* parameters: ; key=value or ; key="value" */
		bool first = true;
		while ((v = strchr(v, ';')) != NULL) {
			v++;
			while (*v == ' ' || *v == '\t')
				v++;
			char key[128], val[1024];
			size_t k = 0, w = 0;
			while (*v && *v != '=' && *v != ';' && k + 1 < sizeof(key))
				key[k++] = (char)tolower((unsigned char)*v++);
			while (k > 0 && key[k - 1] == ' ')
				k--;
			key[k] = '\0';
			if (*v != '=' || k == 0)
				continue;
			v++;
			while (*v == ' ')
				v++;
			if (*v == '"') {
				v++;
				while (*v && *v != '"' && w + 1 < sizeof(val)) {
					if (*v == '\\' && v[1])
						v++;
					val[w++] = *v++;
				}
				if (*v == '"')
					v++;
			} else {
				while (*v && *v != ';' && *v != ' ' && w + 1 < sizeof(val))
					val[w++] = *v++;
			}
			val[w] = '\0';
			/* whole pairs only, with room left for the default charset: a cut
			 * list would be a syntax error for the client */
			struct buf pair;
			buf_init(&pair, 0);
			put_string(&pair, key);
			buf_putc(&pair, ' ');
			put_string(&pair, val);
			if (pb.len + 1 + pair.len + 24 >= pl) {
				buf_free(&pair);
				break;
			}
			if (!first)
				buf_putc(&pb, ' ');
			first = false;
			buf_append(&pb, pair.data, pair.len);
			buf_free(&pair);
		}
	}
	buf_putc(&pb, '\0');
	/* Dovecot shows the RFC 2045 default charset of a text part that names none */
	if (strcasecmp(type, "text") == 0 && !strstr(pb.data ? pb.data : "", "\"charset\" "))
		snprintf(params, pl, "\"charset\" \"us-ascii\"%s%s",
			 pb.data && pb.data[0] ? " " : "", pb.data ? pb.data : "");
	else
		snprintf(params, pl, "%s", pb.data ? pb.data : "");
	buf_free(&pb);
}

static size_t count_lines(const char *p, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (p[i] == '\n')
			n++;
	if (len > 0 && p[len - 1] != '\n')
		n++;
	return n;
}

static void put_hdr_nstring(struct buf *b, const struct mime_part *mp, const char *name)
{
	char v[HDR_VALUE_MAX];
	if (header_get(mp->hdr, mp->hdr_len, name, v, sizeof(v)) && v[0])
		put_string(b, v);
	else
		buf_puts(b, "NIL");
}

/* Content-Disposition as ("attachment" ("filename" "x")) or NIL. */
static void put_disposition(struct buf *b, const struct mime_part *mp)
{
	char v[HDR_VALUE_MAX];
	if (!header_get(mp->hdr, mp->hdr_len, "Content-Disposition", v, sizeof(v)) || !v[0]) {
		buf_puts(b, "NIL");
		return;
	}
	char *semi = strchr(v, ';');
	char dtype[64];
	size_t dl = semi ? (size_t)(semi - v) : strlen(v);
	while (dl > 0 && v[dl - 1] == ' ')
		dl--;
	printable(dtype, sizeof(dtype), v, dl);
	for (char *q = dtype; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	buf_putc(b, '(');
	put_string(b, dtype);
	buf_putc(b, ' ');
	if (!semi) {
		buf_puts(b, "NIL)");
		return;
	}
	/* reuse the Content-Type parameter syntax */
	struct mime_part fake = {0};
	char hdrbuf[HDR_VALUE_MAX + 32];
	int n = snprintf(hdrbuf, sizeof(hdrbuf), "Content-Type: x/y%s\r\n\r\n", semi);
	fake.hdr = hdrbuf;
	fake.hdr_len = n > 0 && (size_t)n < sizeof(hdrbuf) ? (size_t)n : strlen(hdrbuf);
	char t[8], sb[8], params[1024];
	bool present;
	content_type(&fake, t, sizeof(t), sb, sizeof(sb), params, sizeof(params), &present);
	if (params[0])
		buf_printf(b, "(%s))", params);
	else
		buf_puts(b, "NIL)");
}

static void put_envelope(struct buf *b, const char *h, size_t hl);

static void put_bodystructure(struct buf *b, const struct mime_tree *t, int idx, bool ext,
			      int depth)
{
	const struct mime_part *mp = &t->p[idx];
	char type[64], sub[64], params[1024];
	bool present;
	content_type(mp, type, sizeof(type), sub, sizeof(sub), params, sizeof(params), &present);
	buf_putc(b, '(');
	if (mp->multipart && mp->first_child >= 0) {
		for (int c = mp->first_child; c >= 0; c = t->p[c].next_sibling)
			put_bodystructure(b, t, c, ext, depth);
		buf_putc(b, ' ');
		put_string(b, sub);
		if (ext) {
			buf_putc(b, ' ');
			if (params[0])
				buf_printf(b, "(%s)", params);
			else
				buf_puts(b, "NIL");
			buf_putc(b, ' ');
			put_disposition(b, mp);
			buf_puts(b, " NIL NIL");
		}
		buf_putc(b, ')');
		return;
	}
	put_string(b, type);
	buf_putc(b, ' ');
	put_string(b, sub);
	buf_putc(b, ' ');
	if (params[0])
		buf_printf(b, "(%s)", params);
	else
		buf_puts(b, "NIL");
	buf_putc(b, ' ');
	put_hdr_nstring(b, mp, "Content-ID");
	buf_putc(b, ' ');
	put_hdr_nstring(b, mp, "Content-Description");
	buf_putc(b, ' ');
	char enc[128];
	if (!header_get(mp->hdr, mp->hdr_len, "Content-Transfer-Encoding", enc, sizeof(enc)) ||
	    !enc[0])
		snprintf(enc, sizeof(enc), "7bit");
	for (char *q = enc; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	put_string(b, enc);
	buf_printf(b, " %zu", mp->body_len);
	if (strcasecmp(type, "text") == 0) {
		buf_printf(b, " %zu", count_lines(mp->body, mp->body_len));
	} else if (strcasecmp(type, "message") == 0 && strcasecmp(sub, "rfc822") == 0) {
		/* RFC 3501 body-type-msg: the envelope and structure of the enclosed
		 * message, then its lines (nesting bounded) */
		size_t hl;
		split_message(mp->body, mp->body_len, &hl);
		buf_putc(b, ' ');
		put_envelope(b, mp->body, hl);
		buf_putc(b, ' ');
		struct mime_tree *nt = depth < 3 ? malloc(sizeof(*nt)) : NULL;
		if (nt) {
			mime_parse(nt, mp->body, mp->body_len);
			put_bodystructure(b, nt, 0, ext, depth + 1);
			free(nt);
		} else {
			buf_puts(b, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
		}
		buf_printf(b, " %zu", count_lines(mp->body, mp->body_len));
	}
	if (ext) {
		buf_puts(b, " NIL ");
		put_disposition(b, mp);
		buf_puts(b, " NIL NIL");
	}
	buf_putc(b, ')');
}

/* One address list for ENVELOPE: ((name NIL mailbox host) ...) or NIL. */
static void put_addresses(struct buf *b, const char *v)
{
	if (!v || !*v) {
		buf_puts(b, "NIL");
		return;
	}
	size_t n = 0;
	const char *p = v;
	bool any = false;
	while (*p && n < 50) {
		/* one address up to a comma outside quotes and <> */
		const char *st = p;
		bool q = false;
		int angle = 0;
		while (*p) {
			if (*p == '"' && (p == st || p[-1] != '\\'))
				q = !q;
			else if (!q && *p == '<')
				angle++;
			else if (!q && *p == '>' && angle > 0)
				angle--;
			else if (!q && angle == 0 && *p == ',')
				break;
			p++;
		}
		size_t al = (size_t)(p - st);
		if (*p == ',')
			p++;
		char a[1024];
		printable(a, sizeof(a), st, al);
		char *lt = strchr(a, '<');
		char name[1024] = "", addr[1024] = "";
		bool have_name = false;
		if (lt) {
			char *gt = strchr(lt, '>');
			if (gt)
				*gt = '\0';
			snprintf(addr, sizeof(addr), "%s", lt + 1);
			*lt = '\0';
			char *ns = a;
			while (*ns == ' ')
				ns++;
			size_t nl = strlen(ns);
			while (nl > 0 && ns[nl - 1] == ' ')
				ns[--nl] = '\0';
			if (nl >= 2 && ns[0] == '"' && ns[nl - 1] == '"') {
				ns[nl - 1] = '\0';
				ns++;
			}
			if (*ns) {
				snprintf(name, sizeof(name), "%s", ns);
				have_name = true;
			}
		} else {
			char *as = a;
			while (*as == ' ')
				as++;
			size_t l = strlen(as);
			while (l > 0 && as[l - 1] == ' ')
				as[--l] = '\0';
			snprintf(addr, sizeof(addr), "%s", as);
		}
		if (!addr[0])
			continue;
		if (!any)
			buf_putc(b, '(');
		any = true;
		n++;
		buf_putc(b, '(');
		if (have_name)
			put_string(b, name);
		else
			buf_puts(b, "NIL");
		buf_puts(b, " NIL ");
		char *at = strrchr(addr, '@');
		if (at) {
			*at = '\0';
			put_string(b, addr);
			buf_putc(b, ' ');
			put_string(b, at + 1);
		} else {
			put_string(b, addr);
			buf_puts(b, " NIL");
		}
		buf_putc(b, ')');
	}
	if (any)
		buf_putc(b, ')');
	else
		buf_puts(b, "NIL");
}

static void put_envelope(struct buf *b, const char *h, size_t hl)
{
	char v[HDR_VALUE_MAX];
	char from[HDR_VALUE_MAX];
	buf_putc(b, '(');
	if (header_get(h, hl, "Date", v, sizeof(v)))
		put_string(b, v);
	else
		buf_puts(b, "NIL");
	buf_putc(b, ' ');
	if (header_get(h, hl, "Subject", v, sizeof(v)))
		put_string(b, v);
	else
		buf_puts(b, "NIL");
	bool have_from = header_get(h, hl, "From", from, sizeof(from));
	buf_putc(b, ' ');
	put_addresses(b, have_from ? from : NULL);
	/* Sender and Reply-To default to From (RFC 3501 7.4.2) */
	buf_putc(b, ' ');
	put_addresses(b, header_get(h, hl, "Sender", v, sizeof(v)) && v[0] ? v
			 : have_from ? from : NULL);
	buf_putc(b, ' ');
	put_addresses(b, header_get(h, hl, "Reply-To", v, sizeof(v)) && v[0] ? v
			 : have_from ? from : NULL);
	static const char *const lists[] = {"To", "Cc", "Bcc"};
	for (size_t i = 0; i < 3; i++) {
		buf_putc(b, ' ');
		put_addresses(b, header_get(h, hl, lists[i], v, sizeof(v)) ? v : NULL);
	}
	static const char *const ids[] = {"In-Reply-To", "Message-ID"};
	for (size_t i = 0; i < 2; i++) {
		buf_putc(b, ' ');
		if (header_get(h, hl, ids[i], v, sizeof(v)) && v[0])
			put_string(b, v);
		else
			buf_puts(b, "NIL");
	}
	buf_putc(b, ')');
}

/* ------------------------------------------------------------------- auth --- */

static const char *mech_name(enum mech m)
{
	return m == MECH_PLAIN ? "PLAIN" : m == MECH_LOGIN ? "LOGIN" : "";
}

static const char *proto_name(const struct imap_session *s)
{
	return s->cfg->implicit_tls ? "imaps" : "imap";
}

static const char *capability(const struct imap_session *s)
{
	if (logged_in(s))
		return CAP_POSTLOGIN;
	/* imap-login get_capability(): STARTTLS while possible, LOGINDISABLED without
	 * TLS (disable_plaintext_auth), AUTH= mechanisms once TLS is on. */
	if (!s->tls) {
		if (s->cfg->tls_available && !s->cfg->implicit_tls)
			return CAP_BASE " LITERAL+ STARTTLS LOGINDISABLED";
		return CAP_BASE " LITERAL+ LOGINDISABLED";
	}
	return CAP_BASE " LITERAL+ AUTH=PLAIN AUTH=LOGIN";
}

/* The penalty Dovecot's anvil adds before an attempt that follows failures
 * (recorded: ~4 s after one failure, ~8 s after two, then 15 s). */
static void auth_penalty(struct imap_session *s)
{
	if (s->auth_failures == 0)
		return;
	unsigned max = s->cfg->auth_penalty_max_ms ? s->cfg->auth_penalty_max_ms : 15000;
	if (max == UINT32_MAX)
		return;
	unsigned shift = s->auth_failures > 8 ? 8 : s->auth_failures;
	unsigned ms = 2000u << shift;
	s->delay_ms += ms > max ? max : ms;
}

static unsigned failure_delay(const struct imap_session *s)
{
	return s->cfg->auth_failure_delay_ms;
}

/* Canonical user for the mailbox: lower case, the served domain stripped. */
static void canonical_user(const struct imap_session *s, const char *user, char *out,
			   size_t outlen)
{
	size_t o = 0;
	for (const char *p = user; *p && o + 1 < outlen; p++)
		out[o++] = (char)tolower((unsigned char)*p);
	out[o] = '\0';
	char *at = strrchr(out, '@');
	if (at && s->cfg->domain && strcasecmp(at + 1, s->cfg->domain) == 0)
		*at = '\0';
}

static void login_ok(struct imap_session *s, const char *user, size_t ulen)
{
	printable(s->user, sizeof(s->user), user, ulen);
	char canon[USER_MAX];
	canonical_user(s, s->user, canon, sizeof(canon));
	static const uint8_t zero[32];
	mailbox_free(&s->mbox);
	s->mbox = mailbox_generate(canon, s->cfg->domain ? s->cfg->domain : "localdomain",
				   s->cfg->hostname ? s->cfg->hostname : "localhost",
				   s->cfg->secret ? s->cfg->secret : zero);
	s->cs = CS_AUTH;
	s->bad_row = 0;
	/* imap's client_send_login_reply(): the capability as a resp-code unless the
	 * client showed (CAPABILITY before STARTTLS) that it ignores resp-codes. */
	if (s->cap_seen) {
		untagged(s, "CAPABILITY %s", CAP_POSTLOGIN);
		tagged_plain(s, "OK", "Logged in");
	} else {
		tagged_plain(s, "OK", "[CAPABILITY %s] Logged in", CAP_POSTLOGIN);
	}
}

/* Ask the policy and answer. */
static void auth_verify(struct imap_session *s, const char *mech,
			const struct sasl_slice *authzid, const struct sasl_slice *user,
			const struct sasl_slice *pass)
{
	char ubuf[AUTH_LINE_MAX + 1], pbuf[AUTH_LINE_MAX + 1], zbuf[AUTH_LINE_MAX + 1];
	size_t ul = strnlen(user->p, user->len < AUTH_LINE_MAX ? user->len : AUTH_LINE_MAX);
	size_t pl = strnlen(pass->p, pass->len < AUTH_LINE_MAX ? pass->len : AUTH_LINE_MAX);
	size_t zl = authzid ? strnlen(authzid->p, authzid->len < AUTH_LINE_MAX ? authzid->len
										: AUTH_LINE_MAX)
			    : 0;
	memcpy(ubuf, user->p, ul);
	ubuf[ul] = '\0';
	memcpy(pbuf, pass->p, pl);
	pbuf[pl] = '\0';
	if (zl)
		memcpy(zbuf, authzid->p, zl);
	zbuf[zl] = '\0';
	struct auth_request req = {
		.proto = proto_name(s),
		.mechanism = mech,
		.src_ip = s->peer_ip,
		.authzid = zl ? zbuf : NULL,
		.username = ubuf,
		.password = pbuf,
	};
	enum auth_verdict v = ul > 0 ? auth_policy_check(s->cfg->auth, &req) : AUTH_FAIL;
	struct auth_ev ev = {
		.mech = mech,
		.user = user->p,
		.user_len = user->len,
		.pass = pass->p,
		.pass_len = pass->len,
		.authzid = authzid ? authzid->p : NULL,
		.authzid_len = authzid ? authzid->len : 0,
		.success = v == AUTH_OK,
		.result = v == AUTH_OK ? "ok" : v == AUTH_TEMPFAIL ? "tempfail" : "fail",
	};
	auth_event(s, &ev);
	if (v == AUTH_OK) {
		login_ok(s, ubuf, ul);
		return;
	}
	s->delay_ms += failure_delay(s);
	if (v == AUTH_TEMPFAIL) {
		tagged_plain(s, "NO", "[UNAVAILABLE] Temporary authentication failure.");
		return;
	}
	s->auth_failures++;
	tagged_plain(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
}

static void auth_end(struct imap_session *s)
{
	s->mech = MECH_NONE;
	s->auth_step = 0;
	free(s->auth_user_tmp);
	s->auth_user_tmp = NULL;
	s->auth_user_len = 0;
	if (s->in == IN_AUTH)
		set_input(s, IN_LINE);
}

/* One decoded SASL message. */
static void auth_sasl_step(struct imap_session *s, const unsigned char *msg, size_t len)
{
	if (s->mech == MECH_PLAIN) {
		struct sasl_slice z, u, p;
		if (!sasl_plain_split(msg, len, &z, &u, &p)) {
			struct auth_ev ev = {.mech = "PLAIN", .user = len ? (const char *)msg : NULL,
					     .user_len = len, .result = "malformed"};
			auth_event(s, &ev);
			s->delay_ms += failure_delay(s);
			s->auth_failures++;
			tagged_plain(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
			auth_end(s);
			return;
		}
		auth_verify(s, "PLAIN", &z, &u, &p);
		auth_end(s);
		return;
	}
	if (s->mech == MECH_LOGIN) {
		if (s->auth_step == 0) {
			size_t n = len < AUTH_LINE_MAX ? len : AUTH_LINE_MAX;
			free(s->auth_user_tmp);
			s->auth_user_tmp = malloc(n ? n : 1);
			if (!s->auth_user_tmp)
				n = 0;
			else
				memcpy(s->auth_user_tmp, msg, n);
			s->auth_user_len = n;
			s->auth_step = 1;
			out_str(s, "+ UGFzc3dvcmQ6\r\n");
			set_input(s, IN_AUTH);
			return;
		}
		struct sasl_slice u = {s->auth_user_tmp ? (const char *)s->auth_user_tmp : "",
				       s->auth_user_len};
		struct sasl_slice p = {(const char *)msg, len};
		auth_verify(s, "LOGIN", NULL, &u, &p);
		auth_end(s);
		return;
	}
	auth_end(s);
}

static bool b64_decode_resp(const char *b64, size_t len, unsigned char *out, size_t cap,
			    size_t *n_r)
{
	for (size_t i = 0; i < len; i++) {
		char c = b64[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '+' || c == '/' || c == '='))
			return false;
	}
	return sasl_b64_decode(b64, len, out, cap, n_r) == 0;
}

/* A base64 response (SASL-IR or continuation). */
static void auth_input(struct imap_session *s, const char *b64, size_t len, bool initial)
{
	unsigned char *dec = malloc(AUTH_LINE_MAX);
	size_t n = 0;
	if (!dec || !b64_decode_resp(b64, len, dec, AUTH_LINE_MAX, &n)) {
		free(dec);
		auth_event_simple(s, mech_name(s->mech), "malformed");
		tagged_plain(s, "NO", "[ALERT] Invalid base64 data in %s response",
			     initial ? "initial" : "continued");
		auth_end(s);
		return;
	}
	auth_sasl_step(s, dec, n);
	free(dec);
}

/* A continuation line while in IN_AUTH. */
static void auth_line(struct imap_session *s, const char *line, size_t len)
{
	memcpy(s->tag, s->auth_tag, sizeof(s->tag));
	if (len == 1 && line[0] == '*') {
		/* cancelled at the password prompt: the user name is already intel */
		struct auth_ev ev = {.mech = mech_name(s->mech), .result = "aborted"};
		if (s->mech == MECH_LOGIN && s->auth_step == 1) {
			ev.user = s->auth_user_tmp ? (const char *)s->auth_user_tmp : "";
			ev.user_len = s->auth_user_len;
		}
		auth_event(s, &ev);
		tagged_plain(s, "BAD", "Authentication aborted by client.");
		auth_end(s);
		return;
	}
	auth_input(s, line, len, false);
}

/* --------------------------------------------------------- pre-login commands --- */

struct imap_cmd {
	const char *name;
	/* Returns 0 when handled, -1 for "invalid arguments" (the caller answers the
	 * persona's BAD and counts it). */
	int (*run)(struct imap_session *s, struct imap_command *c);
};

static int pre_capability(struct imap_session *s, struct imap_command *c)
{
	if (!s->starttls_done)
		s->cap_seen = true;
	untagged(s, "CAPABILITY %s", capability(s));
	tagged_plain(s, "OK", "Pre-login capabilities listed, post-login capabilities have more.");
	return 0;
}

static int pre_noop(struct imap_session *s, struct imap_command *c)
{
	tagged_plain(s, "OK", "NOOP completed.");
	return 0;
}

static int cmd_logout(struct imap_session *s, struct imap_command *c)
{
	bool was_in = logged_in(s);
	untagged(s, "BYE Logging out");
	if (was_in) {
		s->cs = CS_LOGOUT;
		tagged(s, "OK", "Logout completed.");
	} else {
		tagged_plain(s, "OK", "Logout completed.");
		s->cs = CS_LOGOUT;
	}
	close_after(s, "quit");
	return 0;
}

static int pre_enable(struct imap_session *s, struct imap_command *c)
{
	untagged(s, "ENABLED");
	tagged_plain(s, "OK", "ENABLE ignored in non-authenticated state.");
	return 0;
}

/* ID: NIL or a list of string pairs (at most 30, as RFC 2971 says). */
static bool id_args_valid(const struct imap_command *c)
{
	if (c->n_args != 1)
		return false;
	const struct imap_arg *a = c->args;
	if (imap_arg_is_nil(a))
		return true;
	if (a->type != IMAP_ARG_LIST || a->n_children % 2 != 0 || a->n_children > 60)
		return false;
	size_t i = 0;
	for (const struct imap_arg *k = a->child; k; k = k->next, i++) {
		if (k->type == IMAP_ARG_LIST)
			return false;
		if (i % 2 == 0 && k->type == IMAP_ARG_ATOM)
			return false;
		if (i % 2 == 1 && k->type == IMAP_ARG_ATOM && !imap_arg_is_nil(k))
			return false;
	}
	return true;
}

static int cmd_id(struct imap_session *s, struct imap_command *c)
{
	if (!id_args_valid(c)) {
		if (logged_in(s))
			return -1;
		tagged_plain(s, "BAD", "Invalid ID parameters");
		return 0;
	}
	untagged(s, "ID (\"name\" \"Dovecot\")");
	tagged(s, "OK", "ID completed.");
	return 0;
}

static int pre_starttls(struct imap_session *s, struct imap_command *c)
{
	if (s->tls) {
		tagged_plain(s, "BAD", "TLS is already active.");
		return 0;
	}
	if (!s->cfg->tls_available || s->cfg->implicit_tls) {
		tagged_plain(s, "BAD", "TLS support isn't enabled.");
		return 0;
	}
	s->starttls_done = true;
	tagged_plain(s, "OK", "Begin TLS negotiation now.");
	s->susp = SUSP_TLS;
	return 0;
}

static int pre_login(struct imap_session *s, struct imap_command *c)
{
	const char *u, *p;
	size_t ul, pl;
	if (c->n_args != 2 || !imap_arg_astring(c->args, &u, &ul) ||
	    !imap_arg_astring(c->args->next, &p, &pl))
		return -1;
	if (!s->tls) {
		struct auth_ev ev = {.mech = "LOGIN", .user = u, .user_len = ul, .pass = p,
				     .pass_len = pl, .result = "tls_required"};
		auth_event(s, &ev);
		untagged(s, "BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, "
			    "but your client did it anyway. If anyone was listening, the "
			    "password was exposed.");
		tagged_plain(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed on "
				      "non-secure (SSL/TLS) connections.");
		return 0;
	}
	auth_penalty(s);
	struct sasl_slice us = {u, ul}, ps = {p, pl};
	auth_verify(s, "LOGIN", NULL, &us, &ps);
	return 0;
}

static int pre_authenticate(struct imap_session *s, struct imap_command *c)
{
	const char *m, *ir = NULL;
	size_t ml, irl = 0;
	if (c->n_args < 1 || c->n_args > 2 || !imap_arg_astring(c->args, &m, &ml) || ml == 0)
		return -1;
	if (c->n_args == 2 && !imap_arg_astring(c->args->next, &ir, &irl))
		return -1;
	enum mech mech = MECH_NONE;
	if (strcasecmp(m, "PLAIN") == 0)
		mech = MECH_PLAIN;
	else if (strcasecmp(m, "LOGIN") == 0)
		mech = MECH_LOGIN;
	if (mech == MECH_NONE) {
		char shown[64];
		printable(shown, sizeof(shown), m, ml);
		auth_event_simple(s, shown, "malformed");
		tagged_plain(s, "NO", "[ALERT] Unsupported authentication mechanism.");
		return 0;
	}
	if (!s->tls) {
		/* Record what a SASL-IR would have given away. */
		unsigned char dec[AUTH_LINE_MAX];
		size_t n;
		struct sasl_slice z, u, p;
		if (ir && mech == MECH_PLAIN && b64_decode_resp(ir, irl, dec, sizeof(dec), &n) &&
		    sasl_plain_split(dec, n, &z, &u, &p)) {
			struct auth_ev ev = {.mech = "PLAIN", .user = u.p, .user_len = u.len,
					     .pass = p.p, .pass_len = p.len, .authzid = z.p,
					     .authzid_len = z.len, .result = "tls_required"};
			auth_event(s, &ev);
		} else {
			auth_event_simple(s, mech_name(mech), "tls_required");
		}
		tagged_plain(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication disabled.");
		return 0;
	}
	s->mech = mech;
	s->auth_step = 0;
	memcpy(s->auth_tag, s->tag, sizeof(s->auth_tag));
	auth_penalty(s);
	if (ir) {
		if (irl == 1 && ir[0] == '=')
			auth_sasl_step(s, (const unsigned char *)"", 0);
		else
			auth_input(s, ir, irl, true);
		return 0;
	}
	out_str(s, mech == MECH_PLAIN ? "+ \r\n" : "+ VXNlcm5hbWU6\r\n");
	set_input(s, IN_AUTH);
	return 0;
}

static const struct imap_cmd pre_table[] = {
	{"CAPABILITY", pre_capability},
	{"NOOP", pre_noop},
	{"LOGOUT", cmd_logout},
	{"ENABLE", pre_enable},
	{"ID", cmd_id},
	{"STARTTLS", pre_starttls},
	{"LOGIN", pre_login},
	{"AUTHENTICATE", pre_authenticate},
};

/* imap-login: a bad command is answered "BAD Error in IMAP command received by
 * server."; the third one gets "* BYE Too many invalid IMAP commands." instead. */
static void pre_bad(struct imap_session *s, const char *detail, size_t dlen, const char *kind)
{
	offence(s, kind, detail, dlen);
	if (++s->bad_prelogin >= PRELOGIN_BAD_MAX) {
		untagged(s, "BYE Too many invalid IMAP commands.");
		s->errors++;
		offence(s, "too_many_errors", "", 0);
		close_after(s, "too_many_errors");
		return;
	}
	tagged_plain(s, "BAD", "Error in IMAP command received by server.");
}

static void prelogin_command(struct imap_session *s, struct imap_command *c, int pr,
			     const char *line, size_t len)
{
	if (!c->tag_valid) {
		s->tag[0] = '\0';
		pre_bad(s, line, len, "bad_syntax");
		return;
	}
	if (!c->has_name) {
		pre_bad(s, line, len, "bad_syntax");
		return;
	}
	const struct imap_cmd *cmd = NULL;
	for (size_t i = 0; i < sizeof(pre_table) / sizeof(pre_table[0]); i++)
		if (strcmp(c->name, pre_table[i].name) == 0)
			cmd = &pre_table[i];
	if (!cmd) {
		if (strcasecmp(c->tag, "LOGIN") == 0) {
			offence(s, "unknown_command", line, len);
			tagged_plain(s, "BAD", "First parameter in line is IMAP's command tag, not "
					       "the command name. Add that before the command, "
					       "like: a login user pass");
			return;
		}
		pre_bad(s, line, len, "unknown_command");
		return;
	}
	if (pr < 0) {
		/* imap-login answers the parser's message, without counting it */
		offence(s, "bad_syntax", line, len);
		tagged_plain(s, "BAD", "%s", c->error);
		return;
	}
	if (cmd->run(s, c) < 0)
		pre_bad(s, line, len, "bad_syntax");
}

/* -------------------------------------------------------- post-login helpers --- */

static void cmd_error(struct imap_session *s, const char *name, const char *msg)
	__attribute__((nonnull));
/* imap client_send_command_error(): "BAD Error in IMAP command X: msg", counted. */
static void cmd_error(struct imap_session *s, const char *name, const char *msg)
{
	tagged(s, "BAD", "Error in IMAP command %s: %s", name, msg);
	unsigned lim = s->cfg->bad_command_limit ? s->cfg->bad_command_limit : 20;
	if (++s->bad_row >= lim) {
		untagged(s, "BYE Too many invalid IMAP commands.");
		offence(s, "too_many_errors", "", 0);
		close_after(s, "too_many_errors");
	}
}

static struct mbox_folder *folder_by_name(struct imap_session *s, const char *name,
					  size_t len)
{
	if (!s->mbox || len != strlen(name))
		return NULL;
	return mailbox_folder(s->mbox, name);
}

static bool need_selected(struct imap_session *s)
{
	if (s->cs == CS_SELECTED && s->sel)
		return true;
	tagged(s, "BAD", "No mailbox selected.");
	return false;
}

static uint32_t n_msgs(const struct imap_session *s)
{
	return s->sel ? (uint32_t)s->sel->n_msgs : 0;
}

static void put_flags(struct buf *b, unsigned f)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{MBOX_ANSWERED, "\\Answered"}, {MBOX_FLAGGED, "\\Flagged"},
		     {MBOX_DELETED, "\\Deleted"},   {MBOX_SEEN, "\\Seen"},
		     {MBOX_DRAFT, "\\Draft"},       {MBOX_RECENT, "\\Recent"}};
	buf_putc(b, '(');
	bool first = true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(f & names[i].bit))
			continue;
		if (!first)
			buf_putc(b, ' ');
		first = false;
		buf_puts(b, names[i].name);
	}
	buf_putc(b, ')');
}

static void fmt_internaldate(int64_t t, char *out, size_t outlen)
{
	static const char *const mon[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(out, outlen, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
		 mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Flag name to bit (0 for keywords, which are accepted and forgotten). */
static int flag_bit(const char *f, unsigned *bit_r)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {{"\\Seen", MBOX_SEEN},       {"\\Answered", MBOX_ANSWERED},
		     {"\\Flagged", MBOX_FLAGGED}, {"\\Deleted", MBOX_DELETED},
		     {"\\Draft", MBOX_DRAFT}};
	*bit_r = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(f, names[i].name) == 0) {
			*bit_r = names[i].bit;
			return 0;
		}
	if (f[0] == '\\')
		return strcasecmp(f, "\\Recent") == 0 ? 0 : -1; /* unknown system flag */
	return 0;
}

/* Flags from a list or from a run of atoms. */
static int parse_flag_args(const struct imap_arg *a, unsigned *flags_r)
{
	unsigned f = 0;
	const struct imap_arg *it = a;
	bool list = a && a->type == IMAP_ARG_LIST;
	if (list)
		it = a->child;
	for (; it; it = it->next) {
		if (it->type != IMAP_ARG_ATOM)
			return -1;
		unsigned bit;
		if (flag_bit(it->s, &bit) < 0)
			return -1;
		f |= bit;
		if (list && !it->next)
			break;
	}
	*flags_r = f;
	return 0;
}

/* ---------------------------------------------------------- post-login: misc --- */

static int cmd_capability(struct imap_session *s, struct imap_command *c)
{
	untagged(s, "CAPABILITY %s", CAP_POSTLOGIN);
	tagged(s, "OK", "Capability completed.");
	return 0;
}

static int cmd_noop(struct imap_session *s, struct imap_command *c)
{
	tagged(s, "OK", "NOOP completed.");
	return 0;
}

static int cmd_check(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	tagged(s, "OK", "Check completed.");
	return 0;
}

static int cmd_namespace(struct imap_session *s, struct imap_command *c)
{
	untagged(s, "NAMESPACE ((\"\" \".\")) NIL NIL");
	tagged(s, "OK", "Namespace completed.");
	return 0;
}

static int cmd_enable(struct imap_session *s, struct imap_command *c)
{
	if (c->n_args == 0)
		return -1;
	/* Nothing we would have to honour (CONDSTORE/QRESYNC/UTF8) is enabled. */
	untagged(s, "ENABLED");
	tagged(s, "OK", "Enabled.");
	return 0;
}

static int cmd_idle(struct imap_session *s, struct imap_command *c)
{
	memcpy(s->idle_tag, s->tag, sizeof(s->idle_tag));
	out_str(s, "+ idling\r\n");
	set_input(s, IN_IDLE);
	return 0;
}

static void idle_line(struct imap_session *s, const char *line, size_t len)
{
	memcpy(s->tag, s->idle_tag, sizeof(s->tag));
	set_input(s, IN_LINE);
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
		tagged(s, "OK", "Idle completed.");
	else
		tagged(s, "BAD", "Expected DONE.");
}

/* ------------------------------------------------------- post-login: folders --- */

/* LIST pattern match: '*' anything, '%' anything but the delimiter.  Dynamic
 * programming over (pattern, name) so that no pattern can make it exponential. */
static bool list_match(const char *pat, const char *name)
{
	size_t np = strlen(pat), nn = strlen(name);
	bool *prev = calloc(nn + 1, sizeof(bool)), *cur = calloc(nn + 1, sizeof(bool));
	bool r = false;
	if (!prev || !cur)
		goto out;
	prev[0] = true;
	for (size_t i = 0; i < np; i++) {
		char c = pat[i];
		if (c == '*' || c == '%') {
			cur[0] = prev[0];
			for (size_t j = 1; j <= nn; j++)
				cur[j] = prev[j] || (cur[j - 1] && (c == '*' || name[j - 1] != '.'));
		} else {
			cur[0] = false;
			for (size_t j = 1; j <= nn; j++)
				cur[j] = prev[j - 1] && tolower((unsigned char)c) ==
							   tolower((unsigned char)name[j - 1]);
		}
		bool *t = prev;
		prev = cur;
		cur = t;
	}
	r = prev[nn];
out:
	free(prev);
	free(cur);
	return r;
}

static int cmd_list_common(struct imap_session *s, struct imap_command *c, bool lsub)
{
	const struct imap_arg *a = c->args;
	bool sel_special = false, ret_special = false, ret_children = false, extended = false;
	bool sel_subscribed = false, ret_subscribed = false;
	if (!lsub && a && a->type == IMAP_ARG_LIST) {
		extended = true;
		for (const struct imap_arg *o = a->child; o; o = o->next) {
			if (imap_arg_is_atom(o, "SPECIAL-USE"))
				sel_special = true;
			else if (imap_arg_is_atom(o, "SUBSCRIBED"))
				sel_subscribed = true;
		}
		a = a->next;
	}
	const char *ref, *pat;
	size_t rl, pl;
	if (!a || !imap_arg_astring(a, &ref, &rl) || !a->next ||
	    !imap_arg_astring(a->next, &pat, &pl))
		return -1;
	const struct imap_arg *r = a->next->next;
	if (r) {
		if (lsub || !imap_arg_is_atom(r, "RETURN") || !r->next ||
		    r->next->type != IMAP_ARG_LIST || r->next->next)
			return -1;
		extended = true;
		for (const struct imap_arg *o = r->next->child; o; o = o->next) {
			if (imap_arg_is_atom(o, "SPECIAL-USE"))
				ret_special = true;
			else if (imap_arg_is_atom(o, "CHILDREN"))
				ret_children = true;
			else if (imap_arg_is_atom(o, "SUBSCRIBED"))
				ret_subscribed = true;
		}
	}
	const char *verb = lsub ? "LSUB" : "LIST";
	if (pl == 0) {
		if (!lsub)
			untagged(s, "LIST (\\Noselect) \".\" \"\"");
		tagged(s, "OK", "%s completed.", lsub ? "Lsub" : "List");
		return 0;
	}
	char full[2048];
	snprintf(full, sizeof(full), "%.*s%.*s", (int)(rl > 1000 ? 1000 : rl), ref,
		 (int)(pl > 1000 ? 1000 : pl), pat);
	for (size_t i = 0; s->mbox && i < s->mbox->n_folders; i++) {
		const struct mbox_folder *f = &s->mbox->folders[i];
		if (!list_match(full, f->name))
			continue;
		/* INBOX is never subscribed on a stock Dovecot; the special-use folders are,
		 * as a mail client would have done */
		bool subscribed = strcasecmp(f->name, "INBOX") != 0;
		if ((lsub || sel_subscribed) && !subscribed)
			continue;
		if (sel_special && !f->special_use)
			continue;
		struct buf b;
		buf_init(&b, 4096);
		buf_printf(&b, "* %s (", verb);
		bool first = true;
		if (!lsub && subscribed && (sel_subscribed || ret_subscribed)) {
			buf_puts(&b, "\\Subscribed");
			first = false;
		}
		if (lsub) {
			/* no attributes */
		} else if (!extended || ret_children) {
			if (!first)
				buf_putc(&b, ' ');
			buf_puts(&b, "\\HasNoChildren");
			first = false;
		}
		if (!lsub && f->special_use && (!extended || ret_special || sel_special)) {
			if (!first)
				buf_putc(&b, ' ');
			buf_puts(&b, f->special_use);
		}
		buf_puts(&b, ") \".\" ");
		put_mailbox(&b, f->name);
		buf_puts(&b, "\r\n");
		out_raw(s, b.data, b.len);
		buf_free(&b);
	}
	tagged(s, "OK", "%s completed.", lsub ? "Lsub" : "List");
	return 0;
}

static int cmd_list(struct imap_session *s, struct imap_command *c)
{
	return cmd_list_common(s, c, false);
}

static int cmd_lsub(struct imap_session *s, struct imap_command *c)
{
	return cmd_list_common(s, c, true);
}

static unsigned count_flag(const struct mbox_folder *f, unsigned bit, bool set)
{
	unsigned n = 0;
	for (size_t i = 0; i < f->n_msgs; i++)
		if (((f->msgs[i].flags & bit) != 0) == set)
			n++;
	return n;
}

static int cmd_status(struct imap_session *s, struct imap_command *c)
{
	const char *name;
	size_t nl;
	if (c->n_args != 2 || !imap_arg_astring(c->args, &name, &nl) ||
	    c->args->next->type != IMAP_ARG_LIST || c->args->next->n_children == 0)
		return -1;
	struct mbox_folder *f = folder_by_name(s, name, nl);
	/* check the items before the mailbox, as Dovecot */
	for (const struct imap_arg *it = c->args->next->child; it; it = it->next) {
		if (!imap_arg_is_atom(it, "MESSAGES") && !imap_arg_is_atom(it, "RECENT") &&
		    !imap_arg_is_atom(it, "UIDNEXT") && !imap_arg_is_atom(it, "UIDVALIDITY") &&
		    !imap_arg_is_atom(it, "UNSEEN") && !imap_arg_is_atom(it, "SIZE") &&
		    !imap_arg_is_atom(it, "HIGHESTMODSEQ"))
			return -1;
	}
	if (!f) {
		char shown[256];
		shown_name(shown, sizeof(shown), name, nl);
		tagged(s, "NO", "Mailbox doesn't exist: %s", shown);
		return 0;
	}
	struct buf b;
	buf_init(&b, 4096);
	buf_puts(&b, "* STATUS ");
	put_mailbox(&b, f->name);
	buf_puts(&b, " (");
	bool first = true;
	for (const struct imap_arg *it = c->args->next->child; it; it = it->next) {
		if (!first)
			buf_putc(&b, ' ');
		first = false;
		if (imap_arg_is_atom(it, "MESSAGES")) {
			buf_printf(&b, "MESSAGES %zu", f->n_msgs);
		} else if (imap_arg_is_atom(it, "RECENT")) {
			buf_printf(&b, "RECENT %u", count_flag(f, MBOX_RECENT, true));
		} else if (imap_arg_is_atom(it, "UIDNEXT")) {
			buf_printf(&b, "UIDNEXT %u", f->uidnext);
		} else if (imap_arg_is_atom(it, "UIDVALIDITY")) {
			buf_printf(&b, "UIDVALIDITY %u", f->uidvalidity);
		} else if (imap_arg_is_atom(it, "UNSEEN")) {
			buf_printf(&b, "UNSEEN %u", count_flag(f, MBOX_SEEN, false));
		} else if (imap_arg_is_atom(it, "HIGHESTMODSEQ")) {
			/* CONDSTORE is advertised (the recorded list): a stable value that
			 * only grows, as a real modseq would for this session */
			buf_printf(&b, "HIGHESTMODSEQ %u", f->uidnext);
		} else {
			uint64_t sz = 0;
			for (size_t i = 0; i < f->n_msgs; i++)
				sz += f->msgs[i].size;
			buf_printf(&b, "SIZE %llu", (unsigned long long)sz);
		}
	}
	buf_puts(&b, ")\r\n");
	out_raw(s, b.data, b.len);
	buf_free(&b);
	tagged(s, "OK", "Status completed.");
	return 0;
}

static void unselect(struct imap_session *s)
{
	s->sel = NULL;
	s->sel_ro = false;
	if (s->cs == CS_SELECTED)
		s->cs = CS_AUTH;
}

static int select_common(struct imap_session *s, struct imap_command *c, bool ro)
{
	if (s->cs == CS_SELECTED) {
		unselect(s);
		untagged(s, "OK [CLOSED] Previous mailbox closed.");
	}
	const char *name;
	size_t nl;
	if (c->n_args < 1 || c->n_args > 2 || !imap_arg_astring(c->args, &name, &nl))
		return -1;
	if (c->n_args == 2 && c->args->next->type != IMAP_ARG_LIST)
		return -1;
	struct mbox_folder *f = folder_by_name(s, name, nl);
	if (!f) {
		char shown[256];
		shown_name(shown, sizeof(shown), name, nl);
		tagged(s, "NO", "Mailbox doesn't exist: %s", shown);
		return 0;
	}
	s->sel = f;
	s->sel_ro = ro;
	s->cs = CS_SELECTED;
	untagged(s, "FLAGS (" FLAGS_LIST ")");
	if (ro)
		untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox.");
	else
		untagged(s, "OK [PERMANENTFLAGS (" FLAGS_LIST " \\*)] Flags permitted.");
	untagged(s, "%zu EXISTS", f->n_msgs);
	untagged(s, "%u RECENT", count_flag(f, MBOX_RECENT, true));
	for (size_t i = 0; i < f->n_msgs; i++) {
		if (!(f->msgs[i].flags & MBOX_SEEN)) {
			untagged(s, "OK [UNSEEN %zu] First unseen.", i + 1);
			break;
		}
	}
	untagged(s, "OK [UIDVALIDITY %u] UIDs valid", f->uidvalidity);
	untagged(s, "OK [UIDNEXT %u] Predicted next UID", f->uidnext);
	if (ro)
		tagged(s, "OK", "[READ-ONLY] Examine completed.");
	else
		tagged(s, "OK", "[READ-WRITE] Select completed.");
	return 0;
}

static int cmd_select(struct imap_session *s, struct imap_command *c)
{
	return select_common(s, c, false);
}

static int cmd_examine(struct imap_session *s, struct imap_command *c)
{
	return select_common(s, c, true);
}

static int cmd_create(struct imap_session *s, struct imap_command *c)
{
	const char *name;
	size_t nl;
	if (c->n_args < 1 || !imap_arg_astring(c->args, &name, &nl) || nl == 0)
		return -1;
	if (folder_by_name(s, name, nl)) {
		tagged(s, "NO", "[ALREADYEXISTS] Mailbox already exists");
		return 0;
	}
	tagged(s, "OK", "Create completed.");
	return 0;
}

static int cmd_delete(struct imap_session *s, struct imap_command *c)
{
	const char *name;
	size_t nl;
	if (c->n_args != 1 || !imap_arg_astring(c->args, &name, &nl))
		return -1;
	struct mbox_folder *f = folder_by_name(s, name, nl);
	if (!f) {
		char shown[256];
		shown_name(shown, sizeof(shown), name, nl);
		tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", shown);
		return 0;
	}
	if (strcasecmp(f->name, "INBOX") == 0) {
		tagged(s, "NO", "INBOX can't be deleted.");
		return 0;
	}
	tagged(s, "OK", "Delete completed.");
	return 0;
}

static int cmd_rename(struct imap_session *s, struct imap_command *c)
{
	const char *a, *b;
	size_t al, bl;
	if (c->n_args != 2 || !imap_arg_astring(c->args, &a, &al) ||
	    !imap_arg_astring(c->args->next, &b, &bl))
		return -1;
	if (!folder_by_name(s, a, al)) {
		char shown[256];
		shown_name(shown, sizeof(shown), a, al);
		tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", shown);
		return 0;
	}
	if (folder_by_name(s, b, bl)) {
		tagged(s, "NO", "[ALREADYEXISTS] Target mailbox already exists");
		return 0;
	}
	tagged(s, "OK", "Rename completed.");
	return 0;
}

static int cmd_subscribe(struct imap_session *s, struct imap_command *c)
{
	const char *a;
	size_t al;
	if (c->n_args != 1 || !imap_arg_astring(c->args, &a, &al))
		return -1;
	tagged(s, "OK", "%s completed.", strcmp(c->name, "SUBSCRIBE") == 0 ? "Subscribe"
									: "Unsubscribe");
	return 0;
}

/* ---------------------------------------------------------- post-login: FETCH --- */

/* The bytes a BODY[section] names, or false when the part does not exist. */
static bool section_bytes(const struct mbox_msg *m, const struct imap_fetch_att *att,
			  struct buf *out)
{
	struct mime_tree *t = malloc(sizeof(*t));
	if (!t)
		return false;
	mime_parse(t, m->data, m->size);
	int idx = 0;
	/* walk the part path; a single-part message's part 1 is its body */
	for (size_t i = 0; i < att->n_path; i++) {
		struct mime_part *mp = &t->p[idx];
		if (!mp->multipart) {
			if (att->path[i] != 1 || i + 1 < att->n_path) {
				free(t);
				return false;
			}
			/* part 1 of a non-multipart: the body itself, headers of the parent */
			break;
		}
		int c = mp->first_child;
		for (unsigned k = 1; c >= 0 && k < att->path[i]; k++)
			c = t->p[c].next_sibling;
		if (c < 0) {
			free(t);
			return false;
		}
		idx = c;
	}
	const struct mime_part *mp = &t->p[idx];
	bool top = att->n_path == 0;
	bool leaf_single = !top && idx == 0; /* BODY[1] of a single-part message */
	switch (att->text) {
	case IMAP_SECTION_ALL:
		if (top)
			buf_append(out, m->data, m->size);
		else
			buf_append(out, mp->body, mp->body_len);
		break;
	case IMAP_SECTION_TEXT:
		buf_append(out, mp->body, mp->body_len);
		break;
	case IMAP_SECTION_MIME:
	case IMAP_SECTION_HEADER:
		if (leaf_single && att->text == IMAP_SECTION_HEADER) {
			free(t);
			return false;
		}
		buf_append(out, mp->hdr, mp->hdr_len);
		break;
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT: {
		size_t pos = 0, nl, fl;
		const char *n, *f;
		bool want_not = att->text == IMAP_SECTION_HEADER_FIELDS_NOT;
		while (next_field(mp->hdr, mp->hdr_len, &pos, &n, &nl, &f, &fl)) {
			bool listed = false;
			for (size_t k = 0; k < att->n_fields; k++)
				if (att->fields[k].len == nl &&
				    strncasecmp(att->fields[k].p, n, nl) == 0)
					listed = true;
			if (listed != want_not)
				buf_append(out, f, fl);
		}
		buf_puts(out, "\r\n");
		break;
	}
	}
	free(t);
	return true;
}

static void put_literal(struct buf *b, const char *p, size_t len)
{
	buf_printf(b, "{%zu}\r\n", len);
	buf_append(b, p, len);
}

static void fetch_one(struct imap_session *s, uint32_t seq, struct imap_fetch_att *atts,
		      size_t n_atts, bool uid_cmd)
{
	struct mbox_msg *m = &s->sel->msgs[seq - 1];
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "* %u FETCH (", seq);
	bool first = true;
	bool flags_sent = false;
	bool set_seen = false;
#define SEP()                               \
	do {                                \
		if (!first)                 \
			buf_putc(&b, ' ');  \
		first = false;              \
	} while (0)
	if (uid_cmd) {
		SEP();
		buf_printf(&b, "UID %u", m->uid);
	}
	for (size_t i = 0; i < n_atts; i++) {
		struct imap_fetch_att *a = &atts[i];
		size_t hl;
		switch (a->kind) {
		case IMAP_FETCH_UID:
			if (uid_cmd)
				break;
			SEP();
			buf_printf(&b, "UID %u", m->uid);
			break;
		case IMAP_FETCH_FLAGS:
			SEP();
			buf_puts(&b, "FLAGS ");
			flags_sent = true;
			put_flags(&b, m->flags);
			break;
		case IMAP_FETCH_RFC822_SIZE:
			SEP();
			buf_printf(&b, "RFC822.SIZE %zu", m->size);
			break;
		case IMAP_FETCH_INTERNALDATE: {
			char d[64];
			fmt_internaldate(m->internaldate, d, sizeof(d));
			SEP();
			buf_printf(&b, "INTERNALDATE \"%s\"", d);
			break;
		}
		case IMAP_FETCH_ENVELOPE:
			split_message(m->data, m->size, &hl);
			SEP();
			buf_puts(&b, "ENVELOPE ");
			put_envelope(&b, m->data, hl);
			break;
		case IMAP_FETCH_BODYSTRUCTURE:
		case IMAP_FETCH_BODY_NOEXT: {
			struct mime_tree *t = malloc(sizeof(*t));
			if (!t)
				break;
			mime_parse(t, m->data, m->size);
			SEP();
			buf_puts(&b, a->kind == IMAP_FETCH_BODY_NOEXT ? "BODY " : "BODYSTRUCTURE ");
			put_bodystructure(&b, t, 0, a->kind == IMAP_FETCH_BODYSTRUCTURE, 0);
			free(t);
			break;
		}
		case IMAP_FETCH_RFC822:
			SEP();
			buf_puts(&b, "RFC822 ");
			put_literal(&b, m->data, m->size);
			set_seen = true;
			break;
		case IMAP_FETCH_RFC822_HEADER:
			split_message(m->data, m->size, &hl);
			SEP();
			buf_puts(&b, "RFC822.HEADER ");
			put_literal(&b, m->data, hl);
			break;
		case IMAP_FETCH_RFC822_TEXT:
			split_message(m->data, m->size, &hl);
			SEP();
			buf_puts(&b, "RFC822.TEXT ");
			put_literal(&b, m->data + hl, m->size - hl);
			set_seen = true;
			break;
		case IMAP_FETCH_BODY: {
			struct buf sec;
			buf_init(&sec, 0);
			bool ok = section_bytes(m, a, &sec);
			SEP();
			buf_printf(&b, "BODY[%s]", a->section);
			if (a->partial)
				buf_printf(&b, "<%u>", a->partial_start);
			buf_putc(&b, ' ');
			if (!ok) {
				buf_puts(&b, "NIL");
			} else {
				size_t st = 0, ln = sec.len;
				if (a->partial) {
					st = a->partial_start < sec.len ? a->partial_start : sec.len;
					ln = sec.len - st < a->partial_len ? sec.len - st
									   : a->partial_len;
				}
				put_literal(&b, sec.data ? sec.data + st : "", ln);
			}
			buf_free(&sec);
			if (!a->peek)
				set_seen = true;
			break;
		}
		}
	}
	if (set_seen && !s->sel_ro && !(m->flags & MBOX_SEEN)) {
		m->flags |= MBOX_SEEN;
		if (!flags_sent) {
			SEP();
			buf_puts(&b, "FLAGS ");
			put_flags(&b, m->flags);
		}
	}
#undef SEP
	buf_puts(&b, ")\r\n");
	out_raw(s, b.data, b.len);
	buf_free(&b);
}

/* Messages named by a set: sequence numbers or UIDs.  Fills sel[] (1-based seqs in
 * order).  Returns the count, or -1 for "Invalid messageset". */
static long resolve_set(struct imap_session *s, const char *set, size_t len, bool uid,
			uint32_t **seqs_r)
{
	struct imap_seqset ss;
	*seqs_r = NULL;
	if (imap_seqset_parse(set, len, &ss) < 0)
		return -2;
	uint32_t n = n_msgs(s);
	if (!uid) {
		uint32_t mx = imap_seqset_max(&ss, n);
		if (n == 0 || mx > n || mx == 0)
			return -1;
	}
	uint32_t *out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return -1;
	long k = 0;
	uint32_t star_uid = n ? s->sel->msgs[n - 1].uid : 0;
	for (uint32_t i = 1; i <= n; i++) {
		bool in = uid ? imap_seqset_contains(&ss, s->sel->msgs[i - 1].uid, star_uid)
			      : imap_seqset_contains(&ss, i, n);
		if (in)
			out[k++] = i;
	}
	*seqs_r = out;
	return k;
}

static int set_arg(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (!a || a->type != IMAP_ARG_ATOM)
		return -1;
	*s_r = a->s;
	*len_r = a->len;
	return 0;
}

static int do_fetch(struct imap_session *s, const char *name, const struct imap_arg *args,
		    bool uid)
{
	const char *set;
	size_t setl;
	if (set_arg(args, &set, &setl) < 0 || !args->next) {
		cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	const struct imap_arg *items = args->next;
	if (items->next && !(items->next->type == IMAP_ARG_LIST)) {
		cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	struct imap_fetch_att *atts = calloc(FETCH_MAX_ATTS, sizeof(*atts));
	if (!atts)
		return 0;
	size_t n = 0;
	const struct imap_arg *it = items->type == IMAP_ARG_LIST ? items->child : items;
	bool list = items->type == IMAP_ARG_LIST;
	const char *macro = NULL;
	if (!list && items->type == IMAP_ARG_ATOM) {
		if (imap_arg_is_atom(items, "ALL"))
			macro = "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE";
		else if (imap_arg_is_atom(items, "FAST"))
			macro = "FLAGS INTERNALDATE RFC822.SIZE";
		else if (imap_arg_is_atom(items, "FULL"))
			macro = "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY";
	}
	if (macro) {
		const char *p = macro;
		while (*p) {
			const char *e = strchr(p, ' ');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			imap_fetch_att_parse(p, l, &atts[n++]);
			p += l + (e ? 1 : 0);
		}
	} else {
		for (; it; it = it->next) {
			if (it->type != IMAP_ARG_ATOM || n >= FETCH_MAX_ATTS ||
			    imap_fetch_att_parse(it->s, it->len, &atts[n]) < 0) {
				char msg[128];
				char shown[64];
				printable(shown, sizeof(shown), it->s ? it->s : "(",
					  it->s ? it->len : 1);
				snprintf(msg, sizeof(msg), "Unknown parameter %s", shown);
				cmd_error(s, name, msg);
				free(atts);
				return 0;
			}
			n++;
			if (!list)
				break;
		}
		if (n == 0) {
			cmd_error(s, name, "Invalid arguments.");
			free(atts);
			return 0;
		}
	}
	uint32_t *seqs;
	long k = resolve_set(s, set, setl, uid, &seqs);
	if (k < 0) {
		cmd_error(s, name, k == -2 && uid ? "Invalid uidset" : "Invalid messageset");
		free(atts);
		return 0;
	}
	/* Bound the amplification (64 body sections of every message): the host has to
	 * hold what the client does not read. */
	uint64_t produced = 0;
	long i;
	for (i = 0; i < k && produced <= FETCH_OUT_MAX; i++) {
		produced += s->sel->msgs[seqs[i] - 1].size * (uint64_t)(n > 1 ? n : 1);
		fetch_one(s, seqs[i], atts, n, uid);
	}
	free(seqs);
	free(atts);
	if (i < k) {
		tagged(s, "NO", "[LIMIT] Too much data requested, fetch fewer messages.");
		return 0;
	}
	tagged(s, "OK", "Fetch completed.");
	s->bad_row = 0;
	return 0;
}

static int cmd_fetch(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	return do_fetch(s, "FETCH", c->args, false);
}

/* ---------------------------------------------------------- post-login: STORE --- */

static int do_store(struct imap_session *s, const char *name, const struct imap_arg *args,
		    bool uid)
{
	const char *set, *item;
	size_t setl, iteml;
	if (set_arg(args, &set, &setl) < 0 || !args->next ||
	    args->next->type != IMAP_ARG_ATOM || !args->next->next) {
		cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	item = args->next->s;
	iteml = args->next->len;
	int mode; /* 0 set, 1 add, -1 remove */
	const char *w = item;
	if (*w == '+') {
		mode = 1;
		w++;
	} else if (*w == '-') {
		mode = -1;
		w++;
	} else {
		mode = 0;
	}
	bool silent;
	if (strcasecmp(w, "FLAGS") == 0)
		silent = false;
	else if (strcasecmp(w, "FLAGS.SILENT") == 0)
		silent = true;
	else {
		(void)iteml;
		cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	unsigned flags;
	if (parse_flag_args(args->next->next, &flags) < 0) {
		cmd_error(s, name, "Invalid system flag");
		return 0;
	}
	uint32_t *seqs;
	long k = resolve_set(s, set, setl, uid, &seqs);
	if (k < 0) {
		cmd_error(s, name, k == -2 && uid ? "Invalid uidset" : "Invalid messageset");
		return 0;
	}
	if (s->sel_ro) {
		free(seqs);
		tagged(s, "NO", "Mailbox is read-only.");
		return 0;
	}
	for (long i = 0; i < k; i++) {
		struct mbox_msg *m = &s->sel->msgs[seqs[i] - 1];
		unsigned keep = m->flags & MBOX_RECENT;
		if (mode == 0)
			m->flags = flags | keep;
		else if (mode > 0)
			m->flags |= flags;
		else
			m->flags &= ~flags;
		if (!silent) {
			struct buf b;
			buf_init(&b, 0);
			buf_printf(&b, "* %u FETCH (", seqs[i]);
			if (uid)
				buf_printf(&b, "UID %u ", m->uid);
			buf_puts(&b, "FLAGS ");
			put_flags(&b, m->flags);
			buf_puts(&b, ")\r\n");
			out_raw(s, b.data, b.len);
			buf_free(&b);
		}
	}
	free(seqs);
	tagged(s, "OK", "Store completed.");
	return 0;
}

static int cmd_store(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	return do_store(s, "STORE", c->args, false);
}

/* -------------------------------------------------------- post-login: SEARCH --- */

#define SEARCH_SCAN_MAX (256u * 1024 * 1024) /* bytes one SEARCH may scan */

struct search_ctx {
	struct imap_session *s;
	const char *error;
	int depth;
	uint64_t scanned;   /* text bytes searched so far */
	bool over_budget;
};

/* Case-insensitive substring, linear: lower-cased copies and memmem (two-way), so no
 * needle/haystack pair an attacker APPENDs can make it quadratic. */
static bool contains_ci(struct search_ctx *x, const char *hay, size_t hl, const char *needle,
			size_t nl)
{
	if (nl == 0)
		return true;
	if (nl > hl)
		return false;
	x->scanned += hl;
	if (x->scanned > SEARCH_SCAN_MAX) {
		x->over_budget = true;
		return false;
	}
	char *h = malloc(hl), *n = malloc(nl);
	bool r = false;
	if (h && n) {
		for (size_t i = 0; i < hl; i++)
			h[i] = (char)tolower((unsigned char)hay[i]);
		for (size_t i = 0; i < nl; i++)
			n[i] = (char)tolower((unsigned char)needle[i]);
		r = memmem(h, hl, n, nl) != NULL;
	}
	free(h);
	free(n);
	return r;
}

static bool header_contains(struct search_ctx *x, const struct mbox_msg *m,
			    const char *field, const char *v, size_t vl)
{
	size_t hl;
	split_message(m->data, m->size, &hl);
	size_t pos = 0, nl, fl;
	const char *n, *f;
	size_t want = strlen(field);
	while (next_field(m->data, hl, &pos, &n, &nl, &f, &fl)) {
		if (nl == want && strncasecmp(n, field, nl) == 0) {
			const char *val = (const char *)memchr(f, ':', fl) + 1;
			if (contains_ci(x, val, fl - (size_t)(val - f), v, vl))
				return true;
		}
	}
	return false;
}

/* Evaluate one key, consuming its arguments from *ap.  m NULL: syntax check only. */
static bool search_key(struct search_ctx *x, const struct imap_arg **ap,
		       const struct mbox_msg *m, uint32_t seq)
{
	const struct imap_arg *a = *ap;
	if (!a) {
		x->error = "Missing search key";
		return false;
	}
	*ap = a->next;
	if (++x->depth > SEARCH_MAX_DEPTH) {
		x->error = "Too deep search nesting";
		return false;
	}
	bool r = false;
	if (a->type == IMAP_ARG_LIST) {
		const struct imap_arg *it = a->child;
		if (!it)
			x->error = "Empty search list";
		r = true;
		while (it && !x->error) {
			bool k = search_key(x, &it, m, seq);
			r = r && k;
		}
		x->depth--;
		return r;
	}
	if (a->type != IMAP_ARG_ATOM) {
		x->error = "Unknown argument";
		x->depth--;
		return false;
	}
	const char *k = a->s;
	static const struct {
		const char *name;
		unsigned bit;
		bool set;
	} flagkeys[] = {
		{"ANSWERED", MBOX_ANSWERED, true}, {"DELETED", MBOX_DELETED, true},
		{"DRAFT", MBOX_DRAFT, true},       {"FLAGGED", MBOX_FLAGGED, true},
		{"RECENT", MBOX_RECENT, true},     {"SEEN", MBOX_SEEN, true},
		{"UNANSWERED", MBOX_ANSWERED, false}, {"UNDELETED", MBOX_DELETED, false},
		{"UNDRAFT", MBOX_DRAFT, false},    {"UNFLAGGED", MBOX_FLAGGED, false},
		{"UNSEEN", MBOX_SEEN, false},      {"OLD", MBOX_RECENT, false},
	};
	for (size_t i = 0; i < sizeof(flagkeys) / sizeof(flagkeys[0]); i++) {
		if (strcasecmp(k, flagkeys[i].name) == 0) {
			x->depth--;
			return m && (((m->flags & flagkeys[i].bit) != 0) == flagkeys[i].set);
		}
	}
	if (strcasecmp(k, "ALL") == 0) {
		r = m != NULL;
	} else if (strcasecmp(k, "NEW") == 0) {
		r = m && (m->flags & MBOX_RECENT) && !(m->flags & MBOX_SEEN);
	} else if (strcasecmp(k, "NOT") == 0) {
		bool v = search_key(x, ap, m, seq);
		r = m && !v;
	} else if (strcasecmp(k, "OR") == 0) {
		bool v1 = search_key(x, ap, m, seq);
		bool v2 = !x->error && search_key(x, ap, m, seq);
		r = v1 || v2;
	} else if (strcasecmp(k, "FROM") == 0 || strcasecmp(k, "TO") == 0 ||
		   strcasecmp(k, "CC") == 0 || strcasecmp(k, "BCC") == 0 ||
		   strcasecmp(k, "SUBJECT") == 0 || strcasecmp(k, "BODY") == 0 ||
		   strcasecmp(k, "TEXT") == 0 || strcasecmp(k, "KEYWORD") == 0 ||
		   strcasecmp(k, "UNKEYWORD") == 0) {
		const char *v;
		size_t vl;
		if (!imap_arg_astring(*ap, &v, &vl)) {
			x->error = "Missing search argument";
		} else {
			*ap = (*ap)->next;
			if (!m) {
				r = false;
			} else if (strcasecmp(k, "KEYWORD") == 0) {
				r = false;
			} else if (strcasecmp(k, "UNKEYWORD") == 0) {
				r = true;
			} else if (strcasecmp(k, "BODY") == 0 || strcasecmp(k, "TEXT") == 0) {
				size_t hl = 0;
				if (strcasecmp(k, "BODY") == 0)
					split_message(m->data, m->size, &hl);
				r = contains_ci(x, m->data + hl, m->size - hl, v, vl);
			} else {
				char field[16];
				snprintf(field, sizeof(field), "%s", k);
				r = header_contains(x, m, field, v, vl);
			}
		}
	} else if (strcasecmp(k, "HEADER") == 0) {
		const char *f, *v;
		size_t fl, vl;
		if (!imap_arg_astring(*ap, &f, &fl) || !imap_arg_astring((*ap)->next, &v, &vl)) {
			x->error = "Missing search argument";
		} else {
			*ap = (*ap)->next->next;
			char field[256];
			printable(field, sizeof(field), f, fl);
			r = m && header_contains(x, m, field, v, vl);
		}
	} else if (strcasecmp(k, "BEFORE") == 0 || strcasecmp(k, "ON") == 0 ||
		   strcasecmp(k, "SINCE") == 0 || strcasecmp(k, "SENTBEFORE") == 0 ||
		   strcasecmp(k, "SENTON") == 0 || strcasecmp(k, "SENTSINCE") == 0) {
		const char *v;
		size_t vl;
		int64_t day;
		if (!imap_arg_astring(*ap, &v, &vl) || imap_parse_date(v, vl, &day) < 0) {
			x->error = "Invalid search date parameter";
		} else {
			*ap = (*ap)->next;
			if (m) {
				/* sent dates approximated by the internal date */
				int64_t t = m->internaldate - (m->internaldate % 86400 + 86400) % 86400;
				const char *w = strncasecmp(k, "SENT", 4) == 0 ? k + 4 : k;
				if (strcasecmp(w, "BEFORE") == 0)
					r = t < day;
				else if (strcasecmp(w, "ON") == 0)
					r = t == day;
				else
					r = t >= day;
			}
		}
	} else if (strcasecmp(k, "LARGER") == 0 || strcasecmp(k, "SMALLER") == 0) {
		const char *v;
		size_t vl;
		char *end;
		if (!imap_arg_astring(*ap, &v, &vl) || vl == 0 || vl > 19 || !isdigit((unsigned char)v[0])) {
			x->error = "Invalid size";
		} else {
			unsigned long long n = strtoull(v, &end, 10);
			if (*end) {
				x->error = "Invalid size";
			} else {
				*ap = (*ap)->next;
				if (m)
					r = strcasecmp(k, "LARGER") == 0 ? m->size > n : m->size < n;
			}
		}
	} else if (strcasecmp(k, "UID") == 0) {
		const char *v;
		size_t vl;
		struct imap_seqset ss;
		if (set_arg(*ap, &v, &vl) < 0 || imap_seqset_parse(v, vl, &ss) < 0) {
			x->error = "Invalid uidset";
		} else {
			*ap = (*ap)->next;
			uint32_t n = n_msgs(x->s);
			uint32_t star = n ? x->s->sel->msgs[n - 1].uid : 0;
			r = m && imap_seqset_contains(&ss, m->uid, star);
		}
	} else if ((k[0] >= '1' && k[0] <= '9') || k[0] == '*') {
		struct imap_seqset ss;
		if (imap_seqset_parse(k, a->len, &ss) < 0)
			x->error = "Invalid messageset";
		else
			r = m && imap_seqset_contains(&ss, seq, n_msgs(x->s));
	} else {
		x->error = "Unknown argument";
	}
	x->depth--;
	return r && m;
}

static int do_search(struct imap_session *s, const char *name, const struct imap_arg *args,
		     bool uid)
{
	const struct imap_arg *a = args;
	if (a && imap_arg_is_atom(a, "RETURN")) {
		cmd_error(s, name, "Unknown argument RETURN");
		return 0;
	}
	if (a && imap_arg_is_atom(a, "CHARSET")) {
		const char *cs;
		size_t csl;
		if (!imap_arg_astring(a->next, &cs, &csl)) {
			cmd_error(s, name, "Invalid arguments.");
			return 0;
		}
		if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
			tagged(s, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unknown charset");
			return 0;
		}
		a = a->next->next;
	}
	if (!a) {
		cmd_error(s, name, "Missing search parameters");
		return 0;
	}
	/* syntax first (no message) */
	struct search_ctx x = {.s = s};
	for (const struct imap_arg *it = a; it && !x.error;)
		search_key(&x, &it, NULL, 0);
	if (x.error) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s", x.error);
		cmd_error(s, name, msg);
		return 0;
	}
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "* SEARCH");
	for (uint32_t i = 1; i <= n_msgs(s); i++) {
		const struct mbox_msg *m = &s->sel->msgs[i - 1];
		bool all = true;
		for (const struct imap_arg *it = a; it && !x.error;)
			all = search_key(&x, &it, m, i) && all;
		if (all)
			buf_printf(&b, " %u", uid ? m->uid : i);
		if (x.over_budget)
			break;
	}
	if (x.over_budget) {
		buf_free(&b);
		tagged(s, "NO", "[LIMIT] Search too complex, use fewer search keys.");
		return 0;
	}
	buf_puts(&b, "\r\n");
	out_raw(s, b.data, b.len);
	buf_free(&b);
	tagged(s, "OK", "Search completed.");
	return 0;
}

static int cmd_search(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	return do_search(s, "SEARCH", c->args, false);
}

/* ------------------------------------------------- post-login: EXPUNGE, COPY --- */

/* Expunge the \Deleted messages (only those in keep_set when it is given), sending
 * "* n EXPUNGE" for each unless silent. */
static void expunge(struct imap_session *s, const uint32_t *only, long n_only, bool silent)
{
	struct mbox_folder *f = s->sel;
	unsigned *saved = NULL;
	if (only) {
		/* hide \Deleted outside the set, put it back on the survivors after */
		saved = calloc(f->n_msgs ? f->n_msgs : 1, sizeof(*saved));
		if (!saved)
			return;
		for (size_t i = 0; i < f->n_msgs; i++) {
			saved[i] = f->msgs[i].flags;
			bool in = false;
			for (long k = 0; k < n_only && !in; k++)
				in = only[k] == i + 1;
			if (!in)
				f->msgs[i].flags &= ~(unsigned)MBOX_DELETED;
		}
	}
	/* announce: each EXPUNGE renumbers the ones after it */
	size_t removed = 0, kept = 0;
	for (size_t i = 0; i < f->n_msgs; i++) {
		if (f->msgs[i].flags & MBOX_DELETED) {
			if (!silent)
				untagged(s, "%zu EXPUNGE", i + 1 - removed);
			removed++;
		} else if (saved) {
			saved[kept++] = saved[i];
		}
	}
	mailbox_expunge(f);
	if (saved) {
		for (size_t j = 0; j < kept && j < f->n_msgs; j++)
			f->msgs[j].flags = saved[j];
		free(saved);
	}
}

static int cmd_expunge(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	if (c->n_args != 0)
		return -1;
	if (s->sel_ro) {
		tagged(s, "NO", "Mailbox is read-only.");
		return 0;
	}
	expunge(s, NULL, 0, false);
	tagged(s, "OK", "Expunge completed.");
	return 0;
}

static int cmd_close(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	if (!s->sel_ro)
		expunge(s, NULL, 0, true);
	unselect(s);
	tagged(s, "OK", "Close completed.");
	return 0;
}

static int cmd_unselect(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	unselect(s);
	tagged(s, "OK", "Unselect completed.");
	return 0;
}

static int do_copy(struct imap_session *s, const char *name, const struct imap_arg *args,
		   bool uid, bool move)
{
	const char *set, *dst;
	size_t setl, dstl;
	if (set_arg(args, &set, &setl) < 0 || !args->next ||
	    !imap_arg_astring(args->next, &dst, &dstl) || args->next->next) {
		cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	uint32_t *seqs;
	long k = resolve_set(s, set, setl, uid, &seqs);
	if (k < 0) {
		cmd_error(s, name, k == -2 && uid ? "Invalid uidset" : "Invalid messageset");
		return 0;
	}
	struct mbox_folder *d = folder_by_name(s, dst, dstl);
	if (!d) {
		free(seqs);
		char shown[256];
		shown_name(shown, sizeof(shown), dst, dstl);
		tagged(s, "NO", "[TRYCREATE] Mailbox doesn't exist: %s", shown);
		return 0;
	}
	if (move && s->sel_ro) {
		free(seqs);
		tagged(s, "NO", "Mailbox is read-only.");
		return 0;
	}
	struct buf src, dstu;
	buf_init(&src, 0);
	buf_init(&dstu, 0);
	bool full = false;
	for (long i = 0; i < k; i++) {
		struct mbox_msg *m = &s->sel->msgs[seqs[i] - 1];
		/* d may be the selected folder: copy the bytes before they can move */
		char *copy = malloc(m->size ? m->size : 1);
		if (!copy)
			break;
		memcpy(copy, m->data, m->size);
		uint32_t srcuid = m->uid;
		uint32_t nu = mailbox_append(d, copy, m->size, m->internaldate,
					     m->flags & ~(unsigned)MBOX_RECENT);
		free(copy);
		if (nu == 0) {
			full = true;
			break;
		}
		buf_printf(&src, "%s%u", src.len ? "," : "", srcuid);
		buf_printf(&dstu, "%s%u", dstu.len ? "," : "", nu);
	}
	if (full) {
		free(seqs);
		buf_free(&src);
		buf_free(&dstu);
		tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		return 0;
	}
	if (move) {
		if (k > 0)
			untagged(s, "OK [COPYUID %u %s %s] Moved UIDs.", d->uidvalidity,
				 src.data, dstu.data);
		for (long i = 0; i < k; i++)
			s->sel->msgs[seqs[i] - 1].flags |= MBOX_DELETED;
		expunge(s, seqs, k, false);
		tagged(s, "OK", "Move completed.");
	} else if (k > 0) {
		tagged(s, "OK", "[COPYUID %u %s %s] Copy completed.", d->uidvalidity, src.data,
		       dstu.data);
	} else {
		tagged(s, "OK", "No messages found.");
	}
	free(seqs);
	buf_free(&src);
	buf_free(&dstu);
	return 0;
}

static int cmd_copy(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	return do_copy(s, "COPY", c->args, false, false);
}

static int cmd_move(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	return do_copy(s, "MOVE", c->args, false, true);
}

static int cmd_uid(struct imap_session *s, struct imap_command *c)
{
	if (!need_selected(s))
		return 0;
	const struct imap_arg *sub = c->args;
	if (!sub || sub->type != IMAP_ARG_ATOM) {
		cmd_error(s, "UID", "Unknown command");
		return 0;
	}
	if (imap_arg_is_atom(sub, "FETCH"))
		return do_fetch(s, "UID FETCH", sub->next, true);
	if (imap_arg_is_atom(sub, "STORE"))
		return do_store(s, "UID STORE", sub->next, true);
	if (imap_arg_is_atom(sub, "SEARCH"))
		return do_search(s, "UID SEARCH", sub->next, true);
	if (imap_arg_is_atom(sub, "COPY"))
		return do_copy(s, "UID COPY", sub->next, true, false);
	if (imap_arg_is_atom(sub, "MOVE"))
		return do_copy(s, "UID MOVE", sub->next, true, true);
	if (imap_arg_is_atom(sub, "EXPUNGE")) {
		const char *set;
		size_t setl;
		if (set_arg(sub->next, &set, &setl) < 0 || sub->next->next) {
			cmd_error(s, "UID EXPUNGE", "Invalid arguments.");
			return 0;
		}
		if (s->sel_ro) {
			tagged(s, "NO", "Mailbox is read-only.");
			return 0;
		}
		uint32_t *seqs;
		long k = resolve_set(s, set, setl, true, &seqs);
		if (k < 0) {
			cmd_error(s, "UID EXPUNGE", "Invalid uidset");
			return 0;
		}
		expunge(s, seqs, k, false);
		free(seqs);
		tagged(s, "OK", "Expunge completed.");
		return 0;
	}
	char shown[64];
	printable(shown, sizeof(shown), sub->s, sub->len);
	for (char *p = shown; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	char nm[96];
	snprintf(nm, sizeof(nm), "UID %s", shown);
	cmd_error(s, nm, "Unknown command");
	return 0;
}

/* --------------------------------------------------------- post-login: APPEND --- */

static void message_rejected(struct imap_session *s, const char *reason, size_t size)
{
	struct mxb_event *ev = mxb_event_new("message_rejected");
	if (!ev)
		return;
	mxb_event_str(ev, "reason", reason);
	mxb_event_int(ev, "size", (int64_t)size);
	mxb_event_null(ev, "reply");
	emit(s, ev);
}

static int cmd_append(struct imap_session *s, struct imap_command *c)
{
	const char *name;
	size_t nl;
	const struct imap_arg *a = c->args;
	if (!a || !imap_arg_astring(a, &name, &nl))
		return -1;
	a = a->next;
	unsigned flags = 0;
	if (a && a->type == IMAP_ARG_LIST) {
		if (parse_flag_args(a, &flags) < 0) {
			cmd_error(s, "APPEND", "Invalid system flag");
			return 0;
		}
		a = a->next;
	}
	int64_t date = now_us(s) / 1000000;
	if (a && a->type == IMAP_ARG_QUOTED) {
		if (imap_parse_datetime(a->s, a->len, &date) < 0) {
			cmd_error(s, "APPEND", "Invalid internal date.");
			return 0;
		}
		a = a->next;
	}
	if (!a || a->type != IMAP_ARG_LITERAL || a->next)
		return -1;
	if (a->len == 0) {
		cmd_error(s, "APPEND", "Can't save a zero byte message");
		return 0;
	}
	struct mbox_folder *f = folder_by_name(s, name, nl);
	if (!f) {
		char shown[256];
		shown_name(shown, sizeof(shown), name, nl);
		tagged(s, "NO", "[TRYCREATE] Mailbox doesn't exist: %s", shown);
		return 0;
	}
	char qid[32] = "";
	if (s->ops->msg_open(s->ctx, qid, sizeof(qid)) < 0) {
		message_rejected(s, "no_space", a->len);
		tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		return 0;
	}
	if (s->ops->msg_write(s->ctx, a->s, a->len) < 0) {
		s->ops->msg_abort(s->ctx);
		message_rejected(s, "no_space", a->len);
		tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		return 0;
	}
	qid[sizeof(qid) - 1] = '\0';
	memcpy(s->app_qid, qid, sizeof(s->app_qid));
	s->app_folder = f;
	s->app_data = a->s;
	s->app_len = a->len;
	s->app_flags = flags;
	s->app_date = date;
	s->susp = SUSP_COMMIT;
	s->ops->msg_commit(s->ctx);
	return 0;
}

void imap_session_committed(struct imap_session *s, const struct proto_commit_result *r)
{
	if (s->susp != SUSP_COMMIT)
		return;
	s->susp = SUSP_NONE;
	if (r && r->ok) {
		s->messages++;
		struct mxb_event *ev = mxb_event_new("message");
		if (ev) {
			const char *qid = r->queue_id && *r->queue_id ? r->queue_id : s->app_qid;
			mxb_event_str(ev, "queue_id", qid);
			mxb_event_str(ev, "spool", r->spool_name ? r->spool_name : "");
			mxb_event_str(ev, "sha256", r->sha256 ? r->sha256 : "");
			mxb_event_int(ev, "size", (int64_t)r->size);
			mxb_event_str(ev, "sender", "");
			mxb_event_str_array(ev, "recipients", NULL, 0);
			mxb_event_str(ev, "method", "APPEND");
			mxb_event_str(ev, "auth_user", s->user);
			mxb_event_bool(ev, "tls", s->tls);
			emit(s, ev);
		}
		uint32_t uid = mailbox_append(s->app_folder, s->app_data, s->app_len, s->app_date,
					      s->app_flags | MBOX_RECENT);
		if (uid == 0) {
			tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		} else {
			if (s->sel == s->app_folder)
				untagged(s, "%zu EXISTS", s->sel->n_msgs);
			tagged(s, "OK", "[APPENDUID %u %u] Append completed.",
			       s->app_folder->uidvalidity, uid);
		}
	} else {
		bool nospace = r && r->no_space;
		message_rejected(s, nospace ? "no_space" : "io", s->app_len);
		if (nospace)
			tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		else
			tagged(s, "NO", "[SERVERBUG] Internal error occurred. Refer to server log "
					"for more information.");
	}
	s->app_folder = NULL;
	s->app_data = NULL;
	release_command(s);
	if (s->hung_up) {
		buf_reset(&s->out);
		s->susp = SUSP_CLOSED;
		return;
	}
	finish_step(s);
}

/* ------------------------------------------------------- post-login dispatch --- */

static const struct imap_cmd post_table[] = {
	{"CAPABILITY", cmd_capability}, {"NOOP", cmd_noop},
	{"LOGOUT", cmd_logout},         {"ID", cmd_id},
	{"ENABLE", cmd_enable},         {"NAMESPACE", cmd_namespace},
	{"IDLE", cmd_idle},             {"LIST", cmd_list},
	{"LSUB", cmd_lsub},             {"STATUS", cmd_status},
	{"SELECT", cmd_select},         {"EXAMINE", cmd_examine},
	{"CREATE", cmd_create},         {"DELETE", cmd_delete},
	{"RENAME", cmd_rename},         {"SUBSCRIBE", cmd_subscribe},
	{"UNSUBSCRIBE", cmd_subscribe}, {"APPEND", cmd_append},
	{"CHECK", cmd_check},           {"FETCH", cmd_fetch},
	{"STORE", cmd_store},           {"SEARCH", cmd_search},
	{"EXPUNGE", cmd_expunge},       {"CLOSE", cmd_close},
	{"UNSELECT", cmd_unselect},     {"COPY", cmd_copy},
	{"MOVE", cmd_move},             {"UID", cmd_uid},
};

static void postlogin_command(struct imap_session *s, struct imap_command *c, int pr,
			      const char *line, size_t len)
{
	if (!c->tag_valid) {
		s->tag[0] = '\0';
		offence(s, "bad_syntax", line, len);
		tagged_plain(s, "BAD", "Error in IMAP command received by server.");
		return;
	}
	if (!c->has_name) {
		offence(s, "bad_syntax", line, len);
		cmd_error(s, "", "Unknown command.");
		return;
	}
	const struct imap_cmd *cmd = NULL;
	for (size_t i = 0; i < sizeof(post_table) / sizeof(post_table[0]); i++)
		if (strcmp(c->name, post_table[i].name) == 0)
			cmd = &post_table[i];
	if (!cmd) {
		offence(s, "unknown_command", line, len);
		cmd_error(s, c->name, "Unknown command.");
		return;
	}
	if (pr < 0) {
		offence(s, "bad_syntax", line, len);
		if (cmd->run == cmd_select || cmd->run == cmd_examine) {
			if (s->cs == CS_SELECTED) {
				unselect(s);
				untagged(s, "OK [CLOSED] Previous mailbox closed.");
			}
		}
		char msg[128];
		snprintf(msg, sizeof(msg), "%s", c->error);
		cmd_error(s, c->name, msg);
		return;
	}
	unsigned errs = s->errors;
	if (cmd->run(s, c) < 0) {
		offence(s, "bad_syntax", line, len);
		cmd_error(s, c->name, "Invalid arguments.");
		return;
	}
	/* a command that went through resets Dovecot's bad counter */
	if (s->errors == errs)
		s->bad_row = 0;
}

static void release_command(struct imap_session *s)
{
	if (s->pc) {
		imap_command_clear(s->pc);
		free(s->pc);
		s->pc = NULL;
	}
}

/* One framed command (the buffer holds it, literals inline, no final CRLF). */
static void command(struct imap_session *s)
{
	const char *line = s->cmd.data ? s->cmd.data : "";
	size_t len = s->cmd.len;
	s->commands++;
	s->cmd_start_us = now_us(s);
	if (!s->pc) {
		/* ~60 KiB of argument nodes: held only while a command runs, so that
		 * idle sessions stay small */
		s->pc = malloc(sizeof(*s->pc));
		if (!s->pc) {
			untagged(s, "BYE Out of memory");
			close_after(s, "error");
			return;
		}
		s->pc->store = NULL;
	}
	int pr = imap_parse_command(line, len, s->pc);
	snprintf(s->tag, sizeof(s->tag), "%s", s->pc->tag_valid ? s->pc->tag : "");
	if (s->cs == CS_NOAUTH)
		prelogin_command(s, s->pc, pr, line, len);
	else
		postlogin_command(s, s->pc, pr, line, len);
	if (s->susp != SUSP_COMMIT) /* an APPEND's bytes live in it until committed */
		release_command(s);
}

/* ------------------------------------------------------------------ input ---- */

static size_t text_limit(const struct imap_session *s)
{
	if (s->cs == CS_NOAUTH)
		return PRELOGIN_LINE_MAX;
	return s->cfg->line_length_limit ? s->cfg->line_length_limit : 65536;
}

static size_t literal_max(const struct imap_session *s)
{
	return s->cfg->literal_max ? s->cfg->literal_max : 10 * 1024 * 1024;
}

/* Is the command being framed an APPEND?  (tag SP "APPEND" SP ...) */
static bool framing_append(const struct imap_session *s)
{
	if (!logged_in(s))
		return false;
	const char *p = s->cmd.data;
	size_t len = s->cmd.len;
	const char *sp = memchr(p, ' ', len);
	if (!sp)
		return false;
	size_t rest = len - (size_t)(sp + 1 - p);
	return rest >= 7 && strncasecmp(sp + 1, "APPEND ", 7) == 0;
}

static void too_long(struct imap_session *s, const char *text)
{
	offence(s, "line_too_long", s->cmd.data ? s->cmd.data : "", s->cmd.len);
	untagged(s, "BYE %s", text);
	s->errors++;
	close_after(s, "protocol");
	buf_reset(&s->cmd);
	s->line_text = 0;
	s->seg_start = 0;
}

/* A complete command line (LF seen; CR still in the buffer). */
static void line_done(struct imap_session *s)
{
	size_t l = s->cmd.len;
	/* the CR of the line end, never the last byte of a literal before a bare LF */
	if (l > s->seg_start && s->cmd.data[l - 1] == '\r')
		l--;
	/* the part of the line after the last literal */
	uint64_t size;
	bool nonsync, bad;
	const char *d = s->cmd.data ? s->cmd.data : "";
	size_t seg = s->seg_start <= l ? s->seg_start : l;
	if (imap_line_literal(d + seg, l - seg, &size, &nonsync, &bad) && !bad) {
		bool append = framing_append(s);
		uint64_t room;
		size_t lim = text_limit(s);
		if (append) {
			/* one message literal up to literal_max, the whole command bounded */
			room = literal_max(s) + lim > s->cmd.len ? literal_max(s) + lim - s->cmd.len : 0;
			if (room > literal_max(s))
				room = literal_max(s);
		}
		else {
			room = lim > s->line_text ? lim - s->line_text : 0;
		}
		if (size > room) {
			too_long(s, "Literal size too large");
			return;
		}
		s->cmd.len = l;
		buf_puts(&s->cmd, "\r\n");
		if (!nonsync)
			out_str(s, "+ OK\r\n");
		s->lit_left = size;
		if (!append)
			s->line_text += (size_t)size;
		if (size > 0) {
			set_input(s, IN_LITERAL);
			return;
		}
		/* {0}: the line goes on */
		s->seg_start = s->cmd.len;
		return;
	}
	s->cmd.len = l;
	buf_putc(&s->cmd, '\0');
	s->cmd.len = l;
	command(s);
	if (s->cmd.alloc > 65536)
		buf_free(&s->cmd); /* a big APPEND: give the memory back */
	else
		buf_reset(&s->cmd);
	s->line_text = 0;
	s->seg_start = 0;
}

/* Command text.  Returns bytes consumed. */
static size_t feed_cmd_text(struct imap_session *s, const char *data, size_t len)
{
	const char *lf = memchr(data, '\n', len);
	size_t take = lf ? (size_t)(lf - data) + 1 : len;
	size_t content = lf ? take - 1 : take;
	size_t lim = text_limit(s);
	if (s->line_text + content > lim + 1) {
		too_long(s, "Input buffer full, aborting");
		return take;
	}
	buf_append(&s->cmd, data, content);
	s->line_text += content;
	if (lf) {
		s->feed_pos = data + take;
		line_done(s);
	}
	return take;
}

static size_t feed_literal(struct imap_session *s, const char *data, size_t len)
{
	size_t n = len;
	if ((uint64_t)n > s->lit_left)
		n = (size_t)s->lit_left;
	buf_append(&s->cmd, data, n);
	s->lit_left -= n;
	if (s->lit_left == 0) {
		s->seg_start = s->cmd.len;
		set_input(s, IN_LINE);
	}
	return n;
}

/* SASL continuation and IDLE lines. */
static size_t feed_plain_line(struct imap_session *s, const char *data, size_t len)
{
	const char *lf = memchr(data, '\n', len);
	size_t take = lf ? (size_t)(lf - data) + 1 : len;
	size_t content = lf ? take - 1 : take;
	if (s->line.len + content > AUTH_LINE_MAX + 1) {
		offence(s, "line_too_long", s->line.data ? s->line.data : "", s->line.len);
		buf_reset(&s->line);
		if (s->in == IN_IDLE) {
			untagged(s, "BYE Input buffer full, aborting");
		} else {
			/* Dovecot drops the client: "Authentication response too large" */
			auth_event_simple(s, mech_name(s->mech), "malformed");
		}
		close_after(s, "protocol");
		return take;
	}
	buf_append(&s->line, data, content);
	if (!lf)
		return take;
	size_t l = s->line.len;
	if (l > 0 && s->line.data[l - 1] == '\r')
		l--;
	buf_putc(&s->line, '\0');
	s->cmd_start_us = now_us(s);
	if (s->in == IN_AUTH)
		auth_line(s, s->line.data, l);
	else
		idle_line(s, s->line.data, l);
	buf_reset(&s->line);
	return take;
}

size_t imap_session_feed(struct imap_session *s, const char *data, size_t len)
{
	size_t pos = 0;
	s->feed_end = data + len;
	while (pos < len && s->susp == SUSP_NONE && !s->close_reason) {
		s->feed_pos = data + pos;
		size_t n;
		switch (s->in) {
		case IN_LITERAL:
			n = feed_literal(s, data + pos, len - pos);
			break;
		case IN_AUTH:
		case IN_IDLE:
			n = feed_plain_line(s, data + pos, len - pos);
			break;
		case IN_LINE:
		default:
			n = feed_cmd_text(s, data + pos, len - pos);
			break;
		}
		pos += n;
		/* a step ended with a suspension, delay or close: act on it now */
		if (s->susp != SUSP_NONE || s->delay_ms > 0 || s->close_reason)
			finish_step(s);
	}
	s->feed_pos = NULL;
	s->feed_end = NULL;
	if (s->susp == SUSP_NONE)
		flush_out(s);
	return pos;
}

/* ---------------------------------------------------------------- lifecycle --- */

struct imap_session *imap_session_new(const struct imap_config *cfg,
				      const struct proto_peer *peer, bool tls_active,
				      const struct proto_host_ops *ops, void *ctx)
{
	struct imap_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = cfg;
	s->ops = ops;
	s->ctx = ctx;
	snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", peer && peer->ip ? peer->ip : "unknown");
	s->tls = tls_active;
	size_t lim = cfg->line_length_limit ? cfg->line_length_limit : 65536;
	size_t litmax = cfg->literal_max ? cfg->literal_max : 10 * 1024 * 1024;
	buf_init(&s->cmd, lim + litmax + lim + 64);
	buf_init(&s->line, AUTH_LINE_MAX + 16);
	buf_init(&s->out, 0);
	s->cs = CS_NOAUTH;
	s->in = IN_LINE;
	return s;
}

void imap_session_start(struct imap_session *s)
{
	untagged(s, "OK [CAPABILITY %s] Dovecot (Debian) ready.", capability(s));
	flush_out(s);
}

void imap_session_free(struct imap_session **sp)
{
	if (!sp || !*sp)
		return;
	struct imap_session *s = *sp;
	release_command(s);
	free(s->auth_user_tmp);
	mailbox_free(&s->mbox);
	buf_free(&s->cmd);
	buf_free(&s->line);
	buf_free(&s->out);
	free(s);
	*sp = NULL;
}

void imap_session_resume(struct imap_session *s)
{
	if (s->susp != SUSP_WAIT)
		return;
	s->susp = SUSP_NONE;
	if (s->close_reason) {
		do_close(s);
		return;
	}
	flush_out(s);
}

void imap_session_tls_started(struct imap_session *s, const char *version,
			      const char *cipher, int bits)
{
	s->tls = true;
	if (s->susp == SUSP_TLS) {
		/* RFC 3501 6.2.1: nothing from before the handshake survives */
		buf_reset(&s->cmd);
		buf_reset(&s->line);
		s->line_text = 0;
		s->seg_start = 0;
		s->lit_left = 0;
		set_input(s, IN_LINE);
		s->susp = SUSP_NONE;
	}
}

void imap_session_hangup(struct imap_session *s, const char *reason)
{
	if (s->susp == SUSP_CLOSED)
		return;
	if (s->susp == SUSP_COMMIT) {
		/* The spool finishes the commit on its own: committed() still records the
		 * message, without a reply. */
		s->hung_up = true;
		return;
	}
	if (s->in == IN_AUTH && s->mech == MECH_LOGIN && s->auth_step == 1) {
		/* left at the password prompt: keep the user name it gave */
		struct auth_ev ev = {.mech = "LOGIN", .result = "aborted",
				     .user = s->auth_user_tmp ? (const char *)s->auth_user_tmp : "",
				     .user_len = s->auth_user_len};
		auth_event(s, &ev);
	}
	if (reason && strcmp(reason, "timeout") == 0) {
		buf_reset(&s->out);
		untagged(s, "BYE Disconnected for inactivity.");
		flush_out(s);
	} else if (reason && strcmp(reason, "shutdown") == 0) {
		buf_reset(&s->out);
		untagged(s, "BYE Server shutting down.");
		flush_out(s);
	}
	s->susp = SUSP_CLOSED;
}

/* ----------------------------------------------------------------- vtable ---- */

static void *v_create(const void *cfg, const struct proto_peer *peer, bool tls_active,
		      const struct proto_host_ops *ops, void *ctx)
{
	return imap_session_new(cfg, peer, tls_active, ops, ctx);
}

static void v_start(void *s)
{
	imap_session_start(s);
}

static size_t v_feed(void *s, const char *data, size_t len)
{
	return imap_session_feed(s, data, len);
}

static void v_resume(void *s)
{
	imap_session_resume(s);
}

static void v_committed(void *s, const struct proto_commit_result *r)
{
	imap_session_committed(s, r);
}

static void v_tls_started(void *s, const char *version, const char *cipher, int bits)
{
	imap_session_tls_started(s, version, cipher, bits);
}

static void v_hangup(void *s, const char *reason)
{
	imap_session_hangup(s, reason);
}

static const char *v_state_name(const void *s)
{
	return imap_session_state_name(s);
}

static void v_counters(const void *s, struct proto_counters *c_r)
{
	imap_session_counters(s, c_r);
}

static const char *v_auth_user(const void *s)
{
	return imap_session_auth_user(s);
}

static void v_destroy(void *s)
{
	struct imap_session *is = s;
	imap_session_free(&is);
}

const struct proto_engine imap_engine = {
	.name = "imap",
	.create = v_create,
	.start = v_start,
	.feed = v_feed,
	.resume = v_resume,
	.committed = v_committed,
	.tls_started = v_tls_started,
	.hangup = v_hangup,
	.state_name = v_state_name,
	.counters = v_counters,
	.auth_user = v_auth_user,
	.destroy = v_destroy,
};
