/*
 * reporter: the passes of the reporter process (see reporter.h).
 */
#include "report/reporter.h"
#include "federate/federate.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "intel/allowlist.h"
#include "intel/indicator.h"
#include "intel/intel_db.h"
#include "report/arf.h"
#include "report/contact.h"
#include "report/outbox.h"
#include "report/plan.h"
#include "report/sink.h"
#include "store/event.h"

#define DRAIN_BATCH 200
#define MAX_ATTEMPTS 8
#define BULK_MIN 5

/* The redaction key: DATA_DIR/secret (the daemon's), else DATA_DIR/report.secret made
 * here once (0600). */
static int load_secret(const char *data_dir, uint8_t key[32])
{
	static const char *const names[] = {"secret", "report.secret"};
	for (int i = 0; i < 2; i++) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/%s", data_dir, names[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, key, 32);
			close(fd);
			if (n == 32)
				return 0;
		}
	}
	char path[4200];
	snprintf(path, sizeof(path), "%s/report.secret", data_dir);
	if (RAND_bytes(key, 32) != 1)
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	bool ok = write(fd, key, 32) == 32 && fsync(fd) == 0;
	close(fd);
	return ok ? 0 : -1;
}

static bool opted_out(sqlite3 *db, const char *addr)
{
	const char *at = strrchr(addr, '@');
	char dom[300];
	snprintf(dom, sizeof(dom), "@%s", at ? at + 1 : "");
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM optout WHERE address = lower(?1) OR address ="
				   " lower(?2)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, dom, -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

static bool domain_in(const char *dom, const char *list)
{
	size_t dl = strlen(dom);
	for (const char *p = list ? list : ""; *p;) {
		size_t n = strcspn(p, " ");
		/* the contact's domain equals a victim domain, or is inside it */
		if (n && dl >= n && !strncasecmp(dom + dl - n, p, n) &&
		    (dl == n || dom[dl - n - 1] == '.'))
			return true;
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

/* from: the state the row was read in.  An operator may have moved it meanwhile (held
 * it during a slow contact lookup, from the CLI or the dashboard): then the row is
 * theirs and stays as they left it.  Returns whether the row changed. */
static bool set_row(sqlite3 *db, int64_t id, const char *from, const char *state,
		    const char *recipient, const char *error, int64_t now)
{
	bool changed = false;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "UPDATE outbox SET state = ?2, recipient = coalesce(?3, recipient),"
				   " last_error = ?4, updated_us = ?5 WHERE id = ?1 AND state = ?6",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 6, from, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
		if (recipient)
			sqlite3_bind_text(st, 3, recipient, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, 3);
		if (error)
			sqlite3_bind_text(st, 4, error, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, 4);
		sqlite3_bind_int64(st, 5, now);
		changed = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db) > 0;
	}
	sqlite3_finalize(st);
	return changed;
}

/* Pick an acceptable recipient among the contact's addresses. */
static const char *acceptable(sqlite3 *db, const struct mxb_config *cfg, char *emails,
			      const char *victims, const char **why)
{
	*why = "no abuse contact found";
	for (char *save = NULL, *e = strtok_r(emails, " ", &save); e; e = strtok_r(NULL, " ", &save)) {
		const char *at = strrchr(e, '@');
		if (!at)
			continue;
		if (domain_in(at + 1, victims)) {
			*why = "the only contact is in a victim's domain";
			continue;
		}
		bool ours = false;
		for (size_t i = 0; i < cfg->n_local_domains; i++)
			ours |= domain_in(at + 1, cfg->local_domains[i]);
		if (ours) {
			*why = "the only contact is in our own domain";
			continue;
		}
		if (opted_out(db, e)) {
			*why = "the contact opted out";
			continue;
		}
		return e;
	}
	return NULL;
}

static void address_pass(sqlite3 *db, const struct mxb_config *cfg, struct contact_ctx *cc,
			 int64_t now, struct reporter_stats *rs)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT id, contact_query, victim_domains FROM outbox"
				   " WHERE state = 'addressing' ORDER BY id LIMIT 500",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	struct row {
		int64_t id;
		char *q, *v;
	} *rows = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct row *nr = realloc(rows, (n + 1) * sizeof(*rows));
		if (!nr)
			break;
		rows = nr;
		rows[n].id = sqlite3_column_int64(st, 0);
		const char *q = (const char *)sqlite3_column_text(st, 1);
		const char *v = (const char *)sqlite3_column_text(st, 2);
		rows[n].q = strdup(q ? q : "");
		rows[n].v = strdup(v ? v : "");
		n++;
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++) {
		struct buf emails;
		buf_init(&emails, 0);
		const char *why = NULL;
		int rc = *rows[i].q ? contact_resolve(cc, rows[i].q, now, &emails, &why) : 0;
		if (rc > 0) {
			const char *e = acceptable(db, cfg, emails.data, rows[i].v, &why);
			if (e) {
				if (set_row(db, rows[i].id, "addressing", "queued", e, NULL, now))
					rs->addressed++;
			} else if (set_row(db, rows[i].id, "addressing", "rejected", NULL, why, now)) {
				rs->rejected++;
			}
		} else if (rc == 0) {
			if (set_row(db, rows[i].id, "addressing", "rejected", NULL,
				    "no abuse contact found", now))
				rs->rejected++;
		} else {
			set_row(db, rows[i].id, "addressing", "addressing", NULL, why, now);
		}
		buf_free(&emails);
		free(rows[i].q);
		free(rows[i].v);
	}
	free(rows);
}

static int64_t day_index(int64_t now)
{
	return now / 86400000000LL;
}

static int64_t budget_used(sqlite3 *db, const char *rcpt, int64_t now)
{
	sqlite3_stmt *st = NULL;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, "SELECT sent FROM budgets WHERE recipient = lower(?1) AND day = ?2",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, rcpt, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, day_index(now));
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return v;
}

static void budget_add(sqlite3 *db, const char *rcpt, int64_t now)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO budgets(recipient, day, sent) VALUES(lower(?1), ?2, 1)"
				   " ON CONFLICT(recipient, day) DO UPDATE SET sent = sent + 1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, rcpt, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, day_index(now));
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
}

static void defer(sqlite3 *db, int64_t id, int64_t until, const char *why)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "UPDATE outbox SET next_attempt_us = ?2, last_error = ?3"
				   " WHERE id = ?1 AND state = 'queued'", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, until);
		sqlite3_bind_text(st, 3, why, -1, SQLITE_STATIC);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
}

struct due {
	sqlite3 *db;
	int64_t id, not_after;
	int attempts;
	char *key, *kind, *subject, *recipient, *ctype;
	void *payload;
	size_t len;
};

static void on_transmit(void *ctx)
{
	struct due *d = ctx;
	outbox_transmitting(d->db, d->id);
}

static void due_free(struct due *d)
{
	free(d->key);
	free(d->kind);
	free(d->subject);
	free(d->recipient);
	free(d->ctype);
	free(d->payload);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? strdup(s) : NULL;
}

static void record(sqlite3 *db, struct sink *s, const struct due *d,
		   const struct send_outcome *o, int64_t now, struct reporter_stats *rs)
{
	switch (o->result) {
	case SEND_OK:
	case SEND_DUPLICATE:
		outbox_finish(db, d->id, o->result == SEND_OK ? "sent" : "duplicate", NULL,
			      o->response[0] ? o->response : o->detail, 0, now);
		if (o->result == SEND_OK) {
			s->sent++;
			rs->sent++;
		} else {
			s->duplicate++;
			rs->duplicate++;
		}
		if (s->id == SINK_SMTP && d->recipient)
			budget_add(db, d->recipient, now);
		break;
	case SEND_REJECTED:
		outbox_finish(db, d->id, "rejected", o->detail, o->response, 0, now);
		s->failed++;
		rs->rejected++;
		break;
	case SEND_RETRY:
		if (o->status == 429) /* the whole sink waits */
			s->blocked_until_us = now + (o->retry_after_s ? o->retry_after_s : 60) * 1000000;
		if (d->attempts + 1 >= MAX_ATTEMPTS) {
			outbox_finish(db, d->id, "failed", o->detail, o->response, 0, now);
			s->failed++;
			rs->failed++;
		} else {
			outbox_finish(db, d->id, "queued", o->detail, o->response,
				      now + sink_backoff_us(d->attempts + 1, o->retry_after_s), now);
			s->retried++;
			rs->retried++;
		}
		break;
	}
}

/* One batch of a sink's due reports; returns how many rows the batch held. */
static size_t drain_sink(sqlite3 *db, const struct mxb_config *cfg, struct sink *s,
			 volatile sig_atomic_t *stop, struct reporter_stats *rs)
{
	sqlite3_stmt *st = NULL;
	int64_t now = mxb_now_us();
	if (sqlite3_prepare_v2(db, "SELECT id, key, kind, subject, recipient, content_type, payload,"
				   " not_after_us, attempts FROM outbox WHERE sink = ?1 AND"
				   " state = 'queued' AND next_attempt_us <= ?2 ORDER BY id LIMIT ?3",
			       -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, sink_name(s->id), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, DRAIN_BATCH);
	struct due *v = NULL;
	size_t n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct due *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv)
			break;
		v = nv;
		struct due *d = &v[n++];
		memset(d, 0, sizeof(*d));
		d->db = db;
		d->id = sqlite3_column_int64(st, 0);
		d->key = col_dup(st, 1);
		d->kind = col_dup(st, 2);
		d->subject = col_dup(st, 3);
		d->recipient = col_dup(st, 4);
		d->ctype = col_dup(st, 5);
		d->len = (size_t)sqlite3_column_bytes(st, 6);
		d->payload = malloc(d->len + 1);
		if (d->payload)
			memcpy(d->payload, sqlite3_column_blob(st, 6) ? sqlite3_column_blob(st, 6) : "",
			       d->len);
		d->not_after = sqlite3_column_int64(st, 7);
		d->attempts = sqlite3_column_int(st, 8);
	}
	sqlite3_finalize(st);
	size_t fetched = n;

	/* Expired, opted out, no recipient: settled without the network. */
	size_t live = 0;
	for (size_t i = 0; i < n; i++) {
		struct due *d = &v[i];
		now = mxb_now_us();
		if (d->not_after && now > d->not_after) {
			outbox_move(db, d->id, "queued", "expired");
			rs->expired++;
			continue;
		}
		if (s->id == SINK_SMTP) {
			if (!d->recipient) {
				outbox_move(db, d->id, "queued", "addressing");
				continue;
			}
			if (opted_out(db, d->recipient)) {
				if (set_row(db, d->id, "queued", "rejected", NULL,
					    "the recipient opted out", now))
					rs->rejected++;
				continue;
			}
		}
		if (&v[live] != d) {
			v[live] = *d;
			memset(d, 0, sizeof(*d)); /* moved */
		}
		live++;
	}
	for (size_t i = live; i < n; i++)
		due_free(&v[i]);
	n = live;

	size_t i = 0;
	if (s->id == SINK_ABUSEIPDB && n >= BULK_MIN && !*stop && sink_take(s, mxb_now_us())) {
		/* One bulk-report for everything due (up to the batch). */
		struct send_request *rq = calloc(n, sizeof(*rq));
		struct send_outcome *res = calloc(n, sizeof(*res));
		size_t claimed = 0;
		now = mxb_now_us();
		for (size_t k = 0; rq && res && k < n; k++) {
			if (outbox_claim(db, v[k].id, now) != 1)
				continue;
			v[claimed] = v[k];
			if (claimed != k)
				memset(&v[k], 0, sizeof(v[k]));
			rq[claimed] = (struct send_request){v[claimed].key, v[claimed].kind,
							    v[claimed].subject, NULL, v[claimed].ctype,
							    v[claimed].payload, v[claimed].len,
							    on_transmit, NULL};
			claimed++;
		}
		for (size_t k = 0; k < claimed; k++)
			rq[k].ctx = &v[k];
		if (claimed) {
			sink_abuseipdb_bulk(s, rq, claimed, res);
			now = mxb_now_us();
			for (size_t k = 0; k < claimed; k++)
				record(db, s, &v[k], &res[k], now, rs);
		}
		for (size_t k = claimed; k < n; k++)
			due_free(&v[k]);
		n = claimed;
		i = n;
		free(rq);
		free(res);
	}
	for (; i < n && !*stop; i++) {
		struct due *d = &v[i];
		now = mxb_now_us();
		/* the per-recipient daily budget counts what this loop already sent */
		if (s->id == SINK_SMTP &&
		    budget_used(db, d->recipient, now) >= cfg->report_daily_budget) {
			defer(db, d->id, (day_index(now) + 1) * 86400000000LL,
			      "daily budget for this recipient used up");
			rs->deferred++;
			continue;
		}
		if (!sink_take(s, now))
			break; /* the bucket is empty: the rest waits for a later pass */
		if (outbox_claim(db, d->id, now) != 1)
			continue;
		struct send_request rq = {d->key, d->kind, d->subject, d->recipient, d->ctype,
					  d->payload, d->len, on_transmit, d};
		struct send_outcome o;
		sink_send(s, &rq, &o);
		record(db, s, d, &o, mxb_now_us(), rs);
	}
	bool exhausted = i < n; /* the bucket ran dry or a stop came */
	for (size_t k = 0; k < n; k++)
		due_free(&v[k]);
	free(v);
	return exhausted ? 0 : fetched;
}

/* Signed feeds (docs/federation.md): publish, pull the peers, consensus.  Only when
 * feed_publish is on or peers were added. */
static void federation_pass(sqlite3 *db, const char *data_dir, const struct mxb_config *cfg,
			    const struct allowlist *al, int sources, bool force,
			    struct reporter_stats *rs)
{
	sqlite3_stmt *q = NULL;
	long peers = 0;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM peers", -1, &q, NULL) == SQLITE_OK &&
	    sqlite3_step(q) == SQLITE_ROW)
		peers = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	if (!cfg->feed_publish && peers == 0)
		return;
	struct fed_key key;
	char *err = NULL;
	if (fed_key_load(data_dir, true, &key, &err) < 0) {
		fprintf(stderr, "mxbait report: federation: %s\n", err ? err : "no key");
		free(err);
		return;
	}
	struct fed_ctx fc = {.db = db, .data_dir = data_dir, .cfg = cfg, .al = al, .key = &key,
			     .sources = sources, .now_us = mxb_now_us(),
			     .ca_file = cfg->report_ca_file, .force_pull = force};
	struct fed_stats fs;
	if (federate_pass(&fc, &fs, &err) < 0) {
		fprintf(stderr, "mxbait report: federation: %s\n", err ? err : "failed");
		free(err);
	}
	fed_key_clear(&key);
	rs->fed_published += fs.published;
	rs->fed_segments += fs.segments;
	rs->fed_trap_hashes += fs.trap_hashes;
	rs->fed_pulled += fs.pulled_segments;
	rs->fed_imported += fs.imported;
	rs->fed_refused += fs.refused;
	rs->fed_contradictions += fs.contradictions;
	rs->fed_consensus = fs.consensus;
	rs->fed_decisions += fs.decisions;
}

int reporter_run(const char *data_dir, const struct mxb_config *cfg, volatile sig_atomic_t *stop,
		 bool once, struct reporter_stats *rs)
{
	struct reporter_stats dummy;
	if (!rs)
		rs = &dummy;
	memset(rs, 0, sizeof(*rs));
	char *err = NULL;
	int sources = 0;
	sqlite3 *db = intel_db_open(data_dir, true, &sources, &err);
	if (!db) {
		fprintf(stderr, "mxbait report: %s\n", err ? err : "cannot open intel.db");
		free(err);
		return 1;
	}
	struct allowlist al;
	if (allowlist_init(&al, cfg->allowlist_networks, cfg->allowlist_domains,
			   cfg->allowlist_own_addresses, &err) < 0) {
		fprintf(stderr, "mxbait report: %s\n", err ? err : "bad allowlist");
		free(err);
		sqlite3_close(db);
		return 1;
	}
	struct sinks ss;
	if (sinks_init(&ss, cfg, &err) < 0) {
		fprintf(stderr, "mxbait report: %s\n", err ? err : "bad sink configuration");
		free(err);
		sinks_free(&ss);
		allowlist_free(&al);
		sqlite3_close(db);
		return 1;
	}
	uint8_t secret[32];
	if (load_secret(data_dir, secret) < 0) {
		fprintf(stderr, "mxbait report: cannot read or create the redaction secret in %s\n",
			data_dir);
		sinks_free(&ss);
		allowlist_free(&al);
		sqlite3_close(db);
		return 1;
	}
	char from[400];
	if (cfg->report_from && *cfg->report_from)
		snprintf(from, sizeof(from), "%s", cfg->report_from);
	else
		snprintf(from, sizeof(from), "abuse-reports@%s", cfg->hostname);
	free(ss.s[SINK_SMTP].email);
	ss.s[SINK_SMTP].email = strdup(from);
	struct report_identity id = {.hostname = cfg->hostname, .from = from, .org = cfg->hostname,
				     .secret = secret, .secret_len = sizeof(secret)};
	struct contact_ctx cc = {
		.db = db, .data_dir = data_dir, .bootstrap_url = cfg->report_rdap_bootstrap_url,
		.ca_file = cfg->report_ca_file, .dns_server = cfg->report_dns_server,
		.al = &al, .abusix = cfg->report_abusix, .cache_us = (int64_t)cfg->report_contact_cache_ms * 1000,
		.online = cfg->report_contact_lookup,
	};
	if (outbox_recover(db, sink_idempotent, &rs->recovered_requeued, &rs->recovered_unknown) < 0)
		fprintf(stderr, "mxbait report: outbox recovery: %s\n", sqlite3_errmsg(db));
	else if (rs->recovered_requeued || rs->recovered_unknown)
		fprintf(stderr, "mxbait report: after an interrupted send: %ld report(s) requeued "
				"(deduplicating sinks), %ld marked unknown (see mxbait report list "
				"--state unknown)\n", rs->recovered_requeued, rs->recovered_unknown);
	int ret = 0;
	while (!*stop) {
		struct intel_refresh_stats is;
		if (indicators_refresh(db, sources, &is, &err) < 0) {
			fprintf(stderr, "mxbait report: indicators: %s\n", err ? err : "?");
			free(err);
			err = NULL;
		}
		federation_pass(db, data_dir, cfg, &al, sources, once, rs);
		struct plan_ctx pc = {.db = db, .sources = sources, .cfg = cfg, .al = &al, .id = &id,
				      .data_dir = data_dir, .sinks = &ss, .now_us = mxb_now_us()};
		struct plan_stats ps;
		if (plan_reports(&pc, &ps, &err) < 0) {
			fprintf(stderr, "mxbait report: %s\n", err ? err : "plan failed");
			free(err);
			err = NULL;
		}
		rs->planned += ps.arf + ps.registrar + ps.webhost + ps.xarf + ps.api + ps.digest + ps.manual;
		address_pass(db, cfg, &cc, mxb_now_us(), rs);
		/* full batches mean more is due: drain on while the bucket allows */
		for (int k = 0; k < SINK_COUNT && !*stop; k++)
			while (ss.s[k].enabled && !*stop &&
			       drain_sink(db, cfg, &ss.s[k], stop, rs) == DRAIN_BATCH)
				;
		if (once)
			break;
		/* sleep until the next pass, waking early for a stop request */
		int64_t until = mxb_now_us() + (int64_t)cfg->report_interval_ms * 1000;
		while (!*stop && mxb_now_us() < until) {
			struct timespec ts = {0, 100 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	sinks_free(&ss);
	allowlist_free(&al);
	sqlite3_close(db);
	return ret;
}
