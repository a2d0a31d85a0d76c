/*
 * contact: RDAP with cached IANA bootstrap files, Abusix DNS, abuse@ fallback, and the
 * contacts cache (see contact.h).  JSON is read with SQLite's JSON1 functions (the
 * library mxbait already links, a parser hardened by its own fuzzing): json_each over
 * the bootstrap services, json_tree over the RDAP response to find every "roles"
 * array holding "abuse" at any depth.
 */
#include "report/contact.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "intel/allowlist.h"
#include "util/netaddr.h"

#define BOOTSTRAP_MAX_AGE (7 * 86400)
#define RDAP_MAX (2 << 20)
#define HOST_ADDRS_MAX 4  /* addresses of one URL host looked up */
#define EMAILS_MAX 4      /* addresses kept per contact */

int contact_store(sqlite3 *db, const char *query, const char *emails, const char *origin,
		  int64_t now_us, int64_t ttl_us)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO contacts(query, emails, origin, fetched_us,"
				   " expires_us) VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(query) DO"
				   " UPDATE SET emails = excluded.emails, origin = excluded.origin,"
				   " fetched_us = excluded.fetched_us, expires_us = excluded.expires_us",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, query, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, emails ? emails : "", -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, origin, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, now_us);
	sqlite3_bind_int64(st, 5, now_us + ttl_us);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

struct fetched {
	struct buf b;
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	struct fetched *f = ctx;
	size_t len = size * n;
	if (f->b.len + len > RDAP_MAX)
		return 0; /* too large: abort the transfer */
	buf_append(&f->b, p, len);
	return len;
}

/* GET url; 0 with the body, -1 on any failure (status != 200 included). */
static int http_get(const struct contact_ctx *c, const char *url, struct buf *out)
{
	struct fetched f;
	buf_init(&f.b, 0);
	CURL *h = curl_easy_init();
	if (!h)
		return -1;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	/* RDAP servers redirect (RFC 7480 5.2), to RDAP servers only */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	if (c->ca_file && *c->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/rdap+json");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK || status != 200) {
		buf_free(&f.b);
		return status == 404 ? 1 : -1;
	}
	buf_putc(&f.b, 0);
	f.b.len--;
	*out = f.b;
	return 0;
}

/* The bootstrap file, from the cache when young enough, else fetched and cached. */
static int bootstrap(const struct contact_ctx *c, const char *file, int64_t now_us,
		     struct buf *out)
{
	char dir[4096], path[4200];
	snprintf(dir, sizeof(dir), "%s/rdap", c->data_dir);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	struct stat st;
	if (stat(path, &st) == 0 && (int64_t)st.st_mtime > now_us / 1000000 - BOOTSTRAP_MAX_AGE) {
		FILE *f = fopen(path, "r");
		if (f) {
			buf_init(out, RDAP_MAX);
			char chunk[8192];
			size_t n;
			while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
				if (buf_append(out, chunk, n) < 0)
					break;
			fclose(f);
			buf_putc(out, 0);
			out->len--;
			return 0;
		}
	}
	if (!c->online)
		return -1;
	char url[4200];
	size_t bl = strlen(c->bootstrap_url);
	snprintf(url, sizeof(url), "%s%s%s", c->bootstrap_url,
		 bl && c->bootstrap_url[bl - 1] == '/' ? "" : "/", file);
	if (http_get(c, url, out) != 0)
		return -1;
	mkdir(dir, 0700);
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f) {
		bool ok = fwrite(out->data, 1, out->len, f) == out->len;
		ok &= fclose(f) == 0;
		if (ok)
			rename(tmp, path);
		else
			unlink(tmp);
	}
	return 0;
}

/* The RDAP base URL for an address or domain from a bootstrap document. */
static char *rdap_base(sqlite3 *db, const char *doc, const char *what, bool is_ip)
{
	sqlite3_stmt *st = NULL;
	char *best = NULL;
	int best_len = -1;
	struct netaddr a;
	if (is_ip && netaddr_parse(what, &a) < 0)
		return NULL;
	if (sqlite3_prepare_v2(db, "SELECT r.value, json_extract(s.value, '$[1][0]')"
				   " FROM json_each(?1, '$.services') s, json_each(s.value, '$[0]') r",
			       -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, doc, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *entry = (const char *)sqlite3_column_text(st, 0);
		const char *url = (const char *)sqlite3_column_text(st, 1);
		if (!entry || !url)
			continue;
		int len = -1;
		if (is_ip) {
			struct netaddr net;
			if (netaddr_parse(entry, &net) == 0 && netaddr_contains(&net, &a))
				len = net.bits;
		} else {
			/* dns.json: TLD labels; the longest matching suffix wins */
			size_t el = strlen(entry), wl = strlen(what);
			if (wl > el && what[wl - el - 1] == '.' && !strcasecmp(what + wl - el, entry))
				len = (int)el;
		}
		if (len > best_len) {
			free(best);
			best = strdup(url);
			best_len = len;
		}
	}
	sqlite3_finalize(st);
	return best;
}

/* Every e-mail of every entity whose roles include "abuse", at any depth. */
static int abuse_emails(sqlite3 *db, const char *doc, struct buf *emails)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(
		    db,
		    "SELECT DISTINCT lower(json_extract(v.value, '$[3]')) FROM json_tree(?1) t"
		    " JOIN json_each(t.value) r ON r.value = 'abuse'"
		    " JOIN json_each(json_extract(?1, substr(t.fullkey, 1, length(t.fullkey) - 6)"
		    "  || '.vcardArray[1]')) v"
		    " WHERE t.key = 'roles' AND t.type = 'array'"
		    "  AND json_extract(v.value, '$[0]') = 'email' ORDER BY t.id",
		    -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, doc, -1, SQLITE_STATIC);
	int n = 0;
	while (sqlite3_step(st) == SQLITE_ROW && n < 4) {
		const char *e = (const char *)sqlite3_column_text(st, 0);
		if (!e || !strchr(e, '@') || strlen(e) > 254 || strpbrk(e, " \t\r\n<>,;\""))
			continue;
		buf_printf(emails, "%s%s", n ? " " : "", e);
		n++;
	}
	sqlite3_finalize(st);
	return n;
}

static int rdap_lookup(struct contact_ctx *c, bool is_ip, const char *what, int64_t now_us,
		       struct buf *emails)
{
	struct netaddr a;
	const char *file = "dns.json";
	if (is_ip) {
		if (netaddr_parse(what, &a) < 0)
			return 0;
		file = a.family == AF_INET6 ? "ipv6.json" : "ipv4.json";
	}
	struct buf doc;
	if (bootstrap(c, file, now_us, &doc) < 0)
		return -1;
	char *base = rdap_base(c->db, doc.data, what, is_ip);
	buf_free(&doc);
	if (!base)
		return 0; /* no RDAP service for it */
	if (!c->online) {
		free(base);
		return -1;
	}
	char url[4200];
	size_t bl = strlen(base);
	snprintf(url, sizeof(url), "%s%s%s/%s", base, bl && base[bl - 1] == '/' ? "" : "/",
		 is_ip ? "ip" : "domain", what);
	free(base);
	struct buf resp;
	int rc = http_get(c, url, &resp);
	if (rc == 1)
		return 0;
	if (rc < 0)
		return -1;
	int n = abuse_emails(c->db, resp.data, emails);
	buf_free(&resp);
	return n > 0 ? 1 : 0;
}

/* A resolver handle: the system's, or the one report_dns_server pins ("ADDR" or
 * "ADDR:PORT", IPv4), with short timeouts (2 s, 2 tries). */
static int resolver_open(const struct contact_ctx *c, struct __res_state *rs)
{
	memset(rs, 0, sizeof(*rs));
	if (res_ninit(rs) != 0)
		return -1;
	if (c->dns_server && *c->dns_server) {
		/* "ADDR" or "ADDR:PORT" (IPv4) */
		char host[64];
		unsigned port = 53;
		snprintf(host, sizeof(host), "%s", c->dns_server);
		char *colon = strrchr(host, ':');
		if (colon && !strchr(colon + 1, '.')) {
			port = (unsigned)atoi(colon + 1);
			*colon = 0;
		}
		struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
			rs->nsaddr_list[0] = sin;
			rs->nscount = 1;
		}
	}
	rs->retrans = 2;
	rs->retry = 2;
	return 0;
}

/* Abusix: TXT <reversed address>.abuse-contacts.abusix.zone */
static int abusix_lookup(const struct contact_ctx *c, const char *ip, struct buf *emails)
{
	struct netaddr a;
	if (netaddr_parse(ip, &a) < 0 || !netaddr_is_host(&a))
		return 0;
	char name[256];
	size_t o = 0;
	if (a.family == AF_INET) {
		o = (size_t)snprintf(name, sizeof(name), "%u.%u.%u.%u", a.a[3], a.a[2], a.a[1],
				     a.a[0]);
	} else {
		for (int i = 15; i >= 0; i--)
			o += (size_t)snprintf(name + o, sizeof(name) - o, "%x.%x.", a.a[i] & 15,
					      a.a[i] >> 4);
		name[--o] = 0;
	}
	snprintf(name + o, sizeof(name) - o, ".abuse-contacts.abusix.zone");
	struct __res_state rs;
	if (resolver_open(c, &rs) < 0)
		return -1;
	unsigned char ans[4096];
	int len = res_nquery(&rs, name, ns_c_in, ns_t_txt, ans, sizeof(ans));
	if (len < 0) {
		int herr = rs.res_h_errno;
		res_nclose(&rs);
		return herr == HOST_NOT_FOUND || herr == NO_DATA ? 0 : -1;
	}
	res_nclose(&rs);
	ns_msg msg;
	if (ns_initparse(ans, len, &msg) < 0)
		return -1;
	int n = 0;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an) && n < 4; i++) {
		ns_rr rr;
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_txt)
			continue;
		const unsigned char *rd = ns_rr_rdata(rr);
		int rl = ns_rr_rdlen(rr);
		for (int p = 0; p < rl && n < 4;) {
			int sl = rd[p++];
			if (p + sl > rl)
				break;
			char e[256];
			memcpy(e, rd + p, (size_t)sl);
			e[sl] = 0;
			p += sl;
			for (char *q = e; *q; q++)
				*q = (char)tolower((unsigned char)*q);
			if (strchr(e, '@') && !strpbrk(e, " \t\r\n<>,;\"")) {
				buf_printf(emails, "%s%s", n ? " " : "", e);
				n++;
			}
		}
	}
	return n > 0 ? 1 : 0;
}

bool contact_address_public(const struct netaddr *a)
{
	const uint8_t *b = a->a;
	if (a->family == AF_INET6)
		return (b[0] & 0xe0) == 0x20; /* 2000::/3, global unicast */
	if (a->family != AF_INET)
		return false;
	return !(b[0] == 0 || b[0] == 10 || b[0] == 127 || b[0] >= 224 ||
		 (b[0] == 100 && (b[1] & 0xc0) == 64) || (b[0] == 169 && b[1] == 254) ||
		 (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
		 (b[0] == 192 && b[1] == 0 && b[2] == 0));
}

/* A host name as DNS carries it: LDH labels (and '_'), 1-63 bytes each, 253 in all. */
static bool host_name_ok(const char *h)
{
	size_t n = strlen(h), label = 0;
	if (!n || n > 253)
		return false;
	for (const char *p = h; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '.') {
			if (!label)
				return false;
			label = 0;
		} else if (isalnum(ch) || ch == '-' || ch == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0;
}

/* The A and AAAA records of name (CNAMEs followed by the resolver), at most max.
 * Returns how many, 0 when the name has none (NXDOMAIN, NODATA), -1 when it cannot
 * be known now (timeout, SERVFAIL) and nothing was found. */
static int host_addresses(const struct contact_ctx *c, const char *name, struct netaddr *out,
			  int max)
{
	struct __res_state rs;
	if (resolver_open(c, &rs) < 0)
		return -1;
	static const ns_type types[2] = {ns_t_a, ns_t_aaaa};
	int n = 0;
	bool failed = false;
	for (int t = 0; t < 2 && n < max; t++) {
		unsigned char ans[4096];
		int len = res_nquery(&rs, name, ns_c_in, types[t], ans, sizeof(ans));
		if (len < 0) {
			int herr = rs.res_h_errno;
			if (herr == HOST_NOT_FOUND)
				break; /* the name does not exist: no AAAA either */
			if (herr != NO_DATA)
				failed = true;
			continue;
		}
		ns_msg msg;
		if (ns_initparse(ans, len, &msg) < 0) {
			failed = true;
			continue;
		}
		int want = types[t] == ns_t_a ? 4 : 16;
		for (int i = 0; i < ns_msg_count(msg, ns_s_an) && n < max; i++) {
			ns_rr rr;
			if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != types[t] ||
			    (int)ns_rr_rdlen(rr) != want)
				continue;
			char text[INET6_ADDRSTRLEN];
			struct netaddr a;
			if (!inet_ntop(want == 4 ? AF_INET : AF_INET6, ns_rr_rdata(rr), text,
				       sizeof(text)) ||
			    netaddr_parse(text, &a) < 0)
				continue;
			bool dup = false;
			for (int k = 0; k < n; k++)
				dup |= netaddr_equal(&out[k], &a);
			if (!dup)
				out[n++] = a;
		}
	}
	res_nclose(&rs);
	return n > 0 ? n : failed ? -1 : 0;
}

/* Add the space-separated addresses of more to emails, each once, EMAILS_MAX in all. */
static int merge_emails(struct buf *emails, const char *more, int n)
{
	char *copy = strdup(more ? more : "");
	for (char *save = NULL, *e = copy ? strtok_r(copy, " ", &save) : NULL; e && n < EMAILS_MAX;
	     e = strtok_r(NULL, " ", &save)) {
		bool seen = false;
		const char *d = emails->data ? emails->data : "";
		size_t el = strlen(e);
		for (const char *q = strstr(d, e); q && !seen; q = strstr(q + 1, e))
			seen = (q == d || q[-1] == ' ') && (q[el] == 0 || q[el] == ' ');
		if (seen)
			continue;
		buf_printf(emails, "%s%s", n ? " " : "", e);
		n++;
	}
	free(copy);
	return n;
}

/* The web host of a spamvertised URL: its name resolved (report_dns_server when set),
 * each public, not allowlisted address's network contact looked up as "ip:ADDR" (its
 * own cache entry).  origin receives "dns ADDR ..." for the record. */
static int host_lookup(struct contact_ctx *c, const char *name, int64_t now_us,
		       struct buf *emails, struct buf *origin)
{
	if (!host_name_ok(name))
		return 0;
	struct netaddr addrs[HOST_ADDRS_MAX];
	int n = host_addresses(c, name, addrs, HOST_ADDRS_MAX);
	if (n <= 0)
		return n;
	buf_puts(origin, "dns");
	int found = 0;
	bool later = false;
	for (int i = 0; i < n; i++) {
		char t[NETADDR_STRLEN], q[NETADDR_STRLEN + 4];
		netaddr_format(&addrs[i], t, sizeof(t));
		/* never accuse a private or our own/allowlisted network: a spammer's name
		 * may point anywhere */
		if (!contact_address_public(&addrs[i]) ||
		    (c->al && netset_contains(&c->al->nets, &addrs[i]))) {
			buf_printf(origin, " %s(not looked up)", t);
			continue;
		}
		buf_printf(origin, " %s", t);
		snprintf(q, sizeof(q), "ip:%s", t);
		struct buf e;
		buf_init(&e, 0);
		const char *why = NULL;
		int rc = contact_resolve(c, q, now_us, &e, &why);
		if (rc < 0)
			later = true;
		else if (rc > 0)
			found = merge_emails(emails, e.data, found);
		buf_free(&e);
	}
	return found ? 1 : later ? -1 : 0;
}

int contact_resolve(struct contact_ctx *c, const char *query, int64_t now_us, struct buf *emails,
		    const char **why_r)
{
	const char *why = "cached";
	sqlite3_stmt *st = NULL;
	int found = -2;
	if (sqlite3_prepare_v2(c->db, "SELECT emails FROM contacts WHERE query = ?1 AND"
				      " expires_us > ?2", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, query, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now_us);
		if (sqlite3_step(st) == SQLITE_ROW) {
			const char *e = (const char *)sqlite3_column_text(st, 0);
			if (e && *e) {
				buf_puts(emails, e);
				found = 1;
			} else {
				found = 0;
			}
		}
		sqlite3_finalize(st);
	}
	if (found != -2) {
		if (why_r)
			*why_r = why;
		return found;
	}
	if (!c->online) {
		if (why_r)
			*why_r = "contact lookups are off (report_contact_lookup = no)";
		return -1;
	}
	bool is_ip = !strncmp(query, "ip:", 3);
	const char *what = strchr(query, ':') ? strchr(query, ':') + 1 : query;
	if (!strncmp(query, "host:", 5)) {
		struct buf origin;
		buf_init(&origin, 0);
		int hr = host_lookup(c, what, now_us, emails, &origin);
		if (hr >= 0)
			contact_store(c->db, query, hr > 0 ? emails->data : "",
				      origin.len ? origin.data : "dns", now_us, c->cache_us);
		buf_free(&origin);
		if (why_r)
			*why_r = hr < 0 ? "lookup failed (network); will retry"
				 : hr > 0 ? "dns" : "the host has no public address with a contact";
		return hr;
	}
	int rc = rdap_lookup(c, is_ip, what, now_us, emails);
	const char *origin = "rdap";
	if (rc == 0 && is_ip && c->abusix) {
		rc = abusix_lookup(c, what, emails);
		origin = "abusix";
	}
	if (rc == 0 && !is_ip) {
		/* RFC 2142: a domain's abuse mailbox */
		buf_printf(emails, "abuse@%s", what);
		rc = 1;
		origin = "rfc2142";
	}
	if (rc < 0) {
		if (why_r)
			*why_r = "lookup failed (network); will retry";
		return -1;
	}
	contact_store(c->db, query, rc > 0 ? emails->data : "", origin, now_us, c->cache_us);
	if (why_r)
		*why_r = origin;
	return rc;
}
