/*
 * imap_search: SEARCH / UID SEARCH over the selected folder: the RFC 3501 keys
 * (flags, dates, sizes, header and text matches, sets, NOT/OR and parenthesised lists),
 * the matching messages for SORT and THREAD (imap_search_run), and RFC 4731 ESEARCH
 * replies for RETURN (MIN MAX ALL COUNT) as Dovecot orders them.
 *
 * Promises: nesting is bounded (SEARCH_MAX_DEPTH), one SEARCH scans at most
 * SEARCH_SCAN_MAX bytes of text, and a malformed key is answered as Dovecot does.
 */
#include "proto/imap_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEARCH_MAX_DEPTH 32

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
	imap_split_message(m->data, m->size, &hl);
	size_t pos = 0, nl, fl;
	const char *n, *f;
	size_t want = strlen(field);
	while (imap_next_field(m->data, hl, &pos, &n, &nl, &f, &fl)) {
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
					imap_split_message(m->data, m->size, &hl);
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
			session_printable(field, sizeof(field), f, fl);
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
		if (imap_set_arg(*ap, &v, &vl) < 0 || imap_seqset_parse(v, vl, &ss) < 0) {
			x->error = "Invalid uidset";
		} else {
			*ap = (*ap)->next;
			uint32_t n = imap_n_msgs(x->s);
			uint32_t star = n ? x->s->sel->msgs[n - 1].uid : 0;
			r = m && imap_seqset_contains(&ss, m->uid, star);
		}
	} else if ((k[0] >= '1' && k[0] <= '9') || k[0] == '*') {
		struct imap_seqset ss;
		if (imap_seqset_parse(k, a->len, &ss) < 0)
			x->error = "Invalid messageset";
		else
			r = m && imap_seqset_contains(&ss, seq, imap_n_msgs(x->s));
	} else {
		x->error = "Unknown argument";
	}
	x->depth--;
	return r && m;
}

/* A charset argument: usable (true) or answered with Dovecot's NO. */
bool imap_search_charset_ok(struct imap_session *s, const char *cs)
{
	if (strcasecmp(cs, "UTF-8") != 0 && strcasecmp(cs, "US-ASCII") != 0) {
		imap_tagged(s, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unknown charset");
		return false;
	}
	return true;
}

long imap_search_run(struct imap_session *s, const char *name, const struct imap_arg *a,
		     uint32_t **seqs_r)
{
	*seqs_r = NULL;
	if (!a) {
		imap_cmd_error(s, name, "Missing search parameters");
		return -1;
	}
	/* syntax first (no message) */
	struct search_ctx x = {.s = s};
	for (const struct imap_arg *it = a; it && !x.error;)
		search_key(&x, &it, NULL, 0);
	if (x.error) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s", x.error);
		imap_cmd_error(s, name, msg);
		return -1;
	}
	uint32_t n = imap_n_msgs(s);
	uint32_t *seqs = malloc(((size_t)n + 1) * sizeof(*seqs));
	if (!seqs) {
		imap_tagged(s, "NO", "[SERVERBUG] Internal error occurred.");
		return -1;
	}
	long k = 0;
	for (uint32_t i = 1; i <= n; i++) {
		const struct mbox_msg *m = &s->sel->msgs[i - 1];
		bool all = true;
		for (const struct imap_arg *it = a; it && !x.error;)
			all = search_key(&x, &it, m, i) && all;
		if (all)
			seqs[k++] = i;
		if (x.over_budget)
			break;
	}
	if (x.over_budget) {
		free(seqs);
		imap_tagged(s, "NO", "[LIMIT] Search too complex, use fewer search keys.");
		return -1;
	}
	*seqs_r = seqs;
	return k;
}

/* RETURN (...) options: 0 and *opts_r set, or -1 after answering the error. */
static int return_options(struct imap_session *s, const char *name,
			  const struct imap_arg *list, unsigned *opts_r)
{
	unsigned o = 0;
	for (const struct imap_arg *it = list->child; it; it = it->next) {
		if (it->type != IMAP_ARG_ATOM) {
			imap_cmd_error(s, name, "SEARCH return options contain non-atoms.");
			return -1;
		}
		if (imap_arg_is_atom(it, "MIN"))
			o |= IMAP_RETURN_MIN;
		else if (imap_arg_is_atom(it, "MAX"))
			o |= IMAP_RETURN_MAX;
		else if (imap_arg_is_atom(it, "ALL"))
			o |= IMAP_RETURN_ALL;
		else if (imap_arg_is_atom(it, "COUNT"))
			o |= IMAP_RETURN_COUNT;
		else if (!imap_arg_is_atom(it, "CONTEXT")) { /* CONTEXT: a no-op in Dovecot */
			imap_cmd_error(s, name, "Unknown SEARCH return option");
			return -1;
		}
	}
	*opts_r = o ? o : IMAP_RETURN_ALL;
	return 0;
}

int imap_search_return_parse(struct imap_session *s, const char *name,
			     const struct imap_arg **ap, unsigned *opts_r)
{
	const struct imap_arg *a = *ap;
	*opts_r = 0;
	if (!a || !imap_arg_is_atom(a, "RETURN") || !a->next || a->next->type != IMAP_ARG_LIST)
		return 0;
	if (return_options(s, name, a->next, opts_r) < 0)
		return -1;
	*ap = a->next->next;
	return 0;
}

/* Dovecot's imap_write_seq_range(): runs of consecutive ids as "a:b", in the order
 * given (a SORT result stays in sort order). */
static void put_id_ranges(struct buf *b, const uint32_t *ids, long n)
{
	for (long i = 0; i < n;) {
		long j = i;
		while (j + 1 < n && ids[j + 1] == ids[j] + 1)
			j++;
		buf_printf(b, "%s%u", i ? "," : "", ids[i]);
		if (j > i)
			buf_printf(b, ":%u", ids[j]);
		i = j + 1;
	}
}

void imap_esearch_reply(struct imap_session *s, unsigned opts, bool uid, const uint32_t *ids,
			long n)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "* ESEARCH (TAG ");
	imap_put_string(&b, s->tag);
	buf_putc(&b, ')');
	if (uid)
		buf_puts(&b, " UID");
	if (n > 0) {
		if (opts & IMAP_RETURN_MIN)
			buf_printf(&b, " MIN %u", ids[0]);
		if (opts & IMAP_RETURN_MAX)
			buf_printf(&b, " MAX %u", ids[n - 1]);
		if (opts & IMAP_RETURN_ALL) {
			buf_puts(&b, " ALL ");
			put_id_ranges(&b, ids, n);
		}
	}
	if (opts & IMAP_RETURN_COUNT)
		buf_printf(&b, " COUNT %ld", n);
	buf_puts(&b, "\r\n");
	imap_out_raw(s, b.data, b.len);
	buf_free(&b);
}

int imap_do_search(struct imap_session *s, const char *name, const struct imap_arg *args,
		   bool uid)
{
	const struct imap_arg *a = args;
	unsigned opts;
	if (imap_search_return_parse(s, name, &a, &opts) < 0)
		return 0;
	if (a && imap_arg_is_atom(a, "RETURN")) {
		imap_cmd_error(s, name, "Unknown argument RETURN");
		return 0;
	}
	if (a && imap_arg_is_atom(a, "CHARSET")) {
		const char *cs;
		size_t csl;
		if (!imap_arg_astring(a->next, &cs, &csl)) {
			imap_cmd_error(s, name, "Invalid arguments.");
			return 0;
		}
		if (!imap_search_charset_ok(s, cs))
			return 0;
		a = a->next->next;
	}
	uint32_t *seqs;
	long k = imap_search_run(s, name, a, &seqs);
	if (k < 0)
		return 0;
	if (uid)
		for (long i = 0; i < k; i++)
			seqs[i] = s->sel->msgs[seqs[i] - 1].uid;
	if (opts) {
		imap_esearch_reply(s, opts, uid, seqs, k);
	} else {
		struct buf b;
		buf_init(&b, 0);
		buf_puts(&b, "* SEARCH");
		for (long i = 0; i < k; i++)
			buf_printf(&b, " %u", seqs[i]);
		buf_puts(&b, "\r\n");
		imap_out_raw(s, b.data, b.len);
		buf_free(&b);
	}
	free(seqs);
	imap_tagged(s, "OK", "Search completed.");
	return 0;
}

int imap_cmd_search(struct imap_session *s, struct imap_command *c)
{
	return imap_do_search(s, "SEARCH", c->args, false);
}
