// SPDX-License-Identifier: GPL-2.0
/*
 * slowreader - a fast writer against a slow reader over one loopback TCP
 * connection, measuring how much data piles up in the kernel meanwhile.
 *
 * The server sets SO_RCVBUF before listen (so the accepted socket has it) and
 * reads --read-bytes every --interval-ms; the client writes --size messages as
 * fast as the kernel accepts them for --seconds. A sampler thread records, every
 * few milliseconds:
 *   - in flight: bytes the writer got accepted minus bytes the reader read --
 *     everything queued anywhere in the kernel for this connection (the
 *     writer's send queue, the TCP receive queue, a redirected queue);
 *   - FIONREAD of the receiver and SIOCOUTQ of the sender;
 *   - the host's TCP memory, /proc/net/sockstat "TCP: ... mem N" (pages).
 * When the writer stops, it shuts down its side; the reader then drains at full
 * speed and checks every byte (a counter pattern), so reordering or loss
 * between two paths is caught.
 *
 * A safety cap stops the writer once --cap bytes are in flight (an unbounded
 * queue would otherwise eat the host's memory); hitting it is reported.
 *
 * usage: slowreader [--family tcp4|tcp6] [--rcvbuf B] [--sndbuf B] [--size B]
 *                   [--read-bytes B] [--interval-ms N] [--seconds S] [--cap B]
 *                   [--sample-ms N] [--burst-ms N --pause-ms N]
 * With --burst-ms/--pause-ms the writer writes for N ms, then pauses, and so
 * on: the reader catches up during the pauses, so a sender that fell back to
 * TCP gets to return to the redirect, and byte order across that switch is
 * checked too.
 * Output: one JSON object. Exit 0 ran and verified, 1 data mismatch or short,
 * 2 setup error, 3 watchdog.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common.h"

#define PATTERN_KEY 0 /* the one stream: the shared pattern with key 0 */
#define READ_CHUNK (4 * MiB)

static struct {
	int family;
	long rcvbuf, sndbuf, size, read_bytes, interval_ms, sample_ms, burst_ms, pause_ms;
	double seconds;
	long long cap;
} O = { .family = AF_INET, .rcvbuf = 256 * 1024, .size = 64 * 1024, .read_bytes = 16 * 1024,
	.interval_ms = 5, .sample_ms = 2, .seconds = 3, .cap = 512LL * 1024 * 1024 };

static atomic_llong sent, nread;
static bool intact = true; /* of what the reader (main thread) read */
static long long first_bad = -1;
static long pauses;
static atomic_bool writing = true, sampling = true, capped;
static int cfd = -1, sfd = -1;

static struct {
	long long peak_inflight, peak_fionread, peak_outq, tcp_mem_base, tcp_mem_peak, samples;
	double peak_inflight_at;
} S;

static double now_s(void)
{
	return (double)now_ns() / 1e9;
}

/* Host TCP memory in pages: "TCP: inuse 5 orphan 0 tw 0 alloc 7 mem 3". */
static long long tcp_mem_pages(void)
{
	char buf[1024];
	FILE *f = fopen("/proc/net/sockstat", "r");
	long long v = -1;

	if (!f)
		return -1;
	while (fgets(buf, sizeof(buf), f)) {
		char *m;

		if (!strncmp(buf, "TCP:", 4) && (m = strstr(buf, " mem ")))
			v = atoll(m + 5);
	}
	fclose(f);
	return v;
}

/* Checks k bytes just read against the stream; remembers the first bad offset. */
static void check_read(const uint8_t *buf, ssize_t k)
{
	size_t good;

	if (!intact)
		return;
	good = pattern_match(PATTERN_KEY, (uint64_t)nread, buf, (size_t)k);
	if (good < (size_t)k) {
		intact = false;
		first_bad = nread + (long long)good;
	}
}

static void *writer(void *arg)
{
	uint8_t *buf = xmalloc((size_t)O.size);
	double end = now_s() + O.seconds, burst_end = now_s() + (double)O.burst_ms / 1e3;
	uint64_t off = 0;

	(void)arg;
	while (now_s() < end) {
		ssize_t k;

		if (sent - nread > O.cap) {
			capped = true;
			break;
		}
		if (O.burst_ms > 0 && now_s() > burst_end) {
			sleep_ms(O.pause_ms);
			burst_end = now_s() + (double)O.burst_ms / 1e3;
			pauses++;
		}
		pattern_fill(PATTERN_KEY, off, buf, (size_t)O.size);
		/* Blocking send with a short timeout, so the deadline is honoured. */
		k = send(cfd, buf, (size_t)O.size, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			fatal("send: %s", strerror(errno));
		}
		/* A partial send: the rest of this message is regenerated from `off`. */
		off += (uint64_t)k;
		sent = (long long)off;
	}
	writing = false;
	shutdown(cfd, SHUT_WR);
	free(buf);
	return NULL;
}

static void *sampler(void *arg)
{
	double t0 = now_s();

	(void)arg;
	S.tcp_mem_base = S.tcp_mem_peak = tcp_mem_pages();
	while (sampling) {
		long long in = sent - nread, m = tcp_mem_pages();
		int q = 0, oq = 0;

		ioctl(sfd, FIONREAD, &q);
		ioctl(cfd, SIOCOUTQ, &oq);
		if (in > S.peak_inflight) {
			S.peak_inflight = in;
			S.peak_inflight_at = now_s() - t0;
		}
		if (q > S.peak_fionread)
			S.peak_fionread = q;
		if (oq > S.peak_outq)
			S.peak_outq = oq;
		if (m > S.tcp_mem_peak)
			S.tcp_mem_peak = m;
		S.samples++;
		sleep_ms(O.sample_ms);
	}
	return NULL;
}

static const char USAGE[] =
	"usage: slowreader [--family tcp4|tcp6] [--rcvbuf B] [--sndbuf B] [--size B]\n"
	"                  [--read-bytes B] [--interval-ms N] [--seconds S] [--cap B]\n"
	"                  [--sample-ms N] [--burst-ms N --pause-ms N]\n"
	"B accepts K, M, G suffixes (powers of 1024); 0 for --rcvbuf/--sndbuf keeps the default.\n";

static long parse_long(const char *opt, const char *v, uint64_t min, uint64_t max)
{
	return (long)parse_u64(opt, v, min, max);
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage_error("%s needs a value", a);
		i++;
		if (!strcmp(a, "--family")) {
			if (strcmp(v, "tcp4") && strcmp(v, "tcp6"))
				usage_error("--family wants tcp4 or tcp6");
			O.family = !strcmp(v, "tcp6") ? AF_INET6 : AF_INET;
		} else if (!strcmp(a, "--rcvbuf")) {
			O.rcvbuf = parse_long(a, v, 0, INT32_MAX);
		} else if (!strcmp(a, "--sndbuf")) {
			O.sndbuf = parse_long(a, v, 0, INT32_MAX);
		} else if (!strcmp(a, "--size")) {
			O.size = parse_long(a, v, 1, 64 * MiB);
		} else if (!strcmp(a, "--read-bytes")) {
			O.read_bytes = parse_long(a, v, 1, READ_CHUNK);
		} else if (!strcmp(a, "--interval-ms")) {
			O.interval_ms = parse_long(a, v, 0, 3600000);
		} else if (!strcmp(a, "--sample-ms")) {
			O.sample_ms = parse_long(a, v, 1, 3600000);
		} else if (!strcmp(a, "--seconds")) {
			O.seconds = parse_secs(a, v);
		} else if (!strcmp(a, "--burst-ms")) {
			O.burst_ms = parse_long(a, v, 0, 3600000);
		} else if (!strcmp(a, "--pause-ms")) {
			O.pause_ms = parse_long(a, v, 0, 3600000);
		} else if (!strcmp(a, "--cap")) {
			O.cap = (long long)parse_u64(a, v, 1, INT64_MAX);
		} else {
			usage_error("unknown option %s", a);
		}
	}
}

int main(int argc, char **argv)
{
	struct addr ss;
	int lfd, eff_rcv = 0, eff_snd = 0;
	socklen_t il = sizeof(int);
	pthread_t wt, st;
	uint8_t *rbuf;
	long long slow_read = 0;
	double t0, t_slow_end, t_end;

	tool_init("slowreader", USAGE);
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	watchdog_arm(O.seconds * 4 + 60);

	addr_loopback(&ss, O.family, 0);
	lfd = socket(O.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		fatal("socket: %s", strerror(errno));
	setsockopt_int(lfd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	/* Set on the listener before listen(): the accepted socket inherits it. */
	if (O.rcvbuf > 0)
		setsockopt_int(lfd, SOL_SOCKET, SO_RCVBUF, (int)O.rcvbuf, "SO_RCVBUF");
	if (bind(lfd, (struct sockaddr *)&ss.ss, ss.len) < 0 || listen(lfd, 4) < 0)
		fatal("listen: %s", strerror(errno));
	addr_local(lfd, &ss);
	cfd = socket(O.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0)
		fatal("socket: %s", strerror(errno));
	if (O.sndbuf > 0)
		setsockopt_int(cfd, SOL_SOCKET, SO_SNDBUF, (int)O.sndbuf, "SO_SNDBUF");
	/* The send timeout only lets the writer look at its deadline while blocked. */
	struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
	setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(cfd, (struct sockaddr *)&ss.ss, ss.len) < 0)
		fatal("connect: %s", strerror(errno));
	sfd = accept(lfd, NULL, NULL);
	if (sfd < 0)
		fatal("accept: %s", strerror(errno));
	getsockopt(sfd, SOL_SOCKET, SO_RCVBUF, &eff_rcv, &il);
	il = sizeof(int);
	getsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &eff_snd, &il);

	rbuf = xmalloc(READ_CHUNK);
	t0 = now_s();
	pthread_check(pthread_create(&st, NULL, sampler, NULL), "pthread_create");
	pthread_check(pthread_create(&wt, NULL, writer, NULL), "pthread_create");

	/* Slow phase: --read-bytes every --interval-ms while the writer runs. */
	for (;;) {
		long want = O.read_bytes;

		while (want > 0) {
			ssize_t k = recv(sfd, rbuf, (size_t)want, MSG_DONTWAIT);

			if (k <= 0)
				break;
			check_read(rbuf, k);
			nread += k;
			want -= k;
		}
		if (!writing)
			break;
		sleep_ms(O.interval_ms);
	}
	slow_read = nread;
	t_slow_end = now_s();
	sampling = false;
	pthread_join(st, NULL);
	/* Drain at full speed and check every byte. */
	for (;;) {
		struct pollfd p = { .fd = sfd, .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, 5000) <= 0)
			break;
		k = recv(sfd, rbuf, READ_CHUNK, MSG_DONTWAIT);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k <= 0)
			break;
		check_read(rbuf, k);
		nread += k;
	}
	pthread_join(wt, NULL);
	t_end = now_s();

	long page = sysconf(_SC_PAGESIZE);
	printf("{\"family\":\"%s\",\"rcvbufRequested\":%ld,\"rcvbufEffective\":%d,\"sndbufEffective\":%d,\"size\":%ld,"
	       "\"readBytes\":%ld,\"intervalMs\":%ld,\"seconds\":%.3f,\"bytesSent\":%lld,\"bytesRead\":%lld,"
	       "\"bytesReadSlowly\":%lld,\"intact\":%s,\"firstBadOffset\":%lld,\"capped\":%s,\"cap\":%lld,"
	       "\"peakInFlight\":%lld,\"peakInFlightAtS\":%.3f,\"peakFionread\":%lld,\"peakSenderOutq\":%lld,"
	       "\"tcpMemBasePages\":%lld,\"tcpMemPeakPages\":%lld,\"tcpMemGrowthBytes\":%lld,\"pageSize\":%ld,"
	       "\"samples\":%lld,\"drainSeconds\":%.3f,\"writerPauses\":%ld}\n",
	       O.family == AF_INET ? "tcp4" : "tcp6", O.rcvbuf, eff_rcv, eff_snd, O.size, O.read_bytes, O.interval_ms,
	       t_slow_end - t0, (long long)sent, (long long)nread, slow_read, intact ? "true" : "false", first_bad,
	       capped ? "true" : "false", O.cap, S.peak_inflight, S.peak_inflight_at, S.peak_fionread, S.peak_outq,
	       S.tcp_mem_base, S.tcp_mem_peak, (S.tcp_mem_peak - S.tcp_mem_base) * page, page, S.samples,
	       t_end - t_slow_end, pauses);
	close(cfd);
	close(sfd);
	close(lfd);
	return intact && nread == sent ? 0 : 1;
}
