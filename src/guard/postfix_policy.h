/*
 * postfix_policy: the Postfix SMTP access policy delegation service
 * (SMTPD_POLICY_README), served by `mxbait serve` on its event loop over TCP or a unix
 * socket (postfix_policy_listen).
 *
 * Postfix sends name=value lines ending with an empty line; the answer is
 * "action=..." and an empty line, on a connection Postfix keeps open.  At the RCPT
 * stage the guard records the recipient and answers from the decision about the
 * client: DUNNO (nothing against it), DEFER (diverted but still connected here: a real
 * MTA retries into the honeypot, which hands its mail on) or REJECT (banned).
 *
 * Unknown recipients without log parsing: configure the service twice in
 * smtpd_recipient_restrictions, before and after reject_unlisted_recipient, the second
 * with policy_context=known (docs/deploy.md).  A recipient that is not confirmed by a
 * "known" request of the same client and transaction within 2 s was rejected by
 * Postfix as unknown.  Without the second placement recipients are recorded with
 * known = null and enumeration is seen in the log instead.
 *
 * Bounded: lines of at most 4096 bytes, 64 KiB and 128 attributes per request, 256
 * connections, 300 s idle; a malformed request closes the connection (Postfix then
 * retries on a new one).  The parser is pure (postfix_policy_feed) for tests and the
 * fuzzer.
 */
#ifndef MXB_GUARD_POSTFIX_POLICY_H
#define MXB_GUARD_POSTFIX_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#define PP_LINE_MAX 4096
#define PP_REQUEST_MAX (64 * 1024)
#define PP_ATTRS_MAX 128

struct pp_request {
	char request[32];          /* smtpd_access_policy */
	char protocol_state[16];   /* RCPT, ... */
	char client_address[64];
	char client_port[8];
	char recipient[512];
	char sender[512];
	char instance[64];
	char policy_context[64];
	char sasl_username[256];
	unsigned n_attrs;
};

struct pp_parser {
	char line[PP_LINE_MAX];
	size_t len;
	size_t total;
	struct pp_request req;
};

enum pp_result { PP_MORE, PP_REQUEST, PP_ERROR };

void postfix_policy_parser_init(struct pp_parser *p);
/* Consume bytes; stops after a whole request (PP_REQUEST: p->req holds it, *used_r
 * says how much was used; call again with the rest) or at an error. */
enum pp_result postfix_policy_feed(struct pp_parser *p, const char *data, size_t len,
				   size_t *used_r, const char **why_r);

struct event_base;
struct mxb_config;
struct guard;
struct postfix_policy;

struct postfix_policy *postfix_policy_new(struct event_base *base, const struct mxb_config *cfg,
					  struct guard *g, char **err_r);
/* Once a second: recipients not confirmed in time are unknown. */
void postfix_policy_tick(struct postfix_policy *pp);
void postfix_policy_free(struct postfix_policy **pp);
/* Whether the second placement (policy_context=known) answered lately: then the policy
 * service sees unknown recipients itself and log lines must not count them again. */
bool postfix_policy_confirming(const struct postfix_policy *pp);

#endif
