/*
 * mailbox: the plausible, stable mailbox a cracked account sees over IMAP and POP3.
 *
 * Generated, not stored: the same username always gets the same folders (INBOX, Sent,
 * Drafts, Trash, Junk), the same few realistic messages, UIDs, UIDVALIDITY, sizes and
 * dates, derived from the username, the per-installation secret and the day the
 * account was cracked (dates count back from it: the newest mail is from the days
 * before the attacker got in), so every login (any protocol, any address, after a
 * restart) sees the same thing.  Each session
 * gets its own copy: flag changes, expunges and deletions live only as long as the
 * session, as if another client had undone them.
 *
 * Messages use CRLF line ends (RFC 5322 on the wire), so sizes are what IMAP
 * RFC822.SIZE and POP3 LIST report.
 *
 * Memory: message bytes live in reference-counted bodies, so a COPY or MOVE shares
 * the bytes instead of duplicating them.  What a session added beyond the generated
 * mailbox (bodies APPENDed, and MBOX_ENTRY_COST per message entry APPENDed or copied)
 * is counted in mailbox_extra_bytes(), which the IMAP engine charges to its memory
 * budgets.  A folder holds at most 1000 messages and 32 MiB of message bytes, copies
 * counted at their full size (what a SEARCH or FETCH of the folder must walk).
 */
#ifndef MXB_DECEIVE_MAILBOX_H
#define MXB_DECEIVE_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

enum mbox_flag {
	MBOX_SEEN = 1 << 0,
	MBOX_ANSWERED = 1 << 1,
	MBOX_FLAGGED = 1 << 2,
	MBOX_DELETED = 1 << 3,
	MBOX_DRAFT = 1 << 4,
	MBOX_RECENT = 1 << 5,
};

struct mbox_body;

struct mbox_msg {
	uint32_t uid;
	const char *data;      /* whole message, CRLF line ends (the body's bytes) */
	size_t size;
	struct mbox_body *body; /* shared with copies of this message */
	int extra;             /* added in this session: counted in extra_bytes */
	int64_t internaldate;  /* seconds since the epoch */
	unsigned flags;        /* enum mbox_flag */
};

struct mbox_set;

struct mbox_folder {
	struct mbox_set *set;  /* the mailbox it belongs to */
	char *name;            /* "INBOX", "Sent", ... */
	const char *special_use; /* "\\Sent", "\\Drafts", "\\Trash", "\\Junk" or NULL */
	uint32_t uidvalidity;
	uint32_t uidnext;
	struct mbox_msg *msgs;
	size_t n_msgs;
	size_t alloc_msgs;
};

struct mbox_set {
	struct mbox_folder *folders;
	size_t n_folders;
	size_t extra_bytes;    /* see mailbox_extra_bytes() */
};

/* What one message entry added to a folder is counted as (the entry itself, and its
 * share of the folder's array and the allocator), beyond its body. */
#define MBOX_ENTRY_COST 64

/* The mailbox of username (canonical form) at domain, for a server called hostname.
 * secret: the per-installation key.  NULL on allocation failure. */
struct mbox_set *mailbox_generate(const char *username, const char *domain,
				  const char *hostname, const uint8_t secret[32]);
/* The same, dated from the crack time cracked_at (seconds since the epoch: the
 * newest message is from the day before that day, UIDVALIDITY 200-900 days before
 * it).  0 (unknown): a fixed anchor (2026-11-23), which is what mailbox_generate()
 * uses. */
struct mbox_set *mailbox_generate_at(const char *username, const char *domain,
				     const char *hostname, const uint8_t secret[32],
				     int64_t cracked_at);
void mailbox_free(struct mbox_set **set);

/* Folder by name (INBOX case-insensitive), or NULL. */
struct mbox_folder *mailbox_folder(struct mbox_set *set, const char *name);

/* Append a message (IMAP APPEND into this session's copy): the bytes are copied into
 * a new body.  Returns its UID, or 0 when the folder is full or memory ran out. */
uint32_t mailbox_append(struct mbox_folder *f, const char *data, size_t len,
			int64_t internaldate, unsigned flags);
/* Copy message m (of any folder of the same mailbox, f included) into f, sharing its
 * body.  Returns the new UID, or 0 when f is full or memory ran out. */
uint32_t mailbox_copy(struct mbox_folder *f, const struct mbox_msg *m, unsigned flags);
/* Bytes this session added beyond the generated mailbox: the APPENDed bodies still
 * referenced, plus MBOX_ENTRY_COST per entry APPENDed or copied still present. */
size_t mailbox_extra_bytes(const struct mbox_set *set);

/* Remove the messages flagged \Deleted; returns how many went. */
size_t mailbox_expunge(struct mbox_folder *f);

#endif
