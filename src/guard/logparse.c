/*
 * logparse: the tokenizer of Postfix and Dovecot log lines (see logparse.h).
 *
 * Work on (pointer, length) slices of the line; every helper is a linear scan.
 */
#include "guard/logparse.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEEN_SLOTS 4096

struct seen {
	struct netaddr ip;
	unsigned pid;      /* Postfix smtpd pid, 0 for Dovecot's per-address count */
	unsigned count;
	bool used;
};

struct logparse {
	struct seen dovecot[SEEN_SLOTS];  /* auth-process failures per address */
	struct seen postfix[SEEN_SLOTS];  /* SASL warnings per (smtpd pid, address) */
};

struct sl {
	const char *p;
	size_t n;
};

static struct sl mk(const char *p, size_t n)
{
	struct sl s = { p, n };
	return s;
}

static bool starts_n(struct sl s, const char *lit, size_t l)
{
	return s.n >= l && !memcmp(s.p, lit, l);
}

static bool ends_n(struct sl s, const char *lit, size_t l)
{
	return s.n >= l && !memcmp(s.p + s.n - l, lit, l);
}

static struct sl skip(struct sl s, size_t k)
{
	return k > s.n ? mk(s.p + s.n, 0) : mk(s.p + k, s.n - k);
}

/* First occurrence of lit (l bytes) in s, or -1.  The needles are short literals:
 * memchr for the first byte and a compare beats a general memmem's set-up per call. */
static long find_n(struct sl s, const char *lit, size_t l)
{
	if (!s.p || l == 0 || l > s.n)
		return -1;
	const char *p = s.p, *last = s.p + s.n - l;
	while (p <= last && (p = memchr(p, lit[0], (size_t)(last - p) + 1))) {
		if (!memcmp(p, lit, l))
			return (long)(p - s.p);
		p++;
	}
	return -1;
}

/* Last occurrence of lit in s, or -1. */
static long rfind_n(struct sl s, const char *lit, size_t l)
{
	if (l == 0 || l > s.n)
		return -1;
	for (size_t i = s.n - l + 1; i-- > 0;)
		if (s.p[i] == lit[0] && !memcmp(s.p + i, lit, l))
			return (long)i;
	return -1;
}

/* The helpers above with the length of a string constant (or any string). */
#define starts(s, lit) starts_n((s), (lit), strlen(lit))
#define ends(s, lit) ends_n((s), (lit), strlen(lit))
#define find(s, lit) find_n((s), (lit), strlen(lit))
#define rfind(s, lit) rfind_n((s), (lit), strlen(lit))

static void copy_out(char *dst, size_t dlen, struct sl s)
{
	size_t n = s.n < dlen - 1 ? s.n : dlen - 1;
	memcpy(dst, s.p, n);
	dst[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (dst[i] == '\0')
			dst[i] = '?';
}

static bool parse_ip(struct sl s, struct netaddr *out)
{
	if (s.n == 0 || s.n > 64)
		return false;
	/* a host address only, never a prefix */
	if (memchr(s.p, '/', s.n))
		return false;
	return netaddr_parse_n(s.p, s.n, out) == 0;
}

static bool parse_uint(struct sl s, unsigned *v)
{
	if (s.n == 0 || s.n > 9)
		return false;
	unsigned x = 0;
	for (size_t i = 0; i < s.n; i++) {
		if (!isdigit((unsigned char)s.p[i]))
			return false;
		x = x * 10 + (unsigned)(s.p[i] - '0');
	}
	*v = x;
	return true;
}

/* ---- framing ---- */

static bool is_month(struct sl s)
{
	if (s.n < 3)
		return false;
	/* the three letters as one number, against the twelve (one compare each) */
	uint32_t k = (uint32_t)(unsigned char)s.p[0] << 16 | (uint32_t)(unsigned char)s.p[1] << 8 |
		     (unsigned char)s.p[2];
	static const uint32_t m[] = { 0x4a616e, 0x466562, 0x4d6172, 0x417072, 0x4d6179, 0x4a756e,
				      0x4a756c, 0x417567, 0x536570, 0x4f6374, 0x4e6f76, 0x446563 };
	for (size_t i = 0; i < 12; i++)
		if (k == m[i])
			return true;
	return false;
}

/* Skip a leading timestamp: "Mmm dd hh:mm:ss " or an RFC 3339 one.  Returns the
 * rest, or an empty slice when there is none. */
static struct sl skip_timestamp(struct sl s)
{
	if (s.n >= 16 && is_month(s) && s.p[3] == ' ') {
		size_t i = 4;
		if (s.p[i] == ' ')
			i++;
		while (i < s.n && isdigit((unsigned char)s.p[i]))
			i++;
		if (i >= s.n || s.p[i] != ' ')
			return mk(s.p, 0);
		i++;
		size_t t = i;
		while (i < s.n && (isdigit((unsigned char)s.p[i]) || s.p[i] == ':' || s.p[i] == '.'))
			i++;
		if (i - t < 8 || i >= s.n || s.p[i] != ' ')
			return mk(s.p, 0);
		return skip(s, i + 1);
	}
	if (s.n >= 20 && isdigit((unsigned char)s.p[0]) && s.p[4] == '-' && s.p[10] == 'T') {
		long sp = find(s, " ");
		return sp < 0 ? mk(s.p, 0) : skip(s, (size_t)sp + 1);
	}
	return mk(s.p, 0);
}

/* "prog[pid]:" or "prog:" at the start of s: prog, pid (0 if none), the rest. */
static bool take_program(struct sl s, struct sl *prog, unsigned *pid, struct sl *rest)
{
	long colon = find(s, ": ");
	if (colon <= 0)
		return false;
	struct sl tok = mk(s.p, (size_t)colon);
	if (memchr(tok.p, ' ', tok.n))
		return false;
	*pid = 0;
	if (tok.n && tok.p[tok.n - 1] == ']') {
		long lb = rfind(tok, "[");
		if (lb <= 0 || !parse_uint(mk(tok.p + lb + 1, tok.n - (size_t)lb - 2), pid))
			return false;
		tok.n = (size_t)lb;
	}
	*prog = tok;
	*rest = skip(s, (size_t)colon + 2);
	return true;
}

/* ---- Postfix ---- */

static bool is_postfix(struct sl prog, struct sl *daemon)
{
	if (!starts(prog, "postfix"))
		return false;
	long slash = rfind(prog, "/");
	if (slash < 0)
		return false;
	*daemon = skip(prog, (size_t)slash + 1);
	return true;
}

/* "name[ip]" or "name[ip]:port" at the start of s; the rest after it. */
static bool take_host_ip(struct sl s, struct netaddr *ip, unsigned *port, struct sl *rest)
{
	long lb = find(s, "[");
	if (lb < 0)
		return false;
	/* the name is a validated host name or "unknown": no space, no bracket */
	for (long i = 0; i < lb; i++)
		if (s.p[i] == ' ' || s.p[i] == ']')
			return false;
	struct sl r = skip(s, (size_t)lb + 1);
	long rb = find(r, "]");
	if (rb < 0 || !parse_ip(mk(r.p, (size_t)rb), ip))
		return false;
	r = skip(r, (size_t)rb + 1);
	*port = 0;
	if (r.n && r.p[0] == ':' && r.n > 1 && isdigit((unsigned char)r.p[1])) {
		size_t k = 1;
		while (k < r.n && isdigit((unsigned char)r.p[k]))
			k++;
		unsigned v;
		if (parse_uint(mk(r.p + 1, k - 1), &v) && v < 65536)
			*port = v;
		r = skip(r, k);
	}
	*rest = r;
	return true;
}

static struct seen *seen_slot(struct seen *tab, const struct netaddr *ip, unsigned pid,
			      bool create)
{
	uint32_t h = 2166136261u ^ pid;
	for (size_t i = 0; i < 16; i++)
		h = (h ^ ip->a[i]) * 16777619u;
	struct seen *s = &tab[h % SEEN_SLOTS];
	if (s->used && s->pid == pid && netaddr_equal(&s->ip, ip))
		return s;
	if (!create)
		return NULL;
	s->used = true; /* a collision forgets the older address: at worst it counts twice */
	s->ip = *ip;
	s->pid = pid;
	s->count = 0;
	return s;
}

static void set_offence(struct log_obs *o, const char *kind, struct sl detail)
{
	o->kind = LOG_OFFENCE;
	o->offence = kind;
	copy_out(o->detail, sizeof(o->detail), detail);
}

static enum log_kind postscreen(struct sl msg, struct log_obs *o)
{
	static const struct { const char *lead; const char *kind; } forms[] = {
		{ "PREGREET ", "pregreet" }, { "DNSBL rank ", "dnsbl" },
		{ "HANGUP after ", "hangup" }, { "COMMAND PIPELINING ", "pipelining" },
		{ "NON-SMTP COMMAND ", "non_smtp" }, { "BARE NEWLINE ", "bare_newline" },
		{ "COMMAND TIME LIMIT ", "too_many_errors" },
		{ "COMMAND COUNT LIMIT ", "too_many_errors" },
		{ "COMMAND LENGTH LIMIT ", "too_many_errors" },
		{ "DENYLISTED ", "denylisted" }, { "BLACKLISTED ", "denylisted" },
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		if (!starts(msg, forms[i].lead))
			continue;
		/* the first "[" of the line starts the client: "from [ip]:port" / "for [ip]" /
		 * "DENYLISTED [ip]:port"; what the client said comes after it */
		long lb = find(msg, "[");
		if (lb < 0)
			return LOG_NONE;
		struct sl r = skip(msg, (size_t)lb);
		struct sl rest;
		/* "[ip]:port" has an empty name before the bracket */
		if (!take_host_ip(r, &o->ip, &o->port, &rest))
			return LOG_NONE;
		set_offence(o, forms[i].kind, rest.n && rest.p[0] == ':' ? skip(rest, 1) : rest);
		return LOG_OFFENCE;
	}
	return LOG_NONE;
}

static enum log_kind smtpd(struct logparse *lp, unsigned pid, struct sl msg, struct log_obs *o)
{
	struct sl rest;
	snprintf(o->service, sizeof(o->service), "smtp");
	if (starts(msg, "warning: ")) {
		struct sl w = skip(msg, 9);
		if (take_host_ip(w, &o->ip, &o->port, &rest) && starts(rest, ": SASL ")) {
			long af = find(rest, " authentication failed");
			if (af < 0)
				return LOG_NONE;
			long su = find(rest, ", sasl_username=");
			if (su >= 0)
				copy_out(o->username, sizeof(o->username), skip(rest, (size_t)su + 16));
			o->kind = LOG_AUTH_FAIL;
			o->attempts = 1;
			struct seen *s = seen_slot(lp->postfix, &o->ip, pid ? pid : 1, true);
			s->count++;
			return LOG_AUTH_FAIL;
		}
		if (starts(w, "non-SMTP command from ")) {
			if (!take_host_ip(skip(w, 22), &o->ip, &o->port, &rest))
				return LOG_NONE;
			set_offence(o, "non_smtp", rest.n && rest.p[0] == ':' ? skip(rest, 1) : rest);
			return LOG_OFFENCE;
		}
		static const char *const rl[] = { "Connection rate limit exceeded: ",
						   "Connection concurrency limit exceeded: ",
						   "AUTH command rate limit exceeded: ",
						   "Recipient address rate limit exceeded: " };
		for (size_t i = 0; i < 4; i++) {
			if (!starts(w, rl[i]))
				continue;
			long from = find(w, " from ");
			if (from < 0 || !take_host_ip(skip(w, (size_t)from + 6), &o->ip, &o->port, &rest))
				return LOG_NONE;
			set_offence(o, "rate_limit", mk(w.p, (size_t)from));
			return LOG_OFFENCE;
		}
		return LOG_NONE;
	}
	/* "NOQUEUE: reject: RCPT from host[ip]: 550 5.1.1 <rcpt>: Recipient address
	 * rejected: User unknown ..." (a queue id instead of NOQUEUE after MAIL) */
	/* the queue id (or NOQUEUE) is the first token: letters and digits only */
	size_t q = 0;
	while (q < msg.n && q <= 16 && isalnum((unsigned char)msg.p[q]))
		q++;
	long rj = q > 0 && starts(skip(msg, q), ": reject: RCPT from ") ? (long)q : -1;
	if (rj >= 0) {
		if (!take_host_ip(skip(msg, (size_t)rj + 20), &o->ip, &o->port, &rest) ||
		    !starts(rest, ": 550 5.1.1 <"))
			return LOG_NONE;
		struct sl r = skip(rest, 13);
		long end = find(r, ">: Recipient address rejected: User unknown");
		if (end < 0)
			return LOG_NONE;
		copy_out(o->recipient, sizeof(o->recipient), mk(r.p, (size_t)end));
		o->kind = LOG_RCPT_UNKNOWN;
		return LOG_RCPT_UNKNOWN;
	}
	if (starts(msg, "too many errors after ") || starts(msg, "improper command pipelining after ")) {
		long from = find(msg, " from ");
		if (from < 0 || !take_host_ip(skip(msg, (size_t)from + 6), &o->ip, &o->port, &rest))
			return LOG_NONE;
		set_offence(o, msg.p[0] == 't' ? "too_many_errors" : "pipelining", mk(msg.p, (size_t)from));
		return LOG_OFFENCE;
	}
	/* "disconnect from host[ip] ... auth=S/N ...": failures not logged as warnings
	 * (the client hung up in the middle of AUTH) */
	if (starts(msg, "disconnect from ")) {
		long a = find(msg, " auth=");
		if (a < 0)
			return LOG_NONE; /* no AUTH in that session: nothing was warned either */
		if (!take_host_ip(skip(msg, 16), &o->ip, &o->port, &rest))
			return LOG_NONE;
		a = find(rest, " auth=");
		struct seen *s = seen_slot(lp->postfix, &o->ip, pid ? pid : 1, false);
		unsigned warned = s ? s->count : 0;
		if (s)
			s->used = false;
		if (a < 0)
			return LOG_NONE;
		struct sl v = skip(rest, (size_t)a + 6);
		long slash = find(v, "/");
		long sp = find(v, " ");
		size_t vend = sp < 0 ? v.n : (size_t)sp;
		unsigned ok, tried;
		if (slash < 0 || (size_t)slash > vend || !parse_uint(mk(v.p, (size_t)slash), &ok) ||
		    !parse_uint(mk(v.p + slash + 1, vend - (size_t)slash - 1), &tried) || tried < ok)
			return LOG_NONE;
		unsigned failed = tried - ok;
		if (failed <= warned)
			return LOG_NONE;
		o->kind = LOG_AUTH_FAIL;
		o->attempts = failed - warned;
		return LOG_AUTH_FAIL;
	}
	return LOG_NONE;
}

/* ---- Dovecot ---- */

static const char *login_service(struct sl proc)
{
	static const struct { const char *proc; size_t len; const char *svc; } svc[] = {
		{ "imap-login", 10, "imap" }, { "pop3-login", 10, "pop3" },
		{ "submission-login", 16, "submission" }, { "managesieve-login", 17, "sieve" },
	};
	if (proc.n < 10 || proc.p[proc.n - 6] != '-')
		return NULL; /* every name ends in "-login" */
	for (size_t i = 0; i < sizeof(svc) / sizeof(svc[0]); i++)
		if (proc.n == svc[i].len && !memcmp(proc.p, svc[i].proc, proc.n))
			return svc[i].svc;
	return NULL;
}

/* A login process's line: "... (auth failed, N attempts in S secs) ...: user=<U>,
 * method=M, rip=IP, lip=IP, ..." (2.3: Disconnected/Aborted login; 2.4: Login
 * aborted: ... (auth_failed)). */
static enum log_kind dovecot_login(struct logparse *lp, const char *svc, struct sl msg,
				   struct log_obs *o)
{
	long af = find(msg, "(auth failed, ");
	long us = find(msg, ": user=<");
	if (af < 0 || us < 0 || af > us)
		return LOG_NONE;
	unsigned n;
	struct sl a = skip(msg, (size_t)af + 14);
	long sp = find(a, " attempt");
	if (sp < 0 || !parse_uint(mk(a.p, (size_t)sp), &n) || n == 0)
		return LOG_NONE;
	long rip = rfind(msg, ", rip=");
	if (rip < 0 || rip < us)
		return LOG_NONE;
	struct sl r = skip(msg, (size_t)rip + 6);
	long comma = find(r, ",");
	if (!parse_ip(mk(r.p, comma < 0 ? r.n : (size_t)comma), &o->ip))
		return LOG_NONE;
	struct sl u = mk(msg.p + us + 8, (size_t)(rip - us - 8));
	long gt = rfind(u, ">");
	if (gt >= 0)
		copy_out(o->username, sizeof(o->username), mk(u.p, (size_t)gt));
	snprintf(o->service, sizeof(o->service), "%s", svc);
	/* attempts the auth process logged already are not counted again */
	struct seen *s = seen_slot(lp->dovecot, &o->ip, 0, false);
	unsigned logged = s ? s->count : 0;
	if (s)
		s->used = false;
	if (n <= logged)
		return LOG_NONE;
	o->kind = LOG_AUTH_FAIL;
	o->attempts = n - logged;
	return LOG_AUTH_FAIL;
}

/* The auth process's "driver(user,ip[,<session>]): result", read from the end. */
static enum log_kind dovecot_auth(struct logparse *lp, struct sl msg, struct log_obs *o)
{
	static const char *const results[][2] = {
		{ "): unknown user", "0" },
		{ "): Password mismatch", "1" },
		{ "): pam_authenticate() failed: User not known to the underlying authentication module", "0" },
		{ "): pam_authenticate() failed: Authentication failure (Password mismatch?)", "1" },
		{ "): pam_authenticate() failed: Authentication failure", "1" },
		{ "): invalid credentials", "1" },
	};
	if (find(msg, "given password") >= 0)
		return LOG_NONE; /* never read a line carrying a password */
	long end = -1;
	int known = -1;
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]) && end < 0; i++) {
		if (ends(msg, results[i][0])) {
			end = (long)(msg.n - strlen(results[i][0]));
			known = results[i][1][0] - '0';
		}
	}
	if (end < 0)
		return LOG_NONE;
	static const char *const drivers[] = { "passwd-file(", "pam(", "shadow(", "passwd(",
					       "sql(", "ldap(", "checkpassword(", "static(",
					       "lua(", "bsdauth(" };
	long open = -1;
	size_t dl = 0;
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++) {
		long f = find(mk(msg.p, (size_t)end), drivers[i]);
		if (f >= 0 && (open < 0 || f < open)) {
			open = f;
			dl = strlen(drivers[i]);
		}
	}
	if (open < 0)
		return LOG_NONE;
	struct sl inner = mk(msg.p + open + dl, (size_t)(end - open - (long)dl));
	/* optional ",<session>" at the end */
	if (inner.n && inner.p[inner.n - 1] == '>') {
		long lt = rfind(inner, ",<");
		if (lt < 0)
			return LOG_NONE;
		inner.n = (size_t)lt;
	}
	long comma = rfind(inner, ",");
	if (comma < 0 || !parse_ip(skip(inner, (size_t)comma + 1), &o->ip))
		return LOG_NONE;
	copy_out(o->username, sizeof(o->username), mk(inner.p, (size_t)comma));
	o->user_known = known;
	o->kind = LOG_AUTH_FAIL;
	o->attempts = 1;
	struct seen *s = seen_slot(lp->dovecot, &o->ip, 0, true);
	s->count++;
	return LOG_AUTH_FAIL;
}

/* proc: the Dovecot process ("imap-login", "auth", "auth-worker"); msg after it. */
static enum log_kind dovecot(struct logparse *lp, struct sl proc, struct sl msg,
			     struct log_obs *o)
{
	static const char *const levels[] = { "Info: ", "Warning: ", "Error: ", "Debug: " };
	for (size_t i = 0; i < 4; i++)
		if (starts(msg, levels[i])) {
			msg = skip(msg, strlen(levels[i]));
			break;
		}
	o->origin = "dovecot_log";
	const char *svc = login_service(proc);
	if (svc)
		return dovecot_login(lp, svc, msg, o);
	if ((proc.n == 4 && !memcmp(proc.p, "auth", 4)) || starts(proc, "auth-worker"))
		return dovecot_auth(lp, msg, o);
	return LOG_NONE;
}

/* ---- entry points ---- */

static enum log_kind dispatch(struct logparse *lp, struct sl prog, unsigned pid, struct sl msg,
			      struct log_obs *o)
{
	struct sl daemon;
	if (is_postfix(prog, &daemon)) {
		o->origin = "postfix_log";
		if (daemon.n == 10 && !memcmp(daemon.p, "postscreen", 10))
			return postscreen(msg, o);
		if (daemon.n == 5 && !memcmp(daemon.p, "smtpd", 5))
			return smtpd(lp, pid, msg, o);
		return LOG_NONE;
	}
	if (prog.n == 7 && !memcmp(prog.p, "dovecot", 7)) {
		/* syslog or journal: "imap-login: ..." follows */
		struct sl proc, rest;
		unsigned p2;
		if (!take_program(msg, &proc, &p2, &rest))
			return LOG_NONE;
		if (proc.n > 11 && starts(proc, "auth-worker("))
			proc.n = 11;
		return dovecot(lp, proc, rest, o);
	}
	if (login_service(prog) || (prog.n == 4 && !memcmp(prog.p, "auth", 4)) ||
	    starts(prog, "auth-worker")) {
		if (starts(prog, "auth-worker"))
			prog.n = 11;
		return dovecot(lp, prog, msg, o); /* Dovecot's own log_path */
	}
	return LOG_NONE;
}

static void obs_init(struct log_obs *o)
{
	memset(o, 0, sizeof(*o));
	o->user_known = -1;
	o->attempts = 1;
}

enum log_kind logparse_line(struct logparse *lp, const char *line, size_t len,
			    struct log_obs *out)
{
	obs_init(out);
	if (len > LOGPARSE_LINE_MAX)
		return LOG_NONE;
	struct sl s = skip_timestamp(mk(line, len));
	if (!s.n)
		return LOG_NONE;
	struct sl prog, rest;
	unsigned pid;
	/* Dovecot's own log has no host: "imap-login: Info: ..." */
	if (!take_program(s, &prog, &pid, &rest) ||
	    !(login_service(prog) || starts(prog, "auth"))) {
		long sp = find(s, " ");
		if (sp <= 0 || !take_program(skip(s, (size_t)sp + 1), &prog, &pid, &rest))
			return LOG_NONE;
	}
	enum log_kind k = dispatch(lp, prog, pid, rest, out);
	if (k == LOG_NONE)
		obs_init(out);
	return k;
}

enum log_kind logparse_entry(struct logparse *lp, const char *ident, size_t ilen,
			     const char *msg, size_t mlen, struct log_obs *out)
{
	obs_init(out);
	if (mlen > LOGPARSE_LINE_MAX || ilen > 128)
		return LOG_NONE;
	enum log_kind k = dispatch(lp, mk(ident, ilen), 0, mk(msg, mlen), out);
	if (k == LOG_NONE)
		obs_init(out);
	return k;
}

struct logparse *logparse_new(void)
{
	return calloc(1, sizeof(struct logparse));
}

void logparse_free(struct logparse **lp)
{
	if (lp && *lp) {
		free(*lp);
		*lp = NULL;
	}
}
