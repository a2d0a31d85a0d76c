/*
 * hub_query: `mxbait hub stats|attackers|creds|campaigns`, across every sensor of
 * the hub (see hub.h).  Tables through query/table, JSON through query/jw (the
 * CLI's own writers); values from the hub are attacker text: escaped there.
 *
 * Campaigns merge across sensors by their MinHash signatures (analyze/fingerprint.c:
 * the same 128 hashes on every sensor), the analyzer's rule: two campaigns are one
 * when their estimated similarity is at least 0.3; merging is transitive (union-find)
 * over the candidate pairs that share an LSH band (64 bands of 2 hashes, the
 * analyzer's own banding: a pair at 0.3 is a candidate 99.8% of the time), so the
 * comparison is not quadratic in the number of campaigns.
 */
#include "federate/hub.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/jw.h"
#include "query/table.h"
#include "util/buf.h"

#define MINHASH_N 128
#define BANDS 64
#define ROWS_PER_BAND (MINHASH_N / BANDS)
#define SIMILAR 0.3
#define CAMPAIGNS_MAX 100000

static void set_err(char **err_r, PGconn *c)
{
	if (err_r && asprintf(err_r, "%s", PQerrorMessage(c)) < 0)
		*err_r = NULL;
}

/* Run sql with since (as timestamptz) and top; the result, or NULL. */
static PGresult *run(PGconn *c, const char *sql, const struct hub_query_opts *o, char **err_r)
{
	char since[32], top[32];
	snprintf(since, sizeof(since), "%lld", (long long)(o->since_us / 1000000));
	snprintf(top, sizeof(top), "%ld", o->top > 0 ? o->top : 20);
	const char *pv[2] = {since, top};
	PGresult *r = PQexecParams(c, sql, 2, NULL, pv, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		set_err(err_r, c);
		PQclear(r);
		return NULL;
	}
	return r;
}

/* Columns of r: as JSON (numbers where numeric) or a table. */
static void emit(PGresult *r, const struct hub_query_opts *o, const char *const *names,
		 const bool *numeric, int ncols, struct buf *out)
{
	if (o->json) {
		struct jw w;
		jw_init(&w, out);
		jw_begin_array(&w, NULL);
		for (int i = 0; i < PQntuples(r); i++) {
			jw_begin_object(&w, NULL);
			for (int k = 0; k < ncols; k++) {
				if (PQgetisnull(r, i, k))
					jw_null(&w, names[k]);
				else if (numeric[k])
					jw_int(&w, names[k], strtoll(PQgetvalue(r, i, k), NULL, 10));
				else
					jw_cstr(&w, names[k], PQgetvalue(r, i, k));
			}
			jw_end_object(&w);
		}
		jw_end_array(&w);
		buf_putc(out, '\n');
		return;
	}
	const char *heads[16];
	char up[16][32];
	for (int k = 0; k < ncols && k < 16; k++) {
		size_t n = 0;
		for (; names[k][n] && n < 31; n++)
			up[k][n] = (char)(names[k][n] >= 'a' && names[k][n] <= 'z' ? names[k][n] - 32
										 : names[k][n]);
		up[k][n] = '\0';
		heads[k] = up[k];
	}
	struct table *t = table_new((size_t)ncols, heads);
	for (int k = 0; k < ncols; k++)
		if (numeric[k])
			table_set_right(t, (size_t)k);
	for (int i = 0; i < PQntuples(r); i++) {
		table_add_row(t);
		for (int k = 0; k < ncols; k++)
			table_cell(t, (size_t)k, PQgetisnull(r, i, k) ? NULL : PQgetvalue(r, i, k),
				   (size_t)PQgetlength(r, i, k));
	}
	char *mem = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&mem, &len);
	if (f) {
		table_print(t, f);
		fclose(f);
		buf_append(out, mem, len);
		free(mem);
	}
	table_free(&t);
}

int hub_stats(PGconn *c, const struct hub_query_opts *o, struct buf *out, char **err_r)
{
	PGresult *r = run(c,
			  "SELECT s.id AS sensor, s.events, s.event_seq,"
			  " to_char(s.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS last_seen,"
			  " (SELECT count(*) FROM indicators i WHERE i.sensor = s.id) AS indicators,"
			  " (SELECT count(*) FROM campaigns k WHERE k.sensor = s.id) AS campaigns"
			  " FROM sensors s WHERE $1::bigint >= 0 ORDER BY s.id LIMIT $2::bigint",
			  &(struct hub_query_opts){.top = 100000}, err_r);
	if (!r)
		return -1;
	static const char *const names[] = {"sensor", "events", "event_seq", "last_seen",
					    "indicators", "campaigns"};
	static const bool num[] = {false, true, true, false, true, true};
	PGresult *tot = PQexec(c, "SELECT count(*), coalesce(sum(events), 0),"
				  " (SELECT count(*) FROM pg_inherits i JOIN pg_class p ON"
				  "  p.oid = i.inhparent WHERE p.relname = 'events'),"
				  " pg_size_pretty((SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)),"
				  "  0) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent"
				  "  WHERE p.relname = 'events')::bigint) FROM sensors");
	if (PQresultStatus(tot) != PGRES_TUPLES_OK) {
		set_err(err_r, c);
		PQclear(tot);
		PQclear(r);
		return -1;
	}
	if (o->json) {
		struct jw w;
		jw_init(&w, out);
		jw_begin_object(&w, NULL);
		jw_int(&w, "sensors", strtoll(PQgetvalue(tot, 0, 0), NULL, 10));
		jw_int(&w, "events", strtoll(PQgetvalue(tot, 0, 1), NULL, 10));
		jw_int(&w, "partitions", strtoll(PQgetvalue(tot, 0, 2), NULL, 10));
		jw_cstr(&w, "events_size", PQgetvalue(tot, 0, 3));
		jw_begin_array(&w, "per_sensor");
		for (int i = 0; i < PQntuples(r); i++) {
			jw_begin_object(&w, NULL);
			for (int k = 0; k < 6; k++) {
				if (num[k])
					jw_int(&w, names[k], strtoll(PQgetvalue(r, i, k), NULL, 10));
				else
					jw_cstr(&w, names[k], PQgetvalue(r, i, k));
			}
			jw_end_object(&w);
		}
		jw_end_array(&w);
		jw_end_object(&w);
		buf_putc(out, '\n');
	} else {
		buf_printf(out, "%s sensors, %s events in %s partitions (%s)\n", PQgetvalue(tot, 0, 0),
			   PQgetvalue(tot, 0, 1), PQgetvalue(tot, 0, 2), PQgetvalue(tot, 0, 3));
		emit(r, o, names, num, 6, out);
	}
	PQclear(tot);
	PQclear(r);
	return 0;
}

int hub_attackers(PGconn *c, const struct hub_query_opts *o, struct buf *out, char **err_r)
{
	PGresult *r = run(c,
			  "SELECT host(src_ip) AS ip, count(DISTINCT sensor) AS sensors,"
			  " count(*) AS events, count(*) FILTER (WHERE event = 'auth') AS auth,"
			  " count(*) FILTER (WHERE event = 'auth' AND success) AS logins,"
			  " to_char(min(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS first_seen,"
			  " to_char(max(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS last_seen"
			  " FROM events WHERE src_ip IS NOT NULL AND ts >= to_timestamp($1::bigint)"
			  " GROUP BY src_ip ORDER BY sensors DESC, events DESC, ip LIMIT $2::bigint",
			  o, err_r);
	if (!r)
		return -1;
	static const char *const names[] = {"ip", "sensors", "events", "auth", "logins",
					    "first_seen", "last_seen"};
	static const bool num[] = {false, true, true, true, true, false, false};
	emit(r, o, names, num, 7, out);
	PQclear(r);
	return 0;
}

int hub_creds(PGconn *c, const struct hub_query_opts *o, struct buf *out, char **err_r)
{
	PGresult *u = run(c,
			  "SELECT username, count(DISTINCT sensor) AS sensors, count(*) AS attempts,"
			  " count(DISTINCT src_ip) AS ips FROM events WHERE event = 'auth'"
			  " AND username IS NOT NULL AND ts >= to_timestamp($1::bigint)"
			  " GROUP BY username ORDER BY sensors DESC, attempts DESC, username"
			  " LIMIT $2::bigint", o, err_r);
	if (!u)
		return -1;
	PGresult *p = run(c,
			  "SELECT coalesce(password, '(hmac) ' || pw_hash) AS password,"
			  " count(DISTINCT sensor) AS sensors, count(*) AS attempts,"
			  " count(DISTINCT src_ip) AS ips FROM events WHERE event = 'auth'"
			  " AND pw_hash IS NOT NULL AND ts >= to_timestamp($1::bigint)"
			  " GROUP BY 1 ORDER BY sensors DESC, attempts DESC, 1 LIMIT $2::bigint",
			  o, err_r);
	if (!p) {
		PQclear(u);
		return -1;
	}
	static const char *const un[] = {"username", "sensors", "attempts", "ips"};
	static const char *const pn[] = {"password", "sensors", "attempts", "ips"};
	static const bool num[] = {false, true, true, true};
	if (o->json) {
		buf_puts(out, "{\"usernames\":");
		emit(u, o, un, num, 4, out);
		out->len--; /* the newline */
		buf_puts(out, ",\"passwords\":");
		emit(p, o, pn, num, 4, out);
		out->len--;
		buf_puts(out, "}\n");
	} else {
		buf_puts(out, "usernames tried, across sensors:\n");
		emit(u, o, un, num, 4, out);
		buf_puts(out, "\npasswords tried (keyed hashes unless hub_share_passwords):\n");
		emit(p, o, pn, num, 4, out);
	}
	PQclear(u);
	PQclear(p);
	return 0;
}

/* ---- campaigns ---- */

struct camp {
	char sensor[72], key[96];
	long long messages;
	char first[24];
	uint64_t mh[MINHASH_N];
	bool has_mh;
	int parent;
};

static int find(struct camp *v, int i)
{
	while (v[i].parent != i) {
		v[i].parent = v[v[i].parent].parent;
		i = v[i].parent;
	}
	return i;
}

static double similarity(const struct camp *a, const struct camp *b)
{
	int eq = 0;
	for (int k = 0; k < MINHASH_N; k++)
		eq += a->mh[k] == b->mh[k];
	return eq / (double)MINHASH_N;
}

struct band_key {
	uint64_t h;
	int idx;
};

static int cmp_band(const void *a, const void *b)
{
	const struct band_key *x = a, *y = b;
	return x->h < y->h ? -1 : x->h > y->h ? 1 : x->idx - y->idx;
}

static int cmp_group(const void *a, const void *b)
{
	const long long *x = a, *y = b; /* {root, sensors, messages} descending by sensors */
	if (x[1] != y[1])
		return x[1] > y[1] ? -1 : 1;
	return x[2] > y[2] ? -1 : x[2] < y[2];
}

int hub_campaigns(PGconn *c, const struct hub_query_opts *o, struct buf *out, char **err_r)
{
	PGresult *r = run(c,
			  "SELECT sensor, key, messages, to_char(first_seen AT TIME ZONE 'UTC',"
			  " 'YYYY-MM-DD HH24:MI:SS'), minhash FROM campaigns"
			  " WHERE coalesce(first_seen, now()) >= to_timestamp($1::bigint)"
			  " AND $2::bigint > 0 ORDER BY first_seen DESC LIMIT 100000",
			  o, err_r);
	if (!r)
		return -1;
	int n = PQntuples(r);
	if (n < 0 || n > CAMPAIGNS_MAX)
		n = n < 0 ? 0 : CAMPAIGNS_MAX;
	struct camp *v = calloc((size_t)(n ? n : 1), sizeof(*v));
	if (!v) {
		PQclear(r);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		snprintf(v[i].sensor, sizeof(v[i].sensor), "%s", PQgetvalue(r, i, 0));
		snprintf(v[i].key, sizeof(v[i].key), "%s", PQgetvalue(r, i, 1));
		v[i].messages = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		snprintf(v[i].first, sizeof(v[i].first), "%s", PQgetvalue(r, i, 3));
		v[i].parent = i;
		size_t len = 0;
		unsigned char *bin = PQgetisnull(r, i, 4) ? NULL
			: PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 4), &len);
		if (bin && len == sizeof(v[i].mh)) {
			memcpy(v[i].mh, bin, len);
			v[i].has_mh = true;
		}
		PQfreemem(bin);
	}
	PQclear(r);
	/* candidates: equal band hashes; then the similarity decides */
	struct band_key *bk = calloc((size_t)n + 1, sizeof(*bk));
	for (int b = 0; bk && b < BANDS; b++) {
		int m = 0;
		for (int i = 0; i < n; i++) {
			if (!v[i].has_mh)
				continue;
			uint64_t h = 1469598103934665603ULL;
			for (int k = 0; k < ROWS_PER_BAND; k++)
				h = (h ^ v[i].mh[b * ROWS_PER_BAND + k]) * 1099511628211ULL;
			bk[m++] = (struct band_key){h, i};
		}
		qsort(bk, (size_t)m, sizeof(*bk), cmp_band);
		for (int i = 0; i < m; i++)
			for (int j = i + 1; j < m && bk[j].h == bk[i].h && j < i + 64; j++) {
				int a = find(v, bk[i].idx), z = find(v, bk[j].idx);
				if (a != z && similarity(&v[bk[i].idx], &v[bk[j].idx]) >= SIMILAR)
					v[z].parent = a;
			}
	}
	free(bk);
	/* groups: sensors (distinct), messages, keys */
	long long (*g)[3] = calloc((size_t)(n ? n : 1), sizeof(*g));
	int ng = 0;
	for (int i = 0; g && i < n; i++) {
		if (find(v, i) != i)
			continue;
		long long msgs = 0, sensors = 0;
		for (int j = 0; j < n; j++) {
			if (find(v, j) != i)
				continue;
			msgs += v[j].messages;
			bool seen = false;
			for (int k = 0; k < j && !seen; k++)
				seen = find(v, k) == i && !strcmp(v[k].sensor, v[j].sensor);
			sensors += !seen;
		}
		g[ng][0] = i;
		g[ng][1] = sensors;
		g[ng][2] = msgs;
		ng++;
	}
	if (g)
		qsort(g, (size_t)ng, sizeof(*g), cmp_group);
	long top = o->top > 0 ? o->top : 20;
	struct jw w;
	struct table *t = NULL;
	static const char *const heads[] = {"CAMPAIGN", "SENSORS", "MESSAGES", "FIRST_SEEN", "KEYS"};
	if (o->json) {
		jw_init(&w, out);
		jw_begin_array(&w, NULL);
	} else {
		t = table_new(5, heads);
		table_set_right(t, 1);
		table_set_right(t, 2);
		table_set_max(t, 4, 80);
	}
	for (int gi = 0; g && gi < ng && gi < top; gi++) {
		int root = (int)g[gi][0];
		struct buf keys;
		buf_init(&keys, 0);
		const char *first = v[root].first;
		for (int j = 0; j < n; j++)
			if (find(v, j) == root) {
				buf_printf(&keys, "%s%s:%s", keys.len ? " " : "", v[j].sensor, v[j].key);
				if (v[j].first[0] && strcmp(v[j].first, first) < 0)
					first = v[j].first;
			}
		if (o->json) {
			jw_begin_object(&w, NULL);
			jw_cstr(&w, "campaign", v[root].key);
			jw_int(&w, "sensors", g[gi][1]);
			jw_int(&w, "messages", g[gi][2]);
			jw_cstr(&w, "first_seen", first);
			jw_list(&w, "members", keys.data, keys.len, ' ');
			jw_end_object(&w);
		} else {
			table_add_row(t);
			table_cells(t, 0, v[root].key);
			table_cellf(t, 1, "%lld", g[gi][1]);
			table_cellf(t, 2, "%lld", g[gi][2]);
			table_cells(t, 3, first);
			table_cells(t, 4, keys.data);
		}
		buf_free(&keys);
	}
	if (o->json) {
		jw_end_array(&w);
		buf_putc(out, '\n');
	} else {
		char *mem = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&mem, &len);
		if (f) {
			table_print(t, f);
			fclose(f);
			buf_append(out, mem, len);
			free(mem);
		}
		table_free(&t);
	}
	free(g);
	free(v);
	return 0;
}
