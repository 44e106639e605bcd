// SPDX-License-Identifier: GPL-2.0-only
/* sbload rr: request/response round-trip latency, with percentiles. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbload/sbload.h"

struct rr_echo {
	pthread_t th;
	int fd;
	uint64_t served;
};

/* Server side: read exactly --size bytes, send them back, until the client closes. */
static void *rr_echo_main(void *arg)
{
	struct rr_echo *e = arg;
	char *buf = xmalloc(O.size);

	for (;;) {
		ssize_t k = read_full(e->fd, buf, O.size);

		if (k < 0)
			fatal("rr: server read: %s", strerror(errno));
		if (k == 0)
			break;
		if ((size_t)k < O.size)
			fatal("rr: client closed in the middle of a request");
		if (write_full(e->fd, buf, O.size) < 0)
			fatal("rr: server write: %s", strerror(errno));
		e->served++;
	}
	close(e->fd);
	free(buf);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in microseconds. */
static double pct_us(const uint64_t *v, size_t n, unsigned per_mille_x10)
{
	size_t rank = (size_t)(((unsigned __int128)n * per_mille_x10 + 9999) / 10000);

	return (double)v[rank ? rank - 1 : 0] / 1e3;
}

/* One timed round trip: --size bytes out, exactly --size bytes back. */
static uint64_t rr_once(int fd, char *buf)
{
	int64_t t = now_ns();
	ssize_t k;

	if (write_full(fd, buf, O.size) < 0)
		fatal("rr: client write: %s", strerror(errno));
	k = read_full(fd, buf, O.size);
	if (k < 0)
		fatal("rr: client read: %s", strerror(errno));
	if ((size_t)k < O.size)
		fatal("rr: server closed the connection");
	return (uint64_t)(now_ns() - t);
}

int mode_rr(void)
{
	struct endpoints ep;
	struct rr_echo echo = { .fd = -1 };
	uint64_t *rtt = NULL, sum = 0;
	size_t n = 0, cap = 0;
	int64_t t0 = 0, t1 = 0;
	int fd = -1;

	setup_endpoints(&ep, 16);
	if (O.role != ROLE_SERVER) {
		fd = connect_blocking(&ep.peer, 0);
		set_nodelay(fd);
	}
	if (O.role != ROLE_CLIENT) {
		echo.fd = accept_blocking(ep.lfd);
		set_nodelay(echo.fd);
		t0 = now_ns();
		pthread_check(pthread_create(&echo.th, NULL, rr_echo_main, &echo), "pthread_create");
	}
	if (O.role != ROLE_SERVER) {
		char *buf = xmalloc(O.size);
		int64_t deadline;

		memset(buf, 0x42, O.size);
		cap = O.count ? O.count : 65536;
		rtt = xmalloc(cap * sizeof(*rtt));
		/* Warm-up round trips (caches, page faults, TCP state) are not recorded. */
		for (uint64_t i = 0; i < O.warmup; i++)
			rr_once(fd, buf);
		t0 = now_ns();
		deadline = t0 + (int64_t)(O.seconds * NSEC);
		do {
			if (n == cap) {
				cap *= 2;
				rtt = realloc(rtt, cap * sizeof(*rtt));
				if (!rtt)
					fatal("out of memory for %zu samples", cap);
			}
			rtt[n] = rr_once(fd, buf);
			sum += rtt[n++];
		} while ((!O.count || n < O.count) && now_ns() < deadline);
		t1 = now_ns();
		close(fd); /* the echo thread sees EOF and ends */
		free(buf);
	}
	if (O.role != ROLE_CLIENT) {
		pthread_join(echo.th, NULL);
		if (O.role == ROLE_SERVER)
			t1 = now_ns();
	}
	teardown_endpoints(&ep);

	json_begin();
	printf(",\"size\":%zu,\"seconds\":%.6f", O.size, (double)(t1 - t0) / 1e9);
	if (O.role == ROLE_SERVER) {
		printf(",\"roundTrips\":%llu", (unsigned long long)echo.served);
	} else {
		if (!n)
			fatal("rr: no round trips measured");
		qsort(rtt, n, sizeof(*rtt), cmp_u64);
		printf(",\"warmup\":%llu,\"roundTrips\":%zu,\"p50Us\":%.3f,\"p90Us\":%.3f,\"p99Us\":%.3f,\"p999Us\":%.3f,"
		       "\"meanUs\":%.3f,\"minUs\":%.3f,\"maxUs\":%.3f",
		       (unsigned long long)O.warmup, n, pct_us(rtt, n, 5000), pct_us(rtt, n, 9000),
		       pct_us(rtt, n, 9900), pct_us(rtt, n, 9990), (double)sum / (double)n / 1e3,
		       (double)rtt[0] / 1e3, (double)rtt[n - 1] / 1e3);
	}
	json_end();
	free(rtt);
	return 0;
}
