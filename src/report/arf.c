/*
 * arf: ARF, XARF v4 and digest rendering (see arf.h).
 *
 * Attacker bytes reach these reports in three places: the attached message (kept as
 * it is, apart from line endings and redaction: it is evidence), header values copied
 * from it (the Subject: folded lines joined, CR/LF never copied, non-ASCII sent as an
 * RFC 2047 encoded word) and feedback fields (each value checked to be one printable
 * ASCII token, else left out).  So a captured message cannot add a header or a MIME
 * part to the report, and cannot end the report early: the boundary is checked
 * against the message and changed until it does not occur in it.
 */
#include "report/arf.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report/export.h"
#include "store/event.h"

#define SUBJECT_MAX 400
#define REPORTED_MAX 20        /* Reported-URI / Reported-Domain fields per report */
#define ORIGINAL_MAX (10 << 20) /* attach at most 10 MiB; larger: headers only */

void arf_date(int64_t us, char *out, size_t outlen)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, outlen, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static void put_crlf(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			buf_putc(b, '\r');
		buf_putc(b, s[i]);
	}
}

static void b64(struct buf *b, const void *data, size_t n, bool wrap)
{
	const unsigned char *p = data;
	unsigned char out[80];
	for (size_t i = 0; i < n; i += 57) {
		size_t chunk = n - i < 57 ? n - i : 57;
		int len = EVP_EncodeBlock(out, p + i, (int)chunk);
		buf_append(b, out, (size_t)len);
		if (wrap)
			buf_puts(b, "\r\n");
	}
}

/* A printable-ASCII single-line value (or NULL when it is not one). */
static bool token_ok(const char *s, size_t max)
{
	if (!s || !*s || strlen(s) > max)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return false;
	return true;
}

static const char *memcasemem(const char *h, size_t hl, const char *n, size_t nl)
{
	if (!nl || hl < nl)
		return NULL;
	for (size_t i = 0; i + nl <= hl; i++)
		if (strncasecmp(h + i, n, nl) == 0)
			return h + i;
	return NULL;
}

void arf_redact_addr(const struct report_identity *id, const char *addr, char *out,
		     size_t outlen)
{
	const char *at = strrchr(addr, '@');
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	size_t ll = at ? (size_t)(at - addr) : strlen(addr);
	char local[256];
	size_t n = ll < sizeof(local) - 1 ? ll : sizeof(local) - 1;
	for (size_t i = 0; i < n; i++)
		local[i] = (char)tolower((unsigned char)addr[i]);
	local[n] = 0;
	HMAC(EVP_sha256(), id->secret, (int)id->secret_len, (const unsigned char *)local, n, mac,
	     &maclen);
	char hex[17];
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	snprintf(out, outlen, "redacted-%s@%s", hex, at ? at + 1 : "invalid");
}

/* Replace every case-insensitive occurrence of each address in b. */
static void redact_all(const struct report_identity *id, struct buf *b, const char *const *addrs,
		       size_t n)
{
	for (size_t k = 0; k < n; k++) {
		size_t al = strlen(addrs[k]);
		if (al < 3 || !strchr(addrs[k], '@'))
			continue;
		char tok[320];
		arf_redact_addr(id, addrs[k], tok, sizeof(tok));
		size_t tl = strlen(tok);
		struct buf o;
		buf_init(&o, 0);
		const char *p = b->data ? b->data : "";
		size_t left = b->len;
		const char *hit;
		while ((hit = memcasemem(p, left, addrs[k], al))) {
			buf_append(&o, p, (size_t)(hit - p));
			buf_append(&o, tok, tl);
			left -= (size_t)(hit - p) + al;
			p = hit + al;
		}
		buf_append(&o, p, left);
		buf_free(b);
		*b = o;
	}
}

static bool contains_any(const struct buf *b, const char *const *addrs, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (strchr(addrs[k], '@') && strlen(addrs[k]) >= 3 &&
		    memcasemem(b->data ? b->data : "", b->len, addrs[k], strlen(addrs[k])))
			return true;
	return false;
}

/* Length of the header block (up to and including the empty line). */
static size_t header_len(const char *m, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (m[i] == '\n' && m[i + 1] == '\n')
			return i + 2;
		if (m[i] == '\n' && m[i + 1] == '\r' && i + 2 < n && m[i + 2] == '\n')
			return i + 3;
	}
	return n;
}

/* The unfolded Subject: value (raw bytes, CR/LF removed), bounded. */
static void subject_of(const char *m, size_t n, char *out, size_t outlen)
{
	size_t hl = header_len(m, n);
	out[0] = 0;
	for (size_t i = 0; i < hl;) {
		size_t e = i;
		while (e < hl && m[e] != '\n')
			e++;
		if ((i == 0 || m[i - 1] == '\n') && e - i > 8 && !strncasecmp(m + i, "subject:", 8)) {
			size_t o = 0;
			size_t p = i + 8;
			for (;;) {
				for (; p < e && o + 1 < outlen; p++)
					if (m[p] != '\r')
						out[o++] = m[p] == '\t' ? ' ' : m[p];
				if (e + 1 < hl && (m[e + 1] == ' ' || m[e + 1] == '\t')) {
					p = e + 1;
					e = p;
					while (e < hl && m[e] != '\n')
						e++;
					continue;
				}
				break;
			}
			out[o] = 0;
			/* trim */
			size_t s = 0;
			while (out[s] == ' ')
				s++;
			memmove(out, out + s, strlen(out + s) + 1);
			size_t l = strlen(out);
			while (l && out[l - 1] == ' ')
				out[--l] = 0;
			return;
		}
		i = e + 1;
	}
}

/* "Subject: FW: <original>" with non-ASCII as an encoded word. */
static void put_subject(struct buf *b, const char *prefix, const char *subj)
{
	bool ascii = true;
	for (const unsigned char *p = (const unsigned char *)subj; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			ascii = false;
	buf_printf(b, "Subject: %s", prefix);
	if (ascii) {
		buf_puts(b, subj);
	} else {
		buf_puts(b, "=?utf-8?b?");
		b64(b, subj, strlen(subj), false);
		buf_puts(b, "?=");
	}
	buf_puts(b, "\r\n");
}

static void boundary_for(const char *key, const char *msg, size_t msg_len, char *out,
			 size_t outlen)
{
	for (int i = 0;; i++) {
		snprintf(out, outlen, "mxbait-%.24s-%d", key, i);
		char probe[96];
		int pl = snprintf(probe, sizeof(probe), "--%s", out);
		if (!memcasemem(msg, msg_len, probe, (size_t)pl))
			return;
	}
}

static void common_headers(struct buf *b, const struct report_identity *id, const char *key,
			   int64_t now_us)
{
	char date[64];
	arf_date(now_us, date, sizeof(date));
	buf_printf(b, "From: mxbait abuse reports <%s>\r\n", id->from);
	buf_printf(b, "Date: %s\r\n", date);
	buf_printf(b, "Message-ID: <%.40s@%s>\r\n", key, id->hostname);
	buf_puts(b, "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n");
}

int arf_render(const struct report_identity *id, const struct arf_message *m, const char *key,
	       int64_t now_us, struct buf *out, char **err_r)
{
	char boundary[80], subj[SUBJECT_MAX + 1], when[64], tok[320];
	if (err_r)
		*err_r = NULL;
	/* The evidence: the message (CRLF), redacted when asked for. */
	struct buf att;
	buf_init(&att, 0);
	bool headers_only = m->msg_len > ORIGINAL_MAX;
	put_crlf(&att, m->msg, headers_only ? header_len(m->msg, m->msg_len) : m->msg_len);
	if (m->redact) {
		bool encoded = memcasemem(att.data, att.len, "base64", 6) ||
			       memcasemem(att.data, att.len, "quoted-printable", 16);
		if (encoded && !headers_only) {
			att.len = header_len(att.data, att.len);
			att.data[att.len] = 0;
			headers_only = true;
		}
		redact_all(id, &att, m->rcpts, m->n_rcpts);
		if (contains_any(&att, m->rcpts, m->n_rcpts) && !headers_only) {
			att.len = header_len(att.data, att.len);
			att.data[att.len] = 0;
			headers_only = true;
		}
	}
	subject_of(m->msg, m->msg_len, subj, sizeof(subj));
	boundary_for(key, att.data ? att.data : "", att.len, boundary, sizeof(boundary));

	common_headers(out, id, key, now_us);
	put_subject(out, "FW: ", subj[0] ? subj : "(no subject)");
	buf_printf(out, "Content-Type: multipart/report; report-type=feedback-report;\r\n"
			"\tboundary=\"%s\"\r\n\r\n", boundary);
	buf_puts(out, "This is a multi-part message in MIME format (an abuse report, RFC 5965).\r\n");

	/* Part 1: everything a reader of the text alone needs (RFC 6650 6.4). */
	arf_date(m->arrival_us, when, sizeof(when));
	buf_printf(out, "\r\n--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n"
			"Content-Transfer-Encoding: 7bit\r\n\r\n", boundary);
	buf_printf(out, "This is an abuse report about mail sent from your network.\r\n\r\n"
			"On %s, the client at %s", when, token_ok(m->src_ip, 64) ? m->src_ip : "?");
	if (m->src_port)
		buf_printf(out, " (port %u)", m->src_port);
	buf_printf(out, "\r\nsubmitted the attached message to our mail honeypot %s", id->hostname);
	if (m->auth_user && token_ok(m->auth_user, 200))
		buf_puts(out, ",\r\nafter logging in with a password guessed for an account that "
			      "exists only\r\non the honeypot");
	buf_puts(out, ".\r\nThe message was captured and NOT delivered to anyone.\r\n");
	if (m->incidents > 1)
		buf_printf(out, "%u messages like it came from this source since the last report.\r\n",
			   m->incidents);
	if (m->n_uris) {
		buf_puts(out, "\r\nLinks advertised in it:\r\n");
		for (size_t i = 0; i < m->n_uris && i < REPORTED_MAX; i++)
			if (token_ok(m->uris[i], 2000))
				buf_printf(out, "  %s\r\n", m->uris[i]);
	}
	buf_puts(out, "\r\nThe source address is often a compromised host or a proxy: we report\r\n"
		      "what your network sent, we do not accuse the customer.  This report was\r\n"
		      "generated automatically from honeypot evidence only.  ");
	if (m->redact)
		buf_puts(out, "Recipient addresses are\r\nredacted (RFC 6590).  ");
	buf_printf(out, "To stop receiving these\r\nreports, reply with the word STOP (to %s).\r\n",
		   id->from);

	/* Part 2: the machine-readable fields. */
	buf_printf(out, "\r\n--%s\r\nContent-Type: message/feedback-report\r\n\r\n", boundary);
	buf_printf(out, "Feedback-Type: %s\r\nUser-Agent: mxbait/%s\r\nVersion: 1\r\n",
		   m->fraud ? "fraud" : "abuse", MXB_VERSION);
	if (m->mail_from && token_ok(m->mail_from, 600))
		buf_printf(out, "Original-Mail-From: <%s>\r\n", m->mail_from);
	else
		buf_puts(out, "Original-Mail-From: <>\r\n");
	for (size_t i = 0; i < m->n_rcpts && i < 100; i++) {
		if (!token_ok(m->rcpts[i], 600))
			continue;
		if (m->redact) {
			arf_redact_addr(id, m->rcpts[i], tok, sizeof(tok));
			buf_printf(out, "Original-Rcpt-To: <%s>\r\n", tok);
		} else {
			buf_printf(out, "Original-Rcpt-To: <%s>\r\n", m->rcpts[i]);
		}
	}
	buf_printf(out, "Arrival-Date: %s\r\nReporting-MTA: dns; %s\r\n", when, id->hostname);
	if (token_ok(m->src_ip, 64))
		buf_printf(out, "Source-IP: %s\r\n", m->src_ip);
	if (m->src_port)
		buf_printf(out, "Source-Port: %u\r\n", m->src_port);
	buf_printf(out, "Incidents: %u\r\n", m->incidents ? m->incidents : 1);
	if (m->auth_user && token_ok(m->auth_user, 200) && !strchr(m->auth_user, ';'))
		buf_printf(out, "Authentication-Results: %s; auth=pass smtp.auth=%s\r\n", id->hostname,
			   m->auth_user);
	for (size_t i = 0; i < m->n_domains && i < REPORTED_MAX; i++)
		if (token_ok(m->domains[i], 253))
			buf_printf(out, "Reported-Domain: %s\r\n", m->domains[i]);
	for (size_t i = 0; i < m->n_uris && i < REPORTED_MAX; i++)
		if (token_ok(m->uris[i], 2000))
			buf_printf(out, "Reported-URI: %s\r\n", m->uris[i]);

	/* Part 3: the evidence. */
	buf_printf(out, "\r\n--%s\r\nContent-Type: %s\r\nContent-Disposition: inline\r\n\r\n",
		   boundary, headers_only ? "text/rfc822-headers" : "message/rfc822");
	buf_append(out, att.data ? att.data : "", att.len);
	if (att.len < 2 || att.data[att.len - 2] != '\r' || att.data[att.len - 1] != '\n')
		buf_puts(out, "\r\n");
	buf_printf(out, "\r\n--%s--\r\n", boundary);
	buf_free(&att);

	if (m->redact && contains_any(out, m->rcpts, m->n_rcpts)) {
		/* e.g. the sender or a link carries a victim's address: refuse */
		buf_reset(out);
		if (err_r && asprintf(err_r, "a victim address could not be redacted") < 0)
			*err_r = NULL;
		return -1;
	}
	return 0;
}

static void uuid4(char out[37])
{
	unsigned char r[16];
	RAND_bytes(r, sizeof(r));
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
		 r[13], r[14], r[15]);
}

static void json_s(struct buf *b, const char *s)
{
	json_append_string(b, s ? s : "", s ? strlen(s) : 0);
}

int xarf_render_login(const struct report_identity *id, const struct xarf_login *l,
		      const char *key, int64_t now_us, struct buf *json, struct buf *out)
{
	char rid[37], first[40], last[40], now[40];
	uuid4(rid);
	export_time(l->first_us, false, first, sizeof(first));
	export_time(l->last_us, false, last, sizeof(last));
	export_time(now_us, false, now, sizeof(now));
	const char *dom = strchr(id->from, '@') ? strchr(id->from, '@') + 1 : id->hostname;
	buf_printf(json, "{\"xarf_version\":\"4.0.0\",\"report_id\":\"%s\",\"timestamp\":\"%s\","
			 "\"reporter\":{\"org\":", rid, last);
	json_s(json, id->org);
	buf_puts(json, ",\"contact\":");
	json_s(json, id->from);
	buf_puts(json, ",\"domain\":");
	json_s(json, dom);
	buf_puts(json, "},\"sender\":{\"org\":");
	json_s(json, id->org);
	buf_puts(json, ",\"contact\":");
	json_s(json, id->from);
	buf_puts(json, ",\"domain\":");
	json_s(json, dom);
	buf_puts(json, "},\"source_identifier\":");
	json_s(json, l->src_ip);
	buf_printf(json, ",\"category\":\"connection\",\"type\":\"login_attack\",\"protocol\":\"tcp\","
			 "\"first_seen\":\"%s\",\"last_seen\":\"%s\",\"evidence_source\":\"honeypot\","
			 "\"confidence\":%.2f,\"tags\":[\"service:mail\",\"attack:password-guessing\"],"
			 "\"description\":",
		   first, last, l->confidence / 100.0);
	char desc[600];
	snprintf(desc, sizeof(desc),
		 "%ld failed password guesses%s%s against the mail honeypot %s (%s); the accounts "
		 "exist only on the honeypot%s",
		 l->attempts, l->probes ? " and address probes" : "",
		 l->logins ? ", then logins with a guessed honeypot password" : "", id->hostname,
		 l->protocols ? l->protocols : "smtp", l->logins ? "" : ".");
	json_s(json, desc);
	if (l->log && *l->log) {
		unsigned char md[32];
		unsigned mdl = 0;
		EVP_Digest(l->log, strlen(l->log), md, &mdl, EVP_sha256(), NULL);
		buf_puts(json, ",\"evidence\":[{\"content_type\":\"text/plain\",\"description\":"
			       "\"authentication attempts seen by the honeypot (UTC)\",\"payload\":\"");
		b64(json, l->log, strlen(l->log), false);
		buf_puts(json, "\",\"hash\":\"sha256:");
		for (unsigned i = 0; i < mdl; i++)
			buf_printf(json, "%02x", md[i]);
		buf_printf(json, "\",\"size\":%zu}]", strlen(l->log));
	}
	buf_puts(json, "}");

	char boundary[80];
	snprintf(boundary, sizeof(boundary), "mxbait-%.24s-x", key);
	common_headers(out, id, key, now_us);
	buf_printf(out, "Subject: Password guessing from %s against our mail honeypot\r\n",
		   token_ok(l->src_ip, 64) ? l->src_ip : "?");
	buf_printf(out, "Content-Type: multipart/report; report-type=feedback-report;\r\n"
			"\tboundary=\"%s\"\r\n\r\n", boundary);
	buf_printf(out, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	buf_printf(out, "The client at %s tried %ld passwords on our mail honeypot %s between\r\n"
			"%s and %s (UTC)%s.\r\nNo real account exists there: every attempt is an "
			"attack.  The machine-readable\r\nreport (XARF v4, connection/login_attack) "
			"is attached.  To stop receiving these\r\nreports, reply with the word STOP.\r\n",
		   l->src_ip, l->attempts, id->hostname, first, last,
		   l->logins ? ", and logged in with a guessed honeypot password" : "");
	buf_printf(out, "\r\n--%s\r\nContent-Type: message/feedback-report\r\n\r\n"
			"Feedback-Type: xarf\r\nUser-Agent: mxbait/%s\r\nVersion: 1\r\n"
			"Source-IP: %s\r\nReporting-MTA: dns; %s\r\nIncidents: %ld\r\n",
		   boundary, MXB_VERSION, l->src_ip, id->hostname, l->attempts > 0 ? l->attempts : 1);
	buf_printf(out, "\r\n--%s\r\nContent-Type: application/json; name=\"xarf.json\"\r\n"
			"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; "
			"filename=\"xarf.json\"\r\n\r\n", boundary);
	b64(out, json->data, json->len, true);
	buf_printf(out, "\r\n--%s--\r\n", boundary);
	return 0;
}

int digest_render(const struct report_identity *id, const char *domain,
		  const char *const *addrs, size_t n, const char *key, int64_t now_us,
		  struct buf *out)
{
	common_headers(out, id, key, now_us);
	buf_printf(out, "Subject: Addresses of %s are on a spammer's list\r\n"
			"Content-Type: text/plain; charset=us-ascii\r\n"
			"Content-Transfer-Encoding: 7bit\r\n\r\n", domain);
	buf_printf(out, "Hello,\r\n\r\nspammers using our mail honeypot %s tried to send mail to "
			"%zu address%s of\r\nyour domain %s.  The mail was captured and NOT "
			"delivered.  The list they used\r\nis in circulation: expect phishing and "
			"spam aimed at these addresses.\r\n\r\n",
		   id->hostname, n, n == 1 ? "" : "es", domain);
	for (size_t i = 0; i < n && i < 10000; i++)
		if (token_ok(addrs[i], 600))
			buf_printf(out, "  %s\r\n", addrs[i]);
	buf_printf(out, "\r\nThis digest goes to your domain's role address (RFC 2142), never "
			"to the\r\naddresses themselves.  To stop receiving it, reply with the word "
			"STOP (to %s).\r\n", id->from);
	return 0;
}
