/*
 * imap_private: what the files of the IMAP engine share (not for other modules).
 *
 * The engine is one state machine (see imap.h for the host contract, the persona and
 * the bounds) cut by responsibility into files that share the session struct below:
 *   imap.c          session, state changes, output, events, command tables and
 *                   dispatch, command framing with literals, lifecycle;
 *   imap_auth.c     LOGIN, AUTHENTICATE (PLAIN/LOGIN, SASL-IR) and the failure penalty;
 *   imap_fetch.c    message anatomy (headers, MIME, ENVELOPE, BODYSTRUCTURE) and FETCH;
 *   imap_search.c   SEARCH and ESEARCH (RETURN) replies;
 *   imap_sort.c     SORT (and ESORT) and THREAD;
 *   imap_mailbox.c  LIST/LSUB/STATUS, SELECT/EXAMINE, CREATE/DELETE/RENAME/SUBSCRIBE,
 *                   message sets, STORE, EXPUNGE/CLOSE/UNSELECT, COPY/MOVE, APPEND.
 * Promises: every function here takes a live session; replies go through imap_tagged /
 * imap_untagged (collected per step in the session core, session.h, and sent when the step ends); command handlers
 * return 0 when answered and -1 for "invalid arguments", which the dispatcher answers.
 */
#ifndef MXB_PROTO_IMAP_PRIVATE_H
#define MXB_PROTO_IMAP_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deceive/mailbox.h"
#include "proto/imap.h"
#include "proto/imap_parse.h"
#include "proto/proto_event.h"
#include "proto/session.h"
#include "store/event.h"
#include "util/buf.h"

#define AUTH_LINE_MAX 8192        /* LOGIN_MAX_AUTH_BUF_SIZE */
#define USER_MAX 256

#define CAP_BASE "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE"
#define CAP_POSTLOGIN                                                                    \
	"IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "            \
	"THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL "   \
	"CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 "        \
	"CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS "   \
	"BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ " \
	"NOTIFY SPECIAL-USE"

enum istate {
	IN_LINE,    /* command text */
	IN_LITERAL, /* literal bytes of the command being framed */
	IN_AUTH,    /* a SASL continuation line */
	IN_IDLE,    /* waiting for DONE */
};

enum cstate {
	CS_NOAUTH,
	CS_AUTH,
	CS_SELECTED,
	CS_LOGOUT,
};

enum mech { MECH_NONE, MECH_PLAIN, MECH_LOGIN };

struct imap_session {
	struct session sess;     /* output, suspension, counters, events (session.h) */
	const struct imap_config *cfg;
	bool tls;
	bool starttls_done;      /* STARTTLS was issued (Dovecot client->starttls) */
	bool hung_up;            /* the client left while an APPEND was being committed */
	bool cap_seen;           /* CAPABILITY before STARTTLS: no resp-code at login */
	bool line_writes;        /* imap-login's uncorked output: each line is one write */
	char userip_user[USER_MAX]; /* counted in userip (non-empty) until the end */

	enum cstate cs;
	enum istate in;

	/* framing */
	struct buf cmd;          /* the command as on the wire, literals inline */
	size_t line_text;        /* text bytes of it (literals excluded) */
	size_t seg_start;        /* where the text after the last literal starts */
	uint64_t lit_left;
	bool cmd_append;         /* the command being framed is APPEND */
	bool lit_discard;        /* the literal being read is dropped (over budget) */
	bool cmd_refused;        /* the command being framed is answered NO [OVERQUOTA] */

	/* memory charged for the client (imap.h): session_memory and cfg->memory */
	size_t mem_held;         /* all of it */
	size_t lit_framing;      /* of which: APPEND literals in the framing buffer */
	size_t lit_charge;       /* ... and their parsed copy, until the command ends */
	size_t mbox_charged;     /* of which: the mailbox's extra bytes */
	struct buf line;         /* SASL / IDLE line */
	struct imap_command *pc; /* parsed command */

	/* the command being answered */
	char tag[IMAP_TAG_MAX_LEN + 1];
	int64_t cmd_start_us;

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

	/* counters beyond the session's */
	unsigned bad_prelogin;
	unsigned bad_row;
};

/* imap.c: session state, output, events, dispatch, framing */
/* The one place the state changes (connection state and input mode; traced old ->
 * new, session.h). */
void imap_set_state(struct imap_session *s, enum cstate cs, enum istate in);
void imap_set_input(struct imap_session *s, enum istate in);
/* Charge n bytes to the session's and the daemon's memory budgets: false (nothing
 * charged) when either would pass its bound. */
bool imap_mem_take(struct imap_session *s, size_t n);
/* After the mailbox changed (mbox_charged was raised by what was taken for it): charge
 * exactly what it holds now, giving back the rest. */
void imap_mem_settle(struct imap_session *s);
/* message_rejected event (reason, bytes, reply null: IMAP replies have no code). */
void imap_message_rejected(struct imap_session *s, const char *reason, size_t size);
void imap_out_raw(struct imap_session *s, const char *data, size_t len);
void imap_out_str(struct imap_session *s, const char *str);
void imap_untagged(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void imap_tagged(struct imap_session *s, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void imap_tagged_plain(struct imap_session *s, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void imap_emit(struct imap_session *s, struct mxb_event *ev);
void imap_auth_event(struct imap_session *s, const struct auth_ev *a);
void imap_auth_event_simple(struct imap_session *s, const char *mech, const char *result);
void imap_put_string(struct buf *b, const char *str);
void imap_put_mailbox(struct buf *b, const char *name);
void imap_shown_name(char *dst, size_t dstlen, const char *p, size_t len);
void imap_cmd_error(struct imap_session *s, const char *name, const char *msg)
	__attribute__((nonnull));
struct mbox_folder *imap_folder_by_name(struct imap_session *s, const char *name,
					size_t len);
bool imap_need_selected(struct imap_session *s);
uint32_t imap_n_msgs(const struct imap_session *s);
void imap_put_flags(struct buf *b, unsigned f);
void imap_fmt_internaldate(int64_t t, char *out, size_t outlen);
int imap_parse_flag_args(const struct imap_arg *a, unsigned *flags_r);
void imap_release_command(struct imap_session *s);

/* imap_auth.c: LOGIN, AUTHENTICATE, the failure penalty */
const char *imap_mech_name(enum mech m);
void imap_auth_line(struct imap_session *s, const char *line, size_t len);
/* LOGIN and AUTHENTICATE as the command table calls them: check (0 may go on, 1
 * answered, -1 invalid arguments), the refusal without TLS, the run. */
int imap_login_check(struct imap_session *s, struct imap_command *c);
void imap_login_plaintext(struct imap_session *s, struct imap_command *c);
int imap_pre_login(struct imap_session *s, struct imap_command *c);
int imap_authenticate_check(struct imap_session *s, struct imap_command *c);
void imap_authenticate_plaintext(struct imap_session *s, struct imap_command *c);
int imap_pre_authenticate(struct imap_session *s, struct imap_command *c);

/* imap_fetch.c: message anatomy, FETCH */
void imap_split_message(const char *p, size_t len, size_t *hdr_len_r);
bool imap_next_field(const char *h, size_t hlen, size_t *pos, const char **name,
		     size_t *name_len, const char **field, size_t *field_len);
/* The first field called name, unfolded, into out (truncated to outlen - 1): false
 * when the header has none. */
bool imap_header_get(const char *h, size_t hlen, const char *name, char *out, size_t outlen);
int imap_do_fetch(struct imap_session *s, const char *name, const struct imap_arg *args,
		  bool uid);
int imap_cmd_fetch(struct imap_session *s, struct imap_command *c);

/* imap_search.c: SEARCH, ESEARCH replies */
enum imap_return_opt { /* SEARCH/SORT RETURN (...) options (RFC 4731) */
	IMAP_RETURN_MIN = 1,
	IMAP_RETURN_MAX = 2,
	IMAP_RETURN_ALL = 4,
	IMAP_RETURN_COUNT = 8,
};
bool imap_search_charset_ok(struct imap_session *s, const char *cs);
/* The sequence numbers (ascending, malloc'd) of the selected folder's messages that
 * match the search keys a..., their count; or -1 after answering the error. */
long imap_search_run(struct imap_session *s, const char *name, const struct imap_arg *a,
		     uint32_t **seqs_r);
/* "RETURN (opts)" at *ap: *opts_r set (ALL when empty) and *ap moved past it; no RETURN
 * list: *opts_r 0.  -1 after answering an unknown option. */
int imap_search_return_parse(struct imap_session *s, const char *name,
			     const struct imap_arg **ap, unsigned *opts_r);
/* "* ESEARCH (TAG ..." for ids (in the order given) with the options asked. */
void imap_esearch_reply(struct imap_session *s, unsigned opts, bool uid, const uint32_t *ids,
			long n);
int imap_do_search(struct imap_session *s, const char *name, const struct imap_arg *args,
		   bool uid);
int imap_cmd_search(struct imap_session *s, struct imap_command *c);

/* imap_sort.c: SORT, THREAD */
int imap_do_sort(struct imap_session *s, const char *name, const struct imap_arg *args,
		 bool uid);
int imap_cmd_sort(struct imap_session *s, struct imap_command *c);
int imap_do_thread(struct imap_session *s, const char *name, const struct imap_arg *args,
		   bool uid);
int imap_cmd_thread(struct imap_session *s, struct imap_command *c);

/* imap_mailbox.c: folders, selection, STORE, EXPUNGE, COPY/MOVE, APPEND */
int imap_cmd_list(struct imap_session *s, struct imap_command *c);
int imap_cmd_lsub(struct imap_session *s, struct imap_command *c);
int imap_cmd_status(struct imap_session *s, struct imap_command *c);
void imap_unselect(struct imap_session *s);
int imap_cmd_select(struct imap_session *s, struct imap_command *c);
int imap_cmd_examine(struct imap_session *s, struct imap_command *c);
int imap_cmd_create(struct imap_session *s, struct imap_command *c);
int imap_cmd_delete(struct imap_session *s, struct imap_command *c);
int imap_cmd_rename(struct imap_session *s, struct imap_command *c);
int imap_cmd_subscribe(struct imap_session *s, struct imap_command *c);
long imap_resolve_set(struct imap_session *s, const char *set, size_t len, bool uid,
		      uint32_t **seqs_r);
int imap_set_arg(const struct imap_arg *a, const char **s_r, size_t *len_r);
int imap_do_store(struct imap_session *s, const char *name, const struct imap_arg *args,
		  bool uid);
int imap_cmd_store(struct imap_session *s, struct imap_command *c);
void imap_expunge(struct imap_session *s, const uint32_t *only, long n_only, bool silent);
int imap_cmd_expunge(struct imap_session *s, struct imap_command *c);
int imap_cmd_close(struct imap_session *s, struct imap_command *c);
int imap_cmd_unselect(struct imap_session *s, struct imap_command *c);
int imap_do_copy(struct imap_session *s, const char *name, const struct imap_arg *args,
		 bool uid, bool move);
int imap_cmd_copy(struct imap_session *s, struct imap_command *c);
int imap_cmd_move(struct imap_session *s, struct imap_command *c);
int imap_cmd_append(struct imap_session *s, struct imap_command *c);

#endif
