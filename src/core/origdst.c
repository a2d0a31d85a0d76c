/*
 * origdst: SO_ORIGINAL_DST of an accepted socket (see origdst.h).
 */
#include "core/origdst.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h> clash with the C
 * library's headers; both options are 80 at their levels. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#define IP6T_SO_ORIGINAL_DST_ 80

int origdst_get(int fd, char *ip, size_t iplen, unsigned *port)
{
	struct sockaddr_storage local, orig;
	socklen_t ll = sizeof(local), ol = sizeof(orig);
	if (getsockname(fd, (struct sockaddr *)&local, &ll) != 0)
		return -1;
	memset(&orig, 0, sizeof(orig));
	if (local.ss_family == AF_INET) {
		if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &ol) != 0)
			return 0; /* no conntrack entry: not translated */
		struct sockaddr_in *l = (struct sockaddr_in *)&local, *o = (struct sockaddr_in *)&orig;
		if (o->sin_family != AF_INET ||
		    (o->sin_port == l->sin_port && o->sin_addr.s_addr == l->sin_addr.s_addr))
			return 0;
		if (!inet_ntop(AF_INET, &o->sin_addr, ip, (socklen_t)iplen))
			return 0;
		*port = ntohs(o->sin_port);
		return 1;
	}
	if (local.ss_family == AF_INET6) {
		if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST_, &orig, &ol) != 0)
			return 0;
		struct sockaddr_in6 *l = (struct sockaddr_in6 *)&local, *o = (struct sockaddr_in6 *)&orig;
		if (o->sin6_family != AF_INET6 ||
		    (o->sin6_port == l->sin6_port && !memcmp(&o->sin6_addr, &l->sin6_addr, 16)))
			return 0;
		if (!inet_ntop(AF_INET6, &o->sin6_addr, ip, (socklen_t)iplen))
			return 0;
		*port = ntohs(o->sin6_port);
		return 1;
	}
	return -1;
}
