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
 *
 * Bounded: a string value longer than MXB_EVENT_VALUE_MAX bytes (event_schema.h) is cut
 * to that many bytes (never inside a UTF-8 sequence) and the event gains two fields
 * right after it, "<key>_length" (the length as received) and "<key>_sha256" (hex
 * SHA-256 of the whole value as received); an element of a string array is cut the
 * same way.  So one event holds at most a few KiB per field, whatever was sent (a 9 KB
 * password of control bytes used to cost 136 KB of disk: docs/events.md "Long values").
 *
 * Besides the JSON fragments, every field is kept typed (struct mxb_event_fv) so that
 * the event store binds the derived tables' columns directly instead of re-parsing the
 * JSON: a string's text form is exactly what SQLite's json_extract() returns for it
 * (valid UTF-8 as is, an invalid byte as the UTF-8 of U+00XX, and the text ends at a
 * NUL byte, as json_extract's does).
 */
#ifndef MXB_STORE_EVENT_H
#define MXB_STORE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* One field as the event store binds it. */
enum mxb_fv_type { MXB_FV_NULL, MXB_FV_STR, MXB_FV_INT, MXB_FV_BOOL, MXB_FV_ARRAY };
struct mxb_event_fv {
	const char *key;     /* the program constant given to mxb_event_*() */
	enum mxb_fv_type type;
	size_t off, len;     /* STR: the text form in ev->text; ARRAY: the JSON array in
			      * ev->fields (what json_extract returns for an array) */
	int64_t i;           /* INT; BOOL 0/1; ARRAY: the number of elements */
};

struct mxb_event {
	char name[32];       /* event id, e.g. "auth" */
	int64_t ts_us;       /* wall clock, microseconds since the epoch */
	char session[24];    /* session id, e.g. "S7F3A9C01B2D4" */
	char src_ip[64];     /* peer address, textual */
	unsigned src_port;
	char proto[16];      /* "smtp", "submission", "smtps", ... */
	struct buf fields;   /* extra fields as `,"key":value` JSON fragments */
	struct buf text;     /* text forms of the string values (see mxb_event_fv) */
	struct mxb_event_fv *fv; /* the fields in order, typed (grown as needed) */
	unsigned n_fv, alloc_fv;
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

/* The typed field called key (the last one of that name), or NULL. */
const struct mxb_event_fv *mxb_event_field(const struct mxb_event *ev, const char *key);
/* Its text form (STR) or JSON text (ARRAY), with its length; NULL for other types. */
const char *mxb_event_fv_text(const struct mxb_event *ev, const struct mxb_event_fv *fv,
			      size_t *len_r);

/* Common fields, set by the connection layer. ts_us 0 means "now". */
void mxb_event_stamp(struct mxb_event *ev, int64_t ts_us, const char *session,
		     const char *src_ip, unsigned src_port, const char *proto);

/* The whole event as one JSON object (no newline) appended to out. */
int mxb_event_to_json(const struct mxb_event *ev, struct buf *out);
/* The same with ts already formatted by mxb_format_ts(ev->ts_us) (the writer needs it
 * for its own column too). */
int mxb_event_to_json_ts(const struct mxb_event *ev, const char *ts, struct buf *out);

/* Append s (len bytes, any content) as a JSON string literal, quotes included. */
int json_append_string(struct buf *out, const char *s, size_t len);

/* Microseconds since the epoch, from the wall clock. */
int64_t mxb_now_us(void);
/* RFC 3339 UTC with microseconds, e.g. 2026-11-27T06:52:43.123456Z (buffer >= 32). */
void mxb_format_ts(int64_t ts_us, char *out, size_t outlen);

#endif
