/*
 * pwhash: Dovecot's auth-policy password hash (see pwhash.h).
 */
#include "guard/pwhash.h"

#include <string.h>

#include <openssl/evp.h>

int pwhash_dovecot(const char *mech, const char *nonce, unsigned truncate_bits,
		   const char *username, const char *password, char *out, size_t outlen)
{
	const EVP_MD *md = EVP_get_digestbyname(mech);
	if (!md || outlen < 129)
		return -1;
	unsigned char dig[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -1;
	int ok = EVP_DigestInit_ex(ctx, md, NULL) &&
		 EVP_DigestUpdate(ctx, nonce, strlen(nonce)) &&
		 EVP_DigestUpdate(ctx, username, strlen(username) + 1) && /* with its NUL */
		 EVP_DigestUpdate(ctx, password, strlen(password)) &&
		 EVP_DigestFinal_ex(ctx, dig, &n);
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	size_t len = n;
	if (truncate_bits > 0 && truncate_bits <= n * 8) {
		/* keep the first truncate_bits bits, as a right-aligned number */
		len = (truncate_bits + 7) / 8;
		unsigned rem = truncate_bits % 8;
		if (rem) {
			for (size_t i = len - 1; i > 0; i--)
				dig[i] = (unsigned char)((dig[i] >> (8 - rem)) |
							 (dig[i - 1] << rem));
			dig[0] = (unsigned char)(dig[0] >> (8 - rem));
		}
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[dig[i] >> 4];
		out[2 * i + 1] = hex[dig[i] & 15];
	}
	out[2 * len] = '\0';
	return 0;
}
