/* event: build one event record and render it as JSON (see event.h). */
#include "store/event.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/event_schema.h"

struct mxb_event *mxb_event_new(const char *name)
{
	struct mxb_event *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return NULL;
	snprintf(ev->name, sizeof(ev->name), "%s", name);
	buf_init(&ev->fields, 0);
	buf_init(&ev->text, 0);
	return ev;
}

void mxb_event_free(struct mxb_event **evp)
{
	if (!evp || !*evp)
		return;
	buf_free(&(*evp)->fields);
	buf_free(&(*evp)->text);
	free((*evp)->fv);
	free(*evp);
	*evp = NULL;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return len;
}

/* \u00XX for a byte, without printf. */
static int append_u00(struct buf *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
	return buf_append(out, e, sizeof(e));
}

int json_append_string(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	if (buf_putc(out, '"') < 0)
		return -1;
	for (size_t i = 0; i < len;) {
		/* A run of printable ASCII that needs no escape goes in one append. */
		size_t run = i;
		while (run < len && p[run] >= 0x20 && p[run] < 0x7F && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run > i) {
			if (buf_append(out, p + i, run - i) < 0)
				return -1;
			i = run;
			continue;
		}
		unsigned char c = p[i];
		int r = 0;
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			r = buf_append(out, esc, 2);
			i++;
		} else if (c == '\n') {
			r = buf_puts(out, "\\n");
			i++;
		} else if (c == '\r') {
			r = buf_puts(out, "\\r");
			i++;
		} else if (c == '\t') {
			r = buf_puts(out, "\\t");
			i++;
		} else if (c < 0x20 || c == 0x7F) {
			r = append_u00(out, c);
			i++;
		} else {
			size_t n = utf8_seq_len(p + i, len - i);
			if (n == 0) {
				/* Not UTF-8: keep the byte value visible, as U+00XX. */
				r = append_u00(out, c);
				i++;
			} else {
				r = buf_append(out, p + i, n);
				i += n;
			}
		}
		if (r < 0)
			return -1;
	}
	return buf_putc(out, '"');
}

static void add_key(struct mxb_event *ev, const char *key)
{
	buf_puts(&ev->fields, ",\"");
	buf_puts(&ev->fields, key);
	buf_puts(&ev->fields, "\":");
}

/* A new typed field record (NULL when out of memory: the JSON still has the field,
 * the derived tables then see it as absent). */
static struct mxb_event_fv *add_fv(struct mxb_event *ev, const char *key,
				   enum mxb_fv_type type)
{
	if (ev->n_fv == ev->alloc_fv) {
		unsigned n = ev->alloc_fv ? ev->alloc_fv * 2 : 8;
		struct mxb_event_fv *v = realloc(ev->fv, n * sizeof(*v));
		if (!v)
			return NULL;
		ev->fv = v;
		ev->alloc_fv = n;
	}
	struct mxb_event_fv *f = &ev->fv[ev->n_fv++];
	memset(f, 0, sizeof(*f));
	f->key = key;
	f->type = type;
	return f;
}

/* The longest prefix of s (len bytes) of at most max bytes that does not end inside a
 * valid UTF-8 sequence. */
static size_t cut_point(const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t n = utf8_seq_len(p + i, len - i);
		if (n == 0)
			n = 1;
		if (i + n > max)
			break;
		i += n;
	}
	return i;
}

/* The text form json_extract() gives for the JSON string of s: valid UTF-8 as is, an
 * invalid byte as the UTF-8 of U+00XX, up to the first NUL. */
static int append_text_form(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len && p[i]) {
		size_t run = i;
		/* plain ASCII runs in one append */
		while (run < len && p[run] && p[run] < 0x80)
			run++;
		if (run > i) {
			if (buf_append(out, p + i, run - i) < 0)
				return -1;
			i = run;
			continue;
		}
		if (!p[i])
			break;
		size_t n = utf8_seq_len(p + i, len - i);
		if (n == 0) {
			char two[2] = {(char)(0xC0 | (p[i] >> 6)), (char)(0x80 | (p[i] & 0x3F))};
			if (buf_append(out, two, 2) < 0)
				return -1;
			i++;
		} else {
			if (buf_append(out, p + i, n) < 0)
				return -1;
			i += n;
		}
	}
	return 0;
}

static void hex_sha256(const char *s, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	out[0] = '\0';
	if (EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return;
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void mxb_event_strn(struct mxb_event *ev, const char *key, const char *val, size_t len)
{
	if (!ev)
		return;
	if (!val) {
		mxb_event_null(ev, key);
		return;
	}
	size_t keep = len > MXB_EVENT_VALUE_MAX ? cut_point(val, len, MXB_EVENT_VALUE_MAX) : len;
	add_key(ev, key);
	json_append_string(&ev->fields, val, keep);
	struct mxb_event_fv *f = add_fv(ev, key, MXB_FV_STR);
	if (f) {
		f->off = ev->text.len;
		if (append_text_form(&ev->text, val, keep) < 0)
			f->type = MXB_FV_NULL;
		f->len = ev->text.len - f->off;
	}
	if (keep < len) {
		/* Cut: what was cut away is still identified (docs/events.md). */
		char hex[65];
		hex_sha256(val, len, hex);
		buf_printf(&ev->fields, ",\"%s_length\":%zu,\"%s_sha256\":\"%s\"", key, len, key,
			   hex);
	}
}

void mxb_event_str(struct mxb_event *ev, const char *key, const char *val)
{
	mxb_event_strn(ev, key, val, val ? strlen(val) : 0);
}

void mxb_event_int(struct mxb_event *ev, const char *key, int64_t val)
{
	if (!ev)
		return;
	add_key(ev, key);
	buf_printf(&ev->fields, "%lld", (long long)val);
	struct mxb_event_fv *f = add_fv(ev, key, MXB_FV_INT);
	if (f)
		f->i = val;
}

void mxb_event_bool(struct mxb_event *ev, const char *key, bool val)
{
	if (!ev)
		return;
	add_key(ev, key);
	buf_puts(&ev->fields, val ? "true" : "false");
	struct mxb_event_fv *f = add_fv(ev, key, MXB_FV_BOOL);
	if (f)
		f->i = val ? 1 : 0;
}

void mxb_event_null(struct mxb_event *ev, const char *key)
{
	if (!ev)
		return;
	add_key(ev, key);
	buf_puts(&ev->fields, "null");
	add_fv(ev, key, MXB_FV_NULL);
}

void mxb_event_str_array(struct mxb_event *ev, const char *key, const char *const *vals,
			 size_t n)
{
	if (!ev)
		return;
	add_key(ev, key);
	size_t start = ev->fields.len;
	buf_putc(&ev->fields, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_putc(&ev->fields, ',');
		size_t len = strlen(vals[i]);
		json_append_string(&ev->fields, vals[i],
				   len > MXB_EVENT_VALUE_MAX
					   ? cut_point(vals[i], len, MXB_EVENT_VALUE_MAX)
					   : len);
	}
	buf_putc(&ev->fields, ']');
	struct mxb_event_fv *f = add_fv(ev, key, MXB_FV_ARRAY);
	if (f) {
		f->off = start;
		f->len = ev->fields.len - start;
		f->i = (int64_t)n;
	}
}

const struct mxb_event_fv *mxb_event_field(const struct mxb_event *ev, const char *key)
{
	if (!ev)
		return NULL;
	for (unsigned i = ev->n_fv; i-- > 0;)
		if (!strcmp(ev->fv[i].key, key))
			return &ev->fv[i];
	return NULL;
}

const char *mxb_event_fv_text(const struct mxb_event *ev, const struct mxb_event_fv *fv,
			      size_t *len_r)
{
	*len_r = 0;
	if (!ev || !fv)
		return NULL;
	if (fv->type == MXB_FV_STR) {
		*len_r = fv->len;
		return ev->text.data ? ev->text.data + fv->off : "";
	}
	if (fv->type == MXB_FV_ARRAY) {
		*len_r = fv->len;
		return ev->fields.data + fv->off;
	}
	return NULL;
}

void mxb_event_stamp(struct mxb_event *ev, int64_t ts_us, const char *session,
		     const char *src_ip, unsigned src_port, const char *proto)
{
	ev->ts_us = ts_us ? ts_us : mxb_now_us();
	snprintf(ev->session, sizeof(ev->session), "%s", session ? session : "");
	snprintf(ev->src_ip, sizeof(ev->src_ip), "%s", src_ip ? src_ip : "");
	ev->src_port = src_port;
	snprintf(ev->proto, sizeof(ev->proto), "%s", proto ? proto : "");
}

int64_t mxb_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian), without libc's time
 * zone machinery: this runs for every event the writer stores. */
static void civil_from_days(int64_t z, int *y_r, unsigned *m_r, unsigned *d_r)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d_r = doy - (153 * mp + 2) / 5 + 1;
	*m_r = mp < 10 ? mp + 3 : mp - 9;
	*y_r = (int)(y + (*m_r <= 2));
}

static char *put_digits(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

void mxb_format_ts(int64_t ts_us, char *out, size_t outlen)
{
	if (outlen < 28) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	int64_t sec = ts_us / 1000000, us = ts_us % 1000000;
	if (us < 0) {
		us += 1000000;
		sec--;
	}
	int64_t days = sec / 86400, rem = sec % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	int y;
	unsigned mo, d;
	civil_from_days(days, &y, &mo, &d);
	if (y < 0 || y > 9999) { /* not a time we stamp; keep the format */
		snprintf(out, outlen, "%04d-01-01T00:00:00.000000Z", y < 0 ? 0 : 9999);
		return;
	}
	char *p = out;
	p = put_digits(p, (unsigned)y, 4);
	*p++ = '-';
	p = put_digits(p, mo, 2);
	*p++ = '-';
	p = put_digits(p, d, 2);
	*p++ = 'T';
	p = put_digits(p, (unsigned)(rem / 3600), 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)(rem / 60 % 60), 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)(rem % 60), 2);
	*p++ = '.';
	p = put_digits(p, (unsigned)us, 6);
	*p++ = 'Z';
	*p = '\0';
}

int mxb_event_to_json(const struct mxb_event *ev, struct buf *out)
{
	char ts[40];
	mxb_format_ts(ev->ts_us, ts, sizeof(ts));
	return mxb_event_to_json_ts(ev, ts, out);
}

int mxb_event_to_json_ts(const struct mxb_event *ev, const char *ts, struct buf *out)
{
	/* Plain appends, no printf: the writer renders every event (PERFORMANCE.md). */
	char port[16];
	char *pe = port + sizeof(port);
	unsigned v = ev->src_port;
	do {
		*--pe = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	int r = buf_puts(out, "{\"event\":\"");
	r |= buf_puts(out, ev->name);
	r |= buf_puts(out, "\",\"ts\":\"");
	r |= buf_puts(out, ts);
	r |= buf_puts(out, "\",\"session\":");
	r |= json_append_string(out, ev->session, strlen(ev->session));
	r |= buf_puts(out, ",\"src_ip\":");
	r |= json_append_string(out, ev->src_ip, strlen(ev->src_ip));
	r |= buf_puts(out, ",\"src_port\":");
	r |= buf_append(out, pe, (size_t)(port + sizeof(port) - pe));
	r |= buf_puts(out, ",\"proto\":");
	r |= json_append_string(out, ev->proto, strlen(ev->proto));
	if (ev->fields.len)
		r |= buf_append(out, ev->fields.data, ev->fields.len);
	r |= buf_putc(out, '}');
	return r ? -1 : 0;
}
