// SPDX-License-Identifier: GPL-2.0-only
/*
 * repair - TCP connections made with TCP_REPAIR (no handshake), for the
 * "never cross-wire" tests of sockbypass (test/nat.test.ts).
 *
 *   repair pair [--seq-a X] [--seq-b Y] [--bytes N]
 *       Both ends of a loopback connection are created in repair mode, with
 *       the sequence numbers given: a sends from X and expects Y, b the
 *       reverse. Nothing ever answered a SYN for them.
 *   repair restore [--bytes N]
 *       A real connection (handshake, accept) exchanges N bytes each way;
 *       then its client end is checkpointed and restored the way CRIU does
 *       it: TCP_REPAIR on, its sequence numbers read, closed silently, and a
 *       new socket repaired into the same tuple with the same numbers. The
 *       restored end and the accepted end then exchange N bytes each way.
 *
 * Every byte is checked against a per-direction pattern. Output: one JSON
 * object on stdout; exit 0 when every byte arrived, 1 if not, 2 on error.
 * Needs CAP_NET_ADMIN (TCP_REPAIR).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef TCP_REPAIR_ON
#define TCP_REPAIR_ON 1
#define TCP_REPAIR_OFF 0
#endif

static __attribute__((noreturn, format(printf, 1, 2))) void fatal(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("{\"error\":\"%s\"}\n", msg);
	fprintf(stderr, "repair: %s\n", msg);
	exit(2);
}

static void setopt(int fd, int level, int name, int value, const char *what)
{
	if (setsockopt(fd, level, name, &value, sizeof(value)) < 0)
		fatal("%s: %s", what, strerror(errno));
}

/* The byte at offset `off` of the stream a direction `dir` carries. */
static uint8_t pattern(unsigned dir, uint64_t off)
{
	uint64_t x = (off / 8 + 1) * 0x9e3779b97f4a7c15ULL ^ (dir + 1) * 0xbf58476d1ce4e5b9ULL;

	x ^= x >> 31;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 29;
	return (uint8_t)(x >> (8 * (off % 8)));
}

struct writer {
	int fd;
	unsigned dir;
	uint64_t bytes;
	int err;
};

static void *write_all(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[16384];
	uint64_t off = 0;

	while (off < w->bytes) {
		size_t n = w->bytes - off < sizeof(buf) ? (size_t)(w->bytes - off) : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(w->dir, off + i);
		ssize_t r = send(w->fd, buf, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			w->err = errno;
			return NULL;
		}
		off += (uint64_t)r;
	}
	return NULL;
}

struct reader {
	int fd;
	unsigned dir;
	uint64_t got;
	uint64_t bad; /* bytes that differ from the pattern */
	bool eof;
};

/*
 * Send `bytes` each way between x and y (dir 0: x→y, dir 1: y→x) and check
 * what arrives. Each end half-closes after its last byte; reading stops at
 * `bytes` (not EOF) so that the connection stays open for a later phase.
 */
static bool exchange(int x, int y, uint64_t bytes, unsigned phase, uint64_t *bad_out)
{
	struct writer wx = { x, 2 * phase, bytes, 0 }, wy = { y, 2 * phase + 1, bytes, 0 };
	struct reader rx = { y, 2 * phase, 0, 0, false }, ry = { x, 2 * phase + 1, 0, 0, false };
	struct reader *readers[2] = { &rx, &ry };
	pthread_t tx, ty;
	uint8_t buf[16384];

	if (pthread_create(&tx, NULL, write_all, &wx) || pthread_create(&ty, NULL, write_all, &wy))
		fatal("pthread_create failed");
	while ((rx.got < bytes && !rx.eof) || (ry.got < bytes && !ry.eof)) {
		struct pollfd p[2] = { { rx.fd, POLLIN, 0 }, { ry.fd, POLLIN, 0 } };

		if (poll(p, 2, 10000) <= 0)
			fatal("phase %u: nothing arrived for 10 s (got %llu and %llu of %llu)", phase,
			      (unsigned long long)rx.got, (unsigned long long)ry.got, (unsigned long long)bytes);
		for (int i = 0; i < 2; i++) {
			struct reader *r = readers[i];

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)) || r->got >= bytes || r->eof)
				continue;
			size_t want = bytes - r->got < sizeof(buf) ? (size_t)(bytes - r->got) : sizeof(buf);
			ssize_t n = recv(r->fd, buf, want, MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0)
				fatal("phase %u: recv: %s", phase, strerror(errno));
			if (n == 0) {
				r->eof = true;
				continue;
			}
			for (ssize_t j = 0; j < n; j++)
				r->bad += buf[j] != pattern(r->dir, r->got + (uint64_t)j);
			r->got += (uint64_t)n;
		}
	}
	pthread_join(tx, NULL);
	pthread_join(ty, NULL);
	if (wx.err || wy.err)
		fatal("phase %u: send: %s", phase, strerror(wx.err ? wx.err : wy.err));
	*bad_out += rx.bad + ry.bad;
	return rx.got == bytes && ry.got == bytes && rx.bad == 0 && ry.bad == 0;
}

static struct sockaddr_in loopback(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static uint16_t port_of(int fd, bool peer)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&a, &len) < 0)
		fatal("getsockname: %s", strerror(errno));
	return ntohs(a.sin_port);
}

static void set_queue_seq(int fd, int queue, uint32_t seq)
{
	setopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, "TCP_REPAIR_QUEUE");
	setopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)seq, "TCP_QUEUE_SEQ");
}

static uint32_t get_queue_seq(int fd, int queue)
{
	uint32_t seq;
	socklen_t len = sizeof(seq);

	setopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, queue, "TCP_REPAIR_QUEUE");
	if (getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &seq, &len) < 0)
		fatal("TCP_QUEUE_SEQ: %s", strerror(errno));
	return seq;
}

/* What a repaired socket needs besides its tuple: CRIU restores these too. */
struct repair_state {
	uint32_t snd, rcv;
	uint32_t mss;
	/* -1: no scaling. Set explicitly: a repaired socket otherwise keeps the
	 * rcv_wscale connect() chose and advertises scaled windows to a peer that
	 * reads them unscaled. */
	int snd_wscale, rcv_wscale;
	bool timestamps;
	uint32_t ts_val;
	struct tcp_repair_window window;
};

/* A socket repaired into local→remote with the given state; no packet is sent. */
static int repaired(struct sockaddr_in local, struct sockaddr_in remote, const struct repair_state *st)
{
	struct tcp_repair_opt opts[3];
	int fd = socket(AF_INET, SOCK_STREAM, 0), n = 0;

	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	setopt(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON, "TCP_REPAIR (needs CAP_NET_ADMIN)");
	setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0)
		fatal("bind: %s", strerror(errno));
	set_queue_seq(fd, TCP_SEND_QUEUE, st->snd);
	set_queue_seq(fd, TCP_RECV_QUEUE, st->rcv);
	/* In repair mode connect() sends nothing: the socket is established at once. */
	if (connect(fd, (struct sockaddr *)&remote, sizeof(remote)) < 0)
		fatal("repair connect: %s", strerror(errno));
	opts[n++] = (struct tcp_repair_opt){ TCPOPT_MAXSEG, st->mss };
	if (st->snd_wscale >= 0)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_WINDOW, (uint32_t)st->snd_wscale | (uint32_t)st->rcv_wscale << 16 };
	if (st->timestamps)
		opts[n++] = (struct tcp_repair_opt){ TCPOPT_TIMESTAMP, 0 };
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, (socklen_t)(n * sizeof(opts[0]))) < 0)
		fatal("TCP_REPAIR_OPTIONS: %s", strerror(errno));
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &st->window, sizeof(st->window)) < 0)
		fatal("TCP_REPAIR_WINDOW: %s", strerror(errno));
	if (st->timestamps)
		setopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, (int)st->ts_val, "TCP_TIMESTAMP");
	return fd;
}

static void repair_off(int fd)
{
	setopt(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF, "TCP_REPAIR off");
}

/* A free loopback port: bind to 0 and give it back (SO_REUSEADDR lets the repaired socket take it). */
static uint16_t free_port(void)
{
	struct sockaddr_in a = loopback(0);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		fatal("bind 127.0.0.1:0: %s", strerror(errno));
	port = port_of(fd, false);
	close(fd);
	return port;
}

static int run_pair(uint32_t seq_a, uint32_t seq_b, uint64_t bytes)
{
	uint16_t pa = free_port(), pb = free_port();
	uint64_t bad = 0;
	int a, b;
	bool ok;

	while (pb == pa)
		pb = free_port();
	struct repair_state sa = { .snd = seq_a, .rcv = seq_b, .mss = 32768, .snd_wscale = 7, .rcv_wscale = 7,
				   .window = { .snd_wl1 = seq_b, .snd_wnd = 262144, .max_window = 262144,
					       .rcv_wnd = 262144, .rcv_wup = seq_b } };
	struct repair_state sb = { .snd = seq_b, .rcv = seq_a, .mss = 32768, .snd_wscale = 7, .rcv_wscale = 7,
				   .window = { .snd_wl1 = seq_a, .snd_wnd = 262144, .max_window = 262144,
					       .rcv_wnd = 262144, .rcv_wup = seq_a } };

	a = repaired(loopback(pa), loopback(pb), &sa);
	b = repaired(loopback(pb), loopback(pa), &sb);
	repair_off(a);
	repair_off(b);
	ok = exchange(a, b, bytes, 0, &bad);
	printf("{\"mode\":\"pair\",\"portA\":%u,\"portB\":%u,\"seqA\":%u,\"seqB\":%u,\"bytes\":%llu,\"badBytes\":%llu,\"ok\":%s}\n",
	       pa, pb, seq_a, seq_b, (unsigned long long)bytes, (unsigned long long)bad, ok ? "true" : "false");
	close(a);
	close(b);
	return ok ? 0 : 1;
}

static int run_restore(uint64_t bytes)
{
	struct sockaddr_in any = loopback(0), local, remote;
	socklen_t len = sizeof(any);
	int l = socket(AF_INET, SOCK_STREAM, 0), c, s, restored;
	struct repair_state st = { 0 };
	struct tcp_info info;
	uint64_t bad = 0;
	bool before, after;

	if (l < 0 || bind(l, (struct sockaddr *)&any, sizeof(any)) < 0 || listen(l, 4) < 0)
		fatal("listen: %s", strerror(errno));
	if (getsockname(l, (struct sockaddr *)&remote, &len) < 0)
		fatal("getsockname: %s", strerror(errno));
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&remote, sizeof(remote)) < 0)
		fatal("connect: %s", strerror(errno));
	s = accept(l, NULL, NULL);
	if (s < 0)
		fatal("accept: %s", strerror(errno));
	before = exchange(c, s, bytes, 0, &bad);

	/* Checkpoint the client end: its tuple and sequence numbers, then a silent close. */
	len = sizeof(local);
	if (getsockname(c, (struct sockaddr *)&local, &len) < 0)
		fatal("getsockname: %s", strerror(errno));
	setopt(c, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON, "TCP_REPAIR (needs CAP_NET_ADMIN)");
	st.snd = get_queue_seq(c, TCP_SEND_QUEUE);
	st.rcv = get_queue_seq(c, TCP_RECV_QUEUE);
	len = sizeof(info);
	if (getsockopt(c, IPPROTO_TCP, TCP_INFO, &info, &len) < 0)
		fatal("TCP_INFO: %s", strerror(errno));
	st.snd_wscale = info.tcpi_options & TCPI_OPT_WSCALE ? info.tcpi_snd_wscale : -1;
	st.rcv_wscale = info.tcpi_rcv_wscale;
	st.timestamps = info.tcpi_options & TCPI_OPT_TIMESTAMPS;
	st.mss = info.tcpi_snd_mss;
	len = sizeof(st.ts_val);
	if (getsockopt(c, IPPROTO_TCP, TCP_TIMESTAMP, &st.ts_val, &len) < 0)
		fatal("TCP_TIMESTAMP: %s", strerror(errno));
	len = sizeof(st.window);
	if (getsockopt(c, IPPROTO_TCP, TCP_REPAIR_WINDOW, &st.window, &len) < 0)
		fatal("TCP_REPAIR_WINDOW: %s", strerror(errno));
	close(c);

	restored = repaired(local, remote, &st);
	repair_off(restored);
	after = exchange(restored, s, bytes, 1, &bad);
	printf("{\"mode\":\"restore\",\"clientPort\":%u,\"serverPort\":%u,\"snd\":%u,\"rcv\":%u,\"bytes\":%llu,"
	       "\"badBytes\":%llu,\"okBefore\":%s,\"okAfter\":%s,\"ok\":%s}\n",
	       ntohs(local.sin_port), ntohs(remote.sin_port), st.snd, st.rcv, (unsigned long long)bytes,
	       (unsigned long long)bad, before ? "true" : "false", after ? "true" : "false",
	       before && after ? "true" : "false");
	close(restored);
	close(s);
	close(l);
	return before && after ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seq-a", required_argument, NULL, 'a' },
		{ "seq-b", required_argument, NULL, 'b' },
		{ "bytes", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t seq_a = 0x12345678, seq_b = 0x9abcdef0;
	uint64_t bytes = 1 << 20;
	const char *mode;
	int o;

	if (argc < 2)
		fatal("usage: repair pair [--seq-a X] [--seq-b Y] [--bytes N] | repair restore [--bytes N]");
	mode = argv[1];
	optind = 2;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'a': seq_a = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'b': seq_b = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': bytes = strtoull(optarg, NULL, 0); break;
		default: fatal("unknown option");
		}
	}
	if (!strcmp(mode, "pair"))
		return run_pair(seq_a, seq_b, bytes);
	if (!strcmp(mode, "restore"))
		return run_restore(bytes);
	fatal("unknown mode '%s'", mode);
}
