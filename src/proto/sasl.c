/*
 * sasl: strict base64, the PLAIN / CRAM-MD5 message splits and the credential rule
 * (see sasl.h).
 */
#include "proto/sasl.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap,
		    size_t *outlen_r)
{
	*outlen_r = 0;
	if (inlen == 1 && in[0] == '=')
		return 0;
	size_t pad = 0;
	while (pad < 2 && inlen > pad && in[inlen - 1 - pad] == '=')
		pad++;
	size_t body = inlen - pad;
	if (pad > 0 && inlen % 4 != 0)
		return -1;
	if (body % 4 == 1)
		return -1;
	size_t need = body / 4 * 3 + (body % 4 ? body % 4 - 1 : 0);
	if (need > outcap)
		return -1;
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;
	for (size_t i = 0; i < body; i++) {
		int v = b64_value((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*outlen_r = o;
	return 0;
}

size_t sasl_b64_encode(const unsigned char *in, size_t inlen, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < inlen; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < inlen)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < inlen)
			v |= in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < inlen ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < inlen ? tab[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

bool sasl_plain_split(const unsigned char *msg, size_t len, struct sasl_slice *authzid_r,
		      struct sasl_slice *authcid_r, struct sasl_slice *passwd_r)
{
	const unsigned char *nul1 = memchr(msg, 0, len);
	if (!nul1)
		return false;
	size_t rest = len - (size_t)(nul1 + 1 - msg);
	const unsigned char *nul2 = memchr(nul1 + 1, 0, rest);
	if (!nul2)
		return false;
	size_t plen = len - (size_t)(nul2 + 1 - msg);
	if (memchr(nul2 + 1, 0, plen))
		return false;
	authzid_r->p = (const char *)msg;
	authzid_r->len = (size_t)(nul1 - msg);
	authcid_r->p = (const char *)nul1 + 1;
	authcid_r->len = (size_t)(nul2 - nul1 - 1);
	passwd_r->p = (const char *)nul2 + 1;
	passwd_r->len = plen;
	return true;
}

bool sasl_cram_split(const unsigned char *msg, size_t len, struct sasl_slice *user_r,
		     struct sasl_slice *digest_r)
{
	size_t sp = len;
	while (sp > 0 && msg[sp - 1] != ' ')
		sp--;
	if (sp == 0 || len - sp != 32 || sp == 1)
		return false;
	for (size_t i = sp; i < len; i++) {
		unsigned char c = msg[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	if (memchr(msg, 0, len))
		return false;
	user_r->p = (const char *)msg;
	user_r->len = sp - 1;
	digest_r->p = (const char *)msg + sp;
	digest_r->len = 32;
	return true;
}

/* A field the rule accepts: no NUL, at most SASL_CRED_MAX bytes. */
static bool cred_field_ok(const struct sasl_slice *f)
{
	return f->len <= SASL_CRED_MAX && (!f->len || !memchr(f->p, '\0', f->len));
}

static char *cred_copy(const struct sasl_slice *f)
{
	char *p = malloc(f->len + 1);
	if (p) {
		if (f->len)
			memcpy(p, f->p, f->len);
		p[f->len] = '\0';
	}
	return p;
}

bool sasl_cred_take(const struct sasl_slice *authzid, const struct sasl_slice *user,
		    const struct sasl_slice *pass, struct sasl_cred *c)
{
	memset(c, 0, sizeof(*c));
	if (!user || !cred_field_ok(user) || (pass && !cred_field_ok(pass)) ||
	    (authzid && !cred_field_ok(authzid)))
		return false;
	c->user = cred_copy(user);
	if (pass)
		c->pass = cred_copy(pass);
	if (authzid && authzid->len)
		c->authzid = cred_copy(authzid);
	if (!c->user || (pass && !c->pass) || (authzid && authzid->len && !c->authzid)) {
		sasl_cred_free(c);
		return false;
	}
	return true;
}

void sasl_cred_free(struct sasl_cred *c)
{
	if (c->pass)
		OPENSSL_cleanse(c->pass, strlen(c->pass));
	free(c->user);
	free(c->pass);
	free(c->authzid);
	memset(c, 0, sizeof(*c));
}
