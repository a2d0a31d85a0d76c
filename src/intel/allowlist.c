/*
 * allowlist: configured networks and domains plus the built-in platform list (see
 * allowlist.h).  Domain lookups walk the name's parents (a.b.example.com, b.example.com,
 * example.com, com) and binary-search each in the sorted lists, so a check costs a
 * few comparisons whatever the list sizes.
 */
#include "intel/allowlist.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intel/indicator.h"

/* Registrable domains spam links to without being the spammer's.  Sorted (bsearch). */
static const char *const platforms[] = {
	"1drv.ms", "akamaihd.net", "amazon.com", "amazonaws.com", "apple.com", "bing.com",
	"blogger.com", "cloudflare.com", "cloudfront.net", "doubleclick.net", "dropbox.com",
	"facebook.com", "fb.com", "github.com", "githubusercontent.com", "gmail.com",
	"google.com", "googleapis.com", "googleusercontent.com", "gstatic.com", "hotmail.com",
	"icloud.com", "instagram.com", "linkedin.com", "live.com", "microsoft.com",
	"mozilla.org", "msn.com", "office.com", "office365.com", "onedrive.com", "outlook.com",
	"paypal.com", "pinterest.com", "schema.org", "sharepoint.com", "t.me", "tiktok.com",
	"twitter.com", "w3.org", "whatsapp.com", "wikipedia.org", "windows.net", "x.com",
	"yahoo.com", "youtu.be", "youtube.com",
};
#define N_PLATFORMS (sizeof(platforms) / sizeof(platforms[0]))

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool in_sorted(const char *const *v, size_t n, const char *key)
{
	return n && bsearch(&key, v, n, sizeof(*v), cmp_str) != NULL;
}

/* Is domain or one of its parents in v?  domain is lower-cased into a copy. */
static bool covers(const char *const *v, size_t n, const char *domain)
{
	char d[256];
	size_t len = strlen(domain);
	if (!n || !len || len >= sizeof(d))
		return false;
	for (size_t i = 0; i < len; i++)
		d[i] = (char)tolower((unsigned char)domain[i]);
	d[len] = 0;
	if (d[len - 1] == '.')
		d[--len] = 0;
	for (const char *p = d; p && *p;) {
		if (in_sorted(v, n, p))
			return true;
		p = strchr(p, '.');
		if (p)
			p++;
	}
	return false;
}

bool allowlist_is_platform(const char *domain)
{
	return domain && covers(platforms, N_PLATFORMS, domain);
}

bool allowlist_has_domain(const struct allowlist *al, const char *domain)
{
	if (!domain)
		return false;
	return allowlist_is_platform(domain) ||
	       (al && covers((const char *const *)al->domains, al->n_domains, domain));
}

int allowlist_init(struct allowlist *al, const char *networks, const char *domains,
		   bool own_addresses, char **err_r)
{
	memset(al, 0, sizeof(*al));
	netset_init(&al->nets);
	if (err_r)
		*err_r = NULL;
	const char *bad = NULL;
	size_t bad_len = 0;
	if (networks && netset_parse_list(&al->nets, networks, &bad, &bad_len) < 0) {
		if (err_r && asprintf(err_r, "allowlist_networks: bad network '%.*s'",
				      (int)(bad_len > 64 ? 64 : bad_len), bad ? bad : "") < 0)
			*err_r = NULL;
		allowlist_free(al);
		return -1;
	}
	if (own_addresses)
		netset_add_local_addresses(&al->nets); /* best effort: loopback at least */
	for (const char *p = domains ? domains : ""; *p;) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		size_t n = strcspn(p, ", \t\r\n");
		if (!n)
			break;
		if (n > 253) {
			if (err_r && asprintf(err_r, "allowlist_domains: name too long") < 0)
				*err_r = NULL;
			allowlist_free(al);
			return -1;
		}
		char *d = strndup(p, n);
		char **nv = d ? realloc(al->domains, (al->n_domains + 1) * sizeof(char *)) : NULL;
		if (!nv) {
			free(d);
			allowlist_free(al);
			return -1;
		}
		al->domains = nv;
		for (char *c = d; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (*d == '.')
			memmove(d, d + 1, strlen(d));
		size_t dl = strlen(d);
		if (dl && d[dl - 1] == '.')
			d[dl - 1] = 0;
		al->domains[al->n_domains++] = d;
		p += n;
	}
	if (al->n_domains)
		qsort(al->domains, al->n_domains, sizeof(char *), cmp_str);
	return 0;
}

void allowlist_free(struct allowlist *al)
{
	netset_free(&al->nets);
	for (size_t i = 0; i < al->n_domains; i++)
		free(al->domains[i]);
	free(al->domains);
	al->domains = NULL;
	al->n_domains = 0;
}

bool allowlist_url_host(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://");
	if (!p || !outlen)
		return false;
	p += 3;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	while (at) { /* userinfo: the host follows the last @ */
		n -= (size_t)(at + 1 - p);
		p = at + 1;
		at = memchr(p, '@', n);
	}
	if (n && *p == '[') {
		const char *close = memchr(p, ']', n);
		if (!close)
			return false;
		p++;
		n = (size_t)(close - p);
	} else {
		const char *colon = memchr(p, ':', n);
		if (colon)
			n = (size_t)(colon - p);
	}
	if (!n || n >= outlen)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)p[i]);
	out[n] = 0;
	return true;
}

static bool nets_overlap(const struct netset *s, const struct netaddr *a)
{
	if (netset_contains(s, a))
		return true;
	for (size_t i = 0; i < s->n; i++)
		if (netaddr_contains(a, &s->v[i]))
			return true;
	return false;
}

bool allowlist_refuses(const struct allowlist *al, const struct indicator *ind)
{
	struct netaddr a;
	char host[256];
	if (indicator_has_flag(ind, "platform") || indicator_has_flag(ind, "redirector"))
		return true;
	/* A shortener's own domain is never listed (its short links are, flagged). */
	if ((ind->kind == IND_DOMAIN || ind->kind == IND_SENDER_DOMAIN) &&
	    indicator_has_flag(ind, "shortener"))
		return true;
	switch (ind->kind) {
	case IND_IP:
	case IND_PREFIX:
		/* A value that is not an address cannot be exported safely either. */
		if (netaddr_parse(ind->value, &a) < 0)
			return true;
		return al && nets_overlap(&al->nets, &a);
	case IND_URL:
		if (!allowlist_url_host(ind->value, host, sizeof(host)))
			return true;
		if (netaddr_parse(host, &a) == 0)
			return al && nets_overlap(&al->nets, &a);
		return allowlist_has_domain(al, host);
	case IND_DOMAIN:
	case IND_SENDER_DOMAIN:
	case IND_RECIPIENT_DOMAIN:
		return allowlist_has_domain(al, ind->value);
	case IND_SENDER:
	case IND_RECIPIENT: {
		const char *at = strrchr(ind->value, '@');
		return !at || allowlist_has_domain(al, at + 1);
	}
	case IND_ATTACHMENT:
	case IND_CAMPAIGN:
	case IND_KIND_COUNT:
		break;
	}
	return false;
}

static void sql_platform(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	const char *d = (const char *)sqlite3_value_text(argv[0]);
	sqlite3_result_int(ctx, d && allowlist_is_platform(d));
}

int allowlist_register_sql(sqlite3 *db)
{
	return sqlite3_create_function(db, "mxb_platform", 1,
				       SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
				       sql_platform, NULL, NULL) == SQLITE_OK ? 0 : -1;
}
