/*
 * mailbox: the generated, stable mailbox of a cracked account (see mailbox.h).
 *
 * Determinism: one HMAC-SHA256 over (username, domain, hostname) keyed with the
 * installation secret seeds a splitmix64 stream; every choice (how many messages per
 * folder, which templates, which colleague, dates, ids, flags) is drawn from it in a
 * fixed order.  Dates are an anchor minus seeded offsets, never the current time: the
 * anchor is the day the account was cracked (midnight UTC of the crack time the policy
 * keeps), so the newest mail arrived the day before the attacker got in, and the
 * bytes are identical at every login, on every protocol, after every restart.  With
 * no crack time (a caller without a policy: tests, conversation files) the anchor is
 * MBOX_DEFAULT_ANCHOR.  Changing a template changes the mailboxes: that is a version bump
 * of the honeypot, not something that happens between two logins.
 *
 * Content is built from templates written for this project: colleagues at the user's
 * own domain, external business contacts, newsletters, spam.  Addresses of third
 * parties use invented names and, for relay IPs, the documentation ranges (RFC 5737),
 * so the honeypot never points an attacker at a real third party.
 *
 * Every message is RFC 5322 with CRLF line ends; INBOX holds one multipart/alternative
 * (text + HTML) and one multipart/mixed with a small attachment whenever it holds 3+
 * messages, so IMAP BODYSTRUCTURE is never trivial.
 *
 * Bounds: a folder holds at most MBOX_MAX_MSGS messages and MBOX_MAX_BYTES bytes
 * (copies counted at full size); mailbox_append and mailbox_copy past them fail
 * (return 0).  Bodies are reference-counted: a copy shares its bytes, and what a
 * session added is counted in set->extra_bytes for the engine's memory budgets.
 */
#include "deceive/mailbox.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/buf.h"

#define MBOX_DEFAULT_ANCHOR 1795392000LL   /* 2026-11-23 00:00:00 UTC */
#define MBOX_MAX_MSGS 1000
#define MBOX_MAX_BYTES (32u * 1024 * 1024)
#define NAME_LEN 128

/* ---- deterministic randomness ------------------------------------------------- */

struct rng {
	uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform enough in [lo, hi] for choosing among a handful of templates. */
static unsigned rng_range(struct rng *r, unsigned lo, unsigned hi)
{
	return lo + (unsigned)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---- templates ------------------------------------------------------------------ */
/*
 * Placeholders in subjects and bodies: {U} the user's first name, {F} the sender's
 * first name, {C} a colleague's first name, {D} the user's domain, {H} the hostname,
 * {N} a seeded number (invoice, ticket).  Bodies use "\n"; CRLF is made on output.
 */

enum body_kind { BODY_PLAIN, BODY_ALT, BODY_ATTACH };

struct attach {
	const char *name;
	const char *type;
	const char *content; /* raw bytes, base64-encoded on output */
};

struct tmpl {
	const char *from_name; /* NULL: a colleague at the user's domain */
	const char *from_addr; /* local@domain; NULL with from_name NULL */
	const char *subject;
	const char *body;
	enum body_kind kind;
	struct attach att;
};

struct person {
	const char *first, *last;
};

static const struct person colleagues[] = {
	{"Bob", "Miller"},   {"Carla", "Jensen"}, {"Dave", "Okafor"},
	{"Erin", "Walsh"},   {"Frank", "Novak"},  {"Grace", "Lindqvist"},
	{"Hannah", "Patel"}, {"Ivan", "Moreau"},
};
#define N_COLLEAGUES (sizeof(colleagues) / sizeof(colleagues[0]))

static const struct tmpl inbox_tmpl[] = {
	{NULL, NULL, "Re: Q4 budget review",
	 "Hi {U},\n\nthanks for the numbers. I went through the spreadsheet and the\n"
	 "travel line still looks high compared to last year. Can we go over it\n"
	 "on Thursday before the management meeting?\n\nBest,\n{F}\n",
	 BODY_PLAIN, {0}},
	{"Sandra Kowalski", "s.kowalski@brightline-consulting.net", "Meeting notes from Tuesday",
	 "Hello {U},\n\nplease find below the short summary of Tuesday's call.\n\n"
	 "- the rollout is moved to the second week of December\n"
	 "- your team sends the updated contact list by Friday\n"
	 "- next call: same time, two weeks from now\n\n"
	 "Let me know if I missed anything.\n\nKind regards,\nSandra Kowalski\n"
	 "Brightline Consulting\n",
	 BODY_ALT, {0}},
	{"Accounts Receivable", "billing@northgate-supplies.com", "Invoice {N} from Northgate Supplies",
	 "Dear customer,\n\nplease find attached invoice {N} for your recent order.\n"
	 "Payment is due within 30 days of the invoice date.\n\n"
	 "Thank you for your business.\n\nNorthgate Supplies - Accounts Receivable\n",
	 BODY_ATTACH,
	 {"invoice-{N}.csv", "text/csv",
	  "item,quantity,unit_price,total\r\nA4 paper (box),4,21.50,86.00\r\n"
	  "Toner cartridge,2,64.90,129.80\r\nShipping,1,9.90,9.90\r\n"}},
	{NULL, NULL, "Lunch on Friday?",
	 "Hey {U},\n\nshall we try the new place around the corner on Friday at 12:30?\n"
	 "{C} is coming too.\n\n{F}\n",
	 BODY_ALT, {0}},
	{"IT Service Desk", "servicedesk@{D}", "Planned maintenance this weekend",
	 "Hello,\n\nthe mail server {H} will be restarted on Saturday between\n"
	 "22:00 and 23:00 for security updates. Webmail may be unavailable\n"
	 "for a few minutes during that window.\n\n"
	 "Reminder of the new attachment policy:\n"
	 ".exe and .js attachments are now blocked by the gateway.\n\n"
	 "IT Service Desk\n",
	 BODY_PLAIN, {0}},
	{NULL, NULL, "Updated contract draft",
	 "Hi {U},\n\nattached is the version with the changes from legal. The only\n"
	 "open point is the notice period in section 7. Could you have a look\n"
	 "before I send it back to them?\n\nThanks,\n{F}\n",
	 BODY_ATTACH,
	 {"contract-changes.txt", "text/plain",
	  "Section 4.2: payment terms changed from 14 to 30 days.\r\n"
	  "Section 7.1: notice period - open, see comment.\r\n"
	  "Section 9: governing law unchanged.\r\n"}},
	{"Mark Ellison", "mark.ellison@harborview-logistics.com", "Delivery schedule for next week",
	 "Hi {U},\n\nthe pallets for your order will arrive Tuesday morning between\n"
	 "8 and 10. Please make sure someone can sign at the loading dock.\n\n"
	 "Regards,\nMark\nHarborview Logistics\n",
	 BODY_PLAIN, {0}},
	{NULL, NULL, "Team offsite - save the date",
	 "Hi all,\n\nwe are planning the team offsite for the second half of January.\n"
	 "Please block two days in your calendar; details follow soon.\n"
	 "{C} is collecting ideas for the agenda.\n\nCheers,\n{F}\n",
	 BODY_ALT, {0}},
	{"Calendar", "calendar-noreply@{D}", "Invitation: Project sync @ Wed 10:00",
	 "You have been invited to the following event.\n\nProject sync\n"
	 "When: Wednesday 10:00 - 10:30\nWhere: Meeting room 2 / video call\n",
	 BODY_ATTACH,
	 {"invite.ics", "text/calendar",
	  "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mail//calendar//EN\r\n"
	  "BEGIN:VEVENT\r\nSUMMARY:Project sync\r\nDTSTART:20261202T100000Z\r\n"
	  "DTEND:20261202T103000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"}},
	{"Priya Raman", "priya@fernwood-design.co", "Re: website mockups",
	 "Hi {U},\n\nthanks for the feedback! I changed the header colours and moved\n"
	 "the contact form to the front page. New previews are on the usual link.\n\n"
	 "Best,\nPriya\n",
	 BODY_PLAIN, {0}},
};

static const struct tmpl sent_tmpl[] = {
	{"", "{C}", "Re: Lunch on Friday?",
	 "Sounds good, see you there.\n\n{U}\n", BODY_PLAIN, {0}},
	{"", "{C}", "Figures for the Q4 review",
	 "Hi {F},\n\nhere are the numbers you asked for. Travel is up because of the\n"
	 "two trade fairs; everything else is in line with the plan.\n\n{U}\n",
	 BODY_ATTACH,
	 {"q4-figures.csv", "text/csv",
	  "category,planned,actual\r\ntravel,12000,15400\r\nsoftware,8000,7650\r\n"
	  "hardware,20000,19870\r\n"}},
	{"", "{C}", "Re: Updated contract draft",
	 "Hi {F},\n\nlooks fine to me. For section 7 I would accept three months.\n\n"
	 "Thanks,\n{U}\n",
	 BODY_PLAIN, {0}},
	{"", "{C}", "Out of office next Monday",
	 "Hi {F},\n\njust so you know, I am out next Monday for a doctor's\n"
	 "appointment. {C} can cover for me if anything urgent comes up.\n\n{U}\n",
	 BODY_PLAIN, {0}},
};

static const struct tmpl draft_tmpl[] = {
	{"", "{C}", "Holiday plans",
	 "Hi {F},\n\nI was thinking about taking the last two weeks of December off,\n"
	 "would that work with the\n",
	 BODY_PLAIN, {0}},
	{"", "{C}", "Re: Team offsite - save the date",
	 "Hi {F},\n\nfor the agenda I would suggest\n", BODY_PLAIN, {0}},
};

static const struct tmpl trash_tmpl[] = {
	{"Office Supplies Weekly", "news@officesupplies-weekly.com", "This week: 20% off ergonomic chairs",
	 "This week's offers for your office:\n\n- ergonomic chairs, 20% off\n"
	 "- standing desks from 299\n\nTo unsubscribe, reply with UNSUBSCRIBE.\n",
	 BODY_ALT, {0}},
	{NULL, NULL, "Cake in the kitchen",
	 "There is cake in the kitchen, help yourselves!\n\n{F}\n", BODY_PLAIN, {0}},
	{"Parcel Service", "notify@swiftparcel-tracking.com", "Your parcel has been delivered",
	 "Your parcel was delivered today and handed to reception.\n", BODY_PLAIN, {0}},
};

static const struct tmpl junk_tmpl[] = {
	{"Account Security", "security@verify-mailbox-login.com", "Action required: mailbox storage full",
	 "Dear user,\n\nyour mailbox has exceeded its storage limit. Verify your account\n"
	 "within 24 hours to avoid losing incoming messages.\n\nMail Administrator\n",
	 BODY_ALT, {0}},
	{"Dr. Williams", "dr.williams.fund@fastmail-offers.biz", "Business proposal",
	 "Dear friend,\n\nI have a confidential business proposal of mutual benefit.\n"
	 "Kindly reply for more details.\n",
	 BODY_PLAIN, {0}},
	{"Crypto Signals", "vip@crypto-signal-pro.io", "Turn 250 into 5000 in a week",
	 "Join thousands of members who already profit from our signals.\n", BODY_PLAIN, {0}},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- generation context ------------------------------------------------------- */

struct gen {
	struct rng rng;
	char user_addr[NAME_LEN * 2 + 2];
	char user_first[NAME_LEN];
	char user_full[NAME_LEN * 2];
	const char *domain;
	const char *hostname;
	int64_t anchor;        /* midnight UTC of the crack day: dates count back from it */
};

static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* RFC 5322 date at a UTC offset in minutes.  pad: Postfix's "Mon,  2 Nov" form. */
static void fmt_date(char *out, size_t outlen, int64_t t, int off_min, bool pad)
{
	time_t lt = (time_t)(t + off_min * 60);
	struct tm tm;
	gmtime_r(&lt, &tm);
	int a = off_min < 0 ? -off_min : off_min;
	snprintf(out, outlen, pad ? "%s, %2d %s %d %02d:%02d:%02d %c%02d%02d"
				  : "%s, %d %s %d %02d:%02d:%02d %c%02d%02d",
		 wday[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, off_min < 0 ? '-' : '+', a / 60, a % 60);
}

/* Append text with placeholders expanded and "\n" turned into CRLF. */
static void put_text(struct buf *b, const struct gen *g, const char *s, const char *from_first,
		     const char *colleague, unsigned number)
{
	for (; *s; s++) {
		if (*s == '\n') {
			buf_puts(b, "\r\n");
		} else if (s[0] == '{' && s[1] && s[2] == '}') {
			switch (s[1]) {
			case 'U': buf_puts(b, g->user_first); break;
			case 'F': buf_puts(b, from_first); break;
			case 'C': buf_puts(b, colleague); break;
			case 'D': buf_puts(b, g->domain); break;
			case 'H': buf_puts(b, g->hostname); break;
			case 'N': buf_printf(b, "%u", number); break;
			default: buf_append(b, s, 3); break;
			}
			s += 2;
		} else {
			buf_putc(b, *s);
		}
	}
}

static void put_html(struct buf *b, const struct gen *g, const char *s, const char *from_first,
		     const char *colleague, unsigned number)
{
	struct buf plain;
	buf_init(&plain, 0);
	put_text(&plain, g, s, from_first, colleague, number);
	buf_puts(b, "<html><head><meta charset=\"utf-8\"></head><body>\r\n<p>");
	const char *p = plain.data ? plain.data : "";
	while (*p) {
		if (p[0] == '\r' && p[1] == '\n') {
			if (p[2] == '\r' && p[3] == '\n') {
				buf_puts(b, "</p>\r\n<p>");
				p += 4;
			} else {
				buf_puts(b, "<br>\r\n");
				p += 2;
			}
			continue;
		}
		switch (*p) {
		case '<': buf_puts(b, "&lt;"); break;
		case '>': buf_puts(b, "&gt;"); break;
		case '&': buf_puts(b, "&amp;"); break;
		default: buf_putc(b, *p); break;
		}
		p++;
	}
	buf_puts(b, "</p>\r\n</body></html>\r\n");
	buf_free(&plain);
}

static void put_base64(struct buf *b, const char *data, size_t len)
{
	/* 57 input bytes per 76-character line (RFC 2045). */
	for (size_t off = 0; off < len; off += 57) {
		size_t n = len - off < 57 ? len - off : 57;
		unsigned char line[80];
		int w = EVP_EncodeBlock(line, (const unsigned char *)data + off, (int)n);
		buf_append(b, line, (size_t)w);
		buf_puts(b, "\r\n");
	}
}

static void hex_id(struct rng *r, char *out, size_t nchars, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	for (size_t i = 0; i < nchars; i++)
		out[i] = digits[rng_next(r) & 15];
	out[nchars] = '\0';
}

enum folder_kind { FK_INBOX, FK_SENT, FK_DRAFTS, FK_TRASH, FK_JUNK };

static const char *addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : addr;
}

/* One message.  when: delivery (or sending) time. */
static int build_msg(struct gen *g, const struct tmpl *t, enum folder_kind fk, int64_t when,
		     struct buf *b)
{
	struct rng *r = &g->rng;
	const struct person *col = &colleagues[rng_range(r, 0, N_COLLEAGUES - 1)];
	const struct person *col2 = &colleagues[rng_range(r, 0, N_COLLEAGUES - 1)];
	if (col2 == col)
		col2 = &colleagues[(size_t)(col - colleagues + 1) % N_COLLEAGUES];
	unsigned number = rng_range(r, 10000, 99999);
	char from_name[NAME_LEN * 2], from_addr[NAME_LEN * 3], from_first[NAME_LEN];
	char to_name[NAME_LEN * 2], to_addr[NAME_LEN * 3];
	bool outgoing = fk == FK_SENT || fk == FK_DRAFTS;
	/* Colleague addresses: first.last@domain, lower case. */
	char col_addr[NAME_LEN * 3];
	snprintf(col_addr, sizeof(col_addr), "%s.%s@%s", col->first, col->last, g->domain);
	for (char *p = col_addr; *p && *p != '@'; p++)
		*p = (char)tolower((unsigned char)*p);

	if (outgoing) {
		snprintf(from_name, sizeof(from_name), "%s", g->user_full);
		snprintf(from_addr, sizeof(from_addr), "%s", g->user_addr);
		snprintf(from_first, sizeof(from_first), "%s", col->first); /* {F}: addressee */
		snprintf(to_name, sizeof(to_name), "%s %s", col->first, col->last);
		snprintf(to_addr, sizeof(to_addr), "%s", col_addr);
	} else {
		if (!t->from_name) {
			snprintf(from_name, sizeof(from_name), "%s %s", col->first, col->last);
			snprintf(from_addr, sizeof(from_addr), "%s", col_addr);
			snprintf(from_first, sizeof(from_first), "%s", col->first);
		} else {
			struct buf tmp;
			buf_init(&tmp, 0);
			put_text(&tmp, g, t->from_addr, "", "", number);
			snprintf(from_addr, sizeof(from_addr), "%s", tmp.data ? tmp.data : "");
			buf_free(&tmp);
			snprintf(from_name, sizeof(from_name), "%s", t->from_name);
			snprintf(from_first, sizeof(from_first), "%s", t->from_name);
			char *sp = strchr(from_first, ' ');
			if (sp)
				*sp = '\0';
		}
		snprintf(to_name, sizeof(to_name), "%s", g->user_full);
		snprintf(to_addr, sizeof(to_addr), "%s", g->user_addr);
	}
	const char *sdom = addr_domain(from_addr);
	bool local_sender = strcasecmp(sdom, g->domain) == 0;
	/* The sender's clock: colleagues and locals at +0100, others anywhere plausible. */
	static const int offsets[] = {0, 60, 60, 120, -300, -480, 330};
	int off = local_sender ? 60 : offsets[rng_range(r, 0, NELEM(offsets) - 1)];
	int64_t sent_at = when - rng_range(r, 1, 9);
	char date[64];
	fmt_date(date, sizeof(date), sent_at, off, false);

	if (!outgoing) {
		char qid[12], rdate[64];
		hex_id(r, qid, 10, true);
		fmt_date(rdate, sizeof(rdate), when, 0, true);
		buf_printf(b, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", from_addr, g->user_addr);
		if (local_sender) {
			unsigned oct = rng_range(r, 2, 250);
			buf_printf(b, "Received: from [10.20.1.%u] (unknown [10.20.1.%u])\r\n"
				      "\tby %s (Postfix) with ESMTPSA id %s\r\n",
				   oct, oct, g->hostname, qid);
		} else {
			static const char *const nets[] = {"192.0.2", "198.51.100", "203.0.113"};
			const char *net = nets[rng_range(r, 0, 2)];
			unsigned oct = rng_range(r, 2, 250);
			static const char *const mxs[] = {"mail", "mx1", "smtp", "out"};
			const char *mx = mxs[rng_range(r, 0, 3)];
			buf_printf(b, "Received: from %s.%s (%s.%s [%s.%u])\r\n"
				      "\tby %s (Postfix) with ESMTPS id %s\r\n",
				   mx, sdom, mx, sdom, net, oct, g->hostname, qid);
		}
		buf_printf(b, "\tfor <%s>; %s (UTC)\r\n", g->user_addr, rdate);
		if (fk == FK_JUNK)
			buf_printf(b, "X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=%u.%u required=5.0\r\n",
				   rng_range(r, 6, 14), rng_range(r, 0, 9));
	}
	buf_printf(b, "From: %s <%s>\r\n", from_name, from_addr);
	if (to_name[0])
		buf_printf(b, "To: %s <%s>\r\n", to_name, to_addr);
	else
		buf_printf(b, "To: %s\r\n", to_addr);
	buf_puts(b, "Subject: ");
	put_text(b, g, t->subject, from_first, col2->first, number);
	buf_printf(b, "\r\nDate: %s\r\n", date);
	char mid[40];
	hex_id(r, mid, 16, false);
	if (outgoing) {
		buf_printf(b, "Message-ID: <%.8s-%.4s-%.4s@%s>\r\n", mid, mid + 8, mid + 12, g->domain);
		buf_puts(b, "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) "
			    "Gecko/20100101 Thunderbird/115.5.0\r\nContent-Language: en-US\r\n");
	} else {
		char stamp[20];
		time_t st = (time_t)sent_at;
		struct tm tm;
		gmtime_r(&st, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		buf_printf(b, "Message-ID: <%s.%.8s@%s>\r\n", stamp, mid, sdom);
	}
	buf_puts(b, "MIME-Version: 1.0\r\n");

	char boundary[64];
	hex_id(r, mid, 12, false);
	switch (t->kind) {
	case BODY_PLAIN:
		buf_puts(b, "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
			    "Content-Transfer-Encoding: 7bit\r\n\r\n");
		put_text(b, g, t->body, from_first, col2->first, number);
		break;
	case BODY_ALT:
		snprintf(boundary, sizeof(boundary), "----=_Part_%u_%.12s", number % 1000, mid);
		buf_printf(b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary);
		buf_printf(b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			      "Content-Transfer-Encoding: 7bit\r\n\r\n", boundary);
		put_text(b, g, t->body, from_first, col2->first, number);
		buf_printf(b, "\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
			      "Content-Transfer-Encoding: 7bit\r\n\r\n", boundary);
		put_html(b, g, t->body, from_first, col2->first, number);
		buf_printf(b, "\r\n--%s--\r\n", boundary);
		break;
	case BODY_ATTACH: {
		snprintf(boundary, sizeof(boundary), "b1_%.12s", mid);
		struct buf name;
		buf_init(&name, 0);
		put_text(&name, g, t->att.name, from_first, col2->first, number);
		buf_printf(b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary);
		buf_puts(b, "This is a multi-part message in MIME format.\r\n");
		buf_printf(b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			      "Content-Transfer-Encoding: 7bit\r\n\r\n", boundary);
		put_text(b, g, t->body, from_first, col2->first, number);
		buf_printf(b, "\r\n--%s\r\nContent-Type: %s; name=\"%s\"\r\n"
			      "Content-Disposition: attachment; filename=\"%s\"\r\n"
			      "Content-Transfer-Encoding: base64\r\n\r\n",
			   boundary, t->att.type, name.data, name.data);
		put_base64(b, t->att.content, strlen(t->att.content));
		buf_printf(b, "\r\n--%s--\r\n", boundary);
		buf_free(&name);
		break;
	}
	}
	return 0;
}

/* ---- folders --------------------------------------------------------------------- */

struct mbox_body {
	size_t refs;
	size_t size;
	int extra;  /* APPENDed in this session: counted in extra_bytes */
	char data[];
};

static struct mbox_body *body_new(struct mbox_set *set, const char *data, size_t len,
				  int extra)
{
	struct mbox_body *b = malloc(sizeof(*b) + len + 1);
	if (!b)
		return NULL;
	b->refs = 0;
	b->size = len;
	b->extra = extra;
	if (len)
		memcpy(b->data, data, len);
	b->data[len] = '\0';
	if (extra)
		set->extra_bytes += len;
	return b;
}

static void body_unref(struct mbox_set *set, struct mbox_body *b)
{
	if (!b || --b->refs > 0)
		return;
	if (b->extra)
		set->extra_bytes -= b->size;
	free(b);
}

/* Drop the entry m of set (its body reference and its entry cost). */
static void entry_drop(struct mbox_set *set, struct mbox_msg *m)
{
	if (m->extra)
		set->extra_bytes -= MBOX_ENTRY_COST;
	body_unref(set, m->body);
	m->body = NULL;
	m->data = NULL;
}

static int add_entry(struct mbox_folder *f, struct mbox_body *body, int64_t date,
		     unsigned flags, int extra)
{
	if (f->n_msgs == f->alloc_msgs) {
		size_t na = f->alloc_msgs ? f->alloc_msgs * 2 : 8;
		struct mbox_msg *m = realloc(f->msgs, na * sizeof(*m));
		if (!m)
			return -1;
		f->msgs = m;
		f->alloc_msgs = na;
	}
	struct mbox_msg *m = &f->msgs[f->n_msgs++];
	m->uid = f->uidnext++;
	m->body = body;
	m->data = body->data;
	m->size = body->size;
	m->internaldate = date;
	m->flags = flags;
	m->extra = extra;
	body->refs++;
	if (extra)
		f->set->extra_bytes += MBOX_ENTRY_COST;
	return 0;
}

/* A generated message: data (malloc'd, taken) becomes a body of its own. */
static int add_msg(struct mbox_folder *f, char *data, size_t len, int64_t date, unsigned flags)
{
	struct mbox_body *b = body_new(f->set, data, len, 0);
	free(data);
	if (!b)
		return -1;
	if (add_entry(f, b, date, flags, 0) < 0) {
		free(b);
		return -1;
	}
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Fill folder f with n messages from the pool, oldest first (UID order = date order). */
static int fill_folder(struct gen *g, struct mbox_folder *f, enum folder_kind fk,
		       const struct tmpl *pool, size_t pool_n, size_t n, unsigned max_age_days)
{
	size_t idx[16];
	if (n > pool_n)
		n = pool_n;
	for (size_t i = 0; i < pool_n; i++)
		idx[i] = i;
	for (size_t i = 0; i < n; i++) { /* partial Fisher-Yates */
		size_t j = i + rng_range(&g->rng, 0, (unsigned)(pool_n - i - 1));
		size_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
	int64_t when[16];
	for (size_t i = 0; i < n; i++) {
		/* Office hours on some day in the window, seconds scattered. */
		int64_t day = g->anchor - (int64_t)rng_range(&g->rng, 1, max_age_days) * 86400;
		when[i] = day + (int64_t)rng_range(&g->rng, 7 * 3600, 18 * 3600) + rng_range(&g->rng, 0, 59);
	}
	qsort(when, n, sizeof(when[0]), cmp_i64);
	for (size_t i = 0; i < n; i++) {
		struct buf b;
		buf_init(&b, 0);
		build_msg(g, &pool[idx[i]], fk, when[i], &b);
		unsigned flags = MBOX_SEEN;
		if (fk == FK_DRAFTS)
			flags |= MBOX_DRAFT;
		else if (fk == FK_JUNK)
			flags = rng_range(&g->rng, 0, 1) ? MBOX_SEEN : 0;
		else if (fk == FK_INBOX && rng_range(&g->rng, 0, 3) == 0)
			flags |= MBOX_ANSWERED;
		size_t len;
		char *data = buf_steal(&b, &len);
		if (!data || add_msg(f, data, len, when[i], flags) < 0) {
			free(data);
			return -1;
		}
	}
	return 0;
}

/* INBOX: 3-6 messages, at least one multipart/alternative and one attachment. */
static size_t pick_inbox(struct gen *g, size_t n, const struct tmpl **out)
{
	size_t idx[NELEM(inbox_tmpl)];
	for (size_t i = 0; i < NELEM(inbox_tmpl); i++)
		idx[i] = i;
	for (size_t i = 0; i < NELEM(inbox_tmpl) - 1; i++) {
		size_t j = i + rng_range(&g->rng, 0, (unsigned)(NELEM(inbox_tmpl) - i - 1));
		size_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
	size_t k = 0;
	bool have_alt = false, have_att = false;
	/* First the first ALT and ATTACH templates in shuffled order, then the rest. */
	for (size_t i = 0; i < NELEM(inbox_tmpl) && k < n; i++) {
		const struct tmpl *t = &inbox_tmpl[idx[i]];
		if ((t->kind == BODY_ALT && !have_alt) || (t->kind == BODY_ATTACH && !have_att)) {
			out[k++] = t;
			have_alt |= t->kind == BODY_ALT;
			have_att |= t->kind == BODY_ATTACH;
		}
	}
	for (size_t i = 0; i < NELEM(inbox_tmpl) && k < n; i++) {
		const struct tmpl *t = &inbox_tmpl[idx[i]];
		bool used = false;
		for (size_t j = 0; j < k; j++)
			used |= out[j] == t;
		if (!used)
			out[k++] = t;
	}
	return k;
}

static void names_from_user(struct gen *g, const char *username, const char *domain)
{
	if (strchr(username, '@'))
		snprintf(g->user_addr, sizeof(g->user_addr), "%s", username);
	else
		snprintf(g->user_addr, sizeof(g->user_addr), "%s@%s", username, domain);
	/* "john.smith" -> "John Smith"; "alice" -> "Alice". */
	char local[NAME_LEN];
	snprintf(local, sizeof(local), "%s", username);
	char *at = strchr(local, '@');
	if (at)
		*at = '\0';
	size_t o = 0;
	bool start = true;
	for (const char *p = local; *p && o + 1 < sizeof(g->user_full); p++) {
		char c = *p;
		if (c == '.' || c == '_' || c == '-') {
			g->user_full[o++] = ' ';
			start = true;
			continue;
		}
		if (!isprint((unsigned char)c) || c == '"' || c == '<' || c == '>')
			continue;
		g->user_full[o++] = start ? (char)toupper((unsigned char)c) : c;
		start = false;
	}
	g->user_full[o] = '\0';
	if (!o)
		snprintf(g->user_full, sizeof(g->user_full), "%s", "User");
	/* first name: up to the first space, cut to fit (names are cosmetic) */
	size_t first = strcspn(g->user_full, " ");
	if (first >= sizeof(g->user_first))
		first = sizeof(g->user_first) - 1;
	memcpy(g->user_first, g->user_full, first);
	g->user_first[first] = '\0';
}

struct mbox_set *mailbox_generate(const char *username, const char *domain,
				  const char *hostname, const uint8_t secret[32])
{
	return mailbox_generate_at(username, domain, hostname, secret, 0);
}

struct mbox_set *mailbox_generate_at(const char *username, const char *domain,
				     const char *hostname, const uint8_t secret[32],
				     int64_t cracked_at)
{
	static const struct {
		const char *name, *special;
		enum folder_kind fk;
	} layout[] = {
		{"INBOX", NULL, FK_INBOX},     {"Sent", "\\Sent", FK_SENT},
		{"Drafts", "\\Drafts", FK_DRAFTS}, {"Trash", "\\Trash", FK_TRASH},
		{"Junk", "\\Junk", FK_JUNK},
	};
	if (!username || !domain || !hostname || !secret)
		return NULL;

	struct gen g;
	memset(&g, 0, sizeof(g));
	g.domain = domain;
	g.hostname = hostname;
	/* a crack time before 2001 or past 2100 is not one (UIDVALIDITY must stay 32-bit) */
	g.anchor = cracked_at > 978307200LL && cracked_at < 4102444800LL
			   ? cracked_at - cracked_at % 86400
			   : MBOX_DEFAULT_ANCHOR;
	names_from_user(&g, username, domain);

	/* Seed: HMAC-SHA256(secret, "mxbait-mailbox-v1" NUL user NUL domain NUL host). */
	struct buf msg;
	buf_init(&msg, 0);
	buf_append(&msg, "mxbait-mailbox-v1", 18);
	buf_append(&msg, username, strlen(username) + 1);
	buf_append(&msg, domain, strlen(domain) + 1);
	buf_append(&msg, hostname, strlen(hostname) + 1);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	if (!msg.data || !HMAC(EVP_sha256(), secret, 32, (const unsigned char *)msg.data, msg.len,
			       mac, &maclen)) {
		buf_free(&msg);
		return NULL;
	}
	buf_free(&msg);
	memcpy(&g.rng.s, mac, sizeof(g.rng.s));

	struct mbox_set *set = calloc(1, sizeof(*set));
	if (!set)
		return NULL;
	set->folders = calloc(NELEM(layout), sizeof(*set->folders));
	if (!set->folders) {
		free(set);
		return NULL;
	}
	set->n_folders = NELEM(layout);
	/* UIDVALIDITY looks like Dovecot's: the creation time of the mailbox, a year or
	 * two before the anchor; the other folders were created seconds after INBOX. */
	uint32_t uidv = (uint32_t)(g.anchor - 86400LL * rng_range(&g.rng, 200, 900) -
				   rng_range(&g.rng, 0, 86399));
	for (size_t i = 0; i < NELEM(layout); i++) {
		struct mbox_folder *f = &set->folders[i];
		f->set = set;
		f->name = strdup(layout[i].name);
		f->special_use = layout[i].special;
		f->uidvalidity = uidv + (uint32_t)(i ? rng_range(&g.rng, 1, 4) * i : 0);
		f->uidnext = 1;
		if (!f->name)
			goto fail;
	}

	const struct tmpl *in[NELEM(inbox_tmpl)];
	size_t n_in = pick_inbox(&g, rng_range(&g.rng, 3, 6), in);
	/* fill_folder takes a pool; give it the picked ones in a row. */
	struct tmpl picked[NELEM(inbox_tmpl)];
	for (size_t i = 0; i < n_in; i++)
		picked[i] = *in[i];
	if (fill_folder(&g, &set->folders[0], FK_INBOX, picked, n_in, n_in, 35) < 0 ||
	    fill_folder(&g, &set->folders[1], FK_SENT, sent_tmpl, NELEM(sent_tmpl),
			rng_range(&g.rng, 1, 3), 30) < 0 ||
	    fill_folder(&g, &set->folders[2], FK_DRAFTS, draft_tmpl, NELEM(draft_tmpl),
			rng_range(&g.rng, 0, 1), 10) < 0 ||
	    fill_folder(&g, &set->folders[3], FK_TRASH, trash_tmpl, NELEM(trash_tmpl),
			rng_range(&g.rng, 0, 2), 40) < 0 ||
	    fill_folder(&g, &set->folders[4], FK_JUNK, junk_tmpl, NELEM(junk_tmpl),
			rng_range(&g.rng, 0, 2), 20) < 0)
		goto fail;
	/* Exactly one unseen INBOX message: the newest, as if it just arrived. */
	struct mbox_folder *inbox = &set->folders[0];
	if (inbox->n_msgs)
		inbox->msgs[inbox->n_msgs - 1].flags &= ~(unsigned)(MBOX_SEEN | MBOX_ANSWERED);
	return set;
fail:
	mailbox_free(&set);
	return NULL;
}

void mailbox_free(struct mbox_set **setp)
{
	struct mbox_set *set = setp ? *setp : NULL;
	if (!set)
		return;
	for (size_t i = 0; i < set->n_folders; i++) {
		struct mbox_folder *f = &set->folders[i];
		for (size_t j = 0; j < f->n_msgs; j++)
			entry_drop(set, &f->msgs[j]);
		free(f->msgs);
		free(f->name);
	}
	free(set->folders);
	free(set);
	*setp = NULL;
}

struct mbox_folder *mailbox_folder(struct mbox_set *set, const char *name)
{
	if (!set || !name)
		return NULL;
	for (size_t i = 0; i < set->n_folders; i++) {
		struct mbox_folder *f = &set->folders[i];
		bool inbox = strcasecmp(f->name, "INBOX") == 0;
		if (inbox ? strcasecmp(name, "INBOX") == 0 : strcmp(name, f->name) == 0)
			return f;
	}
	return NULL;
}

/* Room in f for one more message of len bytes (copies count at full size). */
static bool folder_has_room(const struct mbox_folder *f, size_t len)
{
	if (!f || f->n_msgs >= MBOX_MAX_MSGS || f->uidnext == UINT32_MAX)
		return false;
	size_t total = 0;
	for (size_t i = 0; i < f->n_msgs; i++)
		total += f->msgs[i].size;
	return len <= MBOX_MAX_BYTES && total + len <= MBOX_MAX_BYTES;
}

uint32_t mailbox_append(struct mbox_folder *f, const char *data, size_t len,
			int64_t internaldate, unsigned flags)
{
	if ((!data && len) || !folder_has_room(f, len))
		return 0;
	struct mbox_body *b = body_new(f->set, data, len, 1);
	if (!b)
		return 0;
	uint32_t uid = f->uidnext;
	if (add_entry(f, b, internaldate, flags, 1) < 0) {
		b->refs = 1;
		body_unref(f->set, b);
		return 0;
	}
	return uid;
}

uint32_t mailbox_copy(struct mbox_folder *f, const struct mbox_msg *m, unsigned flags)
{
	if (!m || !m->body || !folder_has_room(f, m->size))
		return 0;
	/* m may be an entry of f, whose array add_entry may move: read it first */
	struct mbox_body *body = m->body;
	int64_t date = m->internaldate;
	uint32_t uid = f->uidnext;
	if (add_entry(f, body, date, flags, 1) < 0)
		return 0;
	return uid;
}

size_t mailbox_extra_bytes(const struct mbox_set *set)
{
	return set ? set->extra_bytes : 0;
}

size_t mailbox_expunge(struct mbox_folder *f)
{
	if (!f)
		return 0;
	size_t o = 0, gone = 0;
	for (size_t i = 0; i < f->n_msgs; i++) {
		if (f->msgs[i].flags & MBOX_DELETED) {
			entry_drop(f->set, &f->msgs[i]);
			gone++;
		} else {
			f->msgs[o++] = f->msgs[i];
		}
	}
	f->n_msgs = o;
	return gone;
}
