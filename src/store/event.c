/* event: build one event record and render it as JSON (see event.h). */
#include "store/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mxb_event *mxb_event_new(const char *name)
{
	struct mxb_event *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return NULL;
	snprintf(ev->name, sizeof(ev->name), "%s", name);
	buf_init(&ev->fields, 0);
	return ev;
}

void mxb_event_free(struct mxb_event **evp)
{
	if (!evp || !*evp)
		return;
	buf_free(&(*evp)->fields);
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

int json_append_string(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	if (buf_putc(out, '"') < 0)
		return -1;
	for (size_t i = 0; i < len;) {
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
			r = buf_printf(out, "\\u%04x", c);
			i++;
		} else if (c < 0x80) {
			r = buf_putc(out, (char)c);
			i++;
		} else {
			size_t n = utf8_seq_len(p + i, len - i);
			if (n == 0) {
				/* Not UTF-8: keep the byte value visible, as U+00XX. */
				r = buf_printf(out, "\\u%04x", c);
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
	buf_printf(&ev->fields, ",\"%s\":", key);
}

void mxb_event_strn(struct mxb_event *ev, const char *key, const char *val, size_t len)
{
	if (!ev)
		return;
	if (!val) {
		mxb_event_null(ev, key);
		return;
	}
	add_key(ev, key);
	json_append_string(&ev->fields, val, len);
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
}

void mxb_event_bool(struct mxb_event *ev, const char *key, bool val)
{
	if (!ev)
		return;
	add_key(ev, key);
	buf_puts(&ev->fields, val ? "true" : "false");
}

void mxb_event_null(struct mxb_event *ev, const char *key)
{
	if (!ev)
		return;
	add_key(ev, key);
	buf_puts(&ev->fields, "null");
}

void mxb_event_str_array(struct mxb_event *ev, const char *key, const char *const *vals,
			 size_t n)
{
	if (!ev)
		return;
	add_key(ev, key);
	buf_putc(&ev->fields, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_putc(&ev->fields, ',');
		json_append_string(&ev->fields, vals[i], strlen(vals[i]));
	}
	buf_putc(&ev->fields, ']');
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

void mxb_format_ts(int64_t ts_us, char *out, size_t outlen)
{
	time_t sec = (time_t)(ts_us / 1000000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(ts_us % 1000000));
}

int mxb_event_to_json(const struct mxb_event *ev, struct buf *out)
{
	char ts[40];
	mxb_format_ts(ev->ts_us, ts, sizeof(ts));
	int r = buf_printf(out, "{\"event\":\"%s\",\"ts\":\"%s\",\"session\":", ev->name, ts);
	r |= json_append_string(out, ev->session, strlen(ev->session));
	r |= buf_puts(out, ",\"src_ip\":");
	r |= json_append_string(out, ev->src_ip, strlen(ev->src_ip));
	r |= buf_printf(out, ",\"src_port\":%u,\"proto\":", ev->src_port);
	r |= json_append_string(out, ev->proto, strlen(ev->proto));
	if (ev->fields.len)
		r |= buf_append(out, ev->fields.data, ev->fields.len);
	r |= buf_putc(out, '}');
	return r ? -1 : 0;
}
