/*
 * tls: the server's OpenSSL 3 context, and its certificate.
 *
 * TLS 1.2 and 1.3 only, forward-secret ciphers (AEAD first), no compression, no client
 * renegotiation; TLS 1.3 prefers TLS_AES_256_GCM_SHA384 as a stock Postfix does.
 * Without a configured certificate, tls_server_ctx_new() makes a self-signed one on
 * first start, shaped like Debian's snakeoil from make-ssl-cert (RSA 2048, SHA-256,
 * 20-byte serial, CN and subjectAltName DNS:<hostname>, X509v3, 3650 days, extensions
 * basicConstraints, subjectAltName, subjectKeyIdentifier in that order) in <data_dir>/tls/cert.pem and key.pem (mode 0600), and reuses it later, so
 * the daemon's fingerprint stays stable across restarts like a real server's (a new one
 * is made when the host name changed: the certificate must name the banner's host).
 * The SNI name a client asks for is accepted whatever it is and read back with
 * tls_sni().
 */
#ifndef MXB_CORE_TLS_H
#define MXB_CORE_TLS_H

#include <openssl/ssl.h>

/* cert_file/key_file: PEM files, or NULL/"" for the self-signed pair in data_dir.
 * Returns NULL with *err_r (malloc'd) on failure. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
			    const char *data_dir, const char *hostname, char **err_r);

/* Load an ECDSA (P-256) certificate alongside ctx's RSA one, as Postfix's
 * smtpd_tls_eccert_file and Dovecot's ssl_alt_cert: OpenSSL then signs with ECDSA for
 * the clients that offer it (every TLS 1.3 client, ECDHE-ECDSA suites in TLS 1.2) and
 * with RSA for the others.  eccert_file/eckey_file: PEM files, or NULL/"" for a
 * self-signed pair shaped like the RSA one in <data_dir>/tls/eccert.pem and eckey.pem
 * (made on first use, reused later).  0, or -1 with *err_r (malloc'd). */
int tls_add_ecdsa(SSL_CTX *ctx, const char *eccert_file, const char *eckey_file,
		  const char *data_dir, const char *hostname, char **err_r);

/* Make the self-signed pair if cert_path does not exist yet (exposed for tests). */
int tls_ensure_self_signed(const char *cert_path, const char *key_path,
			   const char *hostname, char **err_r);

/* What a role's TLS looks like from outside (docs/persona.md: TLS profile per role),
 * each measured with nmap ssl-enum-ciphers against the stock Debian 12 daemon:
 *   STRICT   TLS 1.2/1.3, forward-secret AEAD ciphers (the web server; the default
 *            of tls_server_ctx_new);
 *   POSTFIX  Postfix 3.7: TLS 1.0-1.3, tls_medium_cipherlist
 *            (aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH, anonymous suites included at
 *            security level 0), automatic DH groups, the client's cipher order;
 *   DOVECOT  Dovecot 2.3: TLS 1.2/1.3, its ssl_cipher_list default, DHE with the
 *            4096-bit RFC 3526 group of Debian's /usr/share/dovecot/dh.pem, the
 *            client's cipher order. */
enum tls_profile { TLS_PROFILE_STRICT, TLS_PROFILE_POSTFIX, TLS_PROFILE_DOVECOT };
/* A context of the given profile with base's certificate, key and chain (made once
 * per certificate load: the connection layer keeps one per profile).  NULL with
 * *err_r (malloc'd) on failure. */
SSL_CTX *tls_ctx_for_profile(SSL_CTX *base, enum tls_profile profile, char **err_r);

/* The server name the client sent with SNI, or NULL. */
const char *tls_sni(SSL *ssl);

/* The reason text of the last OpenSSL error on this thread ("unknown" if none);
 * clears the error queue. */
const char *tls_last_error(unsigned long err);

#endif
