/*
 * reporter: the process that turns indicators into reports and sends them: the only
 * mxbait process with outbound network access (docs/DESIGN.md).  Run as
 * `mxbait report --daemon -c CONF` (a service of its own, beside `mxbait serve`; not
 * a child of the front daemon, so the front daemon's process tree stays without any
 * outbound connection), or one pass with `mxbait report run`.
 *
 * One pass: recover the outbox after a crash (outbox.h), bring the indicators up to
 * date, plan (render new reports into the outbox, applying the etiquette of RFC 6650:
 * honeypot evidence only, thinning of repeats with Incidents, expiry), address (abuse
 * contacts, contact.h; never a victim's domain, never an opted-out address), drain
 * (each configured sink, its token bucket, per-recipient daily budgets, backoff).
 * Without a configured sink nothing is sent: reports accumulate for review.
 */
#ifndef MXB_REPORT_REPORTER_H
#define MXB_REPORT_REPORTER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct mxb_config;

struct reporter_stats {
	long planned, addressed, sent, duplicate, retried, rejected, failed, expired, deferred;
	long recovered_requeued, recovered_unknown;
	/* federation (src/federate/federate.h, struct fed_stats) */
	long fed_published, fed_segments, fed_trap_hashes, fed_pulled, fed_imported,
		fed_refused, fed_contradictions, fed_consensus, fed_decisions;
};

/* once: a single pass; else passes every report_interval until *stop.  Returns 0, or
 * 1 after logging the error to stderr. */
int reporter_run(const char *data_dir, const struct mxb_config *cfg, volatile sig_atomic_t *stop,
		 bool once, struct reporter_stats *st);

#endif
