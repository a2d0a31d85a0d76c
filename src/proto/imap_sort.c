/*
 * imap_sort: SORT (RFC 5256, with SORT=DISPLAY of RFC 5957 and ESORT's RETURN) and
 * THREAD over the selected folder, answered as Dovecot 2.3 does.
 *
 * What a client gets: SORT by ARRIVAL, DATE, SIZE, SUBJECT (the RFC 5256 base subject,
 * without MIME-word decoding), FROM/TO/CC (the first address's mailbox), DISPLAYFROM/
 * DISPLAYTO and X-SCORE (all equal), with REVERSE; ties by sequence number.
 * THREAD=ORDEREDSUBJECT groups by base subject as Dovecot does; THREAD=REFERENCES and
 * REFS return every message as its own thread (no In-Reply-To/References linking),
 * ordered by date.  DATE is the internal date (as the SENT* search keys are).
 *
 * Promises: the messages come from imap_search_run (its bounds apply); the keys held
 * per message are bounded (KEY_MAX bytes each); nothing here changes the mailbox.
 */
#include "proto/imap_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KEY_MAX 512       /* bytes of a header value used as a sort key */
#define PROGRAM_MAX 10    /* distinct sort keys (Dovecot's MAX_SORT_PROGRAM_SIZE - 1) */

enum sort_key {
	SK_ARRIVAL,
	SK_CC,
	SK_DATE,
	SK_FROM,
	SK_SIZE,
	SK_SUBJECT,
	SK_TO,
	SK_SCORE,
	SK_DISPLAYFROM,
	SK_DISPLAYTO,
	SK_N,
};

static const char *const key_names[SK_N] = {
	"arrival", "cc", "date", "from", "size", "subject", "to", "x-score", "displayfrom",
	"displayto",
};

struct sort_item {
	uint32_t seq;
	uint32_t id;          /* what is answered: seq or UID */
	int64_t date;
	size_t size;
	char *str[SK_N];      /* string keys (upper-cased), NULL when not asked */
};

struct program {
	enum sort_key key[PROGRAM_MAX];
	bool reverse[PROGRAM_MAX];
	int n;
};

/* ------------------------------------------------------------- sort keys --- */

static void upcase(char *p)
{
	for (; *p; p++)
		*p = (char)toupper((unsigned char)*p);
}

/* RFC 5256 2.1 base subject (without the MIME decoding step), in place. */
static void base_subject(char *s)
{
	/* (1) runs of white space become one space */
	size_t o = 0;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i] == '\t' ? ' ' : s[i];
		if (c == ' ' && (o == 0 || s[o - 1] == ' '))
			continue;
		s[o++] = c;
	}
	s[o] = '\0';
	for (;;) {
		/* (2) trailing "(fwd)" and white space */
		size_t l = strlen(s);
		for (;;) {
			if (l > 0 && s[l - 1] == ' ')
				l--;
			else if (l >= 5 && strncasecmp(s + l - 5, "(fwd)", 5) == 0)
				l -= 5;
			else
				break;
		}
		s[l] = '\0';
		/* (3)/(4) leading "re:", "fw:", "fwd:" (with a [blob]) and [blob]s */
		char *p = s;
		for (bool again = true; again;) {
			again = false;
			while (*p == ' ')
				p++;
			char *q = p;
			if (strncasecmp(q, "re", 2) == 0)
				q += 2;
			else if (strncasecmp(q, "fwd", 3) == 0)
				q += 3;
			else if (strncasecmp(q, "fw", 2) == 0)
				q += 2;
			if (q != p) {
				while (*q == ' ')
					q++;
				if (*q == '[') {
					char *e = strchr(q, ']');
					if (e)
						q = e + 1;
				}
				if (*q == ':') {
					p = q + 1;
					again = true;
					continue;
				}
			}
			if (*p == '[') {
				char *e = strchr(p, ']');
				if (e && e[1 + strspn(e + 1, " ")] != '\0') {
					p = e + 1;
					again = true;
				}
			}
		}
		memmove(s, p, strlen(p) + 1);
		/* (6) "[fwd: ... ]" */
		l = strlen(s);
		if (l >= 6 && strncasecmp(s, "[fwd:", 5) == 0 && s[l - 1] == ']') {
			s[l - 1] = '\0';
			memmove(s, s + 5, l - 5);
			continue;
		}
		break;
	}
	upcase(s);
}

/* The first address of a header value: its mailbox (local part) or, for the display
 * keys, its display name or else its addr-spec. */
static void first_address(const char *v, bool display, char *out, size_t outlen)
{
	out[0] = '\0';
	/* the first address ends at a ',' outside quotes and <> */
	const char *lt = NULL, *end = v;
	bool quoted = false, angle = false;
	for (; *end; end++) {
		if (*end == '"' && (end == v || end[-1] != '\\'))
			quoted = !quoted;
		else if (!quoted && *end == '<' && !lt)
			lt = end, angle = true;
		else if (!quoted && *end == '>')
			angle = false;
		else if (!quoted && !angle && *end == ',')
			break;
	}
	const char *spec = lt ? lt + 1 : v;
	while (*spec == ' ')
		spec++;
	size_t sl = strcspn(spec, lt ? ">" : " ,(");
	if ((size_t)(end - spec) < sl)
		sl = (size_t)(end - spec);
	if (display && lt) {
		const char *d = v;
		while (d < lt && (*d == ' ' || *d == '"'))
			d++;
		const char *de = lt;
		while (de > d && (de[-1] == ' ' || de[-1] == '"'))
			de--;
		if (de > d) {
			snprintf(out, outlen, "%.*s", (int)(de - d), d);
			upcase(out);
			return;
		}
	}
	if (!display) {
		const char *at = memchr(spec, '@', sl);
		if (at)
			sl = (size_t)(at - spec);
	}
	snprintf(out, outlen, "%.*s", (int)sl, spec);
	upcase(out);
}

static bool program_has(const struct program *pg, enum sort_key k)
{
	for (int i = 0; i < pg->n; i++)
		if (pg->key[i] == k)
			return true;
	return false;
}

/* Fill the keys the program (or a THREAD) needs.  false: out of memory. */
static bool item_keys(struct sort_item *it, const struct mbox_msg *m, const bool want[SK_N])
{
	static const char *const field[SK_N] = {
		[SK_CC] = "Cc", [SK_FROM] = "From", [SK_SUBJECT] = "Subject", [SK_TO] = "To",
		[SK_DISPLAYFROM] = "From", [SK_DISPLAYTO] = "To",
	};
	it->date = m->internaldate;
	it->size = m->size;
	size_t hl;
	imap_split_message(m->data, m->size, &hl);
	for (int k = 0; k < SK_N; k++) {
		if (!want[k] || !field[k])
			continue;
		char v[KEY_MAX], key[KEY_MAX];
		if (!imap_header_get(m->data, hl, field[k], v, sizeof(v)))
			v[0] = '\0';
		if (k == SK_SUBJECT) {
			base_subject(v);
			snprintf(key, sizeof(key), "%s", v);
		} else {
			first_address(v, k == SK_DISPLAYFROM || k == SK_DISPLAYTO, key, sizeof(key));
		}
		it->str[k] = strdup(key);
		if (!it->str[k])
			return false;
	}
	return true;
}

static void items_free(struct sort_item *items, long n)
{
	for (long i = 0; items && i < n; i++)
		for (int k = 0; k < SK_N; k++)
			free(items[i].str[k]);
	free(items);
}

/* The matching messages with their keys, or NULL (and -1 in *n_r) after answering. */
static struct sort_item *collect(struct imap_session *s, const char *name,
				 const struct imap_arg *keys, bool uid, const bool want[SK_N],
				 long *n_r)
{
	uint32_t *seqs;
	long n = imap_search_run(s, name, keys, &seqs);
	*n_r = -1;
	if (n < 0)
		return NULL;
	struct sort_item *items = calloc((size_t)n + 1, sizeof(*items));
	bool ok = items != NULL;
	for (long i = 0; ok && i < n; i++) {
		const struct mbox_msg *m = &s->sel->msgs[seqs[i] - 1];
		items[i].seq = seqs[i];
		items[i].id = uid ? m->uid : seqs[i];
		ok = item_keys(&items[i], m, want);
	}
	free(seqs);
	if (!ok) {
		items_free(items, n);
		imap_tagged(s, "NO", "[SERVERBUG] Internal error occurred.");
		return NULL;
	}
	*n_r = n;
	return items;
}

static int cmp_num(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int cmp_key(const struct sort_item *a, const struct sort_item *b, enum sort_key k)
{
	switch (k) {
	case SK_ARRIVAL:
	case SK_DATE:
		return cmp_num(a->date, b->date);
	case SK_SIZE:
		return cmp_num((int64_t)a->size, (int64_t)b->size);
	case SK_SCORE:
		return 0;
	default:
		return strcmp(a->str[k], b->str[k]);
	}
}

static int cmp_program(const void *x, const void *y, void *arg)
{
	const struct sort_item *a = x, *b = y;
	const struct program *pg = arg;
	for (int i = 0; i < pg->n; i++) {
		int r = cmp_key(a, b, pg->key[i]);
		if (r != 0)
			return pg->reverse[i] ? -r : r;
	}
	return cmp_num(a->seq, b->seq);
}

/* ------------------------------------------------------------------ SORT --- */

/* Dovecot's get_sort_program(): 0, or -1 after answering. */
static int parse_program(struct imap_session *s, const char *name, const struct imap_arg *list,
			 struct program *pg)
{
	pg->n = 0;
	if (!list->child) {
		imap_cmd_error(s, name, "Empty sort program.");
		return -1;
	}
	bool reverse = false, last_reverse = false;
	const struct imap_arg *a = list->child;
	for (; a && a->type != IMAP_ARG_LIST; a = a->next) {
		const char *k;
		size_t kl;
		if (!imap_arg_astring(a, &k, &kl))
			break;
		last_reverse = strcasecmp(k, "reverse") == 0;
		if (last_reverse) {
			reverse = !reverse;
			continue;
		}
		int i = 0;
		while (i < SK_N && strcasecmp(k, key_names[i]) != 0)
			i++;
		if (i == SK_N) {
			char shown[80], msg[128];
			session_printable(shown, sizeof(shown), k, kl);
			snprintf(msg, sizeof(msg), "Unknown sort argument: %s", shown);
			imap_cmd_error(s, name, msg);
			return -1;
		}
		if (!program_has(pg, (enum sort_key)i)) {
			pg->key[pg->n] = (enum sort_key)i;
			pg->reverse[pg->n++] = reverse;
		}
		reverse = false;
	}
	if (last_reverse) {
		imap_cmd_error(s, name, "Sort list ends with REVERSE.");
		return -1;
	}
	if (a) {
		imap_cmd_error(s, name, "Invalid sort list argument.");
		return -1;
	}
	return 0;
}

int imap_do_sort(struct imap_session *s, const char *name, const struct imap_arg *args,
		 bool uid)
{
	const struct imap_arg *a = args;
	unsigned opts;
	if (imap_search_return_parse(s, name, &a, &opts) < 0)
		return 0;
	if (!a || a->type != IMAP_ARG_LIST) {
		imap_cmd_error(s, name, "Invalid sort argument.");
		return 0;
	}
	struct program pg;
	if (parse_program(s, name, a, &pg) < 0)
		return 0;
	a = a->next;
	const char *cs;
	size_t csl;
	if (!a || a->type == IMAP_ARG_LIST || !imap_arg_astring(a, &cs, &csl)) {
		imap_cmd_error(s, name, "Invalid charset argument.");
		return 0;
	}
	if (!imap_search_charset_ok(s, cs))
		return 0;
	bool want[SK_N] = {false};
	for (int i = 0; i < pg.n; i++)
		want[pg.key[i]] = true;
	long n;
	struct sort_item *items = collect(s, name, a->next, uid, want, &n);
	if (!items)
		return 0;
	qsort_r(items, (size_t)n, sizeof(*items), cmp_program, &pg);
	if (opts) {
		uint32_t *ids = malloc(((size_t)n + 1) * sizeof(*ids));
		if (!ids) {
			items_free(items, n);
			imap_tagged(s, "NO", "[SERVERBUG] Internal error occurred.");
			return 0;
		}
		for (long i = 0; i < n; i++)
			ids[i] = items[i].id;
		imap_esearch_reply(s, opts, uid, ids, n);
		free(ids);
	} else {
		struct buf b;
		buf_init(&b, 0);
		buf_puts(&b, "* SORT");
		for (long i = 0; i < n; i++)
			buf_printf(&b, " %u", items[i].id);
		buf_puts(&b, "\r\n");
		imap_out_raw(s, b.data, b.len);
		buf_free(&b);
	}
	items_free(items, n);
	imap_tagged(s, "OK", "Sort completed.");
	return 0;
}

int imap_cmd_sort(struct imap_session *s, struct imap_command *c)
{
	return imap_do_sort(s, "SORT", c->args, false);
}

/* ---------------------------------------------------------------- THREAD --- */

/* ORDEREDSUBJECT: messages in (base subject, date) order; each run with one base
 * subject is a thread, "(a)", "(a b)" or "(a (b)(c))"; threads by their first
 * message's date, then its number. */
struct thread_run {
	long first, count;
};


static int cmp_run(const void *x, const void *y, void *arg)
{
	const struct thread_run *a = x, *b = y;
	const struct sort_item *items = arg;
	int r = cmp_num(items[a->first].date, items[b->first].date);
	return r ? r : cmp_num(items[a->first].id, items[b->first].id);
}

static bool thread_orderedsubject(struct buf *b, struct sort_item *items, long n)
{
	struct program pg = {.key = {SK_SUBJECT, SK_DATE}, .n = 2};
	qsort_r(items, (size_t)n, sizeof(*items), cmp_program, &pg);
	struct thread_run *runs = calloc((size_t)n + 1, sizeof(*runs));
	if (!runs)
		return false;
	long nr = 0;
	for (long i = 0; i < n; i++) {
		if (i == 0 || strcmp(items[i].str[SK_SUBJECT], items[i - 1].str[SK_SUBJECT]) != 0)
			runs[nr++] = (struct thread_run){.first = i};
		runs[nr - 1].count++;
	}
	qsort_r(runs, (size_t)nr, sizeof(*runs), cmp_run, items);
	for (long r = 0; r < nr; r++) {
		const struct sort_item *t = &items[runs[r].first];
		if (runs[r].count == 1) {
			buf_printf(b, "(%u)", t[0].id);
		} else if (runs[r].count == 2) {
			buf_printf(b, "(%u %u)", t[0].id, t[1].id);
		} else {
			buf_printf(b, "(%u ", t[0].id);
			for (long i = 1; i < runs[r].count; i++)
				buf_printf(b, "(%u)", t[i].id);
			buf_putc(b, ')');
		}
	}
	free(runs);
	return true;
}

int imap_do_thread(struct imap_session *s, const char *name, const struct imap_arg *args,
		   bool uid)
{
	const char *alg, *cs;
	size_t al, csl;
	if (!args || !imap_arg_astring(args, &alg, &al) || !args->next ||
	    !imap_arg_astring(args->next, &cs, &csl)) {
		imap_cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	bool ordered = strcasecmp(alg, "ORDEREDSUBJECT") == 0;
	if (!ordered && strcasecmp(alg, "REFERENCES") != 0 && strcasecmp(alg, "REFS") != 0) {
		imap_cmd_error(s, name, "Unknown thread algorithm.");
		return 0;
	}
	if (!imap_search_charset_ok(s, cs))
		return 0;
	bool want[SK_N] = {[SK_SUBJECT] = ordered};
	long n;
	struct sort_item *items = collect(s, name, args->next->next, uid, want, &n);
	if (!items)
		return 0;
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, "* THREAD ");
	bool ok = true;
	if (ordered) {
		ok = thread_orderedsubject(&b, items, n);
	} else {
		struct program pg = {.key = {SK_DATE}, .n = 1};
		qsort_r(items, (size_t)n, sizeof(*items), cmp_program, &pg);
		for (long i = 0; i < n; i++)
			buf_printf(&b, "(%u)", items[i].id);
	}
	items_free(items, n);
	if (!ok) {
		buf_free(&b);
		imap_tagged(s, "NO", "[SERVERBUG] Internal error occurred.");
		return 0;
	}
	buf_puts(&b, "\r\n");
	imap_out_raw(s, b.data, b.len);
	buf_free(&b);
	imap_tagged(s, "OK", "Thread completed.");
	return 0;
}

int imap_cmd_thread(struct imap_session *s, struct imap_command *c)
{
	return imap_do_thread(s, "THREAD", c->args, false);
}
