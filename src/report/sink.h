/*
 * sink: where reports go, each configured separately and off by default (docs/
 * reporting.md, "Channels"): smtp (ARF/XARF/digests through a smarthost), abuseipdb
 * (v2 report, and bulk-report when several are due), spamhaus (submission portal),
 * netcraft (report API), urlhaus (malware URLs only), webhook (generic JSON).
 *
 * Each sink has its own token bucket (rate and burst fitted to the service's published
 * limits), its own backoff, TLS always verified (CURLOPT_SSL_VERIFYPEER/HOST; a CA file
 * may be configured for a private CA), no redirects followed, HTTP/HTTPS or SMTP(S)
 * only, 30 s per request, responses read up to 64 KiB.  The answer is classified:
 * accepted; already known (treated as success: AbuseIPDB's "once in 15 minutes",
 * Spamhaus 208, URLhaus already_known); retry later (429 with its Retry-After, 5xx,
 * network errors, SMTP 4xx); rejected for good (other 4xx, SMTP 5xx).
 */
#ifndef MXB_REPORT_SINK_H
#define MXB_REPORT_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mxb_config;

enum sink_id {
	SINK_SMTP,
	SINK_ABUSEIPDB,
	SINK_SPAMHAUS,
	SINK_NETCRAFT,
	SINK_URLHAUS,
	SINK_WEBHOOK,
	SINK_MANUAL,
	SINK_COUNT
};

const char *sink_name(enum sink_id s);
int sink_parse(const char *name);
/* Resending after a crash is harmless for this sink (see outbox.h). */
bool sink_idempotent(const char *name);

struct sink {
	enum sink_id id;
	bool enabled;
	char *url;        /* endpoint base (or smtp[s]://host:port) */
	char *secret;     /* API key / token, read from its file */
	char *email;      /* netcraft reporter address, smtp envelope sender */
	const char *ca_file;
	double rate;      /* tokens per second */
	double burst;
	double tokens;
	int64_t refill_us;
	int64_t blocked_until_us; /* a 429 blocks the whole sink */
	long sent, duplicate, failed, retried; /* this process's counts */
};

struct sinks {
	struct sink s[SINK_COUNT];
};

/* From the configuration; key files are read here.  Returns 0, or -1 with *err_r. */
int sinks_init(struct sinks *ss, const struct mxb_config *cfg, char **err_r);
void sinks_free(struct sinks *ss);
/* Take a token if one is there (refilling by elapsed time). */
bool sink_take(struct sink *s, int64_t now_us);

enum send_result { SEND_OK, SEND_DUPLICATE, SEND_RETRY, SEND_REJECTED };

struct send_outcome {
	enum send_result result;
	long status;              /* HTTP status or SMTP reply code, 0 when none */
	int64_t retry_after_s;    /* from Retry-After, 0 when none */
	char detail[256];         /* error text or a response summary */
	char response[1024];      /* the start of the response body */
};

struct send_request {
	const char *key;          /* idempotency key */
	const char *kind;
	const char *subject;
	const char *recipient;    /* smtp */
	const char *content_type;
	const void *payload;
	size_t payload_len;
	/* Called once, just before the first byte of the payload leaves (SMTP DATA,
	 * HTTP request body): from then on the sink may have the report. */
	void (*on_transmit)(void *ctx);
	void *ctx;
};

/* One request to the sink (blocking, bounded by the timeouts above). */
void sink_send(struct sink *s, const struct send_request *rq, struct send_outcome *o);

/* AbuseIPDB bulk-report: n report payloads (form bodies) as one CSV upload; result[i]
 * gets each one's outcome.  Returns 0, or -1 when the request as a whole failed (then
 * every result holds that outcome). */
int sink_abuseipdb_bulk(struct sink *s, const struct send_request *rq, size_t n,
			struct send_outcome *result);

/* When to try again: Retry-After when the server gave one (plus up to 10% jitter),
 * else exponential backoff with jitter: 60 s doubling per attempt, capped at 6 h,
 * times a random factor in [0.5, 1.5). */
int64_t sink_backoff_us(int attempts, int64_t retry_after_s);

#endif
