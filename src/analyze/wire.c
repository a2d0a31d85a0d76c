/* wire: encoding and bounded decoding of the worker's messages (see wire.h). */
#include "analyze/wire.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>


#define KIND_RESULT 1
#define KIND_REQUEST 2
#define NULL_LEN 0xffffffffu

/* ---- encoding ---- */

static void put_u32(struct buf *o, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8),
			       (unsigned char)(v >> 16), (unsigned char)(v >> 24) };
	buf_append(o, b, 4);
}

static void put_u64(struct buf *o, uint64_t v)
{
	put_u32(o, (uint32_t)v);
	put_u32(o, (uint32_t)(v >> 32));
}

static void put_i32(struct buf *o, int v)
{
	put_u32(o, (uint32_t)v);
}

static void put_mem(struct buf *o, const char *s, size_t n)
{
	put_u32(o, (uint32_t)n);
	buf_append(o, s, n);
}

/* Strings longer than WIRE_STR_MAX are cut (the decoder would refuse them). */
static void put_str(struct buf *o, const char *s)
{
	if (!s) {
		put_u32(o, NULL_LEN);
		return;
	}
	size_t n = strlen(s);
	put_mem(o, s, n > WIRE_STR_MAX ? WIRE_STR_MAX : n);
}

static void put_head(struct buf *o, unsigned kind)
{
	buf_append(o, "MXAW", 4);
	buf_putc(o, (char)WIRE_VERSION);
	buf_putc(o, (char)kind);
}

int wire_encode_result(const struct analysis *a, struct buf *o)
{
	size_t start = o->len;
	put_head(o, KIND_RESULT);
	const char *strs[] = { a->subject, a->from, a->to, a->date, a->message_id,
			       a->env_from, a->from_addr, a->from_name, a->reply_to,
			       a->return_path, a->msgid_domain, a->x_mailer, a->user_agent,
			       a->client_ip, a->helo, a->auth_user };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		put_str(o, strs[i]);
	put_u32(o, (uint32_t)a->n_parts);
	for (size_t i = 0; i < a->n_parts; i++) {
		const struct an_part *p = &a->parts[i];
		put_i32(o, p->index);
		put_i32(o, p->parent);
		put_u32(o, p->depth);
		put_str(o, p->content_type);
		put_str(o, p->charset);
		put_str(o, p->encoding);
		put_str(o, p->disposition);
		put_str(o, p->filename);
		put_u64(o, p->size);
		buf_putc(o, p->truncated ? 1 : 0);
	}
	put_u32(o, (uint32_t)a->n_links);
	for (size_t i = 0; i < a->n_links; i++) {
		const struct an_link *l = &a->links[i];
		put_str(o, l->raw);
		put_str(o, l->norm);
		put_str(o, l->host);
		put_str(o, l->host_unicode);
		put_str(o, l->domain);
		put_str(o, l->display_host);
		put_i32(o, l->parent);
		put_u32(o, l->where);
		put_u32(o, l->flags);
		put_i32(o, l->part);
	}
	put_u32(o, (uint32_t)a->n_rcpts);
	for (size_t i = 0; i < a->n_rcpts; i++) {
		put_str(o, a->rcpts[i].addr);
		put_str(o, a->rcpts[i].name);
		put_u32(o, a->rcpts[i].src);
	}
	put_u32(o, (uint32_t)a->n_atts);
	for (size_t i = 0; i < a->n_atts; i++) {
		const struct an_attachment *t = &a->atts[i];
		put_i32(o, t->part);
		put_str(o, t->filename);
		put_str(o, t->declared);
		put_str(o, t->detected);
		put_u64(o, t->size);
		put_str(o, t->sha256);
		put_str(o, t->md5);
		size_t nm = 0;
		while (t->members && t->members[nm])
			nm++;
		put_u32(o, t->members ? (uint32_t)nm : NULL_LEN);
		for (size_t k = 0; k < nm; k++)
			put_str(o, t->members[k]);
		put_u32(o, (uint32_t)t->n_mdet);
		for (size_t k = 0; k < t->n_mdet; k++) {
			const struct an_member *m = &t->mdet[k];
			put_str(o, m->name);
			put_u64(o, m->size);
			put_str(o, m->sha256);
			buf_putc(o, (char)((m->encrypted ? 1 : 0) | (m->truncated ? 2 : 0)));
		}
	}
	put_u32(o, (uint32_t)a->n_findings);
	for (size_t i = 0; i < a->n_findings; i++) {
		put_str(o, a->findings[i].kind);
		put_str(o, a->findings[i].detail);
	}
	put_u64(o, a->text.len);
	buf_append(o, a->text.data, a->text.len);
	put_str(o, a->msg_sha256);
	put_str(o, a->body_sha256);
	for (size_t i = 0; i < AN_MINHASH; i++)
		put_u64(o, a->minhash[i]);
	put_u64(o, a->n_shingles);
	for (size_t i = 0; i < AN_MINHASH; i++)
		put_u64(o, a->minhash_w[i]);
	put_u64(o, a->n_words);
	put_str(o, a->template_key);
	put_u64(o, a->size);
	if (o->len - start > WIRE_RESULT_MAX) /* cannot be decoded: say so here */
		return -1;
	return 0;
}

int wire_encode_request(const struct an_envelope *env, const struct analyze_limits *lim,
			struct buf *o)
{
	put_head(o, KIND_REQUEST);
	put_u64(o, lim->max_depth);
	put_u64(o, lim->max_parts);
	put_u64(o, lim->max_decoded);
	put_u64(o, lim->max_text);
	put_u64(o, lim->max_links);
	put_u64(o, lim->max_recipients);
	buf_putc(o, env ? 1 : 0);
	if (env) {
		put_str(o, env->sender);
		put_str(o, env->client_ip);
		put_str(o, env->helo);
		put_str(o, env->auth_user);
		size_t n = env->n_recipients > WIRE_ENV_RCPTS_MAX ? WIRE_ENV_RCPTS_MAX
								   : env->n_recipients;
		put_u32(o, (uint32_t)n);
		for (size_t i = 0; i < n; i++)
			put_str(o, env->recipients[i]);
	}
	return 0;
}

/* ---- decoding: a cursor that fails once and stays failed ---- */

struct rd {
	const unsigned char *p, *end;
	const char *err;
};

static bool fail(struct rd *r, const char *why)
{
	if (!r->err)
		r->err = why;
	return false;
}

static bool need(struct rd *r, size_t n)
{
	if (r->err)
		return false;
	if ((size_t)(r->end - r->p) < n)
		return fail(r, "truncated");
	return true;
}

static uint32_t get_u32(struct rd *r)
{
	if (!need(r, 4))
		return 0;
	uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
		     (uint32_t)r->p[3] << 24;
	r->p += 4;
	return v;
}

static uint64_t get_u64(struct rd *r)
{
	uint64_t lo = get_u32(r);
	return lo | (uint64_t)get_u32(r) << 32;
}

static unsigned get_u8(struct rd *r)
{
	if (!need(r, 1))
		return 0;
	return *r->p++;
}

/* An int that must lie in [lo, hi]. */
static int get_int(struct rd *r, int64_t lo, int64_t hi, const char *what)
{
	int v = (int)(int32_t)get_u32(r);
	if (!r->err && (v < lo || v > hi))
		fail(r, what);
	return v;
}

/* A count at most max, of elements that take at least min_size bytes each: what is
 * allocated for them is bounded by the input's length, not by the count it claims. */
static size_t get_count(struct rd *r, size_t max, size_t min_size, const char *what)
{
	uint32_t n = get_u32(r);
	if (r->err)
		return 0;
	if (n > max) {
		fail(r, what);
		return 0;
	}
	if ((size_t)n > (size_t)(r->end - r->p) / min_size) {
		fail(r, "truncated");
		return 0;
	}
	return n;
}

/* A string of at most max bytes without NUL, or NULL (allowed when nullable). */
static char *get_str_max(struct rd *r, size_t max, bool nullable)
{
	uint32_t n = get_u32(r);
	if (r->err)
		return NULL;
	if (n == NULL_LEN) {
		if (!nullable)
			fail(r, "missing string");
		return NULL;
	}
	if (n > max) {
		fail(r, "string too long");
		return NULL;
	}
	if (!need(r, n))
		return NULL;
	if (memchr(r->p, 0, n)) {
		fail(r, "NUL in a string");
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (!s) {
		fail(r, "out of memory");
		return NULL;
	}
	memcpy(s, r->p, n);
	s[n] = 0;
	r->p += n;
	return s;
}

static char *get_str(struct rd *r)
{
	return get_str_max(r, WIRE_STR_MAX, true);
}

/* A hex digest into out (len + 1 bytes): empty, or exactly len lower-case hex digits. */
static void get_hex(struct rd *r, char *out, size_t len)
{
	out[0] = 0;
	char *s = get_str_max(r, len, false);
	if (!s)
		return;
	size_t n = strlen(s);
	bool ok = n == 0 || n == len;
	for (size_t i = 0; ok && i < n; i++)
		ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
	if (ok)
		memcpy(out, s, n + 1);
	else
		fail(r, "bad digest");
	free(s);
}

static bool head(struct rd *r, unsigned kind)
{
	if (!need(r, 6))
		return false;
	if (memcmp(r->p, "MXAW", 4) != 0)
		return fail(r, "bad magic");
	if (r->p[4] != WIRE_VERSION)
		return fail(r, "unknown version");
	if (r->p[5] != kind)
		return fail(r, "wrong kind");
	r->p += 6;
	return true;
}

/* calloc of n elements, n already bounded; NULL for 0. */
static void *alloc_n(struct rd *r, size_t n, size_t size)
{
	if (r->err || n == 0)
		return NULL;
	void *p = calloc(n, size);
	if (!p)
		fail(r, "out of memory");
	return p;
}

static void decode_parts(struct rd *r, struct analysis *a, const struct analyze_limits *lim)
{
	size_t n = get_count(r, lim->max_parts, 41, "too many parts");
	a->parts = alloc_n(r, n, sizeof(*a->parts));
	for (size_t i = 0; i < n && !r->err; i++) {
		struct an_part *p = &a->parts[i];
		a->n_parts = i + 1;
		p->index = get_int(r, (int64_t)i, (int64_t)i, "part index out of order");
		p->parent = get_int(r, -1, (int64_t)i - 1, "part parent out of range");
		p->depth = get_u32(r);
		if (!r->err && p->depth > lim->max_depth + 1)
			fail(r, "part too deep");
		p->content_type = get_str(r);
		p->charset = get_str(r);
		p->encoding = get_str(r);
		p->disposition = get_str(r);
		p->filename = get_str(r);
		p->size = get_u64(r);
		unsigned t = get_u8(r);
		if (t > 1)
			fail(r, "bad flag");
		p->truncated = t == 1;
	}
}

static void decode_links(struct rd *r, struct analysis *a, const struct analyze_limits *lim)
{
	size_t n = get_count(r, lim->max_links, 40, "too many links");
	a->links = alloc_n(r, n, sizeof(*a->links));
	for (size_t i = 0; i < n && !r->err; i++) {
		struct an_link *l = &a->links[i];
		a->n_links = i + 1;
		l->raw = get_str(r);
		l->norm = get_str(r);
		l->host = get_str(r);
		l->host_unicode = get_str(r);
		l->domain = get_str(r);
		l->display_host = get_str(r);
		l->parent = get_int(r, -1, (int64_t)n - 1, "link parent out of range");
		if (!r->err && l->parent == (int)i)
			fail(r, "link is its own parent");
		l->where = get_u32(r);
		l->flags = get_u32(r);
		l->part = get_int(r, -1, (int64_t)a->n_parts - 1, "link part out of range");
		if (!r->err && !l->norm)
			fail(r, "link without its normal form");
	}
}

static void decode_rcpts(struct rd *r, struct analysis *a, const struct analyze_limits *lim)
{
	size_t n = get_count(r, lim->max_recipients, 12, "too many recipients");
	a->rcpts = alloc_n(r, n, sizeof(*a->rcpts));
	for (size_t i = 0; i < n && !r->err; i++) {
		a->n_rcpts = i + 1;
		a->rcpts[i].addr = get_str(r);
		a->rcpts[i].name = get_str(r);
		a->rcpts[i].src = get_u32(r);
		if (!r->err && !a->rcpts[i].addr)
			fail(r, "recipient without an address");
	}
}

static void decode_members(struct rd *r, struct an_attachment *t)
{
	uint32_t nm = get_u32(r);
	if (r->err || nm != NULL_LEN) {
		if (nm > WIRE_MEMBERS_MAX)
			fail(r, "too many members");
		else if ((size_t)nm > (size_t)(r->end - r->p) / 4)
			fail(r, "truncated");
		if (r->err)
			return;
		t->members = calloc((size_t)nm + 1, sizeof(char *));
		if (!t->members) {
			fail(r, "out of memory");
			return;
		}
		for (size_t k = 0; k < nm && !r->err; k++) {
			t->members[k] = get_str_max(r, WIRE_STR_MAX, false);
			if (!t->members[k])
				break; /* keeps the array NULL-terminated for analysis_free */
		}
	}
	size_t nd = get_count(r, WIRE_MEMBERS_MAX, 17, "too many members");
	t->mdet = alloc_n(r, nd, sizeof(*t->mdet));
	for (size_t k = 0; k < nd && !r->err; k++) {
		struct an_member *m = &t->mdet[k];
		t->n_mdet = k + 1;
		m->name = get_str(r);
		m->size = get_u64(r);
		get_hex(r, m->sha256, 64);
		unsigned f = get_u8(r);
		if (f > 3)
			fail(r, "bad flag");
		m->encrypted = f & 1;
		m->truncated = (f & 2) != 0;
	}
}

static void decode_atts(struct rd *r, struct analysis *a)
{
	size_t n = get_count(r, WIRE_ATTACHMENTS_MAX, 40, "too many attachments");
	a->atts = alloc_n(r, n, sizeof(*a->atts));
	for (size_t i = 0; i < n && !r->err; i++) {
		struct an_attachment *t = &a->atts[i];
		a->n_atts = i + 1;
		t->part = get_int(r, -1, (int64_t)a->n_parts - 1, "attachment part out of range");
		t->filename = get_str(r);
		t->declared = get_str(r);
		t->detected = get_str(r);
		t->size = get_u64(r);
		get_hex(r, t->sha256, 64);
		get_hex(r, t->md5, 32);
		decode_members(r, t);
	}
}

static void decode_findings(struct rd *r, struct analysis *a)
{
	size_t n = get_count(r, WIRE_FINDINGS_MAX, 8, "too many findings");
	a->findings = alloc_n(r, n, sizeof(*a->findings));
	for (size_t i = 0; i < n && !r->err; i++) {
		a->n_findings = i + 1;
		a->findings[i].kind = get_str(r);
		a->findings[i].detail = get_str(r);
		if (!r->err && !a->findings[i].kind)
			fail(r, "finding without a kind");
	}
}

struct analysis *wire_decode_result(const void *data, size_t len,
				    const struct analyze_limits *lim, const char **err_r)
{
	struct rd r = { data, (const unsigned char *)data + len, NULL };
	if (len > WIRE_RESULT_MAX) {
		*err_r = "result too large";
		return NULL;
	}
	struct analysis *a = calloc(1, sizeof(*a));
	if (!a) {
		*err_r = "out of memory";
		return NULL;
	}
	buf_init(&a->text, 0);
	head(&r, KIND_RESULT);
	char **strs[] = { &a->subject, &a->from, &a->to, &a->date, &a->message_id,
			  &a->env_from, &a->from_addr, &a->from_name, &a->reply_to,
			  &a->return_path, &a->msgid_domain, &a->x_mailer, &a->user_agent,
			  &a->client_ip, &a->helo, &a->auth_user };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]) && !r.err; i++)
		*strs[i] = get_str(&r);
	decode_parts(&r, a, lim);
	decode_links(&r, a, lim);
	decode_rcpts(&r, a, lim);
	decode_atts(&r, a);
	decode_findings(&r, a);
	uint64_t tl = get_u64(&r);
	if (!r.err && tl > lim->max_text)
		fail(&r, "text over max_text");
	if (!r.err && need(&r, (size_t)tl)) {
		if (memchr(r.p, 0, (size_t)tl))
			fail(&r, "NUL in the text");
		else if (buf_append(&a->text, r.p, (size_t)tl) != 0)
			fail(&r, "out of memory");
		r.p += tl;
	}
	get_hex(&r, a->msg_sha256, 64);
	get_hex(&r, a->body_sha256, 64);
	for (size_t i = 0; i < AN_MINHASH; i++)
		a->minhash[i] = get_u64(&r);
	a->n_shingles = (size_t)get_u64(&r);
	for (size_t i = 0; i < AN_MINHASH; i++)
		a->minhash_w[i] = get_u64(&r);
	a->n_words = (size_t)get_u64(&r);
	get_hex(&r, a->template_key, 16);
	a->size = get_u64(&r);
	if (!r.err && r.p != r.end)
		fail(&r, "trailing bytes");
	if (!r.err && !a->msg_sha256[0])
		fail(&r, "no message digest");
	if (r.err) {
		*err_r = r.err;
		analysis_free(&a);
		return NULL;
	}
	*err_r = NULL;
	return a;
}

int wire_decode_request(const void *data, size_t len, struct wire_request *q,
			const char **err_r)
{
	memset(q, 0, sizeof(*q));
	struct rd r = { data, (const unsigned char *)data + len, NULL };
	if (len > WIRE_REQUEST_MAX)
		fail(&r, "request too large");
	head(&r, KIND_REQUEST);
	/* the bounds of config.c's analyzer_max_* keys */
	const uint64_t max[6] = { 1000, 1000000, 1ull << 40, 1ull << 40, 1000000, 10000000 };
	uint64_t v[6];
	for (size_t i = 0; i < 6; i++) {
		v[i] = get_u64(&r);
		if (!r.err && (v[i] == 0 || v[i] > max[i]))
			fail(&r, "limit out of range");
	}
	q->lim.max_depth = (unsigned)v[0];
	q->lim.max_parts = (unsigned)v[1];
	q->lim.max_decoded = (size_t)v[2];
	q->lim.max_text = (size_t)v[3];
	q->lim.max_links = (unsigned)v[4];
	q->lim.max_recipients = (unsigned)v[5];
	unsigned has = get_u8(&r);
	if (has > 1)
		fail(&r, "bad flag");
	q->has_envelope = has == 1;
	if (q->has_envelope && !r.err) {
		q->sender = get_str(&r);
		q->client_ip = get_str(&r);
		q->helo = get_str(&r);
		q->auth_user = get_str(&r);
		size_t n = get_count(&r, WIRE_ENV_RCPTS_MAX, 4, "too many recipients");
		q->recipients = alloc_n(&r, n, sizeof(char *));
		for (size_t i = 0; i < n && !r.err; i++) {
			q->recipients[i] = get_str_max(&r, WIRE_STR_MAX, false);
			if (q->recipients[i])
				q->n_recipients = i + 1;
		}
	}
	if (!r.err && r.p != r.end)
		fail(&r, "trailing bytes");
	if (r.err) {
		*err_r = r.err;
		wire_request_clear(q);
		return -1;
	}
	return 0;
}

void wire_request_clear(struct wire_request *q)
{
	free(q->sender);
	free(q->client_ip);
	free(q->helo);
	free(q->auth_user);
	for (size_t i = 0; i < q->n_recipients; i++)
		free(q->recipients[i]);
	free(q->recipients);
	memset(q, 0, sizeof(*q));
}
