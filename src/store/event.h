/*
 * event: one record of something that happened (connect, AUTH attempt, message, ...).
 *
 * Protocol engines build an event with the fields specific to it; the connection layer
 * that owns the session stamps the common fields (ts, session, src_ip, src_port, proto)
 * and hands it to the event store, which takes ownership.  The event ids and their
 * fields are a public contract documented in docs/events.md; a test compares that
 * document with src/store/event_schema.h and with what the daemon really emits.
 *
 * Attacker bytes are welcome in string values: they are JSON-escaped, and bytes that
 * are not valid UTF-8 are written as \u00XX escapes of the raw byte, so every event
 * line is valid JSON whatever the input was.
 */
#ifndef MXB_STORE_EVENT_H
#define MXB_STORE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct mxb_event {
	char name[32];       /* event id, e.g. "auth" */
	int64_t ts_us;       /* wall clock, microseconds since the epoch */
	char session[24];    /* session id, e.g. "S7F3A9C01B2D4" */
	char src_ip[64];     /* peer address, textual */
	unsigned src_port;
	char proto[16];      /* "smtp", "submission", "smtps", ... */
	struct buf fields;   /* extra fields as `,"key":value` JSON fragments */
};

struct mxb_event *mxb_event_new(const char *name);
void mxb_event_free(struct mxb_event **ev);

/* Extra fields.  Keys are program constants (not escaped); values may be anything. */
void mxb_event_str(struct mxb_event *ev, const char *key, const char *val);
void mxb_event_strn(struct mxb_event *ev, const char *key, const char *val, size_t len);
void mxb_event_int(struct mxb_event *ev, const char *key, int64_t val);
void mxb_event_bool(struct mxb_event *ev, const char *key, bool val);
void mxb_event_null(struct mxb_event *ev, const char *key);
/* A JSON array of strings (n values). */
void mxb_event_str_array(struct mxb_event *ev, const char *key, const char *const *vals,
			 size_t n);

/* Common fields, set by the connection layer. ts_us 0 means "now". */
void mxb_event_stamp(struct mxb_event *ev, int64_t ts_us, const char *session,
		     const char *src_ip, unsigned src_port, const char *proto);

/* The whole event as one JSON object (no newline) appended to out. */
int mxb_event_to_json(const struct mxb_event *ev, struct buf *out);

/* Append s (len bytes, any content) as a JSON string literal, quotes included. */
int json_append_string(struct buf *out, const char *s, size_t len);

/* Microseconds since the epoch, from the wall clock. */
int64_t mxb_now_us(void);
/* RFC 3339 UTC with microseconds, e.g. 2026-11-27T06:52:43.123456Z (buffer >= 32). */
void mxb_format_ts(int64_t ts_us, char *out, size_t outlen);

#endif
