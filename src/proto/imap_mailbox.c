/*
 * imap_mailbox: commands on folders and on the messages of the selected one: LIST/LSUB,
 * STATUS, SELECT/EXAMINE, CREATE/DELETE/RENAME/SUBSCRIBE, message sets, STORE,
 * EXPUNGE/CLOSE/UNSELECT, COPY/MOVE and APPEND (the message made durable by the host
 * before the tagged OK).
 *
 * Promises: changes live only in the session's generated mailbox (deceive/mailbox.h);
 * an APPENDed message is recorded once, with its event, whether the client stays or not.
 */
#include "proto/imap_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FLAGS_LIST "\\Answered \\Flagged \\Deleted \\Seen \\Draft"

/* ------------------------------------------------------- post-login: folders --- */

/* LIST pattern match: '*' anything, '%' anything but the delimiter.  Dynamic
 * programming over (pattern, name) so that no pattern can make it exponential. */
static bool list_match(const char *pat, const char *name)
{
	size_t np = strlen(pat), nn = strlen(name);
	bool *prev = calloc(nn + 1, sizeof(bool)), *cur = calloc(nn + 1, sizeof(bool));
	bool r = false;
	if (!prev || !cur)
		goto out;
	prev[0] = true;
	for (size_t i = 0; i < np; i++) {
		char c = pat[i];
		if (c == '*' || c == '%') {
			cur[0] = prev[0];
			for (size_t j = 1; j <= nn; j++)
				cur[j] = prev[j] || (cur[j - 1] && (c == '*' || name[j - 1] != '.'));
		} else {
			cur[0] = false;
			for (size_t j = 1; j <= nn; j++)
				cur[j] = prev[j - 1] && tolower((unsigned char)c) ==
							   tolower((unsigned char)name[j - 1]);
		}
		bool *t = prev;
		prev = cur;
		cur = t;
	}
	r = prev[nn];
out:
	free(prev);
	free(cur);
	return r;
}

static int cmd_list_common(struct imap_session *s, struct imap_command *c, bool lsub)
{
	const struct imap_arg *a = c->args;
	bool sel_special = false, ret_special = false, ret_children = false, extended = false;
	bool sel_subscribed = false, ret_subscribed = false;
	if (!lsub && a && a->type == IMAP_ARG_LIST) {
		extended = true;
		for (const struct imap_arg *o = a->child; o; o = o->next) {
			if (imap_arg_is_atom(o, "SPECIAL-USE"))
				sel_special = true;
			else if (imap_arg_is_atom(o, "SUBSCRIBED"))
				sel_subscribed = true;
		}
		a = a->next;
	}
	const char *ref, *pat;
	size_t rl, pl;
	if (!a || !imap_arg_astring(a, &ref, &rl) || !a->next ||
	    !imap_arg_astring(a->next, &pat, &pl))
		return -1;
	const struct imap_arg *r = a->next->next;
	if (r) {
		if (lsub || !imap_arg_is_atom(r, "RETURN") || !r->next ||
		    r->next->type != IMAP_ARG_LIST || r->next->next)
			return -1;
		extended = true;
		for (const struct imap_arg *o = r->next->child; o; o = o->next) {
			if (imap_arg_is_atom(o, "SPECIAL-USE"))
				ret_special = true;
			else if (imap_arg_is_atom(o, "CHILDREN"))
				ret_children = true;
			else if (imap_arg_is_atom(o, "SUBSCRIBED"))
				ret_subscribed = true;
		}
	}
	const char *verb = lsub ? "LSUB" : "LIST";
	if (pl == 0) {
		if (!lsub)
			imap_untagged(s, "LIST (\\Noselect) \".\" \"\"");
		imap_tagged(s, "OK", "%s completed.", lsub ? "Lsub" : "List");
		return 0;
	}
	char full[2048];
	snprintf(full, sizeof(full), "%.*s%.*s", (int)(rl > 1000 ? 1000 : rl), ref,
		 (int)(pl > 1000 ? 1000 : pl), pat);
	for (size_t i = 0; s->mbox && i < s->mbox->n_folders; i++) {
		const struct mbox_folder *f = &s->mbox->folders[i];
		if (!list_match(full, f->name))
			continue;
		/* INBOX is never subscribed on a stock Dovecot; the special-use folders are,
		 * as a mail client would have done */
		bool subscribed = strcasecmp(f->name, "INBOX") != 0;
		if ((lsub || sel_subscribed) && !subscribed)
			continue;
		if (sel_special && !f->special_use)
			continue;
		struct buf b;
		buf_init(&b, 4096);
		buf_printf(&b, "* %s (", verb);
		bool first = true;
		if (!lsub && subscribed && (sel_subscribed || ret_subscribed)) {
			buf_puts(&b, "\\Subscribed");
			first = false;
		}
		if (lsub) {
			/* no attributes */
		} else if (!extended || ret_children) {
			if (!first)
				buf_putc(&b, ' ');
			buf_puts(&b, "\\HasNoChildren");
			first = false;
		}
		if (!lsub && f->special_use && (!extended || ret_special || sel_special)) {
			if (!first)
				buf_putc(&b, ' ');
			buf_puts(&b, f->special_use);
		}
		buf_puts(&b, ") \".\" ");
		imap_put_mailbox(&b, f->name);
		buf_puts(&b, "\r\n");
		imap_out_raw(s, b.data, b.len);
		buf_free(&b);
	}
	imap_tagged(s, "OK", "%s completed.", lsub ? "Lsub" : "List");
	return 0;
}

int imap_cmd_list(struct imap_session *s, struct imap_command *c)
{
	return cmd_list_common(s, c, false);
}

int imap_cmd_lsub(struct imap_session *s, struct imap_command *c)
{
	return cmd_list_common(s, c, true);
}

static unsigned count_flag(const struct mbox_folder *f, unsigned bit, bool set)
{
	unsigned n = 0;
	for (size_t i = 0; i < f->n_msgs; i++)
		if (((f->msgs[i].flags & bit) != 0) == set)
			n++;
	return n;
}

int imap_cmd_status(struct imap_session *s, struct imap_command *c)
{
	const char *name;
	size_t nl;
	if (c->n_args != 2 || !imap_arg_astring(c->args, &name, &nl) ||
	    c->args->next->type != IMAP_ARG_LIST || c->args->next->n_children == 0)
		return -1;
	struct mbox_folder *f = imap_folder_by_name(s, name, nl);
	/* check the items before the mailbox, as Dovecot */
	for (const struct imap_arg *it = c->args->next->child; it; it = it->next) {
		if (!imap_arg_is_atom(it, "MESSAGES") && !imap_arg_is_atom(it, "RECENT") &&
		    !imap_arg_is_atom(it, "UIDNEXT") && !imap_arg_is_atom(it, "UIDVALIDITY") &&
		    !imap_arg_is_atom(it, "UNSEEN") && !imap_arg_is_atom(it, "SIZE") &&
		    !imap_arg_is_atom(it, "HIGHESTMODSEQ"))
			return -1;
	}
	if (!f) {
		char shown[256];
		imap_shown_name(shown, sizeof(shown), name, nl);
		imap_tagged(s, "NO", "Mailbox doesn't exist: %s", shown);
		return 0;
	}
	struct buf b;
	buf_init(&b, 4096);
	buf_puts(&b, "* STATUS ");
	imap_put_mailbox(&b, f->name);
	buf_puts(&b, " (");
	bool first = true;
	for (const struct imap_arg *it = c->args->next->child; it; it = it->next) {
		if (!first)
			buf_putc(&b, ' ');
		first = false;
		if (imap_arg_is_atom(it, "MESSAGES")) {
			buf_printf(&b, "MESSAGES %zu", f->n_msgs);
		} else if (imap_arg_is_atom(it, "RECENT")) {
			buf_printf(&b, "RECENT %u", count_flag(f, MBOX_RECENT, true));
		} else if (imap_arg_is_atom(it, "UIDNEXT")) {
			buf_printf(&b, "UIDNEXT %u", f->uidnext);
		} else if (imap_arg_is_atom(it, "UIDVALIDITY")) {
			buf_printf(&b, "UIDVALIDITY %u", f->uidvalidity);
		} else if (imap_arg_is_atom(it, "UNSEEN")) {
			buf_printf(&b, "UNSEEN %u", count_flag(f, MBOX_SEEN, false));
		} else if (imap_arg_is_atom(it, "HIGHESTMODSEQ")) {
			/* CONDSTORE is advertised (the recorded list): a stable value that
			 * only grows, as a real modseq would for this session */
			buf_printf(&b, "HIGHESTMODSEQ %u", f->uidnext);
		} else {
			uint64_t sz = 0;
			for (size_t i = 0; i < f->n_msgs; i++)
				sz += f->msgs[i].size;
			buf_printf(&b, "SIZE %llu", (unsigned long long)sz);
		}
	}
	buf_puts(&b, ")\r\n");
	imap_out_raw(s, b.data, b.len);
	buf_free(&b);
	imap_tagged(s, "OK", "Status completed.");
	return 0;
}

void imap_unselect(struct imap_session *s)
{
	s->sel = NULL;
	s->sel_ro = false;
	if (s->cs == CS_SELECTED)
		s->cs = CS_AUTH;
}

static int select_common(struct imap_session *s, struct imap_command *c, bool ro)
{
	if (s->cs == CS_SELECTED) {
		imap_unselect(s);
		imap_untagged(s, "OK [CLOSED] Previous mailbox closed.");
	}
	const char *name;
	size_t nl;
	if (c->n_args < 1 || c->n_args > 2 || !imap_arg_astring(c->args, &name, &nl))
		return -1;
	if (c->n_args == 2 && c->args->next->type != IMAP_ARG_LIST)
		return -1;
	struct mbox_folder *f = imap_folder_by_name(s, name, nl);
	if (!f) {
		char shown[256];
		imap_shown_name(shown, sizeof(shown), name, nl);
		imap_tagged(s, "NO", "Mailbox doesn't exist: %s", shown);
		return 0;
	}
	s->sel = f;
	s->sel_ro = ro;
	s->cs = CS_SELECTED;
	imap_untagged(s, "FLAGS (" FLAGS_LIST ")");
	if (ro)
		imap_untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox.");
	else
		imap_untagged(s, "OK [PERMANENTFLAGS (" FLAGS_LIST " \\*)] Flags permitted.");
	imap_untagged(s, "%zu EXISTS", f->n_msgs);
	imap_untagged(s, "%u RECENT", count_flag(f, MBOX_RECENT, true));
	for (size_t i = 0; i < f->n_msgs; i++) {
		if (!(f->msgs[i].flags & MBOX_SEEN)) {
			imap_untagged(s, "OK [UNSEEN %zu] First unseen.", i + 1);
			break;
		}
	}
	imap_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", f->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %u] Predicted next UID", f->uidnext);
	if (ro)
		imap_tagged(s, "OK", "[READ-ONLY] Examine completed.");
	else
		imap_tagged(s, "OK", "[READ-WRITE] Select completed.");
	return 0;
}

int imap_cmd_select(struct imap_session *s, struct imap_command *c)
{
	return select_common(s, c, false);
}

int imap_cmd_examine(struct imap_session *s, struct imap_command *c)
{
	return select_common(s, c, true);
}

int imap_cmd_create(struct imap_session *s, struct imap_command *c)
{
	const char *name;
	size_t nl;
	if (c->n_args < 1 || !imap_arg_astring(c->args, &name, &nl) || nl == 0)
		return -1;
	if (imap_folder_by_name(s, name, nl)) {
		imap_tagged(s, "NO", "[ALREADYEXISTS] Mailbox already exists");
		return 0;
	}
	imap_tagged(s, "OK", "Create completed.");
	return 0;
}

int imap_cmd_delete(struct imap_session *s, struct imap_command *c)
{
	const char *name;
	size_t nl;
	if (c->n_args != 1 || !imap_arg_astring(c->args, &name, &nl))
		return -1;
	struct mbox_folder *f = imap_folder_by_name(s, name, nl);
	if (!f) {
		char shown[256];
		imap_shown_name(shown, sizeof(shown), name, nl);
		imap_tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", shown);
		return 0;
	}
	if (strcasecmp(f->name, "INBOX") == 0) {
		imap_tagged(s, "NO", "INBOX can't be deleted.");
		return 0;
	}
	imap_tagged(s, "OK", "Delete completed.");
	return 0;
}

int imap_cmd_rename(struct imap_session *s, struct imap_command *c)
{
	const char *a, *b;
	size_t al, bl;
	if (c->n_args != 2 || !imap_arg_astring(c->args, &a, &al) ||
	    !imap_arg_astring(c->args->next, &b, &bl))
		return -1;
	if (!imap_folder_by_name(s, a, al)) {
		char shown[256];
		imap_shown_name(shown, sizeof(shown), a, al);
		imap_tagged(s, "NO", "[NONEXISTENT] Mailbox doesn't exist: %s", shown);
		return 0;
	}
	if (imap_folder_by_name(s, b, bl)) {
		imap_tagged(s, "NO", "[ALREADYEXISTS] Target mailbox already exists");
		return 0;
	}
	imap_tagged(s, "OK", "Rename completed.");
	return 0;
}

int imap_cmd_subscribe(struct imap_session *s, struct imap_command *c)
{
	const char *a;
	size_t al;
	if (c->n_args != 1 || !imap_arg_astring(c->args, &a, &al))
		return -1;
	imap_tagged(s, "OK", "%s completed.", strcmp(c->name, "SUBSCRIBE") == 0 ? "Subscribe"
									: "Unsubscribe");
	return 0;
}

long imap_resolve_set(struct imap_session *s, const char *set, size_t len, bool uid,
		      uint32_t **seqs_r)
{
	struct imap_seqset ss;
	*seqs_r = NULL;
	if (imap_seqset_parse(set, len, &ss) < 0)
		return -2;
	uint32_t n = imap_n_msgs(s);
	if (!uid) {
		uint32_t mx = imap_seqset_max(&ss, n);
		if (n == 0 || mx > n || mx == 0)
			return -1;
	}
	uint32_t *out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return -1;
	long k = 0;
	uint32_t star_uid = n ? s->sel->msgs[n - 1].uid : 0;
	for (uint32_t i = 1; i <= n; i++) {
		bool in = uid ? imap_seqset_contains(&ss, s->sel->msgs[i - 1].uid, star_uid)
			      : imap_seqset_contains(&ss, i, n);
		if (in)
			out[k++] = i;
	}
	*seqs_r = out;
	return k;
}

int imap_set_arg(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (!a || a->type != IMAP_ARG_ATOM)
		return -1;
	*s_r = a->s;
	*len_r = a->len;
	return 0;
}

/* ---------------------------------------------------------- post-login: STORE --- */

int imap_do_store(struct imap_session *s, const char *name, const struct imap_arg *args,
		  bool uid)
{
	const char *set, *item;
	size_t setl, iteml;
	if (imap_set_arg(args, &set, &setl) < 0 || !args->next ||
	    args->next->type != IMAP_ARG_ATOM || !args->next->next) {
		imap_cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	item = args->next->s;
	iteml = args->next->len;
	int mode; /* 0 set, 1 add, -1 remove */
	const char *w = item;
	if (*w == '+') {
		mode = 1;
		w++;
	} else if (*w == '-') {
		mode = -1;
		w++;
	} else {
		mode = 0;
	}
	bool silent;
	if (strcasecmp(w, "FLAGS") == 0)
		silent = false;
	else if (strcasecmp(w, "FLAGS.SILENT") == 0)
		silent = true;
	else {
		(void)iteml;
		imap_cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	unsigned flags;
	if (imap_parse_flag_args(args->next->next, &flags) < 0) {
		imap_cmd_error(s, name, "Invalid system flag");
		return 0;
	}
	uint32_t *seqs;
	long k = imap_resolve_set(s, set, setl, uid, &seqs);
	if (k < 0) {
		imap_cmd_error(s, name, k == -2 && uid ? "Invalid uidset" : "Invalid messageset");
		return 0;
	}
	if (s->sel_ro) {
		free(seqs);
		imap_tagged(s, "NO", "Mailbox is read-only.");
		return 0;
	}
	for (long i = 0; i < k; i++) {
		struct mbox_msg *m = &s->sel->msgs[seqs[i] - 1];
		unsigned keep = m->flags & MBOX_RECENT;
		if (mode == 0)
			m->flags = flags | keep;
		else if (mode > 0)
			m->flags |= flags;
		else
			m->flags &= ~flags;
		if (!silent) {
			struct buf b;
			buf_init(&b, 0);
			buf_printf(&b, "* %u FETCH (", seqs[i]);
			if (uid)
				buf_printf(&b, "UID %u ", m->uid);
			buf_puts(&b, "FLAGS ");
			imap_put_flags(&b, m->flags);
			buf_puts(&b, ")\r\n");
			imap_out_raw(s, b.data, b.len);
			buf_free(&b);
		}
	}
	free(seqs);
	imap_tagged(s, "OK", "Store completed.");
	return 0;
}

int imap_cmd_store(struct imap_session *s, struct imap_command *c)
{
	if (!imap_need_selected(s))
		return 0;
	return imap_do_store(s, "STORE", c->args, false);
}

/* ------------------------------------------------- post-login: EXPUNGE, COPY --- */

/* Expunge the \Deleted messages (only those in keep_set when it is given), sending
 * "* n EXPUNGE" for each unless silent. */
void imap_expunge(struct imap_session *s, const uint32_t *only, long n_only, bool silent)
{
	struct mbox_folder *f = s->sel;
	unsigned *saved = NULL;
	if (only) {
		/* hide \Deleted outside the set, put it back on the survivors after */
		saved = calloc(f->n_msgs ? f->n_msgs : 1, sizeof(*saved));
		if (!saved)
			return;
		for (size_t i = 0; i < f->n_msgs; i++) {
			saved[i] = f->msgs[i].flags;
			bool in = false;
			for (long k = 0; k < n_only && !in; k++)
				in = only[k] == i + 1;
			if (!in)
				f->msgs[i].flags &= ~(unsigned)MBOX_DELETED;
		}
	}
	/* announce: each EXPUNGE renumbers the ones after it */
	size_t removed = 0, kept = 0;
	for (size_t i = 0; i < f->n_msgs; i++) {
		if (f->msgs[i].flags & MBOX_DELETED) {
			if (!silent)
				imap_untagged(s, "%zu EXPUNGE", i + 1 - removed);
			removed++;
		} else if (saved) {
			saved[kept++] = saved[i];
		}
	}
	mailbox_expunge(f);
	imap_mem_settle(s); /* what went gives its memory back */
	if (saved) {
		for (size_t j = 0; j < kept && j < f->n_msgs; j++)
			f->msgs[j].flags = saved[j];
		free(saved);
	}
}

int imap_cmd_expunge(struct imap_session *s, struct imap_command *c)
{
	if (!imap_need_selected(s))
		return 0;
	if (c->n_args != 0)
		return -1;
	if (s->sel_ro) {
		imap_tagged(s, "NO", "Mailbox is read-only.");
		return 0;
	}
	imap_expunge(s, NULL, 0, false);
	imap_tagged(s, "OK", "Expunge completed.");
	return 0;
}

int imap_cmd_close(struct imap_session *s, struct imap_command *c)
{
	if (!imap_need_selected(s))
		return 0;
	if (!s->sel_ro)
		imap_expunge(s, NULL, 0, true);
	imap_unselect(s);
	imap_tagged(s, "OK", "Close completed.");
	return 0;
}

int imap_cmd_unselect(struct imap_session *s, struct imap_command *c)
{
	if (!imap_need_selected(s))
		return 0;
	imap_unselect(s);
	imap_tagged(s, "OK", "Unselect completed.");
	return 0;
}

int imap_do_copy(struct imap_session *s, const char *name, const struct imap_arg *args,
		 bool uid, bool move)
{
	const char *set, *dst;
	size_t setl, dstl;
	if (imap_set_arg(args, &set, &setl) < 0 || !args->next ||
	    !imap_arg_astring(args->next, &dst, &dstl) || args->next->next) {
		imap_cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	uint32_t *seqs;
	long k = imap_resolve_set(s, set, setl, uid, &seqs);
	if (k < 0) {
		imap_cmd_error(s, name, k == -2 && uid ? "Invalid uidset" : "Invalid messageset");
		return 0;
	}
	struct mbox_folder *d = imap_folder_by_name(s, dst, dstl);
	if (!d) {
		free(seqs);
		char shown[256];
		imap_shown_name(shown, sizeof(shown), dst, dstl);
		imap_tagged(s, "NO", "[TRYCREATE] Mailbox doesn't exist: %s", shown);
		return 0;
	}
	if (move && s->sel_ro) {
		free(seqs);
		imap_tagged(s, "NO", "Mailbox is read-only.");
		return 0;
	}
	/* The copies share their bytes; each new entry is charged to the memory
	 * budgets first (a Dovecot over quota refuses the whole COPY). */
	if (k > 0 && (size_t)k > SIZE_MAX / MBOX_ENTRY_COST) {
		free(seqs);
		imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		return 0;
	}
	if (k > 0 && !imap_mem_take(s, (size_t)k * MBOX_ENTRY_COST)) {
		free(seqs);
		imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		return 0;
	}
	if (k > 0)
		s->mbox_charged += (size_t)k * MBOX_ENTRY_COST;
	struct buf src, dstu;
	buf_init(&src, 0);
	buf_init(&dstu, 0);
	bool full = false;
	for (long i = 0; i < k; i++) {
		const struct mbox_msg *m = &s->sel->msgs[seqs[i] - 1];
		uint32_t srcuid = m->uid;
		uint32_t nu = mailbox_copy(d, m, m->flags & ~(unsigned)MBOX_RECENT);
		if (nu == 0) {
			full = true;
			break;
		}
		buf_printf(&src, "%s%u", src.len ? "," : "", srcuid);
		buf_printf(&dstu, "%s%u", dstu.len ? "," : "", nu);
	}
	imap_mem_settle(s); /* gives back what was taken and not used */
	if (full) {
		free(seqs);
		buf_free(&src);
		buf_free(&dstu);
		imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		return 0;
	}
	if (move) {
		if (k > 0)
			imap_untagged(s, "OK [COPYUID %u %s %s] Moved UIDs.", d->uidvalidity,
				 src.data, dstu.data);
		for (long i = 0; i < k; i++)
			s->sel->msgs[seqs[i] - 1].flags |= MBOX_DELETED;
		imap_expunge(s, seqs, k, false);
		imap_tagged(s, "OK", "Move completed.");
	} else if (k > 0) {
		imap_tagged(s, "OK", "[COPYUID %u %s %s] Copy completed.", d->uidvalidity, src.data,
		       dstu.data);
	} else {
		imap_tagged(s, "OK", "No messages found.");
	}
	free(seqs);
	buf_free(&src);
	buf_free(&dstu);
	return 0;
}

int imap_cmd_copy(struct imap_session *s, struct imap_command *c)
{
	if (!imap_need_selected(s))
		return 0;
	return imap_do_copy(s, "COPY", c->args, false, false);
}

int imap_cmd_move(struct imap_session *s, struct imap_command *c)
{
	if (!imap_need_selected(s))
		return 0;
	return imap_do_copy(s, "MOVE", c->args, false, true);
}

/* --------------------------------------------------------- post-login: APPEND --- */

int imap_cmd_append(struct imap_session *s, struct imap_command *c)
{
	const char *name;
	size_t nl;
	const struct imap_arg *a = c->args;
	if (!a || !imap_arg_astring(a, &name, &nl))
		return -1;
	a = a->next;
	unsigned flags = 0;
	if (a && a->type == IMAP_ARG_LIST) {
		if (imap_parse_flag_args(a, &flags) < 0) {
			imap_cmd_error(s, "APPEND", "Invalid system flag");
			return 0;
		}
		a = a->next;
	}
	int64_t date = imap_now_us(s) / 1000000;
	if (a && a->type == IMAP_ARG_QUOTED) {
		if (imap_parse_datetime(a->s, a->len, &date) < 0) {
			imap_cmd_error(s, "APPEND", "Invalid internal date.");
			return 0;
		}
		a = a->next;
	}
	if (!a || a->type != IMAP_ARG_LITERAL || a->next)
		return -1;
	if (a->len == 0) {
		imap_cmd_error(s, "APPEND", "Can't save a zero byte message");
		return 0;
	}
	struct mbox_folder *f = imap_folder_by_name(s, name, nl);
	if (!f) {
		char shown[256];
		imap_shown_name(shown, sizeof(shown), name, nl);
		imap_tagged(s, "NO", "[TRYCREATE] Mailbox doesn't exist: %s", shown);
		return 0;
	}
	char qid[32] = "";
	if (s->ops->msg_open(s->ctx, qid, sizeof(qid)) < 0) {
		imap_message_rejected(s, "no_space", a->len);
		imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		return 0;
	}
	if (s->ops->msg_write(s->ctx, a->s, a->len) < 0) {
		s->ops->msg_abort(s->ctx);
		imap_message_rejected(s, "no_space", a->len);
		imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		return 0;
	}
	qid[sizeof(qid) - 1] = '\0';
	memcpy(s->app_qid, qid, sizeof(s->app_qid));
	s->app_folder = f;
	s->app_data = a->s;
	s->app_len = a->len;
	s->app_flags = flags;
	s->app_date = date;
	s->susp = SUSP_COMMIT;
	s->ops->msg_commit(s->ctx);
	return 0;
}

void imap_session_committed(struct imap_session *s, const struct proto_commit_result *r)
{
	if (s->susp != SUSP_COMMIT)
		return;
	s->susp = SUSP_NONE;
	if (r && r->ok) {
		s->messages++;
		struct mxb_event *ev = mxb_event_new("message");
		if (ev) {
			const char *qid = r->queue_id && *r->queue_id ? r->queue_id : s->app_qid;
			mxb_event_str(ev, "queue_id", qid);
			mxb_event_str(ev, "spool", r->spool_name ? r->spool_name : "");
			mxb_event_str(ev, "sha256", r->sha256 ? r->sha256 : "");
			mxb_event_int(ev, "size", (int64_t)r->size);
			mxb_event_str(ev, "sender", "");
			mxb_event_str_array(ev, "recipients", NULL, 0);
			mxb_event_int(ev, "recipient_count", 0);
			mxb_event_str(ev, "method", "APPEND");
			mxb_event_str(ev, "auth_user", s->user);
			mxb_event_bool(ev, "tls", s->tls);
			imap_emit(s, ev);
		}
		/* kept in the session's mailbox only within the memory budgets (the message
		 * is captured either way) */
		uint32_t uid = 0;
		size_t need = s->app_len + MBOX_ENTRY_COST;
		if (s->app_len <= SIZE_MAX - MBOX_ENTRY_COST && imap_mem_take(s, need)) {
			s->mbox_charged += need;
			uid = mailbox_append(s->app_folder, s->app_data, s->app_len, s->app_date,
					     s->app_flags | MBOX_RECENT);
			imap_mem_settle(s);
		}
		if (uid == 0) {
			imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		} else {
			if (s->sel == s->app_folder)
				imap_untagged(s, "%zu EXISTS", s->sel->n_msgs);
			imap_tagged(s, "OK", "[APPENDUID %u %u] Append completed.",
			       s->app_folder->uidvalidity, uid);
		}
	} else {
		bool nospace = r && r->no_space;
		imap_message_rejected(s, nospace ? "no_space" : "io", s->app_len);
		if (nospace)
			imap_tagged(s, "NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full)");
		else
			imap_tagged(s, "NO", "[SERVERBUG] Internal error occurred. Refer to server log "
					"for more information.");
	}
	s->app_folder = NULL;
	s->app_data = NULL;
	imap_release_command(s);
	if (s->hung_up) {
		buf_reset(&s->out);
		s->susp = SUSP_CLOSED;
		return;
	}
	imap_finish_step(s);
}
