/*
 * smtp_adapter: the SMTP engine (proto/smtp.h) behind the common engine vtable
 * (proto/proto.h), so that the connection layer drives SMTP, IMAP and POP3 alike.
 *
 * smtp.h predates proto.h and declares its own, member-for-member identical host
 * callbacks, peer and commit result; the adapter copies them field by field (never a
 * struct cast), so the two headers may drift apart without silent breakage: a field
 * added on one side and not the other fails to compile here or is simply not passed.
 * cfg of create() is a struct smtp_config.
 */
#ifndef MXB_CORE_SMTP_ADAPTER_H
#define MXB_CORE_SMTP_ADAPTER_H

#include "proto/proto.h"

extern const struct proto_engine smtp_proto_engine;

#endif
