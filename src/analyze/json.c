/*
 * json: one analysis as one JSON object.  Every string goes through
 * json_append_string (hostile bytes become valid JSON); the layout is documented in
 * docs/ANALYSIS.md.
 */
#include "analyze/analyze_private.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/url.h"
#include "store/event.h"

/* A JSON string: most values (URLs, hosts, hashes, addresses) are printable ASCII
 * without '"' or '\\', which JSON takes as they are: one append instead of one call per
 * byte.  Anything else goes through json_append_string, so the output is the same. */
static void jval(struct buf *o, const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\') {
			json_append_string(o, v, n);
			return;
		}
	}
	buf_putc(o, '"');
	buf_append(o, v, n);
	buf_putc(o, '"');
}

static void jstr(struct buf *o, const char *key, const char *v, bool comma)
{
	if (comma)
		buf_putc(o, ',');
	buf_putc(o, '"');
	buf_puts(o, key);
	buf_puts(o, "\":");
	if (v)
		jval(o, v, strlen(v));
	else
		buf_puts(o, "null");
}

static void jflags(struct buf *o, const char *key, unsigned bits, const char *const *names,
		   size_t n)
{
	buf_printf(o, ",\"%s\":[", key);
	bool first = true;
	for (size_t i = 0; i < n; i++)
		if (bits & (1u << i)) {
			if (!first)
				buf_putc(o, ',');
			buf_putc(o, '"');
			buf_puts(o, names[i]);
			buf_putc(o, '"');
			first = false;
		}
	buf_putc(o, ']');
}

int analysis_to_json(const struct analysis *a, const char *source, struct buf *o)
{
	buf_putc(o, '{');
	jstr(o, "source", source, false);
	jstr(o, "sha256", a->msg_sha256, true);
	buf_printf(o, ",\"size\":%" PRIu64, a->size);
	buf_puts(o, ",\"headers\":{");
	jstr(o, "subject", a->subject, false);
	jstr(o, "from", a->from, true);
	jstr(o, "to", a->to, true);
	jstr(o, "date", a->date, true);
	jstr(o, "message_id", a->message_id, true);
	buf_puts(o, "},\"senders\":{");
	jstr(o, "envelope_from", a->env_from, false);
	jstr(o, "from", a->from_addr, true);
	jstr(o, "from_name", a->from_name, true);
	jstr(o, "reply_to", a->reply_to, true);
	jstr(o, "return_path", a->return_path, true);
	jstr(o, "message_id_domain", a->msgid_domain, true);
	jstr(o, "x_mailer", a->x_mailer, true);
	jstr(o, "user_agent", a->user_agent, true);
	jstr(o, "client_ip", a->client_ip, true);
	jstr(o, "helo", a->helo, true);
	jstr(o, "auth_user", a->auth_user, true);
	buf_puts(o, "},\"parts\":[");
	for (size_t i = 0; i < a->n_parts; i++) {
		const struct an_part *p = &a->parts[i];
		buf_printf(o, "%s{\"index\":%d,\"parent\":%d,\"depth\":%u", i ? "," : "", p->index,
			   p->parent, p->depth);
		jstr(o, "type", p->content_type, true);
		jstr(o, "charset", p->charset, true);
		jstr(o, "encoding", p->encoding, true);
		jstr(o, "disposition", p->disposition, true);
		jstr(o, "filename", p->filename, true);
		buf_printf(o, ",\"size\":%" PRIu64 ",\"truncated\":%s}", p->size,
			   p->truncated ? "true" : "false");
	}
	buf_puts(o, "],\"links\":[");
	for (size_t i = 0; i < a->n_links; i++) {
		const struct an_link *l = &a->links[i];
		buf_puts(o, i ? ",{" : "{");
		jstr(o, "raw", l->raw, false);
		jstr(o, "url", l->norm, true);
		jstr(o, "host", l->host, true);
		jstr(o, "host_unicode", l->host_unicode, true);
		jstr(o, "domain", l->domain, true);
		if (l->display_host)
			jstr(o, "display_host", l->display_host, true);
		if (l->parent >= 0)
			buf_printf(o, ",\"unwrapped_from\":%d", l->parent);
		buf_printf(o, ",\"part\":%d", l->part);
		jflags(o, "where", l->where, an_where_names, an_where_count());
		jflags(o, "flags", l->flags, url_flag_names, url_flag_count());
		buf_putc(o, '}');
	}
	buf_puts(o, "],\"recipients\":[");
	for (size_t i = 0; i < a->n_rcpts; i++) {
		const struct an_rcpt *r = &a->rcpts[i];
		static const char *const src[] = {"envelope", "to", "cc", "bcc"};
		buf_puts(o, i ? ",{" : "{");
		jstr(o, "addr", r->addr, false);
		jstr(o, "name", r->name, true);
		jflags(o, "from", r->src, src, 4);
		buf_putc(o, '}');
	}
	buf_puts(o, "],\"recipient_domains\":{");
	{
		/* per-domain counts, in first-seen order; a map keeps it linear */
		struct an_map m = {0};
		const char **order = calloc(a->n_rcpts + 1, sizeof(*order));
		size_t no = 0;
		for (size_t i = 0; order && i < a->n_rcpts; i++) {
			const char *d = strrchr(a->rcpts[i].addr, '@');
			bool added;
			size_t *v = an_map_get(&m, d ? d + 1 : "", &added);
			if (!v)
				break;
			if (added)
				order[no++] = d ? d + 1 : "";
			(*v)++;
		}
		for (size_t i = 0; i < no; i++) {
			if (i)
				buf_putc(o, ',');
			jval(o, order[i], strlen(order[i]));
			buf_printf(o, ":%zu", *an_map_find(&m, order[i]));
		}
		free(order);
		an_map_free(&m);
	}
	buf_puts(o, "},\"attachments\":[");
	for (size_t i = 0; i < a->n_atts; i++) {
		const struct an_attachment *t = &a->atts[i];
		buf_printf(o, "%s{\"part\":%d", i ? "," : "", t->part);
		jstr(o, "filename", t->filename, true);
		jstr(o, "declared_type", t->declared, true);
		jstr(o, "detected_type", t->detected, true);
		buf_printf(o, ",\"size\":%" PRIu64 ",\"sha256\":\"%s\",\"md5\":\"%s\"", t->size,
			   t->sha256, t->md5);
		if (t->members) {
			buf_puts(o, ",\"members\":[");
			for (size_t k = 0; t->members[k]; k++) {
				if (k)
					buf_putc(o, ',');
				jval(o, t->members[k], strlen(t->members[k]));
			}
			buf_putc(o, ']');
		}
		if (t->n_mdet) {
			buf_puts(o, ",\"member_details\":[");
			for (size_t k = 0; k < t->n_mdet; k++) {
				const struct an_member *m = &t->mdet[k];
				buf_puts(o, k ? ",{\"name\":" : "{\"name\":");
				jval(o, m->name, strlen(m->name));
				buf_printf(o, ",\"size\":%" PRIu64, m->size);
				if (m->sha256[0])
					buf_printf(o, ",\"sha256\":\"%s\"", m->sha256);
				if (m->encrypted)
					buf_puts(o, ",\"encrypted\":true");
				if (m->truncated)
					buf_puts(o, ",\"truncated\":true");
				buf_putc(o, '}');
			}
			buf_putc(o, ']');
		}
		buf_putc(o, '}');
	}
	buf_puts(o, "],\"findings\":[");
	for (size_t i = 0; i < a->n_findings; i++) {
		buf_puts(o, i ? ",{" : "{");
		jstr(o, "kind", a->findings[i].kind, false);
		jstr(o, "detail", a->findings[i].detail, true);
		buf_putc(o, '}');
	}
	buf_printf(o, "],\"campaign\":{\"body_sha256\":\"%s\",\"shingles\":%zu,\"words\":%zu,"
		   "\"template\":\"%s\"}", a->body_sha256, a->n_shingles, a->n_words,
		   a->template_key[0] ? a->template_key : "");
	return buf_putc(o, '}');
}
