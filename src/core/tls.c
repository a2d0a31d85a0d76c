/*
 * tls: server SSL_CTX and self-signed certificate (see tls.h).
 *
 * Key and certificate are written to temporary files and renamed into place, so a
 * crash during the first start never leaves a half-written key that later starts
 * would choke on.
 */
#include "core/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "util/buf.h"

const char *tls_last_error(unsigned long err)
{
	if (!err)
		err = ERR_peek_last_error();
	const char *r = err ? ERR_reason_error_string(err) : NULL;
	ERR_clear_error();
	return r ? r : "unknown";
}

static int add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ex)
		return -1;
	int ok = X509_add_ext(cert, ex, -1);
	X509_EXTENSION_free(ex);
	return ok ? 0 : -1;
}

/* Write PEM output to path via a temporary file created with mode. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
	struct buf tmp;
	buf_init(&tmp, 0);
	buf_printf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		buf_free(&tmp);
		return -1;
	}
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp.data);
		buf_free(&tmp);
		return -1;
	}
	int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
		     : PEM_write_X509(f, cert);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp.data, path) != 0) {
		unlink(tmp.data);
		buf_free(&tmp);
		return -1;
	}
	buf_free(&tmp);
	return 0;
}

/* The key a self-signed pair is made with: RSA 2048 as make-ssl-cert, or ECDSA P-256
 * (the alternative certificate of tls_ecdsa). */
static EVP_PKEY *gen_key(int type)
{
	return type == EVP_PKEY_EC ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
}

static int ensure_self_signed(const char *cert_path, const char *key_path,
			      const char *hostname, int type, char **err_r)
{
	struct stat st;
	if (stat(cert_path, &st) == 0 && stat(key_path, &st) == 0) {
		/* Reused, unless the host name changed since: a certificate naming another
		 * host than the banner would give the honeypot away. */
		FILE *f = fopen(cert_path, "r");
		X509 *old = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
		if (f)
			fclose(f);
		EVP_PKEY *pub = old ? X509_get0_pubkey(old) : NULL;
		int match = old && X509_check_host(old, hostname, 0, 0, NULL) == 1 && pub &&
			    EVP_PKEY_get_base_id(pub) == type;
		X509_free(old);
		ERR_clear_error();
		if (match)
			return 0;
	}

	int rc = -1;
	EVP_PKEY *key = gen_key(type);
	X509 *cert = X509_new();
	if (!key || !cert) {
		*err_r = buf_strf("cannot generate a TLS key: %s", tls_last_error(0));
		goto out;
	}
	X509_set_version(cert, 2); /* X509v3 */
	/* Shaped like Debian's snakeoil (make-ssl-cert: `openssl req -x509 -days 3650
	 * -sha256` with ssleay.cnf): a 159-bit random serial, 3650 days, and the
	 * extensions basicConstraints, subjectAltName, subjectKeyIdentifier in that
	 * order (checked against one made by stock-servers.py). */
	unsigned char serial[20];
	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f; /* positive */
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (bn) {
		BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
		BN_free(bn);
	}
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3650L * 24 * 3600);
	X509_set_pubkey(cert, key);
	X509_NAME *name = X509_get_subject_name(cert);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname,
				   -1, -1, 0);
	X509_set_issuer_name(cert, name);
	struct buf san;
	buf_init(&san, 0);
	buf_printf(&san, "DNS:%s", hostname);
	int ext_ok = add_ext(cert, NID_basic_constraints, "CA:FALSE") == 0 &&
		     add_ext(cert, NID_subject_alt_name, san.data) == 0 &&
		     add_ext(cert, NID_subject_key_identifier, "hash") == 0;
	buf_free(&san);
	if (!ext_ok || !X509_sign(cert, key, EVP_sha256())) {
		*err_r = buf_strf("cannot make the self-signed certificate: %s", tls_last_error(0));
		goto out;
	}
	/* Key first: a certificate without its key would be taken as complete. */
	if (write_pem(key_path, 0600, key, NULL) != 0) {
		*err_r = buf_strf("cannot write %s: %s", key_path, strerror(errno));
		goto out;
	}
	if (write_pem(cert_path, 0644, NULL, cert) != 0) {
		*err_r = buf_strf("cannot write %s: %s", cert_path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

int tls_ensure_self_signed(const char *cert_path, const char *key_path,
			   const char *hostname, char **err_r)
{
	return ensure_self_signed(cert_path, key_path, hostname, EVP_PKEY_RSA, err_r);
}

/* Accept every SNI name (a honeypot wants to see it, not judge it); OpenSSL keeps it
 * for SSL_get_servername() only when the callback says OK. */
static int sni_cb(SSL *ssl, int *al, void *arg)
{
	(void)ssl;
	(void)al;
	(void)arg;
	return SSL_TLSEXT_ERR_OK;
}

const char *tls_sni(SSL *ssl)
{
	return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
}

/* Protocol versions, ciphers, key exchange and options of a profile (tls.h). */
static int apply_profile(SSL_CTX *ctx, enum tls_profile profile, char **err_r)
{
	/* the client's cipher preference, as both stock daemons (tls_preempt_cipherlist
	 * = no, ssl_prefer_server_ciphers = no); session tickets on, as both stock
	 * daemons issue them (TLS 1.2 and 1.3) */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	const char *list = NULL;
	int min = TLS1_2_VERSION;
	switch (profile) {
	case TLS_PROFILE_STRICT:
		list = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:ECDHE+AES:!aNULL:!eNULL:!MD5:!RC4:"
		       "!3DES:!DSS:!SHA1";
		break;
	case TLS_PROFILE_POSTFIX:
		/* Postfix 3.7 tls_medium_cipherlist (smtpd_tls_ciphers = medium), which
		 * keeps the anonymous suites opportunistic TLS allows; TLS 1.0 and 1.1
		 * and those suites need security level 0 with OpenSSL 3 */
		list = "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:@SECLEVEL=0";
		min = TLS1_VERSION;
		SSL_CTX_set_dh_auto(ctx, 1);
		/* one TLS 1.3 session ticket per handshake, as Postfix 3.7 sends (measured
		 * with `openssl s_client -msg` against stock-servers.py's Postfix; Dovecot
		 * keeps OpenSSL's two): each ticket is an encryption and a record */
		SSL_CTX_set_num_tickets(ctx, 1);
		break;
	case TLS_PROFILE_DOVECOT: {
		/* Dovecot 2.3's ssl_cipher_list and ssl_min_protocol defaults, and the DH
		 * group of Debian's ssl_dh (RFC 3526 modp_4096) */
		list = "ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:"
		       "!RC4:!ADH:!LOW@STRENGTH";
		EVP_PKEY *dh = NULL;
		EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL);
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string("group", (char *)"modp_4096", 0),
			OSSL_PARAM_construct_end(),
		};
		if (!pc || EVP_PKEY_paramgen_init(pc) <= 0 ||
		    EVP_PKEY_CTX_set_params(pc, params) <= 0 ||
		    EVP_PKEY_paramgen(pc, &dh) <= 0 || SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
			EVP_PKEY_free(dh);
			EVP_PKEY_CTX_free(pc);
			*err_r = buf_strf("cannot set the DH group: %s", tls_last_error(0));
			return -1;
		}
		EVP_PKEY_CTX_free(pc);
		break;
	}
	}
	SSL_CTX_set_min_proto_version(ctx, min);
	if (!SSL_CTX_set_cipher_list(ctx, list) ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384:"
					   "TLS_CHACHA20_POLY1305_SHA256:"
					   "TLS_AES_128_GCM_SHA256")) {
		*err_r = buf_strf("cannot set ciphers: %s", tls_last_error(0));
		return -1;
	}
	static const unsigned char sid_ctx[] = "mxbait";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	return 0;
}

SSL_CTX *tls_ctx_for_profile(SSL_CTX *base, enum tls_profile profile, char **err_r)
{
	*err_r = NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		*err_r = buf_strf("SSL_CTX_new: %s", tls_last_error(0));
		return NULL;
	}
	if (apply_profile(ctx, profile, err_r) != 0)
		goto fail;
	/* Every certificate of base (RSA, and the ECDSA one of tls_ecdsa), each with its
	 * key and chain: OpenSSL keeps one slot per key type and picks per handshake. */
	int n = 0;
	for (int more = SSL_CTX_set_current_cert(base, SSL_CERT_SET_FIRST); more == 1;
	     more = SSL_CTX_set_current_cert(base, SSL_CERT_SET_NEXT)) {
		X509 *cert = SSL_CTX_get0_certificate(base);
		EVP_PKEY *key = SSL_CTX_get0_privatekey(base);
		if (!cert || !key)
			continue;
		STACK_OF(X509) *chain = NULL;
		SSL_CTX_get0_chain_certs(base, &chain);
		if (SSL_CTX_use_certificate(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
		    (chain && SSL_CTX_set1_chain(ctx, chain) != 1)) {
			*err_r = buf_strf("cannot use the certificate: %s", tls_last_error(0));
			goto fail;
		}
		n++;
	}
	ERR_clear_error();
	if (!n) {
		*err_r = buf_strf("no certificate to use");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
			    const char *data_dir, const char *hostname, char **err_r)
{
	struct buf cp, kp;
	buf_init(&cp, 0);
	buf_init(&kp, 0);
	SSL_CTX *ctx = NULL;
	*err_r = NULL;

	if (!cert_file || !*cert_file) {
		struct buf dir;
		buf_init(&dir, 0);
		buf_printf(&dir, "%s/tls", data_dir);
		if (mkdir(dir.data, 0700) != 0 && errno != EEXIST) {
			*err_r = buf_strf("cannot create %s: %s", dir.data, strerror(errno));
			buf_free(&dir);
			goto out;
		}
		buf_printf(&cp, "%s/cert.pem", dir.data);
		buf_printf(&kp, "%s/key.pem", dir.data);
		buf_free(&dir);
		if (tls_ensure_self_signed(cp.data, kp.data, hostname, err_r) != 0)
			goto out;
		cert_file = cp.data;
		key_file = kp.data;
	}

	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		*err_r = buf_strf("SSL_CTX_new: %s", tls_last_error(0));
		goto out;
	}
	if (apply_profile(ctx, TLS_PROFILE_STRICT, err_r) != 0)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		*err_r = buf_strf("cannot load certificate %s: %s", cert_file, tls_last_error(0));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		*err_r = buf_strf("cannot load key %s: %s", key_file, tls_last_error(0));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*err_r = buf_strf("key %s does not match certificate %s", key_file, cert_file);
		goto fail;
	}
	goto out;
fail:
	SSL_CTX_free(ctx);
	ctx = NULL;
out:
	buf_free(&cp);
	buf_free(&kp);
	return ctx;
}

int tls_add_ecdsa(SSL_CTX *ctx, const char *eccert_file, const char *eckey_file,
		  const char *data_dir, const char *hostname, char **err_r)
{
	struct buf cp, kp;
	buf_init(&cp, 0);
	buf_init(&kp, 0);
	*err_r = NULL;
	int rc = -1;
	if (!eccert_file || !*eccert_file) {
		buf_printf(&cp, "%s/tls", data_dir);
		if (mkdir(cp.data, 0700) != 0 && errno != EEXIST) {
			*err_r = buf_strf("cannot create %s: %s", cp.data, strerror(errno));
			goto out;
		}
		buf_reset(&cp);
		buf_printf(&cp, "%s/tls/eccert.pem", data_dir);
		buf_printf(&kp, "%s/tls/eckey.pem", data_dir);
		if (ensure_self_signed(cp.data, kp.data, hostname, EVP_PKEY_EC, err_r) != 0)
			goto out;
		eccert_file = cp.data;
		eckey_file = kp.data;
	}
	/* Loaded into a slot of its own (the key type decides), the RSA pair stays; check
	 * the type first: an RSA file here would silently replace the RSA certificate. */
	FILE *f = fopen(eccert_file, "r");
	X509 *cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	EVP_PKEY *pub = cert ? X509_get0_pubkey(cert) : NULL;
	int type = pub ? EVP_PKEY_get_base_id(pub) : 0;
	X509_free(cert);
	ERR_clear_error();
	if (type != EVP_PKEY_EC) {
		*err_r = buf_strf(type ? "%s is not an ECDSA certificate" :
				     "cannot load certificate %s", eccert_file);
		goto out;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, eccert_file) != 1) {
		*err_r = buf_strf("cannot load certificate %s: %s", eccert_file, tls_last_error(0));
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, eckey_file, SSL_FILETYPE_PEM) != 1) {
		*err_r = buf_strf("cannot load key %s: %s", eckey_file, tls_last_error(0));
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*err_r = buf_strf("key %s does not match certificate %s", eckey_file, eccert_file);
		ERR_clear_error();
		goto out;
	}
	rc = 0;
out:
	buf_free(&cp);
	buf_free(&kp);
	return rc;
}
