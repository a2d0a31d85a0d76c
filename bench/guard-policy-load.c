/*
 * guard-policy-load: a load generator for mxbait's Dovecot auth-policy server, shaped
 * like Dovecot's http client: C keep-alive connections, one request in flight per
 * connection, POST /?command=allow|report with the X-API-Key header and a JSON body of
 * Dovecot's default attributes (login, pwhash, remote, device_id, protocol, session_id).
 *
 *   guard-policy-load HOST PORT KEY CONNS SECONDS RATE
 *
 * RATE > 0: open loop, requests are started on a schedule of RATE per second spread over
 * the connections (a request that cannot start on time because its connection is busy
 * starts as soon as it is free, and its latency counts from its scheduled time, so a
 * slow server shows as latency, not as a lower offered rate).  RATE = 0: closed loop,
 * as fast as the server answers.  Prints one line of JSON: requests, seconds, req/s,
 * latency p50/p90/p99/p999/max in microseconds, errors.  Sources rotate over 65,536
 * addresses of 198.51.100.0/24 and 203.0.113.0/24 style documentation prefixes so the
 * guard's windows work as under a real distributed attack.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 256

struct c {
	int fd;
	char in[4096];
	size_t len;
	int64_t started;  /* 0: idle */
};

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int dial(const char *host, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, host, &sa.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("connect");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: %s HOST PORT KEY CONNS SECONDS RATE\n", argv[0]);
		return 2;
	}
	const char *host = argv[1], *key = argv[3];
	int port = atoi(argv[2]), nc = atoi(argv[4]);
	double secs = atof(argv[5]), rate = atof(argv[6]);
	if (nc < 1 || nc > MAXC)
		nc = 1;
	struct c cs[MAXC];
	struct pollfd pf[MAXC];
	for (int i = 0; i < nc; i++) {
		cs[i].fd = dial(host, port);
		cs[i].len = 0;
		cs[i].started = 0;
	}
	size_t cap = (size_t)(rate > 0 ? rate * secs * 1.2 + 1000 : 10000000);
	int64_t *lat = malloc(cap * sizeof(*lat));
	size_t n = 0, errors = 0;
	uint64_t seq = 0;
	int64_t t0 = now_us(), end = t0 + (int64_t)(secs * 1e6);
	int64_t next = t0;           /* the next scheduled start (open loop) */
	int64_t interval = rate > 0 ? (int64_t)(1e6 / rate) : 0;
	int64_t *pending = malloc(cap * sizeof(*pending)); /* scheduled starts not yet sent */
	size_t ph = 0, pt = 0;
	for (;;) {
		int64_t t = now_us();
		if (t >= end)
			break;
		if (rate > 0)
			while (next <= t && pt < cap) {
				pending[pt++] = next;
				next += interval;
			}
		for (int i = 0; i < nc; i++) {
			if (cs[i].started)
				continue;
			int64_t sched;
			if (rate > 0) {
				if (ph == pt)
					break;
				sched = pending[ph++];
			} else {
				sched = t;
			}
			uint64_t s = seq++;
			char body[512], req[1024];
			int bl = snprintf(body, sizeof(body),
					  "{\"login\":\"user%llu@example.test\",\"pwhash\":\"%03llx\","
					  "\"remote\":\"%s.%llu.%llu\",\"device_id\":\"\","
					  "\"protocol\":\"imap\",\"session_id\":\"s%llu\"%s}",
					  (unsigned long long)(s % 5000), (unsigned long long)(s % 4096),
					  s & 1 ? "198.51" : "203.0", (unsigned long long)((s >> 1) % 256),
					  (unsigned long long)((s >> 9) % 256), (unsigned long long)s,
					  s % 2 ? ",\"success\":false,\"policy_reject\":false" : "");
			int rl = snprintf(req, sizeof(req),
					  "POST /?command=%s HTTP/1.1\r\nHost: %s\r\nX-API-Key: %s\r\n"
					  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
					  s % 2 ? "report" : "allow", host, key, bl, body);
			if (send(cs[i].fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
				errors++;
				close(cs[i].fd);
				cs[i].fd = dial(host, port);
				continue;
			}
			cs[i].started = sched;
		}
		for (int i = 0; i < nc; i++) {
			pf[i].fd = cs[i].fd;
			pf[i].events = POLLIN;
		}
		int wait_ms = 1;
		if (poll(pf, (nfds_t)nc, wait_ms) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < nc; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = recv(cs[i].fd, cs[i].in + cs[i].len, sizeof(cs[i].in) - cs[i].len, 0);
			if (r <= 0) {
				errors++;
				close(cs[i].fd);
				cs[i].fd = dial(host, port);
				cs[i].len = 0;
				cs[i].started = 0;
				continue;
			}
			cs[i].len += (size_t)r;
			/* one whole response: headers, then Content-Length bytes */
			char *hend = memmem(cs[i].in, cs[i].len, "\r\n\r\n", 4);
			if (!hend)
				continue;
			char *clp = memmem(cs[i].in, (size_t)(hend - cs[i].in), "Content-Length: ", 16);
			size_t cl = clp ? (size_t)atoi(clp + 16) : 0;
			size_t total = (size_t)(hend - cs[i].in) + 4 + cl;
			if (cs[i].len < total)
				continue;
			if (memcmp(cs[i].in, "HTTP/1.1 200", 12))
				errors++;
			if (n < cap)
				lat[n++] = now_us() - cs[i].started;
			memmove(cs[i].in, cs[i].in + total, cs[i].len - total);
			cs[i].len -= total;
			cs[i].started = 0;
		}
	}
	double took = (now_us() - t0) / 1e6;
	qsort(lat, n, sizeof(*lat), cmp64);
#define P(q) (n ? lat[(size_t)((double)(n - 1) * (q))] : 0)
	printf("{\"requests\":%zu,\"seconds\":%.2f,\"rate\":%.0f,\"offered\":%.0f,\"p50_us\":%lld,"
	       "\"p90_us\":%lld,\"p99_us\":%lld,\"p999_us\":%lld,\"max_us\":%lld,\"errors\":%zu,"
	       "\"unsent\":%zu}\n",
	       n, took, n / took, rate, (long long)P(0.5), (long long)P(0.9), (long long)P(0.99),
	       (long long)P(0.999), (long long)(n ? lat[n - 1] : 0), errors, pt - ph);
	return 0;
}
