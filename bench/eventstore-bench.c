/*
 * eventstore-bench: CPU the event store's writer thread spends per event, without the
 * network: N events of one kind are built, then submitted to an eventstore (SQLite +
 * JSON-lines log in DIR) and flushed.  The writer's CPU is the process's CPU during
 * submit + flush minus the submitting thread's own; events are built before the clock
 * starts.  Only the public API (store/eventstore.h, store/event.h) is used, so the same
 * file builds against older trees for before/after figures.
 *
 *   bench/eventstore-cost.sh builds and runs it; by hand:
 *   cc -O2 -D_GNU_SOURCE -I SRC/src -o /tmp/eventstore-bench bench/eventstore-bench.c \
 *      BUILD/src/store/libmxb_store.a BUILD/src/store/libmxb_event.a \
 *      BUILD/src/util/libmxb_util.a -lsqlite3 -lcrypto -levent -levent_pthreads -lpthread
 *   /tmp/eventstore-bench DIR KIND N      KIND: auth (a failed guess) | session (the
 *                                          six events of one captured message)
 *                                          | crack, failure: N account saves, each
 *                                          flushed alone (a crack is committed with
 *                                          synchronous=FULL, a failure count is not)
 * Prints one line: kind, events, writer CPU seconds, microseconds per event (for the
 * account kinds: milliseconds per save until it is committed).  Not a test.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "deceive/deception.h"
#include "store/event.h"
#include "store/eventstore.h"

static double cpu(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static struct mxb_event *stamped(const char *name, long i)
{
	struct mxb_event *e = mxb_event_new(name);
	char sid[24], ip[32];
	snprintf(sid, sizeof(sid), "%016lx", 0x5e55000000000000UL + (unsigned long)(i / 64));
	/* 64 events per session (a guessing connection), one address per session */
	snprintf(ip, sizeof(ip), "203.0.%ld.%ld", (i / 64 / 256) % 256, (i / 64) % 256);
	mxb_event_stamp(e, 0, sid, ip, 40000 + (unsigned)(i % 20000), "imap");
	return e;
}

/* A failed IMAP LOGIN, as imap_auth.c records it. */
static struct mxb_event *auth(long i)
{
	struct mxb_event *e = stamped("auth", i);
	char user[64], pass[64];
	snprintf(user, sizeof(user), "info%ld@example.test", i % 1000);
	snprintf(pass, sizeof(pass), "guess-%08lx", (unsigned long)i * 2654435761UL);
	mxb_event_str(e, "mechanism", "LOGIN");
	mxb_event_str(e, "username", user);
	mxb_event_str(e, "password", pass);
	mxb_event_null(e, "authzid");
	mxb_event_bool(e, "success", false);
	mxb_event_str(e, "result", "fail");
	return e;
}

/* The events of one SMTP session that delivers one message. */
static int session(struct mxb_event **out, long s)
{
	int n = 0;
	struct mxb_event *e = stamped("connect", s * 64);
	mxb_event_str(e, "dst_ip", "192.0.2.1");
	mxb_event_int(e, "dst_port", 25);
	out[n++] = e;
	e = stamped("helo", s * 64);
	mxb_event_str(e, "verb", "EHLO");
	mxb_event_str(e, "name", "client.example.net");
	out[n++] = e;
	e = stamped("mail", s * 64);
	mxb_event_str(e, "sender", "bench@example.net");
	mxb_event_str(e, "params", "");
	mxb_event_null(e, "size");
	mxb_event_bool(e, "accepted", true);
	mxb_event_int(e, "reply", 250);
	out[n++] = e;
	e = stamped("rcpt", s * 64);
	mxb_event_str(e, "recipient", "alice@example.test");
	mxb_event_str(e, "params", "");
	mxb_event_bool(e, "accepted", true);
	mxb_event_int(e, "reply", 250);
	mxb_event_bool(e, "relay", false);
	out[n++] = e;
	e = stamped("message", s * 64);
	mxb_event_str(e, "queue_id", "2DC1A11A199");
	mxb_event_str(e, "spool", "1795000000.M123456P42Q2DC1A11A199.mail.example.test");
	mxb_event_str(e, "sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
	mxb_event_int(e, "size", 1100);
	mxb_event_str(e, "sender", "bench@example.net");
	const char *r[] = {"alice@example.test"};
	mxb_event_str_array(e, "recipients", r, 1);
	mxb_event_str(e, "method", "DATA");
	mxb_event_null(e, "auth_user");
	mxb_event_bool(e, "tls", false);
	out[n++] = e;
	e = stamped("disconnect", s * 64);
	mxb_event_str(e, "reason", "quit");
	mxb_event_int(e, "duration_ms", 3);
	mxb_event_str(e, "state", "idle");
	mxb_event_int(e, "commands", 6);
	mxb_event_int(e, "errors", 0);
	mxb_event_int(e, "messages", 1);
	out[n++] = e;
	return n;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s DIR auth|session N\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1], *kind = argv[2];
	long n = atol(argv[3]);
	bool accounts = !strcmp(kind, "crack") || !strcmp(kind, "failure");
	if (n <= 0 || (strcmp(kind, "auth") && strcmp(kind, "session") && !accounts))
		return 2;
	char db[4096], log[4096];
	snprintf(db, sizeof(db), "%s/mxbait.db", dir);
	snprintf(log, sizeof(log), "%s/events.jsonl", dir);
	char *err = NULL;
	struct eventstore *es = eventstore_open(db, log, &err);
	if (!es) {
		fprintf(stderr, "eventstore_open: %s\n", err ? err : "?");
		return 1;
	}
	if (accounts) {
		/* One save, one commit, waited for: the latency a crack adds. */
		double p0 = cpu(RUSAGE_SELF), t0 = cpu(RUSAGE_THREAD);
		struct timespec w0, w1;
		clock_gettime(CLOCK_MONOTONIC, &w0);
		for (long i = 0; i < n; i++) {
			char user[32];
			snprintf(user, sizeof(user), "user%ld", i);
			struct deception_account a = {user, !strcmp(kind, "crack") ? "123456" : NULL,
						      3, 3, !strcmp(kind, "crack") ? 1 : 0, 0};
			eventstore_save_account(es, &a);
			eventstore_flush(es);
		}
		clock_gettime(CLOCK_MONOTONIC, &w1);
		double writer = (cpu(RUSAGE_SELF) - p0) - (cpu(RUSAGE_THREAD) - t0);
		double wall = (double)(w1.tv_sec - w0.tv_sec) +
			      (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
		printf("eventstore-bench: %s: %ld account saves, each committed alone: %.2f ms "
		       "per save, writer CPU %.1f us per save\n", kind, n, wall / (double)n * 1e3,
		       writer / (double)n * 1e6);
		eventstore_close(&es);
		return 0;
	}
	long per = strcmp(kind, "auth") ? 6 : 1;
	long total = n * per;
	struct mxb_event **evs = malloc((size_t)total * sizeof(*evs));
	if (!evs)
		return 1;
	long k = 0;
	for (long i = 0; i < n; i++) {
		if (per == 1)
			evs[k++] = auth(i);
		else
			k += session(evs + k, i);
	}
	double p0 = cpu(RUSAGE_SELF), t0 = cpu(RUSAGE_THREAD);
	struct timespec w0, w1;
	clock_gettime(CLOCK_MONOTONIC, &w0);
	for (long i = 0; i < k; i++) {
		eventstore_submit(es, evs[i]);
		/* Submit at a pace the writer can follow in batches, as a loop would. */
		if (i % 4096 == 4095)
			eventstore_flush(es);
	}
	eventstore_flush(es);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	double writer = (cpu(RUSAGE_SELF) - p0) - (cpu(RUSAGE_THREAD) - t0);
	double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
	printf("eventstore-bench: %s: %ld events, writer CPU %.3f s, %.2f us per event, "
	       "wall %.2f s\n", kind, k, writer, writer / (double)k * 1e6, wall);
	eventstore_close(&es);
	free(evs);
	return 0;
}
