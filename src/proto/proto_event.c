/* proto_event: auth and offence events shared by the engines (see proto_event.h). */
#include "proto/proto_event.h"

#include "store/event.h"

struct mxb_event *proto_auth_event(const struct auth_ev *a)
{
	struct mxb_event *ev = mxb_event_new("auth");
	if (!ev)
		return NULL;
	mxb_event_str(ev, "mechanism", a->mech);
	if (a->user)
		mxb_event_strn(ev, "username", a->user, a->user_len);
	else
		mxb_event_null(ev, "username");
	if (a->pass)
		mxb_event_strn(ev, "password", a->pass, a->pass_len);
	else
		mxb_event_null(ev, "password");
	if (a->authzid && a->authzid_len > 0)
		mxb_event_strn(ev, "authzid", a->authzid, a->authzid_len);
	else
		mxb_event_null(ev, "authzid");
	mxb_event_bool(ev, "success", a->success);
	mxb_event_str(ev, "result", a->result);
	return ev;
}

struct mxb_event *proto_offence_event(const char *kind, const char *detail, size_t len)
{
	struct mxb_event *ev = mxb_event_new("offence");
	if (!ev)
		return NULL;
	mxb_event_str(ev, "kind", kind);
	mxb_event_strn(ev, "detail", detail ? detail : "",
		       len > PROTO_DETAIL_MAX ? PROTO_DETAIL_MAX : len);
	return ev;
}
