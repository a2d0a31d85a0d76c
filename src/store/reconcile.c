/*
 * reconcile: index the spool files that have no messages row (see reconcile.h).
 *
 * Promises: only regular files of spool/new are looked at (no link is followed); a
 * file is read once, streaming (SHA-256 over 64 KiB reads); the client address comes
 * only from the end of the first header line, where mxbait's own Received header puts
 * "[ADDRESS])" (the HELO name before it is the client's and may hold brackets), and is
 * kept only if it parses as an address.
 */
#include "store/reconcile.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/db.h"
#include "store/event.h"
#include "store/eventstore.h"

/* The queue id in a spool file name "SECS.MUSECSPpidQQUEUEID.HOST" (spool.c). */
static void queue_id_of(const char *name, char *out, size_t outlen)
{
	out[0] = '\0';
	const char *m = strstr(name, ".M");
	const char *p = m ? strchr(m + 2, 'P') : NULL;
	if (!p)
		return;
	p++;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p != 'Q')
		return;
	p++;
	size_t n = strcspn(p, ".");
	if (n == 0 || n >= outlen)
		return;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'F')))
			return;
	memcpy(out, p, n);
	out[n] = '\0';
}

/* The client address of our Received header: "Received: from HELO (NAME [ADDR])" ends
 * the first line. */
static void src_ip_of(const char *head, size_t len, char *out, size_t outlen)
{
	out[0] = '\0';
	if (len < 10 || strncmp(head, "Received: ", 10) != 0)
		return;
	const char *eol = memchr(head, '\n', len);
	if (!eol)
		return;
	const char *end = eol;
	if (end > head && end[-1] == '\r')
		end--;
	if (end - head < 3 || end[-1] != ')' || end[-2] != ']')
		return;
	const char *close = end - 2;
	const char *open = close;
	while (open > head && *open != '[')
		open--;
	if (*open != '[')
		return;
	open++;
	if ((size_t)(close - open) > 5 && !strncmp(open, "IPv6:", 5))
		open += 5;
	char ip[INET6_ADDRSTRLEN + 1];
	size_t n = (size_t)(close - open);
	if (n == 0 || n >= sizeof(ip))
		return;
	memcpy(ip, open, n);
	ip[n] = '\0';
	unsigned char bin[16];
	if (inet_pton(AF_INET, ip, bin) != 1 && inet_pton(AF_INET6, ip, bin) != 1)
		return;
	snprintf(out, outlen, "%s", ip);
}

/* The event for one file; NULL when it cannot be read (it is then left alone). */
static struct mxb_event *describe(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return NULL;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		close(fd);
		return NULL;
	}
	static char chunk[65536];
	char head[2048];
	size_t head_len = 0;
	uint64_t size = 0;
	bool ok = true;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ok = false;
			break;
		}
		if (n == 0)
			break;
		if (head_len < sizeof(head)) {
			size_t k = sizeof(head) - head_len < (size_t)n ? sizeof(head) - head_len
								       : (size_t)n;
			memcpy(head + head_len, chunk, k);
			head_len += k;
		}
		EVP_DigestUpdate(md, chunk, (size_t)n);
		size += (uint64_t)n;
	}
	close(fd);
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	if (EVP_DigestFinal_ex(md, dig, &dlen) != 1 || dlen != 32)
		ok = false;
	EVP_MD_CTX_free(md);
	if (!ok)
		return NULL;
	char hex[65];
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", dig[i]);
	char qid[32], ip[64], ts[40];
	queue_id_of(name, qid, sizeof(qid));
	src_ip_of(head, head_len, ip, sizeof(ip));
	mxb_format_ts((int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000, ts,
		      sizeof(ts));
	struct mxb_event *ev = mxb_event_new("message_recovered");
	if (!ev)
		return NULL;
	mxb_event_str(ev, "queue_id", qid);
	mxb_event_str(ev, "spool", name);
	mxb_event_str(ev, "sha256", hex);
	mxb_event_int(ev, "size", (int64_t)size);
	mxb_event_str(ev, "captured_ts", ts);
	/* No session is known; the address is our own header's. */
	mxb_event_stamp(ev, 0, "", ip, 0, "");
	return ev;
}

long store_reconcile(const char *db_path, const char *spool_dir, struct eventstore *es,
		     char **err_r)
{
	*err_r = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	DIR *d = NULL;
	long indexed = 0;
	char path[4096];
	snprintf(path, sizeof(path), "%s/new", spool_dir);
	int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		if (errno == ENOENT)
			return 0;
		if (asprintf(err_r, "%s: %s", path, strerror(errno)) < 0)
			*err_r = NULL;
		return -1;
	}
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT 1 FROM messages WHERE spool = ?1 LIMIT 1", -1, &st,
			       NULL) != SQLITE_OK) {
		if (asprintf(err_r, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "?") < 0)
			*err_r = NULL;
		indexed = -1;
		goto out;
	}
	sqlite3_busy_timeout(db, 10000);
	sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL);
	d = fdopendir(dup(dirfd));
	if (!d) {
		if (asprintf(err_r, "%s: %s", path, strerror(errno)) < 0)
			*err_r = NULL;
		indexed = -1;
		goto out;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		sqlite3_bind_text(st, 1, de->d_name, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc == SQLITE_ROW)
			continue;
		if (rc != SQLITE_DONE) {
			if (asprintf(err_r, "%s: %s", db_path, sqlite3_errmsg(db)) < 0)
				*err_r = NULL;
			indexed = -1;
			goto out;
		}
		struct mxb_event *ev = describe(dirfd, de->d_name);
		if (!ev)
			continue;
		eventstore_submit(es, ev);
		indexed++;
	}
	if (indexed > 0 && !eventstore_flush(es)) {
		if (asprintf(err_r, "%s: the event writer stopped", db_path) < 0)
			*err_r = NULL;
		indexed = -1;
	}
out:
	if (d)
		closedir(d);
	close(dirfd);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return indexed;
}
