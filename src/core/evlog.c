/*
 * evlog: log lines derived from events (see evlog.h).
 *
 * The fields of an event are the JSON fragments store/event.c wrote (`,"key":value`,
 * strings escaped by json_append_string), so reading one back is a walk over
 * well-formed JSON this program produced; anything unexpected ends the walk (no line
 * rather than a wrong one).
 */
#include "core/evlog.h"

#include <string.h>
#include <time.h>

#include "core/log.h"
#include "store/event.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A JSON string at s[*i] (opening quote): decoded into out (NULL: skipped); *i ends
 * past the closing quote.  -1 when malformed. */
static int json_string(const char *s, size_t len, size_t *i, struct buf *out)
{
	if (*i >= len || s[*i] != '"')
		return -1;
	size_t p = *i + 1;
	while (p < len && s[p] != '"') {
		char c = s[p++];
		if (c == '\\') {
			if (p >= len)
				return -1;
			char e = s[p++];
			switch (e) {
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				if (p + 4 > len)
					return -1;
				int v = 0;
				for (int k = 0; k < 4; k++) {
					int h = hexval(s[p + (size_t)k]);
					if (h < 0)
						return -1;
					v = v * 16 + h;
				}
				p += 4;
				/* event.c writes \u00XX for control bytes and bytes that are not
				 * UTF-8: the byte itself; anything else does not occur */
				c = v <= 0xff ? (char)v : '?';
				break;
			}
			default: c = e; break; /* \" \\ \/ */
			}
		}
		if (out)
			buf_putc(out, c);
	}
	if (p >= len)
		return -1;
	*i = p + 1;
	return 0;
}

/* Skip a value at s[*i]: string, literal or number, or an array of those. */
static int skip_value(const char *s, size_t len, size_t *i)
{
	if (*i >= len)
		return -1;
	if (s[*i] == '"')
		return json_string(s, len, i, NULL);
	if (s[*i] == '[') {
		(*i)++;
		while (*i < len && s[*i] != ']') {
			if (s[*i] == ',') {
				(*i)++;
				continue;
			}
			if (skip_value(s, len, i) < 0)
				return -1;
		}
		if (*i >= len)
			return -1;
		(*i)++;
		return 0;
	}
	size_t p = *i;
	while (p < len && s[p] != ',' && s[p] != ']')
		p++;
	if (p == *i)
		return -1;
	*i = p;
	return 0;
}

int evlog_field(const struct mxb_event *ev, const char *key, struct buf *out)
{
	const char *s = ev->fields.data;
	size_t len = ev->fields.len, i = 0, kl = strlen(key);
	while (s && i < len) {
		if (s[i] != ',' || i + 1 >= len || s[i + 1] != '"')
			return 0;
		i++;
		size_t kstart = i + 1;
		if (json_string(s, len, &i, NULL) < 0 || i >= len || s[i] != ':')
			return 0;
		size_t klen = i - 1 - kstart;
		i++;
		if (klen == kl && !memcmp(s + kstart, key, kl)) {
			if (i < len && s[i] == '"')
				return json_string(s, len, &i, out) < 0 ? 0 : 1;
			size_t start = i;
			if (skip_value(s, len, &i) < 0)
				return 0;
			buf_append(out, s + start, i - start);
			return 2;
		}
		if (skip_value(s, len, &i) < 0)
			return 0;
	}
	return 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_auth(const struct mxb_event *ev)
{
	struct buf user, ok, mech, result;
	buf_init(&user, 0);
	buf_init(&ok, 0);
	buf_init(&mech, 0);
	buf_init(&result, 0);
	/* No username: the exchange never got that far (aborted, malformed): no login. */
	if (evlog_field(ev, "username", &user) == 1 && evlog_field(ev, "success", &ok) == 2) {
		bool success = ok.len == 4 && !memcmp(ok.data, "true", 4);
		evlog_field(ev, "mechanism", &mech);
		evlog_field(ev, "result", &result);
		char u[EVLOG_USER_MAX + 4], m[64], r[64];
		log_escape(u, sizeof(u), user.data ? user.data : "", user.len);
		log_escape(m, sizeof(m), mech.data ? mech.data : "", mech.len);
		log_escape(r, sizeof(r), result.data ? result.data : "", result.len);
		log_msg(success ? LOG_INFO : LOG_NOTICE, ev->session,
			"auth %s: ip=%s port=%u proto=%s mechanism=%s user=\"%s\" result=%s",
			success ? "ok" : "failed", ev->src_ip, ev->src_port, ev->proto, m, u, r);
	}
	buf_free(&user);
	buf_free(&ok);
	buf_free(&mech);
	buf_free(&result);
}

static struct log_ratelimit spool_rl;

static void log_rejected(const struct mxb_event *ev)
{
	struct buf reason;
	buf_init(&reason, 0);
	if (evlog_field(ev, "reason", &reason) == 1 && reason.len == 8 &&
	    !memcmp(reason.data, "no_space", 8)) {
		unsigned long more;
		if (log_ratelimit(&spool_rl, mono_ms(), EVLOG_SPOOL_INTERVAL_MS, &more))
			log_msg(LOG_WARNING, ev->session,
				"spool budget reached: message from %s refused (disk budget "
				"spent; raise spool_budget or free space); %lu more refused "
				"since the last warning (at most one warning per %d s; `mxbait "
				"stats` counts them all)", ev->src_ip, more,
				EVLOG_SPOOL_INTERVAL_MS / 1000);
	}
	buf_free(&reason);
}

void evlog_event(const struct mxb_event *ev)
{
	if (!ev)
		return;
	if (!strcmp(ev->name, "auth"))
		log_auth(ev);
	else if (!strcmp(ev->name, "message_rejected"))
		log_rejected(ev);
}
