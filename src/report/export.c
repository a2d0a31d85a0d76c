/*
 * export: every export format (see export.h and docs/reporting.md).
 *
 * Structure: export_run() picks the format's row writer and header/footer, walks the
 * indicators once (indicators_each), filters each row (kinds, allowlist), and appends
 * the row's text to a buffer flushed in 256 KiB writes.  Values are re-checked for
 * the syntax each consumer accepts (a DNS name for RPZ/dnset, an address for firewall
 * sets, no white space for Postfix keys) and skipped, counted, when they do not fit:
 * indicator values come from attacker-controlled mail, and a newline in a value must
 * never become a second entry in a blocklist.
 */
#include "report/export.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "intel/allowlist.h"
#include "intel/indicator.h"
#include "store/event.h"
#include "util/buf.h"
#include "util/netaddr.h"

#define FLUSH_AT (256 * 1024)

static const char *const format_names[EXP_FORMAT_COUNT] = {
	"nft", "ipset", "postfix-cidr", "postfix-access", "plain", "csv", "rpz", "rbldnsd",
	"misp-feed", "stix", "abuseipdb-csv", "fail2ban", "crowdsec",
};

#define K(x) IND_BIT(IND_##x)
#define NON_VICTIM (K(IP) | K(PREFIX) | K(URL) | K(DOMAIN) | K(SENDER) | K(SENDER_DOMAIN) | \
		    K(ATTACHMENT) | K(CAMPAIGN))
/* What each format can carry, and what it carries by default. */
static const struct {
	unsigned allowed, dflt;
} format_kinds[EXP_FORMAT_COUNT] = {
	[EXP_NFT] = {K(IP) | K(PREFIX), K(IP) | K(PREFIX)},
	[EXP_IPSET] = {K(IP) | K(PREFIX), K(IP) | K(PREFIX)},
	[EXP_POSTFIX_CIDR] = {K(IP) | K(PREFIX), K(IP) | K(PREFIX)},
	[EXP_POSTFIX_ACCESS] = {K(IP) | K(PREFIX) | K(SENDER) | K(SENDER_DOMAIN),
				K(IP) | K(PREFIX) | K(SENDER) | K(SENDER_DOMAIN)},
	[EXP_PLAIN] = {NON_VICTIM | IND_VICTIM_KINDS, K(IP) | K(PREFIX) | K(DOMAIN) | K(URL)},
	[EXP_CSV] = {NON_VICTIM | IND_VICTIM_KINDS, NON_VICTIM},
	[EXP_RPZ] = {K(DOMAIN), K(DOMAIN)},
	[EXP_RBLDNSD] = {K(IP) | K(PREFIX) | K(DOMAIN), K(IP) | K(PREFIX)},
	[EXP_MISP_FEED] = {NON_VICTIM, NON_VICTIM},
	[EXP_STIX] = {NON_VICTIM, NON_VICTIM},
	[EXP_ABUSEIPDB_CSV] = {K(IP), K(IP)},
	[EXP_FAIL2BAN] = {0, 0},
	[EXP_CROWDSEC] = {K(IP), K(IP)},
};

int export_format_parse(const char *name)
{
	for (int i = 0; i < EXP_FORMAT_COUNT; i++)
		if (!strcmp(format_names[i], name))
			return i;
	return -1;
}

const char *export_format_name(enum export_format f)
{
	return f < EXP_FORMAT_COUNT ? format_names[f] : "?";
}

const char *export_format_list(void)
{
	return "nft, ipset, postfix-cidr, postfix-access, plain, csv, rpz, rbldnsd, misp-feed, "
	       "stix, abuseipdb-csv, fail2ban, crowdsec";
}

/* ---- small helpers ---- */

void export_time(int64_t us, bool millis, char *out, size_t outlen)
{
	/* the event writer's formatter (no gmtime/strftime: this runs twice per row of a
	 * CSV or STIX export), cut to seconds or milliseconds */
	char full[40];
	mxb_format_ts(us, full, sizeof(full)); /* YYYY-MM-DDTHH:MM:SS.uuuuuuZ */
	size_t n = millis ? 23 : 19;
	if (outlen < 2) {
		if (outlen)
			out[0] = 0;
		return;
	}
	if (n > outlen - 2)
		n = outlen - 2;
	memcpy(out, full, n);
	out[n] = 'Z';
	out[n + 1] = 0;
}

void export_uuid5(const uint8_t ns[16], const char *name, size_t len, char out[37])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c, EVP_sha1(), NULL);
	EVP_DigestUpdate(c, ns, 16);
	EVP_DigestUpdate(c, name, len);
	EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md[0],
		 md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11],
		 md[12], md[13], md[14], md[15]);
}

/* mxbait's own namespace for the ids of its feed objects (random, fixed forever). */
static const uint8_t mxb_ns[16] = {0x6d, 0x78, 0x62, 0x61, 0x69, 0x74, 0x4e, 0x53,
				   0x9a, 0x3f, 0x21, 0x5c, 0x0e, 0x77, 0xd4, 0x13};
/* STIX 2.1 SCO namespace (STIX 2.1 section 2.9). */
static const uint8_t stix_ns[16] = {0x00, 0xab, 0xed, 0xb4, 0xaa, 0x42, 0x46, 0x6c,
				    0x9c, 0x01, 0xfe, 0xd2, 0x33, 0x15, 0xa9, 0xb7};

static void md5_hex(const char *s, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	EVP_Digest(s, strlen(s), md, &n, EVP_md5(), NULL);
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* A DNS name we dare to write into a zone: LDH labels (and '_'), 1-63 each, 253 in
 * all, at least two labels, lower case. */
static bool dns_name_ok(const char *s)
{
	size_t len = strlen(s), label = 0, labels = 1;
	if (!len || len > 253)
		return false;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.') {
			if (!label)
				return false;
			label = 0;
			labels++;
			continue;
		}
		if (!(islower(c) || isdigit(c) || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label && labels >= 2;
}

/* A token for a Postfix table key or a plain list line: printable, no white space. */
static bool token_ok(const char *s)
{
	if (!*s || strlen(s) > 2048)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '#')
			return false;
	return true;
}

static void json_str(struct buf *b, const char *s)
{
	json_append_string(b, s ? s : "", s ? strlen(s) : 0);
}

/* The activity words of an IP/prefix: "guessing spam ..." from its flags. */
static void activity(const struct indicator *ind, char *out, size_t outlen)
{
	static const char *const words[] = {"guessing", "enumeration", "spam", "trap-credential",
					    "submission", "trap-mail", "shortener"};
	size_t o = 0;
	out[0] = 0;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (indicator_has_flag(ind, words[i]) && o + strlen(words[i]) + 2 < outlen)
			o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? "," : "", words[i]);
	if (!o)
		snprintf(out, outlen, "seen");
}

/* Does a prefix-or-IP string set contain s?  A tiny open-addressing hash set. */
struct strset {
	char **v;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int strset_add(struct strset *s, const char *v)
{
	if ((s->n + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1024;
		char **nv = calloc(ncap, sizeof(char *));
		if (!nv)
			return -1;
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i]) {
				size_t j = hash_str(s->v[i]) & (ncap - 1);
				while (nv[j])
					j = (j + 1) & (ncap - 1);
				nv[j] = s->v[i];
			}
		free(s->v);
		s->v = nv;
		s->cap = ncap;
	}
	size_t j = hash_str(v) & (s->cap - 1);
	while (s->v[j]) {
		if (!strcmp(s->v[j], v))
			return 0;
		j = (j + 1) & (s->cap - 1);
	}
	s->v[j] = strdup(v);
	if (!s->v[j])
		return -1;
	s->n++;
	return 0;
}

static bool strset_has(const struct strset *s, const char *v)
{
	if (!s->cap)
		return false;
	size_t j = hash_str(v) & (s->cap - 1);
	while (s->v[j]) {
		if (!strcmp(s->v[j], v))
			return true;
		j = (j + 1) & (s->cap - 1);
	}
	return false;
}

static void strset_free(struct strset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- the walk ---- */

struct ex {
	const struct export_opts *o;
	struct export_stats *st;
	FILE *f;
	struct buf b;
	int64_t now_us;
	char stamp[40];
	bool first;            /* JSON: no comma before the first element */
	bool io_error;
	unsigned kinds;
	struct strset prefixes; /* nft: exported prefixes (their IPs are left out) */
	bool first6;            /* nft: no IPv6 element yet */
	int pass;               /* formats that write IPv4 then IPv6 */
	FILE *aux;              /* misp: hashes.csv; nft: the IPv6 elements, until the end */
	char event_uuid[37];
	int64_t max_last_us;
};

static void flush_buf(struct ex *x, bool force)
{
	if (x->b.len && (force || x->b.len >= FLUSH_AT)) {
		if (fwrite(x->b.data, 1, x->b.len, x->f) != x->b.len)
			x->io_error = true;
		buf_reset(&x->b);
	}
}

/* The indicator as a canonical network (IP/prefix kinds); false when not one. */
static bool as_net(const struct indicator *ind, struct netaddr *a, char *txt, size_t txtlen)
{
	if (netaddr_parse(ind->value, a) < 0)
		return false;
	netaddr_format(a, txt, txtlen);
	return true;
}

typedef void (*row_fn)(struct ex *x, const struct indicator *ind);

static void row_nft(struct ex *x, const struct indicator *ind)
{
	struct netaddr a;
	char t[NETADDR_STRLEN];
	if (!as_net(ind, &a, t, sizeof(t))) {
		x->st->skipped++;
		return;
	}
	if (ind->kind == IND_IP && ind->parent && strset_has(&x->prefixes, ind->parent))
		return; /* inside an exported prefix: interval sets refuse overlaps */
	if (a.family == AF_INET6) {
		/* one walk: IPv6 elements wait in a temporary file for the IPv4 set's end */
		if (fprintf(x->aux, "%s%s", x->first6 ? "" : ",\n\t", t) < 0)
			x->io_error = true;
		x->first6 = false;
	} else {
		buf_puts(&x->b, x->first ? "add element inet mxbait blocklist4 {\n\t" : ",\n\t");
		buf_puts(&x->b, t);
		x->first = false;
	}
	x->st->written++;
}

static void row_ipset(struct ex *x, const struct indicator *ind)
{
	struct netaddr a;
	char t[NETADDR_STRLEN];
	if (!as_net(ind, &a, t, sizeof(t))) {
		x->st->skipped++;
		return;
	}
	buf_printf(&x->b, "add %s %s\n", a.family == AF_INET6 ? "mxbait6" : "mxbait4", t);
	x->st->written++;
}

static void row_postfix_cidr(struct ex *x, const struct indicator *ind)
{
	struct netaddr a;
	char t[NETADDR_STRLEN], act[128];
	if (!as_net(ind, &a, t, sizeof(t))) {
		x->st->skipped++;
		return;
	}
	activity(ind, act, sizeof(act));
	buf_printf(&x->b, "%s\tREJECT 5.7.1 listed by mxbait (%s)\n", t, act);
	x->st->written++;
}

static void row_postfix_access(struct ex *x, const struct indicator *ind)
{
	char act[128];
	activity(ind, act, sizeof(act));
	if (ind->kind == IND_IP || ind->kind == IND_PREFIX) {
		struct netaddr a;
		char t[NETADDR_STRLEN];
		if (!as_net(ind, &a, t, sizeof(t))) {
			x->st->skipped++;
			return;
		}
		if (ind->kind == IND_PREFIX) {
			/* access(5) matches IPv4 octet prefixes only: a /24 is "a.b.c". */
			if (a.family != AF_INET || a.bits != 24) {
				x->st->skipped++;
				return;
			}
			snprintf(t, sizeof(t), "%u.%u.%u", a.a[0], a.a[1], a.a[2]);
		}
		buf_printf(&x->b, "%s\tREJECT 5.7.1 client listed by mxbait (%s)\n", t, act);
	} else {
		if (!token_ok(ind->value)) {
			x->st->skipped++;
			return;
		}
		buf_printf(&x->b, "%s\tREJECT 5.7.1 sender listed by mxbait\n", ind->value);
	}
	x->st->written++;
}

static void row_plain(struct ex *x, const struct indicator *ind)
{
	if (ind->kind == IND_IP || ind->kind == IND_PREFIX) {
		struct netaddr a;
		char t[NETADDR_STRLEN];
		if (!as_net(ind, &a, t, sizeof(t))) {
			x->st->skipped++;
			return;
		}
		buf_printf(&x->b, "%s\n", t);
	} else {
		if (!token_ok(ind->value)) {
			x->st->skipped++;
			return;
		}
		buf_printf(&x->b, "%s\n", ind->value);
	}
	x->st->written++;
}

static void csv_field(struct buf *b, const char *s)
{
	s = s ? s : "";
	if (!strpbrk(s, ",\"\r\n")) {
		buf_puts(b, s);
		return;
	}
	buf_putc(b, '"');
	for (; *s; s++) {
		if (*s == '"')
			buf_putc(b, '"');
		buf_putc(b, *s);
	}
	buf_putc(b, '"');
}

static void row_csv(struct ex *x, const struct indicator *ind)
{
	char f[32], l[32];
	export_time(ind->first_seen_us, false, f, sizeof(f));
	export_time(ind->last_seen_us, false, l, sizeof(l));
	buf_printf(&x->b, "%s,", indicator_kind_name(ind->kind));
	csv_field(&x->b, ind->value);
	buf_printf(&x->b, ",%d,%s,%s,%lld,%lld,%lld,%lld,%lld,", ind->confidence, f, l,
		   (long long)ind->guesses, (long long)ind->probes, (long long)ind->messages,
		   (long long)ind->logins, (long long)ind->members);
	csv_field(&x->b, ind->flags);
	buf_putc(&x->b, ',');
	csv_field(&x->b, ind->evidence);
	buf_puts(&x->b, "\r\n");
	x->st->written++;
}

static void row_rpz(struct ex *x, const struct indicator *ind)
{
	if (!dns_name_ok(ind->value)) {
		x->st->skipped++;
		return;
	}
	buf_printf(&x->b, "%s\tCNAME\t.\n*.%s\tCNAME\t.\n", ind->value, ind->value);
	x->st->written++;
}

static void row_rbldnsd(struct ex *x, const struct indicator *ind)
{
	if (ind->kind == IND_DOMAIN) {
		if (!dns_name_ok(ind->value)) {
			x->st->skipped++;
			return;
		}
		buf_printf(&x->b, ".%s\n", ind->value); /* the domain and its subdomains */
		x->st->written++;
		return;
	}
	struct netaddr a;
	char t[NETADDR_STRLEN];
	if (!as_net(ind, &a, t, sizeof(t)) || a.family != AF_INET) {
		x->st->skipped++; /* ip4set: IPv4 only */
		return;
	}
	/* 127.0.0.1 is the RFC 5782 "never listed" test point. */
	if (a.a[0] == 127 && a.a[1] == 0 && a.a[2] == 0 && a.a[3] == 1 && a.bits == 32) {
		x->st->skipped++;
		return;
	}
	buf_printf(&x->b, "%s\n", t);
	x->st->written++;
}

static void row_abuseipdb(struct ex *x, const struct indicator *ind)
{
	struct netaddr a;
	char t[NETADDR_STRLEN], when[40], act[128];
	if (!as_net(ind, &a, t, sizeof(t)) || !netaddr_is_host(&a)) {
		x->st->skipped++;
		return;
	}
	/* Categories (abuseipdb.com/categories): 18 brute force, 11 email spam, 14 port
	 * scan (enumeration). */
	char cats[32] = "";
	size_t o = 0;
	if (indicator_has_flag(ind, "guessing") || indicator_has_flag(ind, "trap-credential"))
		o += (size_t)snprintf(cats + o, sizeof(cats) - o, "18");
	if (indicator_has_flag(ind, "spam"))
		o += (size_t)snprintf(cats + o, sizeof(cats) - o, "%s11", o ? "," : "");
	if (indicator_has_flag(ind, "enumeration"))
		o += (size_t)snprintf(cats + o, sizeof(cats) - o, "%s14", o ? "," : "");
	if (!o) {
		x->st->skipped++;
		return;
	}
	export_time(ind->last_seen_us, false, when, sizeof(when));
	activity(ind, act, sizeof(act));
	buf_printf(&x->b, "%s,\"%s\",%s,\"mxbait honeypot: %s; %lld failed logins, %lld probes, "
			  "%lld messages\"\n",
		   t, cats, when, act, (long long)ind->guesses, (long long)ind->probes,
		   (long long)ind->messages);
	x->st->written++;
}

static void row_crowdsec(struct ex *x, const struct indicator *ind)
{
	struct netaddr a;
	char t[NETADDR_STRLEN], act[128];
	if (!as_net(ind, &a, t, sizeof(t))) {
		x->st->skipped++;
		return;
	}
	activity(ind, act, sizeof(act));
	buf_printf(&x->b, "%s{\"duration\":\"24h\",\"origin\":\"mxbait\",\"scenario\":\"mxbait/%s\","
			  "\"scope\":\"%s\",\"type\":\"ban\",\"value\":\"%s\"}",
		   x->first ? "\n " : ",\n ", act, netaddr_is_host(&a) ? "Ip" : "Range", t);
	x->first = false;
	x->st->written++;
}

/* MISP: type, category, to_ids of a kind (PyMISP describeTypes defaults). */
static bool misp_type(enum ind_kind k, const char **type, const char **cat, bool *to_ids)
{
	*to_ids = true;
	*cat = "Network activity";
	switch (k) {
	case IND_IP:
	case IND_PREFIX: *type = "ip-src"; return true;
	case IND_URL: *type = "url"; return true;
	case IND_DOMAIN: *type = "domain"; return true;
	case IND_SENDER: *type = "email-src"; *cat = "Payload delivery"; *to_ids = false; return true;
	case IND_SENDER_DOMAIN: *type = "domain"; *cat = "Payload delivery"; *to_ids = false;
		return true;
	case IND_ATTACHMENT: *type = "sha256"; *cat = "Payload delivery"; return true;
	case IND_CAMPAIGN: *type = "campaign-id"; *cat = "Attribution"; *to_ids = false;
		return true;
	default: return false;
	}
}

static void misp_ts(int64_t us, char *out, size_t outlen)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char base[32];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%06lld+00:00", base, (long long)(us % 1000000));
}

static void row_misp(struct ex *x, const struct indicator *ind)
{
	const char *type, *cat;
	bool to_ids;
	if (!misp_type(ind->kind, &type, &cat, &to_ids)) {
		x->st->skipped++;
		return;
	}
	char name[600], uuid[37], fs[48], ls[48], act[128], md5[33];
	int nl = snprintf(name, sizeof(name), "%s:%s", indicator_kind_name(ind->kind), ind->value);
	export_uuid5(mxb_ns, name, (size_t)(nl < (int)sizeof(name) ? nl : (int)sizeof(name) - 1),
		     uuid);
	misp_ts(ind->first_seen_us, fs, sizeof(fs));
	misp_ts(ind->last_seen_us, ls, sizeof(ls));
	activity(ind, act, sizeof(act));
	buf_printf(&x->b, "%s\n  {\"uuid\":\"%s\",\"type\":\"%s\",\"category\":\"%s\",\"value\":",
		   x->first ? "" : ",", uuid, type, cat);
	json_str(&x->b, ind->value);
	buf_printf(&x->b, ",\"to_ids\":%s,\"comment\":", to_ids ? "true" : "false");
	char comment[256];
	snprintf(comment, sizeof(comment), "mxbait %s (%s), confidence %d",
		 indicator_kind_name(ind->kind), act, ind->confidence);
	json_str(&x->b, comment);
	buf_printf(&x->b, ",\"timestamp\":\"%lld\",\"disable_correlation\":false,\"deleted\":false,"
			  "\"first_seen\":\"%s\",\"last_seen\":\"%s\"}",
		   (long long)(ind->last_seen_us / 1000000), fs, ls);
	x->first = false;
	md5_hex(ind->value, md5);
	fprintf(x->aux, "%s,%s\n", md5, x->event_uuid);
	if (ind->last_seen_us > x->max_last_us)
		x->max_last_us = ind->last_seen_us;
	x->st->written++;
}

/* STIX pattern string literal: ' and \ escaped. */
static void stix_lit(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			buf_putc(b, '\\');
		buf_putc(b, *s);
	}
}

static void row_stix(struct ex *x, const struct indicator *ind)
{
	const char *sco = NULL, *prop = "value";
	struct netaddr a;
	char t[NETADDR_STRLEN];
	const char *value = ind->value;
	switch (ind->kind) {
	case IND_IP:
	case IND_PREFIX:
		if (!as_net(ind, &a, t, sizeof(t))) {
			x->st->skipped++;
			return;
		}
		sco = a.family == AF_INET6 ? "ipv6-addr" : "ipv4-addr";
		value = t;
		break;
	case IND_URL: sco = "url"; break;
	case IND_DOMAIN:
	case IND_SENDER_DOMAIN:
		if (!dns_name_ok(value)) {
			x->st->skipped++;
			return;
		}
		sco = "domain-name";
		break;
	case IND_SENDER: sco = "email-addr"; break;
	case IND_ATTACHMENT: sco = "file"; prop = "hashes.'SHA-256'"; break;
	case IND_CAMPAIGN: break;
	default:
		x->st->skipped++;
		return;
	}
	char name[600], id[37], created[40], modified[40], act[128];
	int nl = snprintf(name, sizeof(name), "%s:%s", indicator_kind_name(ind->kind), value);
	export_uuid5(mxb_ns, name, (size_t)(nl < (int)sizeof(name) ? nl : (int)sizeof(name) - 1),
		     id);
	export_time(ind->first_seen_us, true, created, sizeof(created));
	export_time(ind->last_seen_us > ind->first_seen_us ? ind->last_seen_us
							   : ind->first_seen_us,
		    true, modified, sizeof(modified));
	activity(ind, act, sizeof(act));
	if (ind->kind == IND_CAMPAIGN) {
		buf_printf(&x->b, ",\n {\"type\":\"campaign\",\"spec_version\":\"2.1\","
				  "\"id\":\"campaign--%s\",\"created\":\"%s\",\"modified\":\"%s\","
				  "\"created_by_ref\":\"identity--%s\",\"name\":",
			   id, created, modified, x->event_uuid);
		json_str(&x->b, value);
		if (ind->note) {
			buf_puts(&x->b, ",\"description\":");
			json_str(&x->b, ind->note);
		}
		buf_printf(&x->b, ",\"first_seen\":\"%s\",\"confidence\":%d}", created,
			   ind->confidence);
		x->st->written++;
		return;
	}
	/* The observable, with its deterministic id: UUIDv5 over the JCS form of its
	 * ID-contributing property. */
	struct buf jcs;
	buf_init(&jcs, 0);
	if (ind->kind == IND_ATTACHMENT) {
		buf_puts(&jcs, "{\"hashes\":{\"SHA-256\":");
		json_str(&jcs, value);
		buf_puts(&jcs, "}}");
	} else {
		buf_puts(&jcs, "{\"value\":");
		json_str(&jcs, value);
		buf_puts(&jcs, "}");
	}
	char sco_id[37];
	export_uuid5(stix_ns, jcs.data, jcs.len, sco_id);
	buf_free(&jcs);
	buf_printf(&x->b, ",\n {\"type\":\"%s\",\"spec_version\":\"2.1\",\"id\":\"%s--%s\",", sco,
		   sco, sco_id);
	if (ind->kind == IND_ATTACHMENT) {
		buf_puts(&x->b, "\"hashes\":{\"SHA-256\":");
		json_str(&x->b, value);
		buf_puts(&x->b, "}}");
	} else {
		buf_puts(&x->b, "\"value\":");
		json_str(&x->b, value);
		buf_puts(&x->b, "}");
	}
	struct buf pat;
	buf_init(&pat, 0);
	buf_printf(&pat, "[%s:%s = '", sco, prop);
	stix_lit(&pat, value);
	buf_puts(&pat, "']");
	buf_printf(&x->b, ",\n {\"type\":\"indicator\",\"spec_version\":\"2.1\",\"id\":\"indicator--%s\","
			  "\"created_by_ref\":\"identity--%s\",\"created\":\"%s\",\"modified\":\"%s\","
			  "\"name\":",
		   id, x->event_uuid, created, modified);
	char nm[160];
	snprintf(nm, sizeof(nm), "mxbait %s (%s)", indicator_kind_name(ind->kind), act);
	json_str(&x->b, nm);
	buf_puts(&x->b, ",\"indicator_types\":[\"malicious-activity\"],\"pattern\":");
	json_str(&x->b, pat.data);
	buf_free(&pat);
	buf_printf(&x->b, ",\"pattern_type\":\"stix\",\"pattern_version\":\"2.1\","
			  "\"valid_from\":\"%s\",\"confidence\":%d,\"object_marking_refs\":"
			  "[\"marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da\"]}",
		   created, ind->confidence);
	x->st->written++;
}

static const row_fn row_fns[EXP_FORMAT_COUNT] = {
	[EXP_NFT] = row_nft,
	[EXP_IPSET] = row_ipset,
	[EXP_POSTFIX_CIDR] = row_postfix_cidr,
	[EXP_POSTFIX_ACCESS] = row_postfix_access,
	[EXP_PLAIN] = row_plain,
	[EXP_CSV] = row_csv,
	[EXP_RPZ] = row_rpz,
	[EXP_RBLDNSD] = row_rbldnsd,
	[EXP_MISP_FEED] = row_misp,
	[EXP_STIX] = row_stix,
	[EXP_ABUSEIPDB_CSV] = row_abuseipdb,
	[EXP_CROWDSEC] = row_crowdsec,
};

static int each_row(void *ctx, const struct indicator *ind)
{
	struct ex *x = ctx;
	if (allowlist_refuses(x->o->allowlist, ind)) {
		if (x->pass == 0)
			x->st->refused++;
		return 0;
	}
	row_fns[x->o->format](x, ind);
	flush_buf(x, false);
	return x->io_error ? 1 : 0;
}

static int collect_prefix(void *ctx, const struct indicator *ind)
{
	struct ex *x = ctx;
	if (!allowlist_refuses(x->o->allowlist, ind) && strset_add(&x->prefixes, ind->value) < 0)
		return 1;
	return 0;
}

bool export_keeps_peer(enum export_format f)
{
	switch (f) {
	case EXP_NFT: case EXP_IPSET: case EXP_POSTFIX_CIDR: case EXP_POSTFIX_ACCESS:
	case EXP_PLAIN: case EXP_RPZ: case EXP_RBLDNSD:
		return true;
	default:
		return false;
	}
}

/* The filter of every walk: peer rows only where the format keeps them (the boundary
 * itself is in indicators_each, intel/indicator.h). */
static struct indicator_filter walk_filter(const struct export_opts *o, unsigned kinds)
{
	struct indicator_filter f = {
		.kinds = kinds,
		.since_us = o->since_us,
		.min_confidence = o->min_confidence,
		.include_peer = o->include_peer,
		.purpose = export_keeps_peer(o->format) ? IND_SELF : IND_SHARE,
	};
	return f;
}

static int walk(sqlite3 *db, struct ex *x, unsigned kinds)
{
	struct indicator_filter f = walk_filter(x->o, kinds);
	int rc = indicators_each(db, &f, each_row, x);
	flush_buf(x, true);
	return rc < 0 || x->io_error ? -1 : 0;
}

/* ---- files ---- */

struct outfile {
	char *path, *tmp;
	FILE *f;
};

static FILE *out_open(struct outfile *of, const char *path)
{
	memset(of, 0, sizeof(*of));
	if (asprintf(&of->path, "%s", path) < 0 || asprintf(&of->tmp, "%s.tmp.%ld", path,
							    (long)getpid()) < 0)
		return NULL;
	int fd = open(of->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	of->f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (of->f)
		setvbuf(of->f, NULL, _IOFBF, 1 << 20);
	return of->f;
}

static int out_close(struct outfile *of, bool ok)
{
	int rc = 0;
	if (of->f) {
		if (fflush(of->f) != 0 || fsync(fileno(of->f)) != 0)
			rc = -1;
		if (fclose(of->f) != 0)
			rc = -1;
	}
	if (ok && rc == 0 && of->tmp && rename(of->tmp, of->path) != 0)
		rc = -1;
	if ((!ok || rc < 0) && of->tmp)
		unlink(of->tmp);
	free(of->path);
	free(of->tmp);
	memset(of, 0, sizeof(*of));
	return rc;
}

static char *join(const char *dir, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static void header_comment(struct ex *x, const char *c)
{
	buf_printf(&x->b, "%s mxbait export (%s) from %s, generated %s\n", c,
		   format_names[x->o->format], x->o->hostname, x->stamp);
	buf_printf(&x->b, "%s honeypot evidence only; minimum confidence %d; allowlist applied\n",
		   c, x->o->min_confidence);
}

/* fail2ban: a filter and a jail reading events.jsonl (no indicators involved). */
static int write_fail2ban(const struct export_opts *o, char **err_r)
{
	char *fp = join(o->out_path, "mxbait.conf");
	char *jp = join(o->out_path, "mxbait.local");
	struct outfile f1, f2;
	int rc = -1;
	if (fp && jp && out_open(&f1, fp) && out_open(&f2, jp)) {
		fprintf(f1.f,
			"# fail2ban filter for mxbait's event log (events.jsonl), written by\n"
			"# `mxbait export --format fail2ban`.  One JSON object per line; the common\n"
			"# fields come first in this order, and attacker text inside string values\n"
			"# has its quotes escaped, so a username cannot forge the fields matched here.\n"
			"[Definition]\n"
			"# fail2ban cuts the matched date out of the line before the failregex\n"
			"# runs: the \"ts\" member is therefore optional in the expressions.\n"
			"failregex = ^\\{\"event\":\"auth\",(?:\"ts\":\"[^\"]*\",)?\"session\":\"[0-9a-f]+\","
			"\"src_ip\":\"<HOST>\",\"src_port\":\\d+,\"proto\":\"[a-z0-9]+\",.*\"success\":false\n"
			"            ^\\{\"event\":\"offence\",(?:\"ts\":\"[^\"]*\",)?\"session\":\"[0-9a-f]+\","
			"\"src_ip\":\"<HOST>\",\n"
			"ignoreregex =\n"
			"datepattern = \"ts\":\"%%%%Y-%%%%m-%%%%dT%%%%H:%%%%M:%%%%S\\.%%%%fZ\",\n");
		fprintf(f2.f,
			"# fail2ban jail for mxbait (put this file in /etc/fail2ban/jail.d/ and the\n"
			"# filter in /etc/fail2ban/filter.d/).  Every login attempt on a honeypot is\n"
			"# hostile, so the thresholds are low.\n"
			"[mxbait]\n"
			"enabled  = true\n"
			"filter   = mxbait\n"
			"logpath  = %s\n"
			"backend  = auto\n"
			"port     = smtp,submission,submissions,imap,imaps,pop3,pop3s\n"
			"maxretry = 3\n"
			"findtime = 1h\n"
			"bantime  = 1d\n",
			o->event_log ? o->event_log : "/var/lib/mxbait/events.jsonl");
		rc = 0;
	}
	if (rc < 0 && err_r && asprintf(err_r, "%s: %s", o->out_path, strerror(errno)) < 0)
		*err_r = NULL;
	if (f1.f || f1.tmp)
		rc |= out_close(&f1, rc == 0);
	if (f2.f || f2.tmp)
		rc |= out_close(&f2, rc == 0);
	free(fp);
	free(jp);
	return rc;
}

static int mkdir_out(const char *dir, char **err_r)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		if (err_r && asprintf(err_r, "%s: %s", dir, strerror(errno)) < 0)
			*err_r = NULL;
		return -1;
	}
	return 0;
}

static int write_crowdsec_yaml(const struct export_opts *o, char **err_r)
{
	char *pp = join(o->out_path, "mxbait-logs.yaml");
	char *sp = join(o->out_path, "mxbait-bf.yaml");
	char *ap = join(o->out_path, "acquis-mxbait.yaml");
	char *rp = join(o->out_path, "mxbait-raw.yaml");
	struct outfile f1 = {0}, f2 = {0}, f3 = {0}, f4 = {0};
	int rc = -1;
	if (pp && sp && ap && rp && out_open(&f1, pp) && out_open(&f2, sp) && out_open(&f3, ap) &&
	    out_open(&f4, rp)) {
		/* Stage s00-raw: once any s00 parser is loaded (Debian enables syslog-logs), a
		 * line no s00 parser accepts is dropped before s01; CrowdSec's generic
		 * non-syslog parser is not in Debian's offline hub, so mxbait ships its own,
		 * limited to the lines acquired with type mxbait. */
		fprintf(f4.f,
			"# CrowdSec parser (stage s00-raw) for mxbait's events.jsonl, written by\n"
			"# `mxbait export --format crowdsec`: hands the raw JSON line to s01.\n"
			"filter: \"evt.Line.Labels.type == 'mxbait'\"\n"
			"onsuccess: next_stage\n"
			"name: mxbait/mxbait-raw\n"
			"description: \"mxbait events.jsonl lines (acquired with type mxbait)\"\n"
			"statics:\n"
			"  - parsed: message\n"
			"    expression: evt.Line.Raw\n"
			"  - parsed: program\n"
			"    value: mxbait\n"
			"  - meta: datasource_path\n"
			"    expression: evt.Line.Src\n"
			"  - meta: datasource_type\n"
			"    expression: evt.Line.Module\n");
		fprintf(f1.f,
			"# CrowdSec parser (stage s01-parse) for mxbait's events.jsonl, written by\n"
			"# `mxbait export --format crowdsec`.\n"
			"onsuccess: next_stage\n"
			"filter: \"evt.Parsed.program == 'mxbait'\"\n"
			"name: mxbait/mxbait-logs\n"
			"description: \"mxbait honeypot events (JSON lines)\"\n"
			"nodes:\n"
			"  - grok:\n"
			"      pattern: '^\\{\"event\":\"auth\",\"ts\":\"%%{TIMESTAMP_ISO8601:timestamp}\","
			"\"session\":\"%%{WORD:session}\",\"src_ip\":\"%%{IP:source_ip}\",.*\"success\":false'\n"
			"      apply_on: message\n"
			"    statics:\n"
			"      - meta: log_type\n"
			"        value: mxbait_auth_failed\n"
			"  - grok:\n"
			"      pattern: '^\\{\"event\":\"offence\",\"ts\":\"%%{TIMESTAMP_ISO8601:timestamp}\","
			"\"session\":\"%%{WORD:session}\",\"src_ip\":\"%%{IP:source_ip}\",'\n"
			"      apply_on: message\n"
			"    statics:\n"
			"      - meta: log_type\n"
			"        value: mxbait_offence\n"
			"statics:\n"
			"  - meta: service\n"
			"    value: mxbait\n"
			"  - meta: source_ip\n"
			"    expression: evt.Parsed.source_ip\n"
			"  - target: evt.StrTime\n"
			"    expression: evt.Parsed.timestamp\n");
		fprintf(f2.f,
			"# CrowdSec scenario: password guessing against the mxbait honeypot.\n"
			"type: leaky\n"
			"name: mxbait/mxbait-bf\n"
			"description: \"Password guessing or protocol abuse against the mxbait honeypot\"\n"
			"filter: \"evt.Meta.log_type in ['mxbait_auth_failed', 'mxbait_offence']\"\n"
			"groupby: evt.Meta.source_ip\n"
			"capacity: 3\n"
			"leakspeed: 1m\n"
			"blackhole: 5m\n"
			"labels:\n"
			"  service: smtp\n"
			"  type: bruteforce\n"
			"  remediation: true\n");
		fprintf(f3.f,
			"# CrowdSec acquisition of mxbait's event log.\n"
			"filenames:\n"
			"  - %s\n"
			"labels:\n"
			"  type: mxbait\n",
			o->event_log ? o->event_log : "/var/lib/mxbait/events.jsonl");
		rc = 0;
	}
	if (rc < 0 && err_r && asprintf(err_r, "%s: %s", o->out_path, strerror(errno)) < 0)
		*err_r = NULL;
	if (f1.tmp)
		rc |= out_close(&f1, rc == 0);
	if (f2.tmp)
		rc |= out_close(&f2, rc == 0);
	if (f3.tmp)
		rc |= out_close(&f3, rc == 0);
	if (f4.tmp)
		rc |= out_close(&f4, rc == 0);
	free(rp);
	free(pp);
	free(sp);
	free(ap);
	return rc;
}

static int run_misp(sqlite3 *db, struct ex *x, char **err_r)
{
	const struct export_opts *o = x->o;
	char name[300];
	int nl = snprintf(name, sizeof(name), "mxbait-event:%s", o->hostname);
	export_uuid5(mxb_ns, name, (size_t)nl, x->event_uuid);
	char org_uuid[37];
	nl = snprintf(name, sizeof(name), "mxbait-org:%s", o->hostname);
	export_uuid5(mxb_ns, name, (size_t)nl, org_uuid);
	char fname[64];
	snprintf(fname, sizeof(fname), "%s.json", x->event_uuid);
	char *ep = join(o->out_path, fname), *hp = join(o->out_path, "hashes.csv"),
	     *mp = join(o->out_path, "manifest.json");
	struct outfile fe = {0}, fh = {0}, fm = {0};
	int rc = -1;
	if (!ep || !hp || !mp || !out_open(&fe, ep) || !out_open(&fh, hp) || !out_open(&fm, mp)) {
		if (err_r && asprintf(err_r, "%s: %s", o->out_path, strerror(errno)) < 0)
			*err_r = NULL;
		goto out;
	}
	x->f = fe.f;
	x->aux = fh.f;
	time_t now = (time_t)(x->now_us / 1000000);
	struct tm tm;
	gmtime_r(&now, &tm);
	char date[16];
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	struct buf info;
	buf_init(&info, 0);
	buf_printf(&info, "mxbait honeypot %s: attackers, spamvertised links and senders",
		   o->hostname);
	/* The event's timestamp moves forward with every export (MISP compares it). */
	long long ts = (long long)now;
	buf_puts(&x->b, "{\"Event\":{\"uuid\":");
	json_str(&x->b, x->event_uuid);
	buf_puts(&x->b, ",\"info\":");
	json_str(&x->b, info.data);
	buf_printf(&x->b, ",\"date\":\"%s\",\"timestamp\":\"%lld\",\"publish_timestamp\":\"%lld\","
			  "\"published\":true,\"analysis\":\"1\",\"threat_level_id\":\"3\","
			  "\"extends_uuid\":\"\",\"Orgc\":{\"name\":",
		   date, ts, ts);
	json_str(&x->b, o->hostname);
	buf_printf(&x->b, ",\"uuid\":\"%s\"},\"Tag\":[{\"name\":\"tlp:green\"}],\"Attribute\":[",
		   org_uuid);
	x->first = true;
	rc = walk(db, x, x->kinds);
	buf_puts(&x->b, "\n],\"Object\":[]}}\n");
	flush_buf(x, true);
	fprintf(fm.f, "{\"%s\":{\"info\":", x->event_uuid);
	struct buf tmp;
	buf_init(&tmp, 0);
	json_str(&tmp, info.data);
	fputs(tmp.data, fm.f);
	buf_reset(&tmp);
	json_str(&tmp, o->hostname);
	fprintf(fm.f, ",\"Orgc\":{\"name\":%s,\"uuid\":\"%s\"},\"Tag\":[{\"name\":\"tlp:green\"}],"
		      "\"date\":\"%s\",\"analysis\":\"1\",\"threat_level_id\":\"3\","
		      "\"timestamp\":\"%lld\"}}\n",
		tmp.data, org_uuid, date, ts);
	buf_free(&tmp);
	buf_free(&info);
	if (rc < 0 && err_r && !*err_r && asprintf(err_r, "misp-feed: write or query failed") < 0)
		*err_r = NULL;
out:
	if (fe.tmp)
		rc |= out_close(&fe, rc == 0);
	if (fh.tmp)
		rc |= out_close(&fh, rc == 0);
	if (fm.tmp)
		rc |= out_close(&fm, rc == 0);
	free(ep);
	free(hp);
	free(mp);
	return rc;
}

static int64_t count_candidates(sqlite3 *db, unsigned kinds, const struct export_opts *o)
{
	struct buf q;
	buf_init(&q, 0);
	buf_puts(&q, "SELECT count(*) FROM indicators WHERE source = 'local' AND confidence >= ?1"
		     " AND last_seen_us >= ?2 AND kind IN (''");
	for (int k = 0; k < IND_KIND_COUNT; k++)
		if (kinds & IND_BIT(k))
			buf_printf(&q, ",'%s'", indicator_kind_name((enum ind_kind)k));
	buf_puts(&q, ")");
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	if (sqlite3_prepare_v2(db, q.data, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int(st, 1, o->min_confidence);
		sqlite3_bind_int64(st, 2, o->since_us);
		if (sqlite3_step(st) == SQLITE_ROW)
			n = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	buf_free(&q);
	return n;
}

int export_run(sqlite3 *db, const struct export_opts *o, struct export_stats *st, char **err_r)
{
	struct export_stats dummy;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (err_r)
		*err_r = NULL;
	if (o->format >= EXP_FORMAT_COUNT)
		return -1;
	unsigned kinds = o->kinds ? o->kinds : format_kinds[o->format].dflt;
	if (kinds & ~format_kinds[o->format].allowed) {
		if (err_r && asprintf(err_r, "format %s cannot carry the kinds asked for (it takes: %s)",
				      format_names[o->format],
				      o->format == EXP_FAIL2BAN ? "none, it reads events.jsonl"
								: "see mxbait(8)") < 0)
			*err_r = NULL;
		return -1;
	}
	if (o->format == EXP_RBLDNSD && (kinds & K(DOMAIN)) && (kinds & (K(IP) | K(PREFIX)))) {
		if (err_r && asprintf(err_r, "rbldnsd: one dataset per file: --kind domain (dnset)"
					     " or --kind ip,prefix (ip4set)") < 0)
			*err_r = NULL;
		return -1;
	}
	bool dir_format = o->format == EXP_MISP_FEED || o->format == EXP_FAIL2BAN ||
			  o->format == EXP_CROWDSEC;
	if (dir_format && !o->out_path) {
		if (err_r && asprintf(err_r, "%s writes a directory: give -o DIR",
				      format_names[o->format]) < 0)
			*err_r = NULL;
		return -1;
	}
	if (dir_format && mkdir_out(o->out_path, err_r) < 0)
		return -1;
	if (o->format == EXP_FAIL2BAN)
		return write_fail2ban(o, err_r);

	struct ex x = {.o = o, .st = st, .kinds = kinds, .first = true};
	x.now_us = o->now_us ? o->now_us : mxb_now_us();
	export_time(x.now_us, false, x.stamp, sizeof(x.stamp));
	buf_init(&x.b, 0);
	int rc = 0;
	if (o->format == EXP_MISP_FEED) {
		rc = run_misp(db, &x, err_r);
		buf_free(&x.b);
		return rc;
	}
	struct outfile of = {0};
	char *cs_path = NULL;
	if (o->format == EXP_CROWDSEC) {
		if (write_crowdsec_yaml(o, err_r) < 0)
			return -1;
		cs_path = join(o->out_path, "mxbait-decisions.json");
		x.f = cs_path ? out_open(&of, cs_path) : NULL;
	} else if (o->out_path) {
		x.f = out_open(&of, o->out_path);
	} else {
		x.f = o->out ? o->out : stdout;
	}
	if (!x.f) {
		if (err_r && asprintf(err_r, "%s: %s", o->out_path, strerror(errno)) < 0)
			*err_r = NULL;
		free(cs_path);
		buf_free(&x.b);
		return -1;
	}

	switch (o->format) {
	case EXP_NFT: {
		header_comment(&x, "#");
		buf_puts(&x.b, "# apply with: nft -f FILE (one transaction: the sets are flushed and "
			       "refilled)\n"
			       "table inet mxbait {\n"
			       "\tset blocklist4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
			       "\t\tauto-merge\n\t}\n"
			       "\tset blocklist6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n"
			       "\t\tauto-merge\n\t}\n}\n"
			       "flush set inet mxbait blocklist4\nflush set inet mxbait blocklist6\n");
		/* Prefixes first, so that their member IPs can be left out (an interval set
		 * refuses an address inside a listed prefix). */
		struct indicator_filter pf = walk_filter(o, kinds & K(PREFIX));
		if (pf.kinds && indicators_each(db, &pf, collect_prefix, &x) != 0)
			rc = -1;
		/* One walk (the rows in order); the IPv6 set follows the IPv4 one. */
		x.aux = rc == 0 ? tmpfile() : NULL;
		if (!x.aux)
			rc = -1;
		x.first = x.first6 = true;
		if (rc == 0)
			rc = walk(db, &x, kinds);
		if (!x.first)
			buf_puts(&x.b, "\n}\n");
		if (rc == 0 && !x.first6) {
			buf_puts(&x.b, "add element inet mxbait blocklist6 {\n\t");
			flush_buf(&x, true);
			char chunk[65536];
			size_t n;
			if (fflush(x.aux) != 0 || fseek(x.aux, 0, SEEK_SET) != 0)
				x.io_error = true;
			while (!x.io_error && (n = fread(chunk, 1, sizeof(chunk), x.aux)) > 0)
				if (fwrite(chunk, 1, n, x.f) != n)
					x.io_error = true;
			if (ferror(x.aux))
				x.io_error = true;
			buf_puts(&x.b, "\n}\n");
			if (x.io_error)
				rc = -1;
		}
		if (x.aux)
			fclose(x.aux);
		x.aux = NULL;
		break;
	}
	case EXP_IPSET: {
		int64_t n = count_candidates(db, kinds, o);
		long long maxelem = n < 65536 ? 65536 : (long long)n * 2;
		header_comment(&x, "#");
		buf_printf(&x.b, "# apply with: ipset -exist restore < FILE\n"
				 "create mxbait4 hash:net family inet hashsize 1024 maxelem %lld\n"
				 "create mxbait6 hash:net family inet6 hashsize 1024 maxelem %lld\n"
				 "flush mxbait4\nflush mxbait6\n",
			   maxelem, maxelem);
		rc = walk(db, &x, kinds);
		break;
	}
	case EXP_POSTFIX_CIDR:
	case EXP_POSTFIX_ACCESS:
	case EXP_PLAIN:
		header_comment(&x, "#");
		rc = walk(db, &x, kinds);
		break;
	case EXP_CSV:
		buf_puts(&x.b, "kind,value,confidence,first_seen,last_seen,guesses,probes,messages,"
			       "logins,members,flags,evidence\r\n");
		rc = walk(db, &x, kinds);
		break;
	case EXP_RPZ: {
		header_comment(&x, ";");
		long long serial = (long long)(x.now_us / 1000000) & 0xffffffffLL;
		buf_printf(&x.b, "$TTL 300\n@\tSOA\trpz.%s. hostmaster.%s. (%lld 3600 600 86400 300)\n"
				 "\tNS\tlocalhost.\n",
			   o->hostname, o->hostname, serial);
		rc = walk(db, &x, kinds);
		break;
	}
	case EXP_RBLDNSD:
		header_comment(&x, "#");
		if (kinds & K(DOMAIN)) {
			buf_puts(&x.b, "# dnset: serve with rbldnsd ZONE:dnset:FILE\n"
				       ":127.0.0.2:Listed by mxbait honeypot: spamvertised domain $\n"
				       "# RFC 5782 test point\ntest\n");
		} else {
			buf_puts(&x.b, "# ip4set: serve with rbldnsd ZONE:ip4set:FILE\n"
				       ":127.0.0.2:Listed by mxbait honeypot: $\n"
				       "# RFC 5782 test point (127.0.0.1 is never listed)\n127.0.0.2\n");
		}
		rc = walk(db, &x, kinds);
		break;
	case EXP_STIX: {
		char name[300], bundle[37];
		int nl = snprintf(name, sizeof(name), "mxbait-identity:%s", o->hostname);
		export_uuid5(mxb_ns, name, (size_t)nl, x.event_uuid);
		nl = snprintf(name, sizeof(name), "mxbait-bundle:%s:%lld", o->hostname,
			      (long long)x.now_us);
		export_uuid5(mxb_ns, name, (size_t)nl, bundle);
		char created[40];
		export_time(x.now_us, true, created, sizeof(created));
		buf_printf(&x.b, "{\"type\":\"bundle\",\"id\":\"bundle--%s\",\"objects\":[\n"
				 " {\"type\":\"identity\",\"spec_version\":\"2.1\",\"id\":\"identity--%s\","
				 "\"created\":\"%s\",\"modified\":\"%s\",\"name\":",
			   bundle, x.event_uuid, created, created);
		char nm[300];
		snprintf(nm, sizeof(nm), "mxbait sensor %s", o->hostname);
		json_str(&x.b, nm);
		buf_puts(&x.b, ",\"identity_class\":\"system\"}");
		rc = walk(db, &x, kinds);
		buf_puts(&x.b, "\n]}\n");
		break;
	}
	case EXP_ABUSEIPDB_CSV:
		buf_puts(&x.b, "IP,Categories,ReportDate,Comment\n");
		rc = walk(db, &x, kinds);
		break;
	case EXP_CROWDSEC:
		buf_puts(&x.b, "[");
		rc = walk(db, &x, kinds);
		buf_puts(&x.b, "\n]\n");
		break;
	default:
		rc = -1;
		break;
	}
	flush_buf(&x, true);
	if (x.f != stdout && x.f != o->out) {
		if (out_close(&of, rc == 0 && !x.io_error) < 0)
			rc = -1;
	} else if (fflush(x.f) != 0) {
		rc = -1;
	}
	if (rc < 0 && err_r && !*err_r &&
	    asprintf(err_r, "export %s failed: %s", format_names[o->format],
		     x.io_error ? strerror(errno) : "query") < 0)
		*err_r = NULL;
	strset_free(&x.prefixes);
	buf_free(&x.b);
	free(cs_path);
	return rc;
}
