// SPDX-License-Identifier: GPL-2.0
/*
 * endings - how TCP connections end and wake their readers, scenario by
 * scenario, over loopback. The trust suite runs it inside a cgroup with and
 * without sockbypass loaded and compares: every scenario should behave the
 * same way on both paths.
 *
 *   shutdown_eof      shutdown(SHUT_WR) after 4 MiB: all bytes, then EOF; and the
 *                     half-closed socket still receives 1 MiB and its EOF
 *   rst               SO_LINGER{1,0} close: the peer's read sees ECONNRESET or EOF
 *   rst_unread        the same while the peer has unread data: what it reads
 *   close_unread      close() with unread received data (TCP sends RST)
 *   epoll_lt / epoll_et / epoll_eof / epoll_data_eof / poll_data / poll_eof /
 *   blocking_read     a waiting reader wakes for data and for EOF
 *   fionread          FIONREAD/SIOCINQ and MSG_PEEK report queued bytes
 *   reuse_rst         a new connection on the 4-tuple of one that was reset
 *                     while its owner still holds the socket open
 *   reuse_tw          the same after a graceful close (TIME_WAIT reuse, 1 s)
 *
 * usage: endings [--family tcp4|tcp6] [--only NAME,NAME..] [--list]
 * Output: one JSON object on stdout: {"family":..,"scenarios":[{"name":..,"ok":..,..}],
 * "failed":N}, or {"error":..}. Exit 0 when it ran (whatever the results), 2 on a
 * setup error, 3 when the watchdog fired.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common.h"

#define WAIT_MS 3000 /* bound on any single wait for data or an ending */

static int family = AF_INET;

/* ------------------------------------------------------------ output */

static char out[64 * KiB];
static size_t outlen;

__attribute__((format(printf, 1, 2))) static void emit(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out + outlen, sizeof(out) - outlen, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(out) - outlen)
		outlen += (size_t)n;
}

static const char *errname(int e)
{
	switch (e) {
	case 0: return "none";
	case ECONNRESET: return "ECONNRESET";
	case EPIPE: return "EPIPE";
	case EAGAIN: return "EAGAIN";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ENOTCONN: return "ENOTCONN";
	case ECONNABORTED: return "ECONNABORTED";
	default: return strerror(e);
	}
}

static int64_t now_ms(void)
{
	return now_ns() / 1000000;
}

/* ---------------------------------------------------------- sockets */

static int port_of(int fd)
{
	struct addr a;

	addr_local(fd, &a);
	return addr_port(&a);
}

static int listener(void)
{
	struct addr a;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	addr_loopback(&a, family, 0);
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) < 0 || listen(fd, 64) < 0)
		fatal("listen: %s", strerror(errno));
	return fd;
}

/* Connect a client (bound to `bind_port` if non-zero, with SO_REUSEADDR) to the
 * listener and accept it. Returns 0, or the connect/bind errno. */
static int pair_on(int lfd, int bind_port, int *client, int *server)
{
	struct addr to;
	int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), s, err;

	if (c < 0)
		fatal("socket: %s", strerror(errno));
	addr_loopback(&to, family, port_of(lfd));
	setsockopt_int(c, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	if (bind_port >= 0) {
		struct addr b;

		addr_loopback(&b, family, bind_port);
		if (bind(c, (struct sockaddr *)&b.ss, b.len) < 0) {
			err = errno;
			close(c);
			return err;
		}
	}
	if (connect(c, (struct sockaddr *)&to.ss, to.len) < 0) {
		err = errno;
		close(c);
		return err;
	}
	s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0)
		fatal("accept: %s", strerror(errno));
	*client = c;
	*server = s;
	return 0;
}

static void pair(int lfd, int *client, int *server)
{
	int err = pair_on(lfd, -1, client, server);

	if (err)
		fatal("connect: %s", strerror(err));
}

/* Stream `id` is the shared pattern keyed by id: any range can be checked. */
static bool check(const uint8_t *buf, unsigned id, uint64_t off, size_t n)
{
	return pattern_match(id, off, buf, n) == n;
}

static int write_all(int fd, unsigned id, uint64_t off, size_t n)
{
	static __thread uint8_t buf[256 * KiB];
	static __thread uint64_t rng = 88172645463325252ULL;

	while (n > 0) {
		size_t chunk = 1 + (size_t)((rng = rng * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % sizeof(buf);
		ssize_t k;

		if (chunk > n)
			chunk = n;
		pattern_fill(id, off, buf, chunk);
		k = send(fd, buf, chunk, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		off += (uint64_t)k;
		n -= (size_t)k;
	}
	return 0;
}

/* Wait up to `ms` for `events` on fd; returns revents (0 on timeout). */
static short wait_for(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	return n > 0 ? p.revents : 0;
}

struct readres {
	uint64_t bytes; /* bytes read before the ending */
	bool intact;    /* they matched stream `id` */
	const char *end; /* "EOF", an errno name, or "timeout" */
};

/* Read stream `id` from fd until EOF/error or `max` bytes, each wait bounded. */
static struct readres read_stream(int fd, unsigned id, uint64_t max)
{
	static __thread uint8_t buf[256 * KiB];
	struct readres r = { .intact = true, .end = "timeout" };

	while (r.bytes < max || max == UINT64_MAX) {
		ssize_t k;

		if (!wait_for(fd, POLLIN, WAIT_MS))
			return r;
		k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			r.end = errname(errno);
			return r;
		}
		if (k == 0) {
			r.end = "EOF";
			return r;
		}
		if (r.intact && !check(buf, id, r.bytes, (size_t)k))
			r.intact = false;
		r.bytes += (uint64_t)k;
	}
	r.end = "limit";
	return r;
}

/* What a read on a socket that should see an ending returns. */
static const char *ending_of(int fd, uint64_t *data_before)
{
	uint8_t buf[64 * KiB];

	*data_before = 0;
	for (;;) {
		ssize_t k;

		if (!wait_for(fd, POLLIN, WAIT_MS))
			return "timeout";
		k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return errname(errno);
		}
		if (k == 0)
			return "EOF";
		*data_before += (uint64_t)k;
	}
}

/* A write after the peer went away: the error it gives (after one that may still succeed). */
static const char *write_after(int fd)
{
	char b[1] = { 'x' };

	for (int i = 0; i < 3; i++) {
		if (send(fd, b, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			return errname(errno);
		sleep_ms(20);
	}
	return "none";
}

/* ------------------------------------------------------- a delayed peer */

enum action { ACT_WRITE, ACT_SHUTDOWN, ACT_WRITE_SHUTDOWN };

struct delayed {
	pthread_t th;
	int fd, delay_ms, times, gap_ms;
	size_t bytes;
	enum action act;
};

static void *delayed_run(void *arg)
{
	struct delayed *d = arg;

	sleep_ms(d->delay_ms);
	for (int i = 0; i < (d->times ? d->times : 1); i++) {
		if (i)
			sleep_ms(d->gap_ms);
		if (d->act != ACT_SHUTDOWN)
			write_all(d->fd, 7, (uint64_t)i * d->bytes, d->bytes);
	}
	if (d->act != ACT_WRITE)
		shutdown(d->fd, SHUT_WR);
	return NULL;
}

static void delayed_start(struct delayed *d)
{
	pthread_check(pthread_create(&d->th, NULL, delayed_run, d), "pthread_create");
}

/* ------------------------------------------------------------ scenarios */

static bool sc_shutdown_eof(void)
{
	int l = listener(), c, s, werr;
	struct delayed w;
	struct readres fwd, back;

	pair(l, &c, &s);
	w = (struct delayed){ .fd = c, .bytes = 4 * MiB, .act = ACT_WRITE_SHUTDOWN };
	delayed_start(&w);
	fwd = read_stream(s, 7, UINT64_MAX);
	pthread_join(w.th, NULL);
	/* Half-close: the server still writes to the client that shut down its side. */
	werr = write_all(s, 9, 0, 1 * MiB);
	shutdown(s, SHUT_WR);
	back = read_stream(c, 9, UINT64_MAX);
	emit("\"bytes\":%llu,\"intact\":%s,\"end\":\"%s\",\"halfCloseBytes\":%llu,\"halfCloseIntact\":%s,"
	     "\"halfCloseEnd\":\"%s\",\"halfCloseWrite\":\"%s\"",
	     (unsigned long long)fwd.bytes, fwd.intact ? "true" : "false", fwd.end, (unsigned long long)back.bytes,
	     back.intact ? "true" : "false", back.end, errname(werr));
	close(c);
	close(s);
	close(l);
	return fwd.bytes == 4 * MiB && fwd.intact && !strcmp(fwd.end, "EOF") && back.bytes == 1 * MiB && back.intact &&
	       !strcmp(back.end, "EOF") && werr == 0;
}

static bool sc_rst(bool unread)
{
	int l = listener(), c, s;
	struct readres pre = { .intact = true, .end = "skipped" };
	uint64_t before;
	const char *end, *wr;
	int64_t t0;

	pair(l, &c, &s);
	if (write_all(s, 3, 0, 64 * KiB))
		fatal("write: %s", strerror(errno));
	if (!unread)
		pre = read_stream(c, 3, 64 * KiB);
	else
		sleep_ms(50); /* let it arrive, unread */
	set_linger0(s);
	t0 = now_ms();
	close(s);
	end = ending_of(c, &before);
	wr = write_after(c);
	emit("\"readFirst\":%llu,\"dataBeforeEnding\":%llu,\"end\":\"%s\",\"ms\":%lld,\"writeAfter\":\"%s\"",
	     (unsigned long long)pre.bytes, (unsigned long long)before, end, (long long)(now_ms() - t0), wr);
	close(c);
	close(l);
	if (!unread && pre.bytes != 64 * KiB)
		return false;
	return !strcmp(end, "ECONNRESET") || !strcmp(end, "EOF");
}

static bool sc_close_unread(void)
{
	int l = listener(), c, s;
	uint64_t before;
	const char *end, *wr;

	pair(l, &c, &s);
	if (write_all(c, 5, 0, 64 * KiB))
		fatal("write: %s", strerror(errno));
	sleep_ms(50);
	int q = -1;
	ioctl(s, FIONREAD, &q);
	close(s); /* with 64 KiB unread */
	end = ending_of(c, &before);
	wr = write_after(c);
	emit("\"unreadAtClose\":%d,\"end\":\"%s\",\"dataBeforeEnding\":%llu,\"writeAfter\":\"%s\"", q, end,
	     (unsigned long long)before, wr);
	close(c);
	close(l);
	return !strcmp(end, "ECONNRESET") || !strcmp(end, "EOF");
}

/* Reader waits in epoll (level- or edge-triggered) for `times` writes or an EOF. */
static bool sc_epoll(bool et, enum action act, int times)
{
	int l = listener(), c, s, ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (et ? EPOLLET : 0) };
	struct delayed w = { .delay_ms = 50, .bytes = 100, .act = act, .times = times, .gap_ms = 50 };
	uint64_t got = 0;
	int wakeups = 0, maxms = 0;
	bool eof = false, rdhup = false;
	int64_t t0 = now_ms();

	pair(l, &c, &s);
	w.fd = c;
	fcntl(s, F_SETFL, O_NONBLOCK);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
		fatal("epoll_ctl: %s", strerror(errno));
	delayed_start(&w);
	while (!eof && (act == ACT_WRITE ? got < (uint64_t)times * 100 : true)) {
		struct epoll_event r;
		int64_t t = now_ms();
		int n = epoll_wait(ep, &r, 1, WAIT_MS);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		wakeups++;
		if (now_ms() - t > maxms)
			maxms = (int)(now_ms() - t);
		if (r.events & EPOLLRDHUP)
			rdhup = true;
		for (;;) { /* drain: required for edge-triggered */
			char buf[4096];
			ssize_t k = recv(s, buf, sizeof(buf), 0);

			if (k > 0) {
				got += (uint64_t)k;
				continue;
			}
			if (k == 0)
				eof = true;
			break;
		}
	}
	pthread_join(w.th, NULL);
	emit("\"wakeups\":%d,\"bytes\":%llu,\"eof\":%s,\"rdhup\":%s,\"longestWaitMs\":%d,\"ms\":%lld", wakeups,
	     (unsigned long long)got, eof ? "true" : "false", rdhup ? "true" : "false", maxms,
	     (long long)(now_ms() - t0));
	close(ep);
	close(c);
	close(s);
	close(l);
	switch (act) {
	case ACT_WRITE:
		return got == (uint64_t)times * 100 && (!et || wakeups == times);
	case ACT_SHUTDOWN:
		return eof && got == 0;
	case ACT_WRITE_SHUTDOWN:
		return eof && got == (uint64_t)times * 100;
	}
	return false;
}

static bool sc_poll(enum action act)
{
	int l = listener(), c, s;
	struct delayed w = { .delay_ms = 50, .bytes = 100, .act = act };
	short rev;
	int64_t t0;
	ssize_t k;
	char buf[256];

	pair(l, &c, &s);
	w.fd = c;
	t0 = now_ms();
	delayed_start(&w);
	rev = wait_for(s, POLLIN | POLLRDHUP, WAIT_MS);
	int ms = (int)(now_ms() - t0);
	k = rev ? recv(s, buf, sizeof(buf), MSG_DONTWAIT) : -1;
	pthread_join(w.th, NULL);
	emit("\"revents\":\"%s%s%s\",\"read\":%zd,\"ms\":%d", rev & POLLIN ? "IN " : "", rev & POLLRDHUP ? "RDHUP " : "",
	     rev & POLLHUP ? "HUP" : "", k, ms);
	close(c);
	close(s);
	close(l);
	return act == ACT_WRITE ? (rev & POLLIN) && k == 100 : (rev & POLLIN) && k == 0;
}

static bool sc_blocking_read(void)
{
	int l = listener(), c, s;
	struct delayed w = { .delay_ms = 50, .bytes = 100, .act = ACT_WRITE };
	struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
	char buf[256];
	ssize_t k;
	int64_t t0;

	pair(l, &c, &s);
	w.fd = c;
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	t0 = now_ms();
	delayed_start(&w);
	k = recv(s, buf, 100, MSG_WAITALL);
	int e = errno;
	pthread_join(w.th, NULL);
	emit("\"read\":%zd,\"error\":\"%s\",\"ms\":%lld", k, k < 0 ? errname(e) : "none", (long long)(now_ms() - t0));
	close(c);
	close(s);
	close(l);
	return k == 100;
}

static int fionread(int fd)
{
	int q = -1;

	if (ioctl(fd, FIONREAD, &q) < 0)
		return -errno;
	return q;
}

static bool sc_fionread(void)
{
	int l = listener(), c, s, q1, q2, q3, inq, q4;
	char buf[300];
	static uint8_t peek[256 * KiB];
	ssize_t pk;

	pair(l, &c, &s);
	write_all(c, 1, 0, 1000);
	wait_for(s, POLLIN, WAIT_MS);
	sleep_ms(20);
	q1 = fionread(s);
	if (ioctl(s, SIOCINQ, &inq) < 0)
		inq = -errno;
	pk = recv(s, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
	if (recv(s, buf, sizeof(buf), MSG_DONTWAIT) != (ssize_t)sizeof(buf))
		fatal("short read");
	q2 = fionread(s);
	write_all(c, 1, 1000, 100000); /* several messages on top */
	sleep_ms(50);
	q3 = fionread(s);
	/* Read everything: the count must drop to 0. */
	read_stream(s, 1, 100000 + 1000 - sizeof(buf)) /* offsets differ; only the count matters */;
	q4 = fionread(s);
	emit("\"after1000\":%d,\"siocinq\":%d,\"peek\":%zd,\"afterReading300\":%d,\"after100000More\":%d,"
	     "\"afterReadingAll\":%d",
	     q1, inq, pk, q2, q3, q4);
	close(c);
	close(s);
	close(l);
	return q1 == 1000 && inq == 1000 && pk == 1000 && q2 == 700 && q3 == 100700 && q4 == 0;
}

/* A new connection on the 4-tuple of an old one whose owner still holds its
 * socket: the old one ended by RST (tuple free at once) or gracefully (free
 * after TIME_WAIT reuse, 1 s on loopback). Both ends of the new connection must
 * get exactly their own bytes. */
static bool sc_reuse(bool rst)
{
	int l = listener(), a, a2, b, b2, err, port;
	struct readres toClient = { .end = "skipped" }, toServer = { .end = "skipped" };
	uint64_t oldGot = 0;
	const char *oldEnd = "none";

	if ((err = pair_on(l, 0, &a, &a2)))
		fatal("connect: %s", strerror(err));
	port = port_of(a);
	write_all(a2, 11, 0, 1000); /* left unread in the old socket */
	if (rst) {
		set_linger0(a2);
		close(a2);
		sleep_ms(50);
	} else {
		shutdown(a, SHUT_WR);
		uint64_t tmp;
		ending_of(a2, &tmp);
		close(a2); /* the old client gets FIN: TIME_WAIT, while `a` stays open */
		sleep_ms(1200);
	}
	err = pair_on(l, port, &b, &b2);
	if (err) {
		emit("\"port\":%d,\"newConnection\":\"%s\"", port, errname(err));
		close(a);
		close(l);
		return false; /* the kernel refused the tuple: nothing shown either way */
	}
	write_all(b2, 12, 0, 4096);
	write_all(b, 13, 0, 4096);
	toClient = read_stream(b, 12, 4096);
	toServer = read_stream(b2, 13, 4096);
	/* What the old socket holds now: its 1000 bytes (and maybe its ending), or more. */
	{
		uint8_t buf[64 * KiB];
		ssize_t k;

		while ((k = recv(a, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			oldGot += (uint64_t)k;
		oldEnd = k == 0 ? "EOF" : errname(errno);
	}
	emit("\"port\":%d,\"newConnection\":\"ok\",\"toNewClient\":%llu,\"toNewClientIntact\":%s,\"toNewServer\":%llu,"
	     "\"toNewServerIntact\":%s,\"oldSocketHolds\":%llu,\"oldSocketThen\":\"%s\"",
	     port, (unsigned long long)toClient.bytes, toClient.intact ? "true" : "false",
	     (unsigned long long)toServer.bytes, toServer.intact ? "true" : "false", (unsigned long long)oldGot, oldEnd);
	close(a);
	close(b);
	close(b2);
	close(l);
	return toClient.bytes == 4096 && toClient.intact && toServer.bytes == 4096 && toServer.intact;
}

static bool run_shutdown(void) { return sc_shutdown_eof(); }
static bool run_rst(void) { return sc_rst(false); }
static bool run_rst_unread(void) { return sc_rst(true); }
static bool run_close_unread(void) { return sc_close_unread(); }
static bool run_epoll_lt(void) { return sc_epoll(false, ACT_WRITE, 1); }
static bool run_epoll_et(void) { return sc_epoll(true, ACT_WRITE, 3); }
static bool run_epoll_eof(void) { return sc_epoll(true, ACT_SHUTDOWN, 1); }
static bool run_epoll_data_eof(void) { return sc_epoll(true, ACT_WRITE_SHUTDOWN, 2); }
static bool run_poll_data(void) { return sc_poll(ACT_WRITE); }
static bool run_poll_eof(void) { return sc_poll(ACT_SHUTDOWN); }
static bool run_reuse_rst(void) { return sc_reuse(true); }
static bool run_reuse_tw(void) { return sc_reuse(false); }

static const struct {
	const char *name;
	bool (*run)(void);
} SCENARIOS[] = {
	{ "shutdown_eof", run_shutdown },
	{ "rst", run_rst },
	{ "rst_unread", run_rst_unread },
	{ "close_unread", run_close_unread },
	{ "epoll_lt", run_epoll_lt },
	{ "epoll_et", run_epoll_et },
	{ "epoll_eof", run_epoll_eof },
	{ "epoll_data_eof", run_epoll_data_eof },
	{ "poll_data", run_poll_data },
	{ "poll_eof", run_poll_eof },
	{ "blocking_read", sc_blocking_read },
	{ "fionread", sc_fionread },
	{ "reuse_rst", run_reuse_rst },
	{ "reuse_tw", run_reuse_tw },
};

static bool selected(const char *only, const char *name)
{
	size_t n = strlen(name);

	if (!only)
		return true;
	for (const char *p = only; (p = strstr(p, name)); p += n)
		if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	int failed = 0, ran = 0;

	tool_init("endings", "usage: endings [--family tcp4|tcp6] [--only NAME,..] [--list]\n");

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--family") && i + 1 < argc) {
			const char *f = argv[++i];

			if (!strcmp(f, "tcp4"))
				family = AF_INET;
			else if (!strcmp(f, "tcp6"))
				family = AF_INET6;
			else
				usage_error("--family wants tcp4 or tcp6");
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--list")) {
			for (size_t k = 0; k < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); k++)
				printf("%s\n", SCENARIOS[k].name);
			return 0;
		} else {
			usage_error("bad argument %s", argv[i]);
		}
	}
	signal(SIGPIPE, SIG_IGN);
	watchdog_arm(60);
	emit("{\"family\":\"%s\",\"scenarios\":[", family == AF_INET ? "tcp4" : "tcp6");
	for (size_t k = 0; k < sizeof(SCENARIOS) / sizeof(SCENARIOS[0]); k++) {
		bool ok;
		size_t mark;

		if (!selected(only, SCENARIOS[k].name))
			continue;
		emit("%s{\"name\":\"%s\",", ran++ ? "," : "", SCENARIOS[k].name);
		mark = outlen;
		emit("\"ok\":false,"); /* placeholder, same length as "ok":true,+space */
		ok = SCENARIOS[k].run();
		memcpy(out + mark, ok ? "\"ok\":true, " : "\"ok\":false,", 11);
		emit("}");
		failed += !ok;
	}
	emit("],\"failed\":%d}\n", failed);
	fwrite(out, 1, outlen, stdout);
	return 0;
}
