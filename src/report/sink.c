/*
 * sink: the libcurl transport of every channel and the classification of answers
 * (see sink.h).  Only the reporter process calls sink_send(); nothing else in mxbait
 * links a network client.
 */
#include "report/sink.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/config.h"
#include "store/event.h"
#include "util/buf.h"

#define RESPONSE_MAX (64 * 1024)
#define TIMEOUT_S 30L

static const char *const names[SINK_COUNT] = {
	"smtp", "abuseipdb", "spamhaus", "netcraft", "urlhaus", "webhook", "manual",
};

const char *sink_name(enum sink_id s)
{
	return s < SINK_COUNT ? names[s] : "?";
}

int sink_parse(const char *name)
{
	for (int i = 0; i < SINK_COUNT; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

bool sink_idempotent(const char *name)
{
	/* These deduplicate on what the report carries: the webhook on Idempotency-Key
	 * (documented contract), Spamhaus and URLhaus on the submitted object. */
	return !strcmp(name, "webhook") || !strcmp(name, "spamhaus") || !strcmp(name, "urlhaus");
}

static char *read_secret(const char *path, char **err_r)
{
	if (!path || !*path)
		return NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		if (err_r && asprintf(err_r, "%s: %s", path, strerror(errno)) < 0)
			*err_r = NULL;
		return NULL;
	}
	char line[4096];
	char *s = NULL;
	if (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		s = strdup(line);
	}
	fclose(f);
	if (!s || !*s) {
		free(s);
		if (err_r && asprintf(err_r, "%s: empty key file", path) < 0)
			*err_r = NULL;
		return NULL;
	}
	return s;
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

static void bucket(struct sink *s, double rate, double burst)
{
	s->rate = rate;
	s->burst = burst;
	s->tokens = burst;
}

int sinks_init(struct sinks *ss, const struct mxb_config *cfg, char **err_r)
{
	memset(ss, 0, sizeof(*ss));
	if (err_r)
		*err_r = NULL;
	static bool curl_ready;
	if (!curl_ready) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		curl_ready = true;
	}
	for (int i = 0; i < SINK_COUNT; i++) {
		ss->s[i].id = (enum sink_id)i;
		ss->s[i].ca_file = cfg->report_ca_file && *cfg->report_ca_file ? cfg->report_ca_file
										 : NULL;
	}
	struct sink *s = &ss->s[SINK_SMTP];
	s->url = dup_or_null(cfg->report_smtp_url);
	s->enabled = s->url != NULL;
	/* five seconds' worth may go at once, at least one */
	bucket(s, cfg->report_smtp_rate / 60.0,
	       cfg->report_smtp_rate / 12.0 > 1 ? cfg->report_smtp_rate / 12.0 : 1);
	s = &ss->s[SINK_ABUSEIPDB];
	if (cfg->report_abuseipdb_key_file && *cfg->report_abuseipdb_key_file) {
		if (!(s->secret = read_secret(cfg->report_abuseipdb_key_file, err_r)))
			return -1;
		s->url = dup_or_null(cfg->report_abuseipdb_url);
		s->enabled = s->url != NULL;
	}
	bucket(s, 1000.0 / 86400, 20); /* free plan: 1000 reports a day */
	s = &ss->s[SINK_SPAMHAUS];
	if (cfg->report_spamhaus_key_file && *cfg->report_spamhaus_key_file) {
		if (!(s->secret = read_secret(cfg->report_spamhaus_key_file, err_r)))
			return -1;
		s->url = dup_or_null(cfg->report_spamhaus_url);
		s->enabled = s->url != NULL;
	}
	bucket(s, 15.0 / 60, 5);
	s = &ss->s[SINK_NETCRAFT];
	if (cfg->report_netcraft_email && *cfg->report_netcraft_email) {
		s->email = strdup(cfg->report_netcraft_email);
		s->url = dup_or_null(cfg->report_netcraft_url);
		s->enabled = s->url != NULL;
	}
	bucket(s, 0.2, 10);
	s = &ss->s[SINK_URLHAUS];
	if (cfg->report_urlhaus_key_file && *cfg->report_urlhaus_key_file) {
		if (!(s->secret = read_secret(cfg->report_urlhaus_key_file, err_r)))
			return -1;
		s->url = dup_or_null(cfg->report_urlhaus_url);
		s->enabled = s->url != NULL;
	}
	bucket(s, 0.5, 10);
	s = &ss->s[SINK_WEBHOOK];
	s->url = dup_or_null(cfg->report_webhook_url);
	s->enabled = s->url != NULL;
	if (s->enabled && cfg->report_webhook_token_file && *cfg->report_webhook_token_file &&
	    !(s->secret = read_secret(cfg->report_webhook_token_file, err_r)))
		return -1;
	bucket(s, cfg->report_webhook_rate / 60.0,
	       cfg->report_webhook_rate / 12.0 > 1 ? cfg->report_webhook_rate / 12.0 : 1);
	bucket(&ss->s[SINK_MANUAL], 0, 0); /* never sent by the reporter */
	return 0;
}

void sinks_free(struct sinks *ss)
{
	for (int i = 0; i < SINK_COUNT; i++) {
		free(ss->s[i].url);
		free(ss->s[i].secret);
		free(ss->s[i].email);
	}
	memset(ss, 0, sizeof(*ss));
}

bool sink_take(struct sink *s, int64_t now_us)
{
	if (now_us < s->blocked_until_us)
		return false;
	if (s->refill_us) {
		double add = (double)(now_us - s->refill_us) / 1e6 * s->rate;
		s->tokens = s->tokens + add > s->burst ? s->burst : s->tokens + add;
	}
	s->refill_us = now_us;
	if (s->tokens < 1.0)
		return false;
	s->tokens -= 1.0;
	return true;
}

int64_t sink_backoff_us(int attempts, int64_t retry_after_s)
{
	int64_t base = 60;
	for (int i = 1; i < attempts && base < 6 * 3600; i++)
		base *= 2;
	if (base > 6 * 3600)
		base = 6 * 3600;
	unsigned r = 0;
	RAND_bytes((unsigned char *)&r, sizeof(r));
	double jitter = 0.5 + (double)(r % 1000) / 1000.0;
	if (retry_after_s > 0) /* the server said when: then, plus up to 10% */
		return (int64_t)((double)retry_after_s * 1e6 * (1.0 + (jitter - 0.5) / 10.0));
	return (int64_t)((double)base * 1e6 * jitter);
}

/* ---- libcurl plumbing ---- */

struct body {
	struct buf b;
};

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
	struct body *bd = ctx;
	size_t len = size * n;
	if (bd->b.len < RESPONSE_MAX)
		buf_append(&bd->b, p, bd->b.len + len > RESPONSE_MAX ? RESPONSE_MAX - bd->b.len : len);
	return len;
}

struct upload {
	const char *data;
	size_t len, off;
	const struct send_request *rq;
	bool started;
};

static size_t on_read(char *p, size_t size, size_t n, void *ctx)
{
	struct upload *u = ctx;
	if (!u->started) {
		u->started = true;
		if (u->rq && u->rq->on_transmit)
			u->rq->on_transmit(u->rq->ctx);
	}
	size_t want = size * n, left = u->len - u->off;
	size_t k = want < left ? want : left;
	memcpy(p, u->data + u->off, k);
	u->off += k;
	return k;
}

static CURL *easy(const struct sink *s, struct body *bd)
{
	CURL *c = curl_easy_init();
	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
	if (s->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, bd);
	char ua[64];
	snprintf(ua, sizeof(ua), "mxbait/%s", MXB_VERSION);
	curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
	return c;
}

static void summarise(struct send_outcome *o, const struct body *bd)
{
	size_t n = bd->b.len < sizeof(o->response) - 1 ? bd->b.len : sizeof(o->response) - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)bd->b.data[i];
		o->response[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : ' ';
	}
	o->response[n] = 0;
}

static bool body_has(const struct body *bd, const char *needle)
{
	return bd->b.data && strcasestr(bd->b.data, needle) != NULL;
}

static void classify_http(const struct sink *s, CURLcode rc, long status, const struct body *bd,
			  struct send_outcome *o)
{
	o->status = status;
	if (rc != CURLE_OK) {
		o->result = SEND_RETRY;
		snprintf(o->detail, sizeof(o->detail), "%s", curl_easy_strerror(rc));
		return;
	}
	if (status == 208 || (status >= 200 && status < 300 && s->id == SINK_URLHAUS &&
			      body_has(bd, "already"))) {
		o->result = SEND_DUPLICATE;
		snprintf(o->detail, sizeof(o->detail), "already known (HTTP %ld)", status);
		return;
	}
	if (status >= 200 && status < 300) {
		o->result = SEND_OK;
		snprintf(o->detail, sizeof(o->detail), "HTTP %ld", status);
		return;
	}
	if (status == 429 && s->id == SINK_ABUSEIPDB &&
	    (body_has(bd, "once in 15 minutes") || body_has(bd, "already reported"))) {
		o->result = SEND_DUPLICATE;
		snprintf(o->detail, sizeof(o->detail), "already reported recently (HTTP 429)");
		return;
	}
	if (status == 409 || (status >= 400 && status < 500 && body_has(bd, "already"))) {
		o->result = SEND_DUPLICATE;
		snprintf(o->detail, sizeof(o->detail), "already known (HTTP %ld)", status);
		return;
	}
	if (status == 429 || status == 408 || status >= 500) {
		o->result = SEND_RETRY;
		snprintf(o->detail, sizeof(o->detail), "HTTP %ld%s", status,
			 o->retry_after_s ? " (Retry-After)" : "");
		return;
	}
	o->result = SEND_REJECTED;
	snprintf(o->detail, sizeof(o->detail), "HTTP %ld", status);
}

static void http_post(struct sink *s, const char *url, struct curl_slist *hdr, const void *body,
		      size_t len, const struct send_request *rq, struct send_outcome *o)
{
	struct body bd;
	buf_init(&bd.b, 0);
	CURL *c = easy(s, &bd);
	if (!c) {
		o->result = SEND_RETRY;
		snprintf(o->detail, sizeof(o->detail), "curl init failed");
		buf_free(&bd.b);
		return;
	}
	/* the body through a read callback, so that the moment it starts is known */
	struct upload up = {body, len, 0, rq, false};
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &up);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_off_t ra = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		o->retry_after_s = (int64_t)ra;
	classify_http(s, rc, status, &bd, o);
	summarise(o, &bd);
	curl_easy_cleanup(c);
	buf_free(&bd.b);
}

static char *join_url(const char *base, const char *path)
{
	char *u = NULL;
	size_t bl = strlen(base);
	if (asprintf(&u, "%s%s%s", base, bl && base[bl - 1] == '/' ? "" : "/", path) < 0)
		return NULL;
	return u;
}

static void smtp_send(struct sink *s, const struct send_request *rq, struct send_outcome *o)
{
	struct body bd;
	buf_init(&bd.b, 0);
	CURL *c = easy(s, &bd);
	struct buf msg;
	buf_init(&msg, 0);
	buf_printf(&msg, "To: <%s>\r\n", rq->recipient);
	buf_append(&msg, rq->payload, rq->payload_len);
	struct upload up = {msg.data, msg.len, 0, rq, false};
	char from[320];
	snprintf(from, sizeof(from), "<%s>", s->email ? s->email : "");
	char rcpt[320];
	snprintf(rcpt, sizeof(rcpt), "<%s>", rq->recipient);
	struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
	curl_easy_setopt(c, CURLOPT_URL, s->url);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &up);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg.len);
	/* smtp:// uses STARTTLS when offered (verified); smtps:// is TLS from the start */
	curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	CURLcode rc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	o->status = code;
	if (rc == CURLE_OK) {
		o->result = SEND_OK;
		snprintf(o->detail, sizeof(o->detail), "SMTP %ld", code);
	} else if (code >= 500 && code < 600) {
		o->result = SEND_REJECTED;
		snprintf(o->detail, sizeof(o->detail), "SMTP %ld: %s", code, curl_easy_strerror(rc));
	} else {
		o->result = SEND_RETRY;
		snprintf(o->detail, sizeof(o->detail), "SMTP %ld: %s", code, curl_easy_strerror(rc));
	}
	curl_slist_free_all(rcpts);
	curl_easy_cleanup(c);
	buf_free(&msg);
	buf_free(&bd.b);
}

void sink_send(struct sink *s, const struct send_request *rq, struct send_outcome *o)
{
	memset(o, 0, sizeof(*o));
	if (!s->enabled || !s->url) {
		o->result = SEND_RETRY;
		snprintf(o->detail, sizeof(o->detail), "sink not configured");
		return;
	}
	if (s->id == SINK_SMTP) {
		smtp_send(s, rq, o);
		return;
	}
	struct curl_slist *h = NULL;
	char line[4200];
	char *url = NULL;
	const char *ctype = "application/json";
	switch (s->id) {
	case SINK_ABUSEIPDB:
		url = join_url(s->url, "report");
		snprintf(line, sizeof(line), "Key: %s", s->secret ? s->secret : "");
		h = curl_slist_append(h, line);
		h = curl_slist_append(h, "Accept: application/json");
		ctype = "application/x-www-form-urlencoded";
		break;
	case SINK_SPAMHAUS:
		url = join_url(s->url, !strcmp(rq->kind, "url") ? "submissions/add/url"
								: "submissions/add/ip");
		snprintf(line, sizeof(line), "Authorization: Bearer %s", s->secret ? s->secret : "");
		h = curl_slist_append(h, line);
		break;
	case SINK_NETCRAFT:
		url = join_url(s->url, "report/urls");
		break;
	case SINK_URLHAUS:
		url = strdup(s->url);
		snprintf(line, sizeof(line), "Auth-Key: %s", s->secret ? s->secret : "");
		h = curl_slist_append(h, line);
		break;
	case SINK_WEBHOOK:
		url = strdup(s->url);
		if (s->secret) {
			snprintf(line, sizeof(line), "Authorization: Bearer %s", s->secret);
			h = curl_slist_append(h, line);
		}
		break;
	default:
		o->result = SEND_REJECTED;
		snprintf(o->detail, sizeof(o->detail), "no transport for this sink");
		return;
	}
	snprintf(line, sizeof(line), "Content-Type: %s", ctype);
	h = curl_slist_append(h, line);
	/* Every request carries the report's idempotency key (the webhook contract; the
	 * others ignore the header). */
	snprintf(line, sizeof(line), "Idempotency-Key: %s", rq->key);
	h = curl_slist_append(h, line);
	h = curl_slist_append(h, "Expect:");
	if (url)
		http_post(s, url, h, rq->payload, rq->payload_len, rq, o);
	else
		o->result = SEND_RETRY;
	curl_slist_free_all(h);
	free(url);
}

/* form field value from "a=1&ip=x&..." (percent-decoding left to the CSV's reader:
 * mxbait writes only unreserved characters and %XX there) */
static void form_field(const char *form, size_t len, const char *name, struct buf *out)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < len;) {
		size_t e = i;
		while (e < len && form[e] != '&')
			e++;
		if (e - i > nl && !strncmp(form + i, name, nl) && form[i + nl] == '=') {
			for (size_t k = i + nl + 1; k < e; k++) {
				if (form[k] == '%' && k + 2 < e) {
					char hx[3] = {form[k + 1], form[k + 2], 0};
					buf_putc(out, (char)strtol(hx, NULL, 16));
					k += 2;
				} else {
					buf_putc(out, form[k] == '+' ? ' ' : form[k]);
				}
			}
			return;
		}
		i = e + 1;
	}
}

int sink_abuseipdb_bulk(struct sink *s, const struct send_request *rq, size_t n,
			struct send_outcome *res)
{
	struct buf csv;
	buf_init(&csv, 0);
	buf_puts(&csv, "IP,Categories,ReportDate,Comment\n");
	for (size_t i = 0; i < n; i++) {
		struct buf f;
		buf_init(&f, 0);
		const char *p = rq[i].payload;
		form_field(p, rq[i].payload_len, "ip", &f);
		buf_printf(&csv, "%s,\"", f.data ? f.data : "");
		buf_reset(&f);
		form_field(p, rq[i].payload_len, "categories", &f);
		buf_printf(&csv, "%s\",", f.data ? f.data : "");
		buf_reset(&f);
		form_field(p, rq[i].payload_len, "timestamp", &f);
		buf_printf(&csv, "%s,\"", f.data ? f.data : "");
		buf_reset(&f);
		form_field(p, rq[i].payload_len, "comment", &f);
		for (size_t k = 0; f.data && k < f.len; k++) {
			if (f.data[k] == '"')
				buf_putc(&csv, '"');
			buf_putc(&csv, f.data[k] == '\n' ? ' ' : f.data[k]);
		}
		buf_puts(&csv, "\"\n");
		buf_free(&f);
	}
	struct body bd;
	buf_init(&bd.b, 0);
	CURL *c = easy(s, &bd);
	char *url = join_url(s->url, "bulk-report");
	curl_mime *mime = curl_mime_init(c);
	curl_mimepart *part = curl_mime_addpart(mime);
	curl_mime_name(part, "csv");
	curl_mime_filename(part, "report.csv");
	curl_mime_type(part, "text/csv");
	curl_mime_data(part, csv.data, csv.len);
	struct curl_slist *h = NULL;
	char line[4200];
	snprintf(line, sizeof(line), "Key: %s", s->secret ? s->secret : "");
	h = curl_slist_append(h, line);
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	for (size_t i = 0; i < n; i++) /* conservatively: before the request */
		if (rq[i].on_transmit)
			rq[i].on_transmit(rq[i].ctx);
	CURLcode rc = curl_easy_perform(c);
	long status = 0;
	curl_off_t ra = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	struct send_outcome all = {0};
	if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		all.retry_after_s = (int64_t)ra;
	classify_http(s, rc, status, &bd, &all);
	summarise(&all, &bd);
	for (size_t i = 0; i < n; i++)
		res[i] = all;
	int ret = all.result == SEND_OK ? 0 : -1;
	if (all.result == SEND_OK && bd.b.data) {
		/* "invalidReports":[{"error":"...","input":"IP","rowNumber":N}]: those rows
		 * are rejected, the rest saved */
		const char *inv = strstr(bd.b.data, "\"invalidReports\"");
		for (const char *p = inv; p && (p = strstr(p, "\"rowNumber\""));) {
			p += 11;
			while (*p == ':' || *p == ' ')
				p++;
			long row = strtol(p, NULL, 10); /* 1 = the first data line */
			if (row >= 1 && (size_t)row <= n) {
				res[row - 1].result = SEND_REJECTED;
				snprintf(res[row - 1].detail, sizeof(res[row - 1].detail),
					 "bulk-report: invalid row %ld", row);
			}
		}
	}
	curl_slist_free_all(h);
	curl_mime_free(mime);
	curl_easy_cleanup(c);
	free(url);
	buf_free(&bd.b);
	buf_free(&csv);
	return ret;
}
