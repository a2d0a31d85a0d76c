/*
 * smtp_private: what the three files of the SMTP engine share (smtp.c, smtp_auth.c,
 * smtp_message.c).  Not for anyone else: the host contract is smtp.h.
 *
 * The session struct lives here so each file can read the state it needs; every
 * state change still goes through smtp_set_state() and every reply through
 * smtp_reply(), which is what keeps replies, delays and error counts consistent.
 */
#ifndef MXB_PROTO_SMTP_PRIVATE_H
#define MXB_PROTO_SMTP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/session.h"
#include "proto/smtp.h"
#include "proto/smtp_parse.h"
#include "util/buf.h"

struct mxb_event;

#define SASL_RESP_LIMIT 12288   /* Postfix smtpd_sasl_resp_limit */
#define JUNK_CMD_LIMIT 100      /* Postfix smtpd_junk_command_limit */
#define RCPT_OVERSHOOT_LIMIT 1000 /* Postfix smtpd_recipient_overshoot_limit */
#define NAME_MAX_LEN 512        /* HELO name, auth user kept for headers */

enum sstate {
	ST_CMD,   /* reading command lines */
	ST_DATA,  /* reading DATA lines */
	ST_CHUNK, /* reading BDAT chunk bytes */
	ST_AUTH,  /* reading a SASL continuation line */
};

enum auth_mech { MECH_NONE, MECH_PLAIN, MECH_LOGIN, MECH_CRAM };

/* Offences recorded at most once per session (they repeat on every line). */
enum once_offence {
	ONCE_BARE_LF = 1 << 0,
	ONCE_LINE_TOO_LONG = 1 << 1,
	ONCE_NUL = 1 << 2,
	ONCE_PIPELINING = 1 << 3,
};

/* The session's big text fields.  A connection that never sends a byte (the common
 * idle or scanning client) does not need them: they are allocated with the first input,
 * which keeps an idle session under 1 KB (bench/idle-conns.sh holds 10,000). */
struct smtp_text {
	char helo[NAME_MAX_LEN];
	char auth_user[NAME_MAX_LEN];
	char auth_challenge[160];    /* CRAM-MD5 challenge sent */
	char auth_last334[400];      /* text of the last 334, for Dovecot's empty-answer reply */
	char sender[1024];
	char bdat_reply[SMTP_REPLY_MAX];
	char chunk_reply[SMTP_REPLY_MAX]; /* reply once a discarded chunk is read */
};

struct smtp_session {
	struct session sess;         /* output, suspension, counters, events (session.h) */
	const struct smtp_config *cfg;
	char peer_rdns[256];
	bool have_rdns;

	enum sstate state;
	/* NULL until the first input byte (smtp_session_feed); everything that reads or
	 * writes it runs because of input, except where it checks for NULL. */
	struct smtp_text *x;

	/* TLS */
	bool tls;
	char tls_version[32];
	char tls_cipher[96];
	int tls_bits;

	/* HELO/EHLO */
	bool have_helo;
	bool esmtp;

	/* AUTH */
	bool authenticated;
	enum auth_mech mech;
	int auth_step;               /* LOGIN: 0 username, 1 password */
	unsigned auth_failures;      /* wrong credentials so far (Dovecot's penalty) */
	unsigned char *auth_tmp;     /* LOGIN username until the password arrives (malloc'd,
				      * every decoded byte) */
	size_t auth_tmp_len;

	/* Transaction */
	bool in_mail;
	bool mail_smtputf8;
	uint64_t msg_size;           /* SIZE=, sticky until a reset as in Postfix */
	unsigned rcpt_count;
	/* Local names VRFY called unknown (FNV-1a of the lower-case local part): RCPT
	 * refuses them too in this session, so the two never contradict (persona.md). */
	uint64_t vrfy_unknown[16];
	unsigned n_vrfy_unknown;
	unsigned rcpt_overshoot;
	struct buf rcpts;            /* accepted recipients, NUL-separated */

	/* Message being received (DATA or BDAT) */
	bool msg_is_open;
	bool msg_failed;             /* msg_write refused: answer 452 at the end */
	bool msg_too_big;
	uint64_t msg_bytes;          /* content bytes, Received header excluded */
	char queue_id[32];
	bool data_bol;
	bool bdat_active;            /* a BDAT transfer is in progress */
	bool bdat_error;             /* a chunk failed: later chunks get bdat_reply */
	uint64_t chunk_left;
	bool chunk_discard;          /* chunk bytes are read and thrown away */
	bool chunk_last;
	bool method_bdat;

	/* Input framing */
	struct session_framer in;
	bool overflowed;             /* the line just framed was over the limit */

	/* Output */
	bool step_delayed;           /* this step already slept (one sleep per reply) */
	bool limit_421_due;          /* the hard limit's 421 follows the held reply */

	/* Counters beyond the session's */
	unsigned junk_cmds;
	int last_code;
};

/* smtp.c: state, output, events, the transaction */
/* The one place the input state changes (traced old -> new, session.h). */
void smtp_set_state(struct smtp_session *s, enum sstate new_state);
/* Queue one reply line (no CRLF in fmt); sleeps are planned per step. */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A 4xx/5xx answer to a command: Postfix's error_count++. */
void smtp_count_error(struct smtp_session *s);
/* Postfix's hard error limit was reached: 421 and close, with its own sleep. */
void smtp_error_limit(struct smtp_session *s);
void smtp_offence(struct smtp_session *s, const char *kind, const char *detail, size_t len);
void smtp_msg_abort(struct smtp_session *s);
void smtp_mail_reset(struct smtp_session *s);
bool smtp_auth_offered(const struct smtp_session *s);
void smtp_join_args(const struct smtp_args *a, size_t from, char *out, size_t outlen);

/* smtp_auth.c */
int smtp_auth_check(struct smtp_session *s, struct smtp_args *a);
void smtp_auth_run(struct smtp_session *s, struct smtp_args *a);
void smtp_auth_line(struct smtp_session *s, const char *line, size_t len);
void smtp_auth_event_simple(struct smtp_session *s, const char *mech, const char *result);

/* smtp_message.c */
int smtp_data_check(struct smtp_session *s, struct smtp_args *a);
void smtp_data_run(struct smtp_session *s, struct smtp_args *a);
int smtp_bdat_check(struct smtp_session *s, struct smtp_args *a);
void smtp_bdat_run(struct smtp_session *s, struct smtp_args *a);
/* The last byte of a BDAT chunk was read (or skipped). */
void smtp_chunk_done(struct smtp_session *s);
/* DATA: one piece of a line (had_lf: the piece ends the line). */
void smtp_data_piece(struct smtp_session *s, const char *p, size_t len, bool had_lf);
void smtp_msg_put(struct smtp_session *s, const char *data, size_t len);
void smtp_message_rejected(struct smtp_session *s, const char *reason, int code);

#endif
