/*
 * origdst: where a connection was going before the kernel diverted it to us.
 *
 * The guard's nftables rules (guard/nft.h) redirect or dnat a convicted attacker's
 * connections from the real server's ports to the honeypot's.  The connection
 * tracking entry keeps the original destination; SO_ORIGINAL_DST (IPv4) and
 * IP6T_SO_ORIGINAL_DST (IPv6) read it.  A connection that was not translated
 * reports its own local address (or no entry at all): not diverted.
 */
#ifndef MXB_CORE_ORIGDST_H
#define MXB_CORE_ORIGDST_H

#include <stddef.h>

/* 1 when fd was diverted (ip/port get the original destination, ip as text), 0 when
 * not, -1 when the socket has no address. */
int origdst_get(int fd, char *ip, size_t iplen, unsigned *port);

#endif
