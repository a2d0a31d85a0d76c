/* Unit tests for deceive/mailbox: stable per user, different across users, CRLF only,
 * sizes right, the folder layout, MIME variety, append/expunge and their bounds, and
 * dates counted back from the crack time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "deceive/mailbox.h"

static const uint8_t secret[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

static struct mbox_set *gen(const char *user)
{
	struct mbox_set *s = mailbox_generate(user, "example.test", "mail.example.test", secret);
	assert_non_null(s);
	return s;
}

static bool sets_equal(const struct mbox_set *a, const struct mbox_set *b)
{
	if (a->n_folders != b->n_folders)
		return false;
	for (size_t i = 0; i < a->n_folders; i++) {
		const struct mbox_folder *fa = &a->folders[i], *fb = &b->folders[i];
		if (strcmp(fa->name, fb->name) || fa->uidvalidity != fb->uidvalidity ||
		    fa->uidnext != fb->uidnext || fa->n_msgs != fb->n_msgs)
			return false;
		for (size_t j = 0; j < fa->n_msgs; j++) {
			const struct mbox_msg *ma = &fa->msgs[j], *mb = &fb->msgs[j];
			if (ma->uid != mb->uid || ma->size != mb->size || ma->flags != mb->flags ||
			    ma->internaldate != mb->internaldate || memcmp(ma->data, mb->data, ma->size))
				return false;
		}
	}
	return true;
}

static void test_stable(void **state)
{
	struct mbox_set *a = gen("alice"), *b = gen("alice");
	assert_true(sets_equal(a, b));
	mailbox_free(&a);
	mailbox_free(&b);
	assert_null(a);
	mailbox_free(&a); /* NULL is fine */
}

static void test_differs(void **state)
{
	struct mbox_set *a = gen("alice"), *b = gen("bob");
	assert_false(sets_equal(a, b));
	assert_int_not_equal(a->folders[0].uidvalidity, b->folders[0].uidvalidity);
	/* Another secret, another mailbox for the same user. */
	uint8_t other[32] = {9};
	struct mbox_set *c = mailbox_generate("alice", "example.test", "mail.example.test", other);
	assert_false(sets_equal(a, c));
	mailbox_free(&a);
	mailbox_free(&b);
	mailbox_free(&c);
}

static void test_layout_and_bytes(void **state)
{
	static const char *users[] = {"alice", "bob", "john.smith", "info", "admin@example.test",
				      "x", "sales", "test1", "postmaster", "j"};
	bool seen_alt = false, seen_att = false, seen_dot = false;
	for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
		struct mbox_set *s = gen(users[u]);
		assert_int_equal(s->n_folders, 5);
		static const char *names[] = {"INBOX", "Sent", "Drafts", "Trash", "Junk"};
		static const size_t lo[] = {3, 1, 0, 0, 0}, hi[] = {6, 3, 1, 2, 2};
		for (size_t i = 0; i < 5; i++) {
			struct mbox_folder *f = &s->folders[i];
			assert_string_equal(f->name, names[i]);
			assert_ptr_equal(mailbox_folder(s, names[i]), f);
			assert_true(f->n_msgs >= lo[i] && f->n_msgs <= hi[i]);
			assert_int_equal(f->uidnext, f->n_msgs + 1);
			assert_true(f->uidvalidity > 1700000000u);
			for (size_t j = 0; j < f->n_msgs; j++) {
				struct mbox_msg *m = &f->msgs[j];
				assert_int_equal(m->uid, j + 1);
				assert_int_equal(strlen(m->data), m->size);
				/* CRLF only: every LF follows a CR, every CR precedes an LF. */
				for (size_t k = 0; k < m->size; k++) {
					if (m->data[k] == '\n')
						assert_true(k > 0 && m->data[k - 1] == '\r');
					if (m->data[k] == '\r')
						assert_true(k + 1 < m->size && m->data[k + 1] == '\n');
					assert_true((unsigned char)m->data[k] < 0x80);
				}
				assert_memory_equal(m->data + m->size - 2, "\r\n", 2);
				assert_non_null(strstr(m->data, "\r\n\r\n"));
				assert_non_null(strstr(m->data, "\r\nMessage-ID: <"));
				assert_non_null(strstr(m->data, "\r\nDate: "));
				/* Dates: weeks before the fixed anchor, after 2026-09-01. */
				assert_true(m->internaldate < 1795392000 &&
					    m->internaldate > 1788220800);
				if (j)
					assert_true(m->internaldate >= f->msgs[j - 1].internaldate);
				if (i == 0) {
					assert_non_null(strstr(m->data, "\tby mail.example.test (Postfix)"));
					seen_alt |= strstr(m->data, "multipart/alternative") != NULL;
					seen_att |= strstr(m->data, "Content-Disposition: attachment") != NULL;
					seen_dot |= strstr(m->data, "\r\n.") != NULL;
				}
				if (i == 2)
					assert_true(m->flags & MBOX_DRAFT);
			}
		}
		/* INBOX: exactly one unseen message, the newest. */
		struct mbox_folder *in = &s->folders[0];
		size_t unseen = 0;
		for (size_t j = 0; j < in->n_msgs; j++)
			unseen += !(in->msgs[j].flags & MBOX_SEEN);
		assert_int_equal(unseen, 1);
		assert_false(in->msgs[in->n_msgs - 1].flags & MBOX_SEEN);
		/* Every INBOX has a multipart/alternative and an attachment. */
		bool alt = false, att = false;
		for (size_t j = 0; j < in->n_msgs; j++) {
			alt |= strstr(in->msgs[j].data, "multipart/alternative") != NULL;
			att |= strstr(in->msgs[j].data, "filename=\"") != NULL;
		}
		assert_true(alt && att);
		mailbox_free(&s);
	}
	assert_true(seen_alt && seen_att);
	(void)seen_dot;
}

static void test_folder_lookup(void **state)
{
	struct mbox_set *s = gen("alice");
	assert_ptr_equal(mailbox_folder(s, "inbox"), &s->folders[0]);
	assert_ptr_equal(mailbox_folder(s, "InBoX"), &s->folders[0]);
	assert_null(mailbox_folder(s, "sent")); /* only INBOX is case-insensitive */
	assert_null(mailbox_folder(s, "Archive"));
	assert_null(mailbox_folder(NULL, "INBOX"));
	assert_string_equal(mailbox_folder(s, "Junk")->special_use, "\\Junk");
	assert_null(mailbox_folder(s, "INBOX")->special_use);
	mailbox_free(&s);
}

static void test_append_expunge(void **state)
{
	struct mbox_set *s = gen("alice");
	struct mbox_folder *f = mailbox_folder(s, "Drafts");
	size_t n0 = f->n_msgs;
	uint32_t next = f->uidnext;
	const char msg[] = "Subject: hi\r\n\r\nbody\r\n";
	uint32_t uid = mailbox_append(f, msg, sizeof(msg) - 1, 1795000000, MBOX_DRAFT);
	assert_int_equal(uid, next);
	assert_int_equal(f->uidnext, next + 1);
	assert_int_equal(f->n_msgs, n0 + 1);
	assert_int_equal(f->msgs[n0].size, sizeof(msg) - 1);
	assert_memory_equal(f->msgs[n0].data, msg, sizeof(msg) - 1);
	uint32_t uid2 = mailbox_append(f, msg, sizeof(msg) - 1, 1795000001, 0);
	assert_int_equal(uid2, uid + 1);
	/* Expunge the first appended one: UIDs are never reused. */
	f->msgs[n0].flags |= MBOX_DELETED;
	assert_int_equal(mailbox_expunge(f), 1);
	assert_int_equal(f->n_msgs, n0 + 1);
	assert_int_equal(f->msgs[n0].uid, uid2);
	assert_int_equal(mailbox_expunge(f), 0);
	uint32_t uid3 = mailbox_append(f, msg, sizeof(msg) - 1, 1795000002, 0);
	assert_int_equal(uid3, uid2 + 1);
	/* Expunge everything. */
	for (size_t j = 0; j < f->n_msgs; j++)
		f->msgs[j].flags |= MBOX_DELETED;
	assert_int_equal(mailbox_expunge(f), n0 + 2);
	assert_int_equal(f->n_msgs, 0);
	/* Bad arguments. */
	assert_int_equal(mailbox_append(NULL, msg, 3, 0, 0), 0);
	assert_int_equal(mailbox_append(f, NULL, 3, 0, 0), 0);
	assert_int_equal(mailbox_expunge(NULL), 0);
	/* The session copy is bounded: appends stop at the message cap. */
	uint32_t last = 1;
	size_t ok = 0;
	for (int i = 0; i < 1100 && last; i++) {
		last = mailbox_append(f, msg, sizeof(msg) - 1, 0, 0);
		ok += last != 0;
	}
	assert_int_equal(last, 0);
	assert_true(ok >= 100 && ok < 1100);
	/* Another session (a fresh generation) does not see the changes. */
	struct mbox_set *t = gen("alice");
	assert_int_equal(mailbox_folder(t, "Drafts")->n_msgs, n0);
	mailbox_free(&t);
	mailbox_free(&s);
}

static void test_bad_args(void **state)
{
	assert_null(mailbox_generate(NULL, "d", "h", secret));
	assert_null(mailbox_generate("u", "d", "h", NULL));
	/* Hostile usernames still give a sane mailbox (quotes and controls dropped from names). */
	struct mbox_set *s = gen("\"<evil>\"\x01");
	assert_int_equal(s->n_folders, 5);
	mailbox_free(&s);
}

/* Dated from the crack day: every message before it and within 45 days of it,
 * UIDVALIDITY 200-901 days before it; the same crack time gives the same bytes, another
 * one other dates; no crack time is mailbox_generate()'s fixed anchor. */
static void test_dates_from_crack_time(void **state)
{
	static const int64_t cracks[] = {1700000000LL, 1795762363LL, 1801234567LL};
	for (size_t k = 0; k < sizeof(cracks) / sizeof(cracks[0]); k++) {
		int64_t t = cracks[k], day = t - t % 86400;
		struct mbox_set *a = mailbox_generate_at("alice", "example.test",
							 "mail.example.test", secret, t);
		struct mbox_set *b = mailbox_generate_at("alice", "example.test",
							 "mail.example.test", secret,
							 day + 86399);
		assert_non_null(a);
		assert_non_null(b);
		assert_true(sets_equal(a, b)); /* the same day: the same mailbox */
		size_t n = 0;
		for (size_t i = 0; i < a->n_folders; i++) {
			const struct mbox_folder *f = &a->folders[i];
			assert_true(f->uidvalidity < day - 199LL * 86400);
			assert_true(f->uidvalidity > day - 902LL * 86400);
			for (size_t j = 0; j < f->n_msgs; j++, n++) {
				assert_true(f->msgs[j].internaldate < day);
				assert_true(f->msgs[j].internaldate > day - 45LL * 86400);
			}
		}
		assert_true(n >= 4);
		struct mbox_set *c = mailbox_generate_at("alice", "example.test",
							 "mail.example.test", secret, t + 86400);
		assert_false(sets_equal(a, c));
		mailbox_free(&a);
		mailbox_free(&b);
		mailbox_free(&c);
	}
	struct mbox_set *fixed = gen("alice");
	struct mbox_set *zero = mailbox_generate_at("alice", "example.test", "mail.example.test",
						    secret, 0);
	assert_true(sets_equal(fixed, zero));
	mailbox_free(&fixed);
	mailbox_free(&zero);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stable),
		cmocka_unit_test(test_differs),
		cmocka_unit_test(test_layout_and_bytes),
		cmocka_unit_test(test_folder_lookup),
		cmocka_unit_test(test_append_expunge),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_dates_from_crack_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
