/*
 * plan: reports rendered into the outbox (see plan.h).  Every decision here is made
 * from local data only; the network is the drain's business.
 */
#include "report/plan.h"

#include <ctype.h>
#include <fcntl.h>
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
#include "report/arf.h"
#include "report/contact.h"
#include "report/export.h"
#include "report/outbox.h"
#include "report/sink.h"
#include "store/event.h"
#include "util/buf.h"

#define PLAN_MSG_BATCH 500
#define MSG_READ_MAX (32 << 20)
#define MAX_LINKS 20

static int64_t q_int(sqlite3 *db, const char *sql, const char *arg, int64_t dflt)
{
	sqlite3_stmt *st = NULL;
	int64_t v = dflt;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (arg)
			sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return v;
}

static void cursor_set(sqlite3 *db, const char *name, int64_t v)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO cursors(name, value) VALUES(?1, ?2) ON CONFLICT(name)"
				   " DO UPDATE SET value = excluded.value", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, v);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
}

static bool key_exists(sqlite3 *db, const char *key)
{
	return q_int(db, "SELECT 1 FROM outbox WHERE key = ?1", key, 0) == 1;
}

/* The indicator (kind, value) as the allowlist and the floor see it; false when there
 * is none, it is refused, or it is below the floor. */
static bool reportable(const struct plan_ctx *p, const char *kind, const char *value,
		       int *conf_r)
{
	sqlite3_stmt *st = NULL;
	bool ok = false;
	if (sqlite3_prepare_v2(p->db, "SELECT confidence, flags FROM indicators WHERE kind = ?1"
				      " AND value = ?2 AND source = 'local'", -1, &st, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		struct indicator ind = {
			.kind = (enum ind_kind)indicator_kind_parse(kind),
			.value = value,
			.flags = (const char *)sqlite3_column_text(st, 1),
			.confidence = sqlite3_column_int(st, 0),
		};
		if (!ind.flags)
			ind.flags = "";
		ok = ind.confidence >= (int)p->cfg->export_min_confidence &&
		     !allowlist_refuses(p->al, &ind);
		if (conf_r)
			*conf_r = ind.confidence;
	}
	sqlite3_finalize(st);
	return ok;
}

/* RFC 6650 9.5 thinning: report incident n of a source when this says so. */
static bool thin_report(unsigned n)
{
	if (n <= 10)
		return true;
	if (n <= 100)
		return n % 10 == 0;
	if (n <= 1000)
		return n % 100 == 0;
	return n % 1000 == 0;
}

/* Count one incident for key; returns the Incidents value to report (>= 1), or 0 when
 * this one is thinned out. */
static unsigned thinning(const struct plan_ctx *p, const char *key, int64_t ts_us)
{
	sqlite3_stmt *st = NULL;
	int64_t incidents = 0, reported = 0, last = 0;
	if (sqlite3_prepare_v2(p->db, "SELECT incidents, reported, last_us FROM thinning"
				      " WHERE key = ?1", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			incidents = sqlite3_column_int64(st, 0);
			reported = sqlite3_column_int64(st, 1);
			last = sqlite3_column_int64(st, 2);
		}
	}
	sqlite3_finalize(st);
	if (last && ts_us - last > (int64_t)p->cfg->report_quiet_ms * 1000) {
		incidents = 0; /* a quiet period: start over */
		reported = 0;
	}
	incidents++;
	unsigned out = 0;
	if (thin_report((unsigned)incidents)) {
		out = (unsigned)(incidents - reported);
		reported = incidents;
	}
	if (sqlite3_prepare_v2(p->db, "INSERT INTO thinning(key, incidents, reported, last_us)"
				      " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET"
				      " incidents = excluded.incidents, reported = excluded.reported,"
				      " last_us = excluded.last_us", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, incidents);
		sqlite3_bind_int64(st, 3, reported);
		sqlite3_bind_int64(st, 4, ts_us > last ? ts_us : last);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return out;
}

static char *read_spool(const char *data_dir, const char *name, size_t *len_r)
{
	if (!name || !*name || strchr(name, '/') || name[0] == '.')
		return NULL;
	static const char *const subs[] = {"new", "cur"};
	for (size_t i = 0; i < 2; i++) {
		char path[4200];
		snprintf(path, sizeof(path), "%s/spool/%s/%s", data_dir, subs[i], name);
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		struct stat st;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MSG_READ_MAX) {
			close(fd);
			return NULL;
		}
		char *b = malloc((size_t)st.st_size + 1);
		size_t got = 0;
		while (b && got < (size_t)st.st_size) {
			ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		close(fd);
		if (!b)
			return NULL;
		b[got] = 0;
		*len_r = got;
		return b;
	}
	return NULL;
}

struct strv {
	char **v;
	size_t n;
};

static void strv_add(struct strv *s, const char *x)
{
	if (!x || !*x)
		return;
	for (size_t i = 0; i < s->n; i++)
		if (!strcasecmp(s->v[i], x))
			return;
	char **nv = realloc(s->v, (s->n + 1) * sizeof(char *));
	if (!nv)
		return;
	s->v = nv;
	s->v[s->n++] = strdup(x);
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static void day_of(int64_t us, char *out, size_t outlen, bool week)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, outlen, week ? "%G-W%V" : "%Y-%m-%d", &tm);
}

/* The host of a reportable URL whose network may be told: a name whose registrable
 * domain is itself reportable (platforms, shorteners, redirectors and allowlisted
 * domains are refused there), or a public, not allowlisted IP literal. */
static bool web_host(const struct plan_ctx *p, const char *url, const char *domain, char *host,
		     size_t hostlen)
{
	if (!allowlist_url_host(url, host, hostlen) || allowlist_has_domain(p->al, host))
		return false;
	struct netaddr a;
	if (netaddr_parse(host, &a) == 0)
		return netaddr_is_host(&a) && contact_address_public(&a) &&
		       !netset_contains(&p->al->nets, &a);
	return domain && reportable(p, "domain", domain, NULL);
}

/* The message's ARF once more for another recipient (a registrar, the network hosting
 * a link), once per (kind, subject) ever; base carries the rest.  Returns 1 if added. */
static int arf_copy(struct plan_ctx *p, const struct outbox_item *base,
		    const struct arf_message *am, const char *kind, const char *subject,
		    const char *contact_query, const char *title)
{
	char key[33];
	outbox_key(key, "smtp", kind, subject, NULL);
	if (key_exists(p->db, key))
		return 0;
	struct buf o;
	buf_init(&o, 0);
	char *e = NULL;
	int added = 0;
	if (arf_render(p->id, am, key, p->now_us, &o, &e) == 0) {
		struct outbox_item it = *base;
		it.key = key;
		it.kind = kind;
		it.subject = subject;
		it.contact_query = contact_query;
		it.title = title;
		it.payload = o.data;
		it.payload_len = o.len;
		added = outbox_add(p->db, &it) > 0;
	}
	free(e);
	buf_free(&o);
	return added;
}

/* ---- ARF per captured message ---- */

static int plan_messages(struct plan_ctx *p, struct plan_stats *st)
{
	if (!(p->sources & 1))
		return 0;
	int64_t cur = q_int(p->db, "SELECT value FROM cursors WHERE name = 'plan_messages'", NULL, 0);
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(p->db,
			       "SELECT m.id, m.queue_id, m.ts_us, m.src_ip, m.spool, m.sha256, m.sender,"
			       " m.recipients, m.auth_user, s.src_port FROM ev.messages m"
			       " LEFT JOIN ev.sessions s ON s.session = m.session"
			       " WHERE m.id > ?1 ORDER BY m.id LIMIT ?2",
			       -1, &q, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(q, 1, cur);
	sqlite3_bind_int(q, 2, PLAN_MSG_BATCH);
	int64_t expiry_us = (int64_t)p->cfg->report_expiry_ms * 1000;
	while (sqlite3_step(q) == SQLITE_ROW) {
		int64_t mid = sqlite3_column_int64(q, 0);
		const char *qid = (const char *)sqlite3_column_text(q, 1);
		int64_t ts = sqlite3_column_int64(q, 2);
		const char *ip = (const char *)sqlite3_column_text(q, 3);
		const char *spool = (const char *)sqlite3_column_text(q, 4);
		const char *sha = (const char *)sqlite3_column_text(q, 5);
		const char *sender = (const char *)sqlite3_column_text(q, 6);
		const char *rcpt_json = (const char *)sqlite3_column_text(q, 7);
		const char *auth = (const char *)sqlite3_column_text(q, 8);
		unsigned port = (unsigned)sqlite3_column_int(q, 9);
		cur = mid;
		if (!qid || !ip || ts + expiry_us < p->now_us || !reportable(p, "ip", ip, NULL)) {
			st->skipped++;
			continue;
		}
		char tkey[128];
		snprintf(tkey, sizeof(tkey), "arf|%s", ip);
		unsigned incidents = thinning(p, tkey, ts);
		if (!incidents) {
			st->thinned++;
			continue;
		}
		size_t mlen = 0;
		char *msg = read_spool(p->data_dir, spool, &mlen);
		if (!msg) {
			st->skipped++;
			continue;
		}
		struct strv victims = {0}, uris = {0}, domains = {0}, vdom = {0}, hosts = {0};
		bool fraud = false;
		sqlite3_stmt *r = NULL;
		if (rcpt_json && sqlite3_prepare_v2(p->db, "SELECT value FROM json_each(?1)", -1, &r,
						    NULL) == SQLITE_OK) {
			sqlite3_bind_text(r, 1, rcpt_json, -1, SQLITE_STATIC);
			while (sqlite3_step(r) == SQLITE_ROW)
				strv_add(&victims, (const char *)sqlite3_column_text(r, 0));
		}
		sqlite3_finalize(r);
		if ((p->sources & 2) && sha) {
			if (sqlite3_prepare_v2(p->db, "SELECT r.addr FROM an.recipients r JOIN an.messages"
						      " m ON r.message = m.id WHERE m.sha256 = ?1",
					       -1, &r, NULL) == SQLITE_OK) {
				sqlite3_bind_text(r, 1, sha, -1, SQLITE_STATIC);
				while (sqlite3_step(r) == SQLITE_ROW)
					strv_add(&victims, (const char *)sqlite3_column_text(r, 0));
			}
			sqlite3_finalize(r);
			if (sqlite3_prepare_v2(p->db, "SELECT l.url, l.domain, l.flag_names FROM an.links l"
						      " JOIN an.messages m ON l.message = m.id"
						      " WHERE m.sha256 = ?1 ORDER BY l.idx",
					       -1, &r, NULL) == SQLITE_OK) {
				sqlite3_bind_text(r, 1, sha, -1, SQLITE_STATIC);
				while (sqlite3_step(r) == SQLITE_ROW) {
					const char *u = (const char *)sqlite3_column_text(r, 0);
					const char *d = (const char *)sqlite3_column_text(r, 1);
					const char *fl = (const char *)sqlite3_column_text(r, 2);
					if (fl && (strstr(fl, "display_mismatch") || strstr(fl, "userinfo") ||
						   strstr(fl, "mixed_script")))
						fraud = true;
					if (u && uris.n < MAX_LINKS && reportable(p, "url", u, NULL)) {
						strv_add(&uris, u);
						char h[256];
						if (p->cfg->report_web_hosts && hosts.n < MAX_LINKS &&
						    web_host(p, u, d, h, sizeof(h)))
							strv_add(&hosts, h);
					}
					if (d && domains.n < MAX_LINKS && reportable(p, "domain", d, NULL))
						strv_add(&domains, d);
				}
			}
			sqlite3_finalize(r);
		}
		for (size_t i = 0; i < victims.n; i++) {
			const char *at = strrchr(victims.v[i], '@');
			if (at)
				strv_add(&vdom, at + 1);
		}
		struct buf vd;
		buf_init(&vd, 0);
		for (size_t i = 0; i < vdom.n; i++)
			buf_printf(&vd, "%s%s", i ? " " : "", vdom.v[i]);
		struct arf_message am = {
			.queue_id = qid, .src_ip = ip, .src_port = port, .arrival_us = ts,
			.mail_from = sender ? sender : "", .auth_user = auth,
			.rcpts = (const char *const *)victims.v, .n_rcpts = victims.n,
			.uris = (const char *const *)uris.v, .n_uris = uris.n,
			.domains = (const char *const *)domains.v, .n_domains = domains.n,
			.msg = msg, .msg_len = mlen, .incidents = incidents, .fraud = fraud,
			.redact = p->cfg->report_redact,
		};
		char key[33], cq[128];
		outbox_key(key, "smtp", "arf", qid, NULL);
		snprintf(cq, sizeof(cq), "ip:%s", ip);
		struct buf out;
		buf_init(&out, 0);
		char *err = NULL;
		if (!key_exists(p->db, key) && arf_render(p->id, &am, key, p->now_us, &out, &err) == 0) {
			char title[200];
			snprintf(title, sizeof(title), "ARF: message %s from %s (%u incident%s)", qid, ip,
				 incidents, incidents == 1 ? "" : "s");
			struct outbox_item it = {
				.key = key, .sink = "smtp", .kind = "arf", .subject = qid,
				.contact_query = cq, .title = title, .content_type = "message/rfc822",
				.payload = out.data, .payload_len = out.len, .incidents = incidents,
				.redacted = am.redact, .victim_domains = vd.data, .created_us = p->now_us,
				.not_after_us = ts + expiry_us, .state = "addressing",
			};
			int added = outbox_add(p->db, &it);
			if (added > 0)
				st->arf++;
			else if (added < 0)
				fprintf(stderr, "mxbait report: outbox: %s\n", sqlite3_errmsg(p->db));
			/* the registrar of each spamvertised domain, once per domain */
			for (size_t i = 0; i < domains.n; i++) {
				char dcq[300];
				snprintf(dcq, sizeof(dcq), "domain:%s", domains.v[i]);
				snprintf(title, sizeof(title), "ARF to the registrar of %.120s",
					 domains.v[i]);
				st->registrar += arf_copy(p, &it, &am, "arf-domain", domains.v[i], dcq,
							  title);
			}
			/* the network hosting each spamvertised URL's host, once per host */
			for (size_t i = 0; i < hosts.n; i++) {
				char hcq[300];
				struct netaddr lit;
				snprintf(hcq, sizeof(hcq), "%s:%s",
					 netaddr_parse(hosts.v[i], &lit) == 0 ? "ip" : "host", hosts.v[i]);
				snprintf(title, sizeof(title), "ARF to the web host of %.120s",
					 hosts.v[i]);
				st->webhost += arf_copy(p, &it, &am, "arf-host", hosts.v[i], hcq, title);
			}
		} else if (err) {
			fprintf(stderr, "mxbait report: message %s: not reported: %s\n", qid, err);
			st->skipped++;
		}
		free(err);
		buf_free(&out);
		buf_free(&vd);
		strv_free(&victims);
		strv_free(&uris);
		strv_free(&domains);
		strv_free(&vdom);
		strv_free(&hosts);
		free(msg);
	}
	sqlite3_finalize(q);
	cursor_set(p->db, "plan_messages", cur);
	return 0;
}

/* ---- per-indicator reports ---- */

static bool token_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c < 0x21 || *c > 0x7e)
			return false;
	return true;
}

static void xarf_for(struct plan_ctx *p, const struct indicator *ind, struct plan_stats *st)
{
	char day[16], key[33], cq[80];
	day_of(p->now_us, day, sizeof(day), false);
	outbox_key(key, "smtp", "xarf", ind->value, day);
	if (key_exists(p->db, key))
		return;
	struct buf log, protos;
	buf_init(&log, 0);
	buf_init(&protos, 0);
	sqlite3_stmt *r = NULL;
	if ((p->sources & 1) &&
	    sqlite3_prepare_v2(p->db, "SELECT ts_us, proto, mechanism, username, success FROM"
				      " ev.auth_attempts WHERE src_ip = ?1 ORDER BY id DESC LIMIT 50",
			       -1, &r, NULL) == SQLITE_OK) {
		sqlite3_bind_text(r, 1, ind->value, -1, SQLITE_STATIC);
		while (sqlite3_step(r) == SQLITE_ROW) {
			char ts[40];
			export_time(sqlite3_column_int64(r, 0), false, ts, sizeof(ts));
			const char *pr = (const char *)sqlite3_column_text(r, 1);
			const char *me = (const char *)sqlite3_column_text(r, 2);
			const char *us = (const char *)sqlite3_column_text(r, 3);
			buf_printf(&log, "%s %s %s user=%s %s\n", ts, token_ok(pr) ? pr : "-",
				   token_ok(me) ? me : "-", token_ok(us) && strlen(us) < 100 ? us : "(unprintable)",
				   sqlite3_column_int(r, 4) ? "accepted (honeypot)" : "failed");
			if (token_ok(pr) && !strstr(protos.data ? protos.data : "", pr))
				buf_printf(&protos, "%s%s", protos.len ? " " : "", pr);
		}
	}
	sqlite3_finalize(r);
	struct xarf_login l = {
		.src_ip = ind->value, .first_us = ind->first_seen_us, .last_us = ind->last_seen_us,
		.attempts = (long)ind->guesses, .logins = (long)ind->logins, .probes = (long)ind->probes,
		.protocols = protos.data, .log = log.data, .confidence = ind->confidence,
	};
	struct buf json, mail;
	buf_init(&json, 0);
	buf_init(&mail, 0);
	xarf_render_login(p->id, &l, key, p->now_us, &json, &mail);
	snprintf(cq, sizeof(cq), "ip:%s", ind->value);
	char title[160];
	snprintf(title, sizeof(title), "XARF login_attack: %s (%lld guesses)", ind->value,
		 (long long)ind->guesses);
	struct outbox_item it = {
		.key = key, .sink = "smtp", .kind = "xarf", .subject = ind->value, .contact_query = cq,
		.title = title, .content_type = "message/rfc822", .payload = mail.data,
		.payload_len = mail.len, .incidents = (unsigned)(ind->guesses > 0 ? ind->guesses : 1),
		.created_us = p->now_us,
		.not_after_us = ind->last_seen_us + (int64_t)p->cfg->report_expiry_ms * 1000,
		.state = "addressing",
	};
	if (outbox_add(p->db, &it) > 0)
		st->xarf++;
	buf_free(&json);
	buf_free(&mail);
	buf_free(&log);
	buf_free(&protos);
}

static void urlenc(struct buf *b, const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (isalnum(*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~')
			buf_putc(b, (char)*c);
		else
			buf_printf(b, "%%%02X", *c);
	}
}

static void json_s(struct buf *b, const char *s)
{
	json_append_string(b, s ? s : "", s ? strlen(s) : 0);
}

static void add_api(struct plan_ctx *p, const char *sink, const char *kind, const char *subject,
		    const char *period, struct buf *payload, const char *ctype, int64_t not_after,
		    const char *title, struct plan_stats *st, const char *state)
{
	char key[33];
	outbox_key(key, sink, kind, subject, period);
	struct outbox_item it = {
		.key = key, .sink = sink, .kind = kind, .subject = subject, .title = title,
		.content_type = ctype, .payload = payload->data, .payload_len = payload->len,
		.created_us = p->now_us, .not_after_us = not_after, .state = state,
	};
	int rc = outbox_add(p->db, &it);
	if (rc > 0 && !strcmp(sink, "manual"))
		st->manual++;
	else if (rc > 0)
		st->api++;
}

static bool malware_url(const char *url)
{
	static const char *const ext[] = {".exe", ".scr", ".zip", ".rar", ".7z", ".iso", ".img",
					  ".js", ".jse", ".vbs", ".vbe", ".hta", ".msi", ".jar",
					  ".apk", ".dll", ".bat", ".cmd", ".ps1", ".lnk", ".docm",
					  ".xlsm", ".pptm", ".cab", ".gz", ".tgz", ".xz", ".bin"};
	const char *p = strstr(url, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	if (!p)
		return false;
	size_t n = strcspn(p, "?#");
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t el = strlen(ext[i]);
		if (n > el && !strncasecmp(p + n - el, ext[i], el))
			return true;
	}
	return false;
}

struct ind_walk {
	struct plan_ctx *p;
	struct plan_stats *st;
	int64_t webhook_since;
};

static int per_indicator(void *ctx, const struct indicator *ind)
{
	struct ind_walk *w = ctx;
	struct plan_ctx *p = w->p;
	const struct sinks *ss = p->sinks;
	if (allowlist_refuses(p->al, ind))
		return 0;
	int64_t expiry = (int64_t)p->cfg->report_expiry_ms * 1000;
	char day[16], title[300];
	day_of(p->now_us, day, sizeof(day), false);
	struct buf b;
	buf_init(&b, 0);
	bool recent = ind->last_seen_us >= p->now_us - 86400000000LL;
	if (ind->kind == IND_IP && recent) {
		bool guess = indicator_has_flag(ind, "guessing") ||
			     indicator_has_flag(ind, "trap-credential");
		bool spam = indicator_has_flag(ind, "spam");
		if (p->cfg->report_xarf && guess && ind->guesses >= 5)
			xarf_for(p, ind, w->st);
		if (ss->s[SINK_ABUSEIPDB].enabled && (guess || spam ||
						       indicator_has_flag(ind, "enumeration"))) {
			buf_puts(&b, "ip=");
			urlenc(&b, ind->value);
			buf_puts(&b, "&categories=");
			struct buf cats;
			buf_init(&cats, 0);
			if (guess)
				buf_puts(&cats, "18");
			if (spam)
				buf_printf(&cats, "%s11", cats.len ? "," : "");
			if (indicator_has_flag(ind, "enumeration"))
				buf_printf(&cats, "%s14", cats.len ? "," : "");
			urlenc(&b, cats.data);
			buf_free(&cats);
			char comment[300], ts[40];
			snprintf(comment, sizeof(comment),
				 "mail honeypot: %lld failed logins, %lld address probes, %lld spam "
				 "messages%s",
				 (long long)ind->guesses, (long long)ind->probes, (long long)ind->messages,
				 ind->logins ? ", logged in with a guessed honeypot password" : "");
			buf_puts(&b, "&comment=");
			urlenc(&b, comment);
			export_time(ind->last_seen_us, false, ts, sizeof(ts));
			buf_puts(&b, "&timestamp=");
			urlenc(&b, ts);
			snprintf(title, sizeof(title), "AbuseIPDB: %s", ind->value);
			add_api(p, "abuseipdb", "ip", ind->value, day, &b,
				"application/x-www-form-urlencoded", p->now_us + 86400000000LL, title,
				w->st, "queued");
			buf_reset(&b);
		}
		if (ss->s[SINK_SPAMHAUS].enabled && spam) {
			buf_puts(&b, "{\"threat_type\":\"source-of-spam\",\"reason\":");
			char reason[256];
			snprintf(reason, sizeof(reason), "Submitted %lld spam messages to a mail honeypot "
				 "(mxbait) after guessing an account password", (long long)ind->messages);
			json_s(&b, reason);
			buf_puts(&b, ",\"source\":{\"object\":");
			json_s(&b, ind->value);
			buf_puts(&b, "}}");
			snprintf(title, sizeof(title), "Spamhaus: %s source-of-spam", ind->value);
			add_api(p, "spamhaus", "ip", ind->value, NULL, &b, "application/json",
				ind->last_seen_us + expiry, title, w->st, "queued");
			buf_reset(&b);
		}
	}
	if (ind->kind == IND_URL && ind->first_seen_us + expiry >= p->now_us) {
		if (ss->s[SINK_NETCRAFT].enabled) {
			buf_puts(&b, "{\"email\":");
			json_s(&b, ss->s[SINK_NETCRAFT].email);
			buf_puts(&b, ",\"reason\":\"Spamvertised in mail captured by a honeypot\","
				     "\"urls\":[{\"url\":");
			json_s(&b, ind->value);
			buf_puts(&b, "}]}");
			snprintf(title, sizeof(title), "Netcraft: %.250s", ind->value);
			add_api(p, "netcraft", "url", ind->value, NULL, &b, "application/json",
				ind->first_seen_us + expiry, title, w->st, "queued");
			buf_reset(&b);
		}
		if (ss->s[SINK_URLHAUS].enabled && malware_url(ind->value)) {
			buf_puts(&b, "{\"anonymous\":\"0\",\"submission\":[{\"url\":");
			json_s(&b, ind->value);
			buf_puts(&b, ",\"threat\":\"malware_download\",\"tags\":[\"mxbait\",\"spam\"]}]}");
			snprintf(title, sizeof(title), "URLhaus: %.250s", ind->value);
			add_api(p, "urlhaus", "url", ind->value, NULL, &b, "application/json",
				ind->first_seen_us + expiry, title, w->st, "queued");
			buf_reset(&b);
		}
		if (token_ok(ind->value)) {
			buf_printf(&b, "Spamvertised URL (confidence %d, %lld message%s, first seen ",
				   ind->confidence, (long long)ind->messages, ind->messages == 1 ? "" : "s");
			char ts[40];
			export_time(ind->first_seen_us, false, ts, sizeof(ts));
			buf_printf(&b, "%s):\n  %s\n\nSubmit by hand where there is no API for us:\n"
				       "  PhishTank: https://phishtank.org/add_web_phish.php\n"
				       "  Google Safe Browsing: https://safebrowsing.google.com/"
				       "safebrowsing/report_phish/\n"
				       "  SpamCop: forward the evidence message (mxbait show) to your "
				       "submit address\nEvidence: %s\n", ts, ind->value, ind->evidence);
			snprintf(title, sizeof(title), "manual: %.250s", ind->value);
			add_api(p, "manual", "url", ind->value, NULL, &b, "text/plain",
				ind->first_seen_us + expiry, title, w->st, "manual");
			buf_reset(&b);
		}
	}
	if (ss->s[SINK_WEBHOOK].enabled && ind->updated_us >= w->webhook_since &&
	    (ind->kind == IND_IP || ind->kind == IND_PREFIX || ind->kind == IND_URL ||
	     ind->kind == IND_DOMAIN || ind->kind == IND_ATTACHMENT || ind->kind == IND_CAMPAIGN)) {
		char f[40], l[40];
		export_time(ind->first_seen_us, false, f, sizeof(f));
		export_time(ind->last_seen_us, false, l, sizeof(l));
		buf_printf(&b, "{\"source\":\"mxbait\",\"sensor\":");
		json_s(&b, p->id->hostname);
		buf_printf(&b, ",\"kind\":\"%s\",\"value\":", indicator_kind_name(ind->kind));
		json_s(&b, ind->value);
		buf_printf(&b, ",\"confidence\":%d,\"first_seen\":\"%s\",\"last_seen\":\"%s\","
			       "\"guesses\":%lld,\"probes\":%lld,\"messages\":%lld,\"logins\":%lld,"
			       "\"flags\":", ind->confidence, f, l, (long long)ind->guesses,
			   (long long)ind->probes, (long long)ind->messages, (long long)ind->logins);
		json_s(&b, ind->flags);
		buf_puts(&b, ",\"evidence\":");
		json_s(&b, ind->evidence);
		buf_puts(&b, "}");
		char subj[600];
		snprintf(subj, sizeof(subj), "%s:%.500s", indicator_kind_name(ind->kind), ind->value);
		snprintf(title, sizeof(title), "webhook: %.250s", subj);
		add_api(p, "webhook", indicator_kind_name(ind->kind), subj, day, &b,
			"application/json", p->now_us + expiry, title, w->st, "queued");
	}
	buf_free(&b);
	return 0;
}

static int plan_digests(struct plan_ctx *p, struct plan_stats *st)
{
	if (!p->cfg->report_leak_digest)
		return 0;
	char week[16];
	day_of(p->now_us, week, sizeof(week), true);
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(p->db, "SELECT value FROM indicators WHERE kind = 'recipient_domain'"
				      " AND source = 'local' AND last_seen_us >= ?1", -1, &q, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_int64(q, 1, p->now_us - 7 * 86400000000LL);
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *dom = (const char *)sqlite3_column_text(q, 0);
		if (!dom || allowlist_has_domain(p->al, dom))
			continue;
		bool ours = false;
		for (size_t i = 0; i < p->cfg->n_local_domains; i++)
			ours |= !strcasecmp(dom, p->cfg->local_domains[i]);
		if (ours)
			continue;
		char key[33];
		outbox_key(key, "smtp", "digest", dom, week);
		if (key_exists(p->db, key))
			continue;
		struct strv addrs = {0};
		sqlite3_stmt *r = NULL;
		if (sqlite3_prepare_v2(p->db, "SELECT value FROM indicators WHERE kind = 'recipient'"
					      " AND parent = ?1 ORDER BY value LIMIT 10000", -1, &r,
				       NULL) == SQLITE_OK) {
			sqlite3_bind_text(r, 1, dom, -1, SQLITE_STATIC);
			while (sqlite3_step(r) == SQLITE_ROW)
				strv_add(&addrs, (const char *)sqlite3_column_text(r, 0));
		}
		sqlite3_finalize(r);
		struct buf out;
		buf_init(&out, 0);
		digest_render(p->id, dom, (const char *const *)addrs.v, addrs.n, key, p->now_us, &out);
		char rcpt[300], title[300];
		snprintf(rcpt, sizeof(rcpt), "postmaster@%s", dom);
		snprintf(title, sizeof(title), "digest: %zu leaked addresses of %.200s", addrs.n, dom);
		struct outbox_item it = {
			.key = key, .sink = "smtp", .kind = "digest", .subject = dom, .recipient = rcpt,
			.title = title, .content_type = "message/rfc822", .payload = out.data,
			.payload_len = out.len, .incidents = (unsigned)addrs.n, .created_us = p->now_us,
			.not_after_us = p->now_us + (int64_t)p->cfg->report_expiry_ms * 1000,
			.state = "queued",
		};
		if (outbox_add(p->db, &it) > 0)
			st->digest++;
		buf_free(&out);
		strv_free(&addrs);
	}
	sqlite3_finalize(q);
	return 0;
}

int plan_reports(struct plan_ctx *p, struct plan_stats *st, char **err_r)
{
	memset(st, 0, sizeof(*st));
	if (err_r)
		*err_r = NULL;
	if (sqlite3_exec(p->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (plan_messages(p, st) < 0)
		goto rollback;
	struct ind_walk w = {.p = p, .st = st};
	w.webhook_since = q_int(p->db, "SELECT value FROM cursors WHERE name = 'plan_webhook'", NULL,
				0);
	struct indicator_filter f = {
		.kinds = IND_BIT(IND_IP) | IND_BIT(IND_PREFIX) | IND_BIT(IND_URL) |
			 IND_BIT(IND_DOMAIN) | IND_BIT(IND_ATTACHMENT) | IND_BIT(IND_CAMPAIGN),
		.min_confidence = (int)p->cfg->export_min_confidence,
		.since_us = p->now_us - (int64_t)p->cfg->report_expiry_ms * 1000,
	};
	if (indicators_each(p->db, &f, per_indicator, &w) < 0)
		goto rollback;
	cursor_set(p->db, "plan_webhook", p->now_us);
	if (plan_digests(p, st) < 0)
		goto rollback;
	if (sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto rollback;
	return 0;
rollback:
	if (err_r && asprintf(err_r, "plan: %s", sqlite3_errmsg(p->db)) < 0)
		*err_r = NULL;
	sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
fail:
	if (err_r && asprintf(err_r, "plan: %s", sqlite3_errmsg(p->db)) < 0)
		*err_r = NULL;
	return -1;
}
