/*
 * event_schema: the event catalogue of docs/events.md as a C table.
 *
 * This is the code side of the public contract: every event id with its fields, their
 * types and whether they may be null, in the order the document lists them.  A unit
 * test (tests/unit/test_event_schema.c) parses docs/events.md and requires it to match
 * this table exactly; integration tests check what the daemon emits against it.
 * Change both together, and only by adding (see the document's rules).
 *
 * The table is an X-macro so that users can build what they need (arrays, switch
 * cases) without a data definition in a header: MXB_EVENT_FIELDS(X) calls
 * X(event, field, type, nullable) for every field; the common fields use event `_`.
 */
#ifndef MXB_STORE_EVENT_SCHEMA_H
#define MXB_STORE_EVENT_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Longest string value an event holds, in bytes as received: a longer one is cut and
 * followed by "<field>_length" and "<field>_sha256" (docs/events.md, "Long values";
 * the unit test checks that the document states this number). */
#define MXB_EVENT_VALUE_MAX 1024

enum mxb_field_type {
	MXB_FT_STRING,       /* "string" */
	MXB_FT_INT,          /* "int" */
	MXB_FT_BOOL,         /* "bool" */
	MXB_FT_STRING_ARRAY, /* "string[]" */
};

/* Event ids, in catalogue order. */
#define MXB_EVENT_IDS(X)                                                                 \
	X(connect) X(tls) X(tls_error) X(helo) X(auth) X(mail) X(rcpt) X(vrfy) X(message) \
	X(message_rejected) X(offence) X(disconnect) X(guard_auth) X(guard_rcpt) X(guard_log) \
	X(decision) X(message_recovered)

#define MXB_EVENT_FIELDS(X)                                 \
	X(_, event, MXB_FT_STRING, false)                   \
	X(_, ts, MXB_FT_STRING, false)                      \
	X(_, session, MXB_FT_STRING, false)                 \
	X(_, src_ip, MXB_FT_STRING, false)                  \
	X(_, src_port, MXB_FT_INT, false)                   \
	X(_, proto, MXB_FT_STRING, false)                   \
	X(connect, dst_ip, MXB_FT_STRING, false)            \
	X(connect, dst_port, MXB_FT_INT, false)             \
	X(connect, orig_dst_ip, MXB_FT_STRING, true)        \
	X(connect, orig_dst_port, MXB_FT_INT, true)         \
	X(tls, mode, MXB_FT_STRING, false)                  \
	X(tls, version, MXB_FT_STRING, false)               \
	X(tls, cipher, MXB_FT_STRING, false)                \
	X(tls, bits, MXB_FT_INT, false)                     \
	X(tls, sni, MXB_FT_STRING, true)                    \
	X(tls_error, mode, MXB_FT_STRING, false)            \
	X(tls_error, reason, MXB_FT_STRING, false)          \
	X(helo, verb, MXB_FT_STRING, false)                 \
	X(helo, name, MXB_FT_STRING, false)                 \
	X(auth, mechanism, MXB_FT_STRING, false)            \
	X(auth, username, MXB_FT_STRING, true)              \
	X(auth, password, MXB_FT_STRING, true)              \
	X(auth, authzid, MXB_FT_STRING, true)               \
	X(auth, success, MXB_FT_BOOL, false)                \
	X(auth, result, MXB_FT_STRING, false)               \
	X(mail, sender, MXB_FT_STRING, false)               \
	X(mail, params, MXB_FT_STRING, false)               \
	X(mail, size, MXB_FT_INT, true)                     \
	X(mail, accepted, MXB_FT_BOOL, false)               \
	X(mail, reply, MXB_FT_INT, false)                   \
	X(rcpt, recipient, MXB_FT_STRING, false)            \
	X(rcpt, params, MXB_FT_STRING, false)               \
	X(rcpt, accepted, MXB_FT_BOOL, false)               \
	X(rcpt, reply, MXB_FT_INT, false)                   \
	X(rcpt, relay, MXB_FT_BOOL, false)                  \
	X(vrfy, verb, MXB_FT_STRING, false)                 \
	X(vrfy, argument, MXB_FT_STRING, false)             \
	X(vrfy, reply, MXB_FT_INT, false)                   \
	X(message, queue_id, MXB_FT_STRING, false)          \
	X(message, spool, MXB_FT_STRING, false)             \
	X(message, sha256, MXB_FT_STRING, false)            \
	X(message, size, MXB_FT_INT, false)                 \
	X(message, sender, MXB_FT_STRING, false)            \
	X(message, recipients, MXB_FT_STRING_ARRAY, false)  \
	X(message, recipient_count, MXB_FT_INT, false)      \
	X(message, method, MXB_FT_STRING, false)            \
	X(message, auth_user, MXB_FT_STRING, true)          \
	X(message, tls, MXB_FT_BOOL, false)                 \
	X(message_rejected, reason, MXB_FT_STRING, false)   \
	X(message_rejected, size, MXB_FT_INT, false)        \
	X(message_rejected, reply, MXB_FT_INT, true)        \
	X(offence, kind, MXB_FT_STRING, false)              \
	X(offence, detail, MXB_FT_STRING, false)            \
	X(disconnect, reason, MXB_FT_STRING, false)         \
	X(disconnect, duration_ms, MXB_FT_INT, false)       \
	X(disconnect, state, MXB_FT_STRING, false)          \
	X(disconnect, commands, MXB_FT_INT, false)          \
	X(disconnect, errors, MXB_FT_INT, false)            \
	X(disconnect, messages, MXB_FT_INT, false)          \
	X(guard_auth, origin, MXB_FT_STRING, false)         \
	X(guard_auth, stage, MXB_FT_STRING, false)          \
	X(guard_auth, service, MXB_FT_STRING, true)         \
	X(guard_auth, username, MXB_FT_STRING, true)        \
	X(guard_auth, pwhash, MXB_FT_STRING, true)          \
	X(guard_auth, success, MXB_FT_BOOL, true)           \
	X(guard_auth, user_known, MXB_FT_BOOL, true)        \
	X(guard_auth, trap, MXB_FT_BOOL, false)             \
	X(guard_auth, answer, MXB_FT_STRING, false)         \
	X(guard_rcpt, origin, MXB_FT_STRING, false)         \
	X(guard_rcpt, recipient, MXB_FT_STRING, false)      \
	X(guard_rcpt, sender, MXB_FT_STRING, true)          \
	X(guard_rcpt, known, MXB_FT_BOOL, true)             \
	X(guard_rcpt, trap, MXB_FT_BOOL, false)             \
	X(guard_rcpt, answer, MXB_FT_STRING, false)         \
	X(guard_log, kind, MXB_FT_STRING, false)            \
	X(guard_log, detail, MXB_FT_STRING, false)          \
	X(decision, op, MXB_FT_STRING, false)               \
	X(decision, action, MXB_FT_STRING, false)           \
	X(decision, source, MXB_FT_STRING, false)           \
	X(decision, reason, MXB_FT_STRING, false)           \
	X(decision, origin, MXB_FT_STRING, false)           \
	X(decision, evidence, MXB_FT_STRING_ARRAY, false)   \
	X(decision, duration_ms, MXB_FT_INT, true)          \
	X(decision, level, MXB_FT_INT, false)               \
	X(decision, by, MXB_FT_STRING, true)                \
	X(message_recovered, queue_id, MXB_FT_STRING, false) \
	X(message_recovered, spool, MXB_FT_STRING, false)   \
	X(message_recovered, sha256, MXB_FT_STRING, false)  \
	X(message_recovered, size, MXB_FT_INT, false)       \
	X(message_recovered, captured_ts, MXB_FT_STRING, false)

struct mxb_event_field {
	const char *event; /* "_" for the common fields */
	const char *name;
	enum mxb_field_type type;
	bool nullable;
};

/* The whole table, in catalogue order. */
static inline const struct mxb_event_field *mxb_event_schema(size_t *n_r)
{
#define MXB_ES_ROW_(ev, field, type, nul) {#ev, #field, type, nul},
	static const struct mxb_event_field rows[] = {MXB_EVENT_FIELDS(MXB_ES_ROW_)};
#undef MXB_ES_ROW_
	*n_r = sizeof(rows) / sizeof(rows[0]);
	return rows;
}

/* The event ids, in catalogue order. */
static inline const char *const *mxb_event_ids(size_t *n_r)
{
#define MXB_ES_ID_(ev) #ev,
	static const char *const ids[] = {MXB_EVENT_IDS(MXB_ES_ID_)};
#undef MXB_ES_ID_
	*n_r = sizeof(ids) / sizeof(ids[0]);
	return ids;
}

/* The type as docs/events.md spells it ("string", "int|null", "string[]", ...). */
static inline const char *mxb_field_type_name(enum mxb_field_type t, bool nullable)
{
	switch (t) {
	case MXB_FT_STRING:
		return nullable ? "string|null" : "string";
	case MXB_FT_INT:
		return nullable ? "int|null" : "int";
	case MXB_FT_BOOL:
		return nullable ? "bool|null" : "bool";
	case MXB_FT_STRING_ARRAY:
		return nullable ? "string[]|null" : "string[]";
	}
	return "?";
}

/* Is id a catalogued event? */
static inline bool mxb_event_id_known(const char *id)
{
	size_t n;
	const char *const *ids = mxb_event_ids(&n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ids[i], id))
			return true;
	return false;
}

#endif
