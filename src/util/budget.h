/*
 * budget: a byte budget shared by many holders (e.g. every IMAP session's APPENDed
 * mail against one daemon-wide limit).
 *
 * A holder takes bytes before it allocates them and gives them back when it frees
 * them; a take that would pass the limit fails and changes nothing.  Not thread-safe:
 * one event-loop thread owns a budget.  The peak and the refusals are kept for logs,
 * tests and benchmarks.
 */
#ifndef MXB_UTIL_BUDGET_H
#define MXB_UTIL_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

struct budget {
	uint64_t limit;    /* 0: no limit */
	uint64_t used;
	uint64_t peak;
	uint64_t refused;  /* takes that failed */
};

/* Take n bytes: false (and nothing taken) when used + n would pass the limit. */
bool budget_take(struct budget *b, uint64_t n);
/* Give n bytes back (never below zero). */
void budget_give(struct budget *b, uint64_t n);

#endif
