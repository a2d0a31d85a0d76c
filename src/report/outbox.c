/*
 * outbox: insertion by idempotency key, the claim/finish transitions and crash
 * recovery (see outbox.h).  Each transition is one UPDATE guarded by the expected
 * current state, in its own transaction, so two reporters (a mistake, but possible)
 * can never both claim a row.
 */
#include "report/outbox.h"

#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

void outbox_key(char out[33], const char *sink, const char *kind, const char *subject,
		const char *period)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "mxbait-report|%s|%s|%s|%s", sink, kind, subject, period ? period : "");
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	EVP_Digest(b.data, b.len, md, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	buf_free(&b);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

int outbox_add(sqlite3 *db, const struct outbox_item *it)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db,
			       "INSERT OR IGNORE INTO outbox(key, sink, kind, subject, recipient,"
			       " contact_query, title, payload, content_type, incidents, redacted,"
			       " victim_domains, created_us, not_after_us, state, updated_us)"
			       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
			       " ?15, ?13)",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	bind_text(st, 1, it->key);
	bind_text(st, 2, it->sink);
	bind_text(st, 3, it->kind);
	bind_text(st, 4, it->subject);
	bind_text(st, 5, it->recipient);
	bind_text(st, 6, it->contact_query);
	bind_text(st, 7, it->title);
	sqlite3_bind_blob(st, 8, it->payload ? it->payload : "", (int)it->payload_len,
			  SQLITE_TRANSIENT);
	bind_text(st, 9, it->content_type);
	sqlite3_bind_int(st, 10, (int)(it->incidents ? it->incidents : 1));
	sqlite3_bind_int(st, 11, it->redacted);
	bind_text(st, 12, it->victim_domains);
	sqlite3_bind_int64(st, 13, it->created_us);
	sqlite3_bind_int64(st, 14, it->not_after_us);
	bind_text(st, 15, it->state ? it->state : "queued");
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	return sqlite3_changes(db) > 0 ? 1 : 0;
}

int outbox_recover(sqlite3 *db, bool (*idempotent)(const char *sink), long *requeued_r,
		   long *unknown_r)
{
	long rq = 0, un = 0;
	sqlite3_stmt *st = NULL;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	/* sending: claimed, no byte of the report left: safe to send again */
	if (sqlite3_exec(db, "UPDATE outbox SET state = 'queued', last_error = 'reporter stopped"
			     " before transmitting' WHERE state = 'sending'", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	rq += sqlite3_changes(db);
	if (sqlite3_prepare_v2(db, "SELECT id, sink FROM outbox WHERE state = 'transmitting'", -1,
			       &st, NULL) != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	struct {
		int64_t id;
		bool again;
	} *v = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		void *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv)
			break;
		v = nv;
		v[n].id = sqlite3_column_int64(st, 0);
		const char *sink = (const char *)sqlite3_column_text(st, 1);
		v[n].again = sink && idempotent && idempotent(sink);
		n++;
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++) {
		char q[256];
		snprintf(q, sizeof(q),
			 v[i].again ? "UPDATE outbox SET state = 'queued', last_error = 'reporter "
				      "stopped while sending; resent with the same idempotency key'"
				      " WHERE id = %lld AND state = 'transmitting'"
				    : "UPDATE outbox SET state = 'unknown', last_error = 'reporter "
				      "stopped while sending: may or may not have arrived'"
				      " WHERE id = %lld AND state = 'transmitting'",
			 (long long)v[i].id);
		if (sqlite3_exec(db, q, NULL, NULL, NULL) != SQLITE_OK) {
			free(v);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		if (v[i].again)
			rq++;
		else
			un++;
	}
	free(v);
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (requeued_r)
		*requeued_r = rq;
	if (unknown_r)
		*unknown_r = un;
	return 0;
}

int outbox_claim(sqlite3 *db, int64_t id, int64_t now_us)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "UPDATE outbox SET state = 'sending', attempts = attempts + 1,"
				   " updated_us = ?2 WHERE id = ?1 AND state = 'queued'",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now_us);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	return sqlite3_changes(db) > 0 ? 1 : 0;
}

int outbox_finish(sqlite3 *db, int64_t id, const char *state, const char *error,
		  const char *response, int64_t next_attempt_us, int64_t now_us)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "UPDATE outbox SET state = ?2, last_error = ?3,"
				   " response = substr(?4, 1, 2000), next_attempt_us = ?5,"
				   " updated_us = ?6,"
				   " sent_us = CASE WHEN ?2 IN ('sent', 'duplicate') THEN ?6 ELSE sent_us END"
				   " WHERE id = ?1 AND state IN ('sending', 'transmitting')",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, state);
	bind_text(st, 3, error);
	bind_text(st, 4, response);
	sqlite3_bind_int64(st, 5, next_attempt_us);
	sqlite3_bind_int64(st, 6, now_us);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int outbox_transmitting(sqlite3 *db, int64_t id)
{
	char q[160];
	snprintf(q, sizeof(q), "UPDATE outbox SET state = 'transmitting' WHERE id = %lld AND"
		 " state = 'sending'", (long long)id);
	return sqlite3_exec(db, q, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int outbox_move(sqlite3 *db, int64_t id, const char *from, const char *to)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "UPDATE outbox SET state = ?2, next_attempt_us = 0,"
				   " attempts = CASE WHEN ?2 = 'queued' AND state IN ('failed',"
				   "  'unknown', 'expired') THEN 0 ELSE attempts END,"
				   " not_after_us = CASE WHEN ?2 = 'queued' AND state = 'expired'"
				   "  THEN 0 ELSE not_after_us END"
				   " WHERE id = ?1 AND instr(' ' || ?3 || ' ', ' ' || state || ' ') > 0",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, to);
	bind_text(st, 3, from);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? sqlite3_changes(db) : -1;
}

int outbox_operator_move(sqlite3 *db, int64_t id, const char *from, const char *to,
			 const char *recipient, char old_r[16])
{
	old_r[0] = '\0';
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -2;
	sqlite3_stmt *st = NULL;
	int ret = -2;
	if (sqlite3_prepare_v2(db, "SELECT state FROM outbox WHERE id = ?1", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *s = (const char *)sqlite3_column_text(st, 0);
			snprintf(old_r, 16, "%s", s ? s : "");
			ret = 0;
		} else if (rc == SQLITE_DONE) {
			ret = -1;
		}
	}
	sqlite3_finalize(st);
	if (ret == 0) {
		int n = outbox_move(db, id, from, to);
		ret = n < 0 ? -2 : n > 0 ? 1 : 0;
	}
	if (ret == 1 && recipient) {
		st = NULL;
		if (sqlite3_prepare_v2(db, "UPDATE outbox SET recipient = ?2 WHERE id = ?1 AND"
					   " sink = 'smtp'", -1, &st, NULL) != SQLITE_OK)
			ret = -2;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, recipient, -1, SQLITE_STATIC);
		if (ret == 1 && sqlite3_step(st) != SQLITE_DONE)
			ret = -2;
		sqlite3_finalize(st);
	}
	if (ret == 1) {
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -2;
		}
		return 1;
	}
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}
