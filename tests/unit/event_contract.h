/*
 * event_contract: the event catalogue check used by the engines' fake hosts.
 *
 * records: lines "name<TAB>,\"key\":value...\n", as the fake hosts collect them (the
 * engine's fields, without the common ones the real host stamps).  Every record must
 * name a catalogued event and carry exactly its fields, in order, with values of the
 * documented types.  Returns true, or false with a reason in err_r.
 */
#ifndef MXB_TESTS_EVENT_CONTRACT_H
#define MXB_TESTS_EVENT_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>

bool event_contract_check(const char *records, char *err_r, size_t errlen);

#endif
