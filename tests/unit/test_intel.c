/*
 * test_intel: indicators derived from a mxbait.db and an analysis.db written here
 * (the real schemas, made by db_open_rw and adb_open): counts, evidence, flags and
 * confidence per kind; incremental refresh adds exactly the new rows and a refresh
 * with nothing new changes nothing; the allowlist (networks, a prefix holding an
 * allowlisted address, URL hosts, platforms) and the confidence floor as properties
 * of every export format; stable, byte-identical plain and nft output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "analyze/adb.h"
#include "intel/allowlist.h"
#include "intel/indicator.h"
#include "intel/intel_db.h"
#include "report/export.h"
#include "store/db.h"
#include "util/buf.h"

static char g_dir[256];

static void sql(sqlite3 *db, const char *q)
{
	char *em = NULL;
	if (sqlite3_exec(db, q, NULL, NULL, &em) != SQLITE_OK)
		fail_msg("%s: %s", q, em);
}

#define T0 1795745000000000LL

static void add_auth(sqlite3 *ev, const char *ip, const char *session, int n, int success)
{
	char q[512];
	for (int i = 0; i < n; i++) {
		snprintf(q, sizeof(q), "INSERT INTO auth_attempts(ts_us, session, src_ip, prefix,"
			 " proto, mechanism, username, success) VALUES(%lld, '%s', '%s',"
			 " mxb_prefix('%s'), 'submission', 'PLAIN', 'info', %d)",
			 T0 + i * 1000000LL, session, ip, ip, success);
		sql(ev, q);
	}
}

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/mxb-test-intel-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	char path[512];
	snprintf(path, sizeof(path), "%s/mxbait.db", g_dir);
	sqlite3 *ev = NULL;
	char *err = NULL;
	assert_int_equal(db_open_rw(path, &ev, &err), DB_OK);
	add_auth(ev, "192.0.2.10", "s1", 12, 0);
	add_auth(ev, "192.0.2.10", "s2", 1, 1);
	for (int i = 1; i <= 5; i++) {
		char ip[32], s[16];
		snprintf(ip, sizeof(ip), "203.0.113.%d", i);
		snprintf(s, sizeof(s), "p%d", i);
		add_auth(ev, ip, s, 2, 0);
	}
	add_auth(ev, "2001:db8:1::7", "v6", 3, 0);
	add_auth(ev, "127.0.0.1", "lo", 50, 0);
	for (int i = 0; i < 15; i++)
		sql(ev, "INSERT INTO probes(ts_us, session, src_ip, prefix, proto, kind, address,"
			" accepted) VALUES(1795745100000000, 'e1', '198.51.100.7',"
			" '198.51.100.0/24', 'smtp', 'rcpt', 'x@example.test', 1)");
	sql(ev, "INSERT INTO messages(queue_id, session, ts_us, src_ip, spool, sha256, size,"
		" sender, recipients, n_rcpt, method, auth_user) VALUES('4QABC1', 's2',"
		" 1795745200000000, '192.0.2.10', 'f1', 'aa11', 100, 'billing@bank.test',"
		" '[\"victim@corp.example\"]', 1, 'DATA', 'info')");
	sqlite3_close(ev);

	struct adb *an = adb_open(g_dir, &err);
	assert_non_null(an);
	sqlite3 *a = adb_handle(an);
	sql(a, "INSERT INTO campaigns(id, key, rep_message, first_seen, subject)"
	       " VALUES(1, 'C0123456789ab', 1, 1795745200, 'Account on hold')");
	sql(a, "INSERT INTO messages(id, sha256, analyzed_at, env_from, from_addr, campaign_id)"
	       " VALUES(1, 'aa11', 1795745300, 'billing@bank.test', 'Billing@Bank.test', 1)");
	sql(a, "INSERT INTO links(message, idx, url, host, domain, flags, flag_names) VALUES"
	       " (1, 0, 'http://login.bank.test/verify', 'login.bank.test', 'bank.test', 0, ''),"
	       " (1, 1, 'https://bit.ly/3xYz', 'bit.ly', 'bit.ly', 1024, 'shortener'),"
	       " (1, 2, 'https://www.google.com/url?q=x', 'www.google.com', 'google.com', 256,"
	       "  'redirector'),"
	       " (1, 3, 'http://203.0.113.99/p', '203.0.113.99', '203.0.113.99', 8, 'ip'),"
	       " (1, 4, 'http://evil.example/a', 'evil.example', 'evil.example', 0, '')");
	sql(a, "INSERT INTO recipients(message, addr, domain, src) VALUES"
	       " (1, 'victim@corp.example', 'corp.example', 1),"
	       " (1, 'other@corp.example', 'corp.example', 2)");
	sql(a, "INSERT INTO attachments(message, idx, part, filename, size, sha256) VALUES"
	       " (1, 0, 2, 'invoice.zip', 1234, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')");
	adb_close(&an);
	*state = NULL;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

struct found {
	const char *kind, *value;
	struct indicator ind;
	char flags[256], evidence[512];
	bool hit;
};

static int find_cb(void *ctx, const struct indicator *ind)
{
	struct found *f = ctx;
	if (!strcmp(indicator_kind_name(ind->kind), f->kind) && !strcmp(ind->value, f->value)) {
		f->ind = *ind;
		snprintf(f->flags, sizeof(f->flags), "%s", ind->flags);
		snprintf(f->evidence, sizeof(f->evidence), "%s", ind->evidence);
		f->ind.flags = f->flags;
		f->ind.evidence = f->evidence;
		f->ind.value = f->value;
		f->hit = true;
	}
	return 0;
}

static struct found get(sqlite3 *db, const char *kind, const char *value)
{
	struct found f = {.kind = kind, .value = value};
	struct indicator_filter flt = {0};
	assert_int_equal(indicators_each(db, &flt, find_cb, &f), 0);
	if (!f.hit)
		fail_msg("no indicator %s %s", kind, value);
	return f;
}

/* The flags of a found indicator (its copies of the strings live in the struct). */
static bool flag(struct found *f, const char *name)
{
	f->ind.flags = f->flags;
	f->ind.evidence = f->evidence;
	return indicator_has_flag(&f->ind, name);
}

static sqlite3 *open_refreshed(void)
{
	int src = 0;
	char *err = NULL;
	sqlite3 *db = intel_db_open(g_dir, true, &src, &err);
	assert_non_null(db);
	assert_int_equal(src, INTEL_HAS_EVENTS | INTEL_HAS_ANALYSIS);
	if (indicators_refresh(db, src, NULL, &err) != 0)
		fail_msg("refresh: %s", err);
	return db;
}

static void test_derivation(void **state)
{
	(void)state;
	sqlite3 *db = open_refreshed();
	struct found f = get(db, "ip", "192.0.2.10");
	assert_int_equal(f.ind.guesses, 12);
	assert_int_equal(f.ind.logins, 1);
	assert_int_equal(f.ind.messages, 1);
	assert_int_equal(f.ind.confidence, 95);
	assert_true(flag(&f, "guessing"));
	assert_true(flag(&f, "spam"));
	assert_true(flag(&f, "trap-credential"));
	assert_true(flag(&f, "submission"));
	assert_non_null(strstr(f.evidence, "session:s1"));
	assert_non_null(strstr(f.evidence, "msg:4QABC1"));
	f = get(db, "ip", "198.51.100.7");
	assert_int_equal(f.ind.probes, 15);
	assert_int_equal(f.ind.confidence, 50);
	assert_true(flag(&f, "enumeration"));
	f = get(db, "ip", "203.0.113.3");
	assert_int_equal(f.ind.confidence, 40);
	f = get(db, "prefix", "203.0.113.0/24");
	assert_int_equal(f.ind.members, 5);
	assert_int_equal(f.ind.guesses, 10);
	assert_int_equal(f.ind.confidence, 80);
	f = get(db, "prefix", "2001:db8:1::/48");
	assert_int_equal(f.ind.members, 1);
	f = get(db, "url", "http://login.bank.test/verify");
	assert_int_equal(f.ind.confidence, 80);
	assert_non_null(strstr(f.evidence, "msg:4QABC1"));
	f = get(db, "url", "https://bit.ly/3xYz");
	assert_int_equal(f.ind.confidence, 30);
	assert_true(flag(&f, "shortener"));
	f = get(db, "url", "https://www.google.com/url?q=x");
	assert_int_equal(f.ind.confidence, 10);
	assert_true(flag(&f, "platform"));
	f = get(db, "domain", "bank.test");
	assert_int_equal(f.ind.confidence, 70);
	f = get(db, "domain", "bit.ly");
	assert_true(flag(&f, "shortener"));
	f = get(db, "sender", "billing@bank.test"); /* envelope and From, one indicator */
	assert_int_equal(f.ind.messages, 1);
	f = get(db, "sender_domain", "bank.test");
	f = get(db, "attachment",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(f.ind.confidence, 85);
	f = get(db, "recipient", "victim@corp.example");
	f = get(db, "recipient_domain", "corp.example");
	assert_int_equal(f.ind.members, 2);
	f = get(db, "campaign", "C0123456789ab");
	assert_int_equal(f.ind.messages, 1);
	/* an IP-literal link host is not a domain */
	struct found none = {.kind = "domain", .value = "203.0.113.99"};
	struct indicator_filter flt = {0};
	indicators_each(db, &flt, find_cb, &none);
	assert_false(none.hit);
	sqlite3_close(db);
}

static void test_incremental(void **state)
{
	(void)state;
	sqlite3 *db = open_refreshed();
	/* nothing new: nothing changes */
	sql(db, "CREATE TEMP TABLE before AS SELECT * FROM indicators");
	char *err = NULL;
	assert_int_equal(indicators_refresh(db, 3, NULL, &err), 0);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM (SELECT * FROM indicators"
				 " EXCEPT SELECT * FROM temp.before)", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	/* new rows: exactly added */
	char path[512];
	snprintf(path, sizeof(path), "%s/mxbait.db", g_dir);
	sqlite3 *ev = NULL;
	assert_int_equal(db_open_rw(path, &ev, &err), DB_OK);
	add_auth(ev, "192.0.2.10", "s9", 100, 0);
	sqlite3_close(ev);
	db = open_refreshed();
	struct found f = get(db, "ip", "192.0.2.10");
	assert_int_equal(f.ind.guesses, 112);
	assert_int_equal(f.ind.logins, 1);
	assert_non_null(strstr(f.evidence, "session:s9"));
	f = get(db, "prefix", "192.0.2.0/24");
	assert_int_equal(f.ind.guesses, 112);
	sqlite3_close(db);
}

static void test_allowlist(void **state)
{
	(void)state;
	struct allowlist al;
	char *err = NULL;
	assert_int_equal(allowlist_init(&al, "192.0.2.0/25, 2001:db8::/32", "corp.example",
					false, &err), 0);
	struct indicator ind = {.kind = IND_IP, .value = "192.0.2.10", .flags = ""};
	assert_true(allowlist_refuses(&al, &ind));
	ind.value = "192.0.2.200";
	assert_false(allowlist_refuses(&al, &ind));
	ind.kind = IND_PREFIX;
	ind.value = "192.0.2.0/24"; /* contains an allowlisted network */
	assert_true(allowlist_refuses(&al, &ind));
	ind.kind = IND_URL;
	ind.value = "http://user@www.corp.example:8080/x";
	assert_true(allowlist_refuses(&al, &ind));
	ind.value = "http://[2001:db8::5]/x";
	assert_true(allowlist_refuses(&al, &ind));
	ind.value = "http://evil.example/x";
	assert_false(allowlist_refuses(&al, &ind));
	ind.kind = IND_DOMAIN;
	ind.value = "mail.google.com";
	assert_true(allowlist_refuses(&al, &ind)); /* platform */
	ind.kind = IND_SENDER;
	ind.value = "ceo@CORP.example";
	assert_true(allowlist_refuses(&al, &ind));
	ind.kind = IND_IP;
	ind.value = "not-an-ip\n1.2.3.4";
	assert_true(allowlist_refuses(&al, &ind)); /* unparseable: never exported */
	ind.kind = IND_DOMAIN;
	ind.value = "bit.ly";
	ind.flags = "shortener";
	assert_true(allowlist_refuses(&al, &ind));
	ind.kind = IND_URL;
	ind.value = "https://bit.ly/3xYz";
	assert_false(allowlist_refuses(&al, &ind)); /* flagged, not refused */
	ind.flags = "";
	allowlist_free(&al);
	assert_int_equal(allowlist_init(&al, "", "", true, &err), 0);
	ind.kind = IND_IP;
	ind.value = "127.0.0.1";
	assert_true(allowlist_refuses(&al, &ind)); /* own addresses: loopback at least */
	allowlist_free(&al);
	assert_int_equal(allowlist_init(&al, "10.0.0.0/33", "", false, &err), -1);
	assert_non_null(strstr(err, "10.0.0.0/33"));
	free(err);
	allowlist_free(&al);
}

static char *export_mem(sqlite3 *db, enum export_format fmt, unsigned kinds, int minc,
			const struct allowlist *al, struct export_stats *st)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	struct export_opts o = {.format = fmt, .kinds = kinds, .min_confidence = minc,
				.allowlist = al, .hostname = "sensor.example.net", .out = f,
				.now_us = 1795746000000000LL};
	char *err = NULL;
	if (export_run(db, &o, st, &err) < 0)
		fail_msg("export %s: %s", export_format_name(fmt), err);
	fclose(f);
	return out;
}

static void test_export_properties(void **state)
{
	(void)state;
	sqlite3 *db = open_refreshed();
	struct allowlist al;
	char *err = NULL;
	assert_int_equal(allowlist_init(&al, "198.51.100.7", "evil.example", false, &err), 0);
	struct export_stats st;
	/* Every text format: nothing allowlisted, nothing below the floor, no victim. */
	const enum export_format fmts[] = {EXP_NFT, EXP_IPSET, EXP_POSTFIX_CIDR,
					   EXP_POSTFIX_ACCESS, EXP_PLAIN, EXP_CSV, EXP_RPZ,
					   EXP_RBLDNSD, EXP_STIX, EXP_ABUSEIPDB_CSV};
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		char *out = export_mem(db, fmts[i], 0, 50, &al, &st);
		assert_null(strstr(out, "198.51.100.7"));
		assert_null(strstr(out, "evil.example"));
		/* confidence 40 < 50 (CSV names it only as evidence of its /24) */
		if (fmts[i] == EXP_CSV)
			assert_null(strstr(out, "\nip,203.0.113.3,"));
		else
			assert_null(strstr(out, "203.0.113.3"));
		assert_null(strstr(out, "victim@corp.example"));
		assert_null(strstr(out, "google.com"));
		free(out);
	}
	/* plain, exact and stable */
	char *a = export_mem(db, EXP_PLAIN, IND_BIT(IND_IP) | IND_BIT(IND_PREFIX), 50, &al, &st);
	char *b = export_mem(db, EXP_PLAIN, IND_BIT(IND_IP) | IND_BIT(IND_PREFIX), 50, &al, &st);
	assert_string_equal(a, b);
	const char *body = strstr(a, "allowlist applied\n");
	assert_non_null(body);
	assert_string_equal(body + strlen("allowlist applied\n"),
			    "127.0.0.1\n192.0.2.10\n203.0.113.0/24\n");
	free(a);
	free(b);
	/* nft: the prefix, not its members; IPv6 in its own set */
	a = export_mem(db, EXP_NFT, 0, 0, NULL, &st);
	assert_non_null(strstr(a, "add element inet mxbait blocklist4 {\n\t127.0.0.0/24"));
	assert_non_null(strstr(a, "\t203.0.113.0/24"));
	assert_null(strstr(a, "203.0.113.3\n"));
	assert_non_null(strstr(a, "add element inet mxbait blocklist6 {\n\t2001:db8:1::/48\n}"));
	free(a);
	/* the floor is applied before anything else: 0 lets the /24 members in elsewhere */
	a = export_mem(db, EXP_PLAIN, IND_BIT(IND_IP), 0, NULL, &st);
	assert_non_null(strstr(a, "203.0.113.3\n"));
	free(a);
	/* victims only when asked for, only in plain/csv */
	a = export_mem(db, EXP_PLAIN, IND_BIT(IND_RECIPIENT), 0, NULL, &st);
	assert_non_null(strstr(a, "victim@corp.example\n"));
	free(a);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	struct export_opts o = {.format = EXP_STIX, .kinds = IND_BIT(IND_RECIPIENT),
				.hostname = "h", .out = f};
	assert_int_equal(export_run(db, &o, &st, &err), -1);
	free(err);
	fclose(f);
	free(out);
	allowlist_free(&al);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_derivation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental, setup, teardown),
		cmocka_unit_test(test_allowlist),
		cmocka_unit_test_setup_teardown(test_export_properties, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
