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

/* Make the self-signed pair if cert_path does not exist yet (exposed for tests). */
int tls_ensure_self_signed(const char *cert_path, const char *key_path,
			   const char *hostname, char **err_r);

/* The server name the client sent with SNI, or NULL. */
const char *tls_sni(SSL *ssl);

/* The reason text of the last OpenSSL error on this thread ("unknown" if none);
 * clears the error queue. */
const char *tls_last_error(unsigned long err);

#endif
