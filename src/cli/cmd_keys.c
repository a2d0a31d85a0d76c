/*
 * cmd_keys: `mxbait keys [--generate] [--json]`: this sensor's feed signing key
 * (federate/feed.h): its id and public key, what a peer passes to `mxbait peers add`,
 * and the pin of the daemon's TLS certificate (for a peer pulling over https from a
 * self-signed certificate).  --generate creates the key when there is none (never
 * replaces one: a new key is a new publisher to every peer).
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_intel.h"
#include "cli/data_owner.h"
#include "federate/feed.h"
#include "query/jw.h"
#include "util/buf.h"

static const char usage[] = "[--generate] [OPTIONS]";

/* curl's CURLOPT_PINNEDPUBLICKEY form: sha256//BASE64(SHA-256 of the DER public key). */
static int cert_pin(const char *path, char *out, size_t outlen)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		return -1;
	EVP_PKEY *k = X509_get0_pubkey(x);
	unsigned char *der = NULL;
	int n = k ? i2d_PUBKEY(k, &der) : -1;
	int rc = -1;
	if (n > 0) {
		unsigned char h[SHA256_DIGEST_LENGTH];
		SHA256(der, (size_t)n, h);
		unsigned char b64[64];
		EVP_EncodeBlock(b64, h, sizeof(h));
		snprintf(out, outlen, "sha256//%s", b64);
		rc = 0;
	}
	OPENSSL_free(der);
	X509_free(x);
	return rc;
}

int cmd_keys(int argc, char **argv)
{
	const char *gen = NULL;
	const struct cli_option extra[] = {{"generate", false, &gen}, {NULL, false, NULL}};
	struct cli_opts o;
	int rc = cli_parse(argc, argv, usage, extra, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait keys: unexpected argument '%s'\n", argv[o.argi]);
		return 2;
	}
	struct mxb_config cfg;
	if (intel_cli_config(&o, &cfg)) {
		config_free(&cfg);
		return 1;
	}
	/* a key made by root would be unreadable by the reporter's account */
	if (gen && cli_become_data_owner("keys", o.data_dir, cfg.user) < 0) {
		config_free(&cfg);
		return 1;
	}
	struct fed_key k;
	char *err = NULL;
	if (fed_key_load(o.data_dir, gen != NULL, &k, &err) < 0) {
		fprintf(stderr, "mxbait keys: %s\n", err ? err : "no key");
		free(err);
		config_free(&cfg);
		return 1;
	}
	fed_key_clear(&k); /* only the public half is shown */
	char pub[80], pin[128] = "", certp[4200];
	fed_key_public_text(k.pk, pub, sizeof(pub));
	if (cfg.tls_cert_file && *cfg.tls_cert_file)
		snprintf(certp, sizeof(certp), "%s", cfg.tls_cert_file);
	else
		snprintf(certp, sizeof(certp), "%s/tls/cert.pem", o.data_dir);
	bool have_pin = cert_pin(certp, pin, sizeof(pin)) == 0;
	if (o.json) {
		struct buf b;
		buf_init(&b, 0);
		struct jw w;
		jw_init(&w, &b);
		jw_begin_object(&w, NULL);
		jw_cstr(&w, "id", k.id);
		jw_cstr(&w, "public_key", pub);
		jw_cstr(&w, "key_file", "keys/feed.key");
		jw_cstr(&w, "feed_path", "/feed/v1/");
		if (have_pin)
			jw_cstr(&w, "tls_pin", pin);
		else
			jw_null(&w, "tls_pin");
		jw_bool(&w, "publishing", cfg.feed_publish);
		jw_end_object(&w);
		printf("%s\n", b.data);
		buf_free(&b);
	} else {
		printf("key id       %s\npublic key   %s\nkey file     %s/keys/feed.key (0600)\n"
		       "feed         https://HOST:PORT/feed/v1/ (web_listen; feed_publish = %s)\n",
		       k.id, pub, o.data_dir, cfg.feed_publish ? "yes" : "no");
		if (have_pin)
			printf("tls pin      %s\n", pin);
		printf("a peer adds this sensor with:\n  mxbait peers add https://HOST:PORT/feed/v1 %s%s%s\n",
		       pub, have_pin ? " --pin " : "", have_pin ? pin : "");
	}
	config_free(&cfg);
	return 0;
}
