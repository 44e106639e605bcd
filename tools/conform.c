// SPDX-License-Identifier: GPL-2.0
/*
 * conform - what an application observes on a loopback TCP connection, case
 * by case. test/conformance.test.ts runs every case twice, over plain TCP and
 * inside a cgroup with sockbypass loaded, and compares the two outputs: the
 * bypass must not be visible to an application except by its speed.
 *
 *   conform --list          one case name a line
 *   conform CASE            run one case; one JSON object on stdout:
 *                           {"case":..,"obs":{..}} or {"case":..,"error":..}
 *
 * Every value in "obs" is deterministic on a working kernel: return values
 * (a number, or the errno's name), bytes read (as text), poll masks (as
 * names), signal counts, socket option values. What varies legitimately from
 * run to run (ports, timings, how much TCP buffered before blocking) is
 * reduced to what an application could rely on (e.g. "blocked": 1).
 *
 * Each case connects its own pair on 127.0.0.1 (or ::1) with an ephemeral
 * port, accepts it, and exchanges a first message each way before the case
 * proper (`hello`), so every case moves data the bypass can redirect.
 *
 * Exit 0 when the case ran (whatever it observed), 2 on a setup error, 3 when
 * the watchdog fired.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/io_uring.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <limits.h>
#include <linux/tcp.h> /* not netinet/tcp.h: its struct tcp_info lacks the byte counters */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif

#define KiB 1024
#define MiB (1024 * 1024)
#define WATCHDOG_S 20
/* Loopback TCP delivers in the sender's softirq, normally before send()
 * returns; this pause covers a busy CPU before a case looks at the receiver. */
#define SETTLE_MS 20

static const char *case_name = "?";
static int family = AF_INET;

/* ------------------------------------------------------------ output */

static char obs[64 * KiB];
static size_t obslen;

__attribute__((format(printf, 1, 2))) static void append(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(obs + obslen, sizeof(obs) - obslen, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(obs) - obslen)
		obslen += (size_t)n;
}

static void key(const char *k)
{
	append("%s\"%s\":", obslen ? "," : "", k);
}

static void obs_int(const char *k, long v)
{
	key(k);
	append("%ld", v);
}

/* JSON string of arbitrary bytes: printable ASCII as is, the rest as \u00XX. */
static void obs_bytes(const char *k, const char *data, long len)
{
	key(k);
	append("\"");
	for (long i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)data[i];

		if (ch == '"' || ch == '\\')
			append("\\%c", ch);
		else if (ch >= 0x20 && ch < 0x7f)
			append("%c", ch);
		else
			append("\\u%04x", ch);
	}
	append("\"");
}

static void obs_str(const char *k, const char *s)
{
	obs_bytes(k, s, (long)strlen(s));
}

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "E?";
}

/* A syscall's result: its value, or the name of its errno. */
static void obs_ret(const char *k, long ret, int err)
{
	if (ret >= 0)
		obs_int(k, ret);
	else
		obs_str(k, errname(err));
}

#define OBS_RET(k, expr)                            \
	do {                                        \
		long r_;                            \
		errno = 0;                          \
		r_ = (long)(expr);                  \
		obs_ret((k), r_, errno);            \
	} while (0)

static void obs_events(const char *k, int ev)
{
	static const struct { int bit; const char *name; } names[] = {
		{ POLLIN, "IN" }, { POLLPRI, "PRI" }, { POLLOUT, "OUT" }, { POLLERR, "ERR" },
		{ POLLHUP, "HUP" }, { POLLNVAL, "NVAL" }, { POLLRDNORM, "RDNORM" }, { POLLRDBAND, "RDBAND" },
		{ POLLWRNORM, "WRNORM" }, { POLLWRBAND, "WRBAND" }, { POLLRDHUP, "RDHUP" },
	};
	char buf[128] = "";

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (ev & names[i].bit) {
			if (buf[0])
				strcat(buf, "|");
			strcat(buf, names[i].name);
		}
	}
	obs_str(k, buf[0] ? buf : "none");
}

static void print_result(const char *error)
{
	if (error)
		printf("{\"case\":\"%s\",\"error\":\"%s\"}\n", case_name, error);
	else
		printf("{\"case\":\"%s\",\"obs\":{%s}}\n", case_name, obs);
	fflush(stdout);
}

__attribute__((noreturn, format(printf, 1, 2))) static void fatal(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if (*p == '"' || *p == '\\')
			*p = '\'';
	fprintf(stderr, "conform %s: %s\n", case_name, msg);
	print_result(msg);
	_exit(2);
}

static void on_alarm(int sig)
{
	char msg[256];
	int n;

	(void)sig;
	n = snprintf(msg, sizeof(msg), "{\"case\":\"%s\",\"error\":\"watchdog: the case hung\"}\n", case_name);
	if (n > 0 && write(1, msg, (size_t)n) < 0) {
		/* nothing left to do */
	}
	_exit(3);
}

/* ------------------------------------------------------------ time */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void settle(void)
{
	sleep_ms(SETTLE_MS);
}

/* ---------------------------------------------------------- sockets */

static struct sockaddr_storage loopback(int port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		a->sin6_addr = in6addr_loopback;
	}
	return ss;
}

static socklen_t sslen(void)
{
	return family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static int port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		fatal("getsockname: %s", strerror(errno));
	return ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void set_int(int fd, int level, int opt, int v)
{
	if (setsockopt(fd, level, opt, &v, sizeof(v)) < 0)
		fatal("setsockopt(%d,%d): %s", level, opt, strerror(errno));
}

static int get_int(int fd, int level, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &len) < 0)
		return -errno;
	return v;
}

static void set_timeo(int fd, int opt, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)) < 0)
		fatal("setsockopt timeo: %s", strerror(errno));
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
		fatal("fcntl: %s", strerror(errno));
}

static int listener_on(int port, bool reuseport)
{
	struct sockaddr_storage ss = loopback(port);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (reuseport)
		set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
	if (bind(fd, (struct sockaddr *)&ss, sslen()) < 0 || listen(fd, 64) < 0)
		fatal("listen: %s", strerror(errno));
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_storage to = loopback(port);
	int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (c < 0)
		fatal("socket: %s", strerror(errno));
	if (connect(c, (struct sockaddr *)&to, sslen()) < 0)
		fatal("connect: %s", strerror(errno));
	return c;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("send: %s", strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
}

/* Read exactly len bytes (waiting at most WAIT_MS for each), or fail the case. */
static void recv_exact(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 3000) <= 0)
			fatal("recv_exact: no data within 3 s (%zu bytes left)", len);
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			fatal("recv_exact: %s", n == 0 ? "EOF" : strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* The first exchange of every pair: one message each way, read. */
static void hello(int c, int s)
{
	char buf[2];

	send_all(c, "hi", 2);
	recv_exact(s, buf, 2);
	send_all(s, "ok", 2);
	recv_exact(c, buf, 2);
}

/* A connected pair, accepted, after its hello. */
static void make_pair(int *client, int *server)
{
	int lfd = listener_on(0, false);

	*client = connect_to(port_of(lfd));
	*server = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*server < 0)
		fatal("accept: %s", strerror(errno));
	close(lfd);
	/* Nagle would hold a small write until the previous one is acked (up to
	 * the peer's delayed-ACK timeout): a timing, not a semantic. */
	set_int(*client, IPPROTO_TCP, TCP_NODELAY, 1);
	set_int(*server, IPPROTO_TCP, TCP_NODELAY, 1);
	hello(*client, *server);
}

/* recv into a fresh buffer; records the return value as k and the bytes as k_data. */
static long obs_recv(const char *k, int fd, size_t len, int flags)
{
	char buf[4096], dk[64];
	ssize_t n;
	int err;

	if (len > sizeof(buf))
		len = sizeof(buf);
	errno = 0;
	n = recv(fd, buf, len, flags);
	err = errno;
	obs_ret(k, n, err);
	if (n > 0) {
		snprintf(dk, sizeof(dk), "%s_data", k);
		obs_bytes(dk, buf, n);
	}
	return n;
}

static int poll_events(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int n = poll(&pfd, 1, timeout_ms);

	if (n < 0)
		fatal("poll: %s", strerror(errno));
	return n ? pfd.revents : 0;
}

#define POLL_ALL (POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLRDBAND | POLLWRNORM | POLLRDHUP)

/* Pattern bytes for bulk transfers: position-dependent, so order is checked. */
static char pattern_at(uint64_t pos)
{
	return (char)('a' + (pos * 7 + pos / 251) % 26);
}

static void fill_pattern(char *buf, size_t len, uint64_t start)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_at(start + i);
}

/* Read until EOF or `want` bytes, checking the pattern; returns bytes read, -1 on mismatch. */
static long drain_pattern(int fd, uint64_t want, bool until_eof)
{
	static char buf[256 * KiB];
	uint64_t got = 0;

	while (until_eof || got < want) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 3000) <= 0)
			return (long)got;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern_at(got + (uint64_t)i))
				return -1;
		got += (uint64_t)n;
	}
	return (long)got;
}

/* ---------------------------------------------------------- signals */

static volatile sig_atomic_t sigurg_count, sigpipe_count;

static void on_sigurg(int sig)
{
	(void)sig;
	sigurg_count++;
}

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipe_count++;
}

static void catch_signal(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) < 0)
		fatal("sigaction: %s", strerror(errno));
}

/* SIGURG goes to the socket's owner: this process. */
static void own_sigurg(int fd)
{
	catch_signal(SIGURG, on_sigurg);
	if (fcntl(fd, F_SETOWN, getpid()) < 0)
		fatal("F_SETOWN: %s", strerror(errno));
}

static void obs_select(const char *k, int fd)
{
	fd_set r, e;
	struct timeval tv = { 0, 0 };
	char kr[64], ke[64];

	FD_ZERO(&r);
	FD_ZERO(&e);
	FD_SET(fd, &r);
	FD_SET(fd, &e);
	if (select(fd + 1, &r, NULL, &e, &tv) < 0)
		fatal("select: %s", strerror(errno));
	snprintf(kr, sizeof(kr), "%s_read", k);
	snprintf(ke, sizeof(ke), "%s_except", k);
	obs_int(kr, FD_ISSET(fd, &r) ? 1 : 0);
	obs_int(ke, FD_ISSET(fd, &e) ? 1 : 0);
}

static void obs_atmark(const char *k, int fd)
{
	int at = -1;

	OBS_RET(k, ioctl(fd, SIOCATMARK, &at) < 0 ? -1 : at);
}

static void obs_ioctl(const char *k, int fd, unsigned long req)
{
	int v = -1;

	OBS_RET(k, ioctl(fd, req, &v) < 0 ? -1 : v);
}

/* --------------------------------------------------- urgent data (OOB) */

/* What the receiver of urgent data observes, before and after reading around the mark. */
static void observe_urgent(int s, bool inline_oob)
{
	settle();
	obs_events("poll", poll_events(s, POLL_ALL, 0));
	obs_select("select", s);
	obs_int("sigurg", sigurg_count);
	obs_atmark("atmark_before", s);
	obs_recv("recv1", s, 100, MSG_DONTWAIT);
	obs_atmark("atmark_after_recv1", s);
	if (!inline_oob) {
		obs_recv("recv_oob", s, 1, MSG_OOB | MSG_DONTWAIT);
		obs_events("poll_after_oob", poll_events(s, POLL_ALL, 0));
	}
	obs_recv("recv2", s, 100, MSG_DONTWAIT);
	obs_recv("recv3", s, 100, MSG_DONTWAIT);
}

/* Urgent byte sent while the receiver still holds earlier, unread data. */
static void case_oob_unread(void)
{
	int c, s;

	make_pair(&c, &s);
	own_sigurg(s);
	send_all(c, "abc", 3);
	OBS_RET("send_oob", send(c, "!", 1, MSG_OOB));
	send_all(c, "def", 3);
	observe_urgent(s, false);
}

/* Urgent byte sent after the receiver read everything before it. */
static void case_oob_drained(void)
{
	char buf[3];
	int c, s;

	make_pair(&c, &s);
	own_sigurg(s);
	send_all(c, "abc", 3);
	recv_exact(s, buf, 3);
	OBS_RET("send_oob", send(c, "!", 1, MSG_OOB));
	send_all(c, "def", 3);
	observe_urgent(s, false);
}

static void case_oob_drained_v6(void)
{
	family = AF_INET6;
	case_oob_drained();
}

/* SO_OOBINLINE: the urgent byte stays in the stream, in order; the mark is still reported. */
static void case_oob_inline(void)
{
	char buf[3];
	int c, s;

	make_pair(&c, &s);
	own_sigurg(s);
	set_int(s, SOL_SOCKET, SO_OOBINLINE, 1);
	send_all(c, "abc", 3);
	recv_exact(s, buf, 3);
	send_all(c, "xy", 2);
	OBS_RET("send_oob", send(c, "!", 1, MSG_OOB));
	send_all(c, "def", 3);
	observe_urgent(s, true);
}

/* recv(MSG_OOB) with no urgent data pending: EINVAL, and the normal data is untouched. */
static void case_oob_none(void)
{
	int c, s;

	make_pair(&c, &s);
	send_all(c, "abc", 3);
	settle();
	obs_recv("recv_oob", s, 1, MSG_OOB | MSG_DONTWAIT);
	obs_recv("recv", s, 100, MSG_DONTWAIT);
}

/* ---------------------------------------------------- receive flags */

static void case_peek(void)
{
	int c, s;

	make_pair(&c, &s);
	send_all(c, "hello world", 11);
	settle();
	obs_recv("peek5", s, 5, MSG_PEEK);
	obs_recv("peek100", s, 100, MSG_PEEK);
	obs_recv("recv", s, 100, 0);
	obs_recv("recv_empty", s, 100, MSG_DONTWAIT);
}

/* PEEK across several sends, then a read that ends inside one of them. */
static void case_peek_multi(void)
{
	int c, s;

	make_pair(&c, &s);
	send_all(c, "aa", 2);
	send_all(c, "bb", 2);
	send_all(c, "cc", 2);
	settle();
	obs_recv("peek", s, 100, MSG_PEEK);
	obs_recv("recv3", s, 3, 0);
	obs_recv("peek_rest", s, 100, MSG_PEEK | MSG_DONTWAIT);
	obs_recv("recv_rest", s, 100, MSG_DONTWAIT);
}

struct delayed_send {
	int fd;
	int chunks;
	int chunk;
	int gap_ms;
	bool shut_after;
};

static void *delayed_sender(void *arg)
{
	struct delayed_send *d = arg;
	char buf[4096];

	for (int i = 0; i < d->chunks; i++) {
		sleep_ms(d->gap_ms);
		fill_pattern(buf, (size_t)d->chunk, (uint64_t)i * (uint64_t)d->chunk);
		send_all(d->fd, buf, (size_t)d->chunk);
	}
	if (d->shut_after)
		shutdown(d->fd, SHUT_WR);
	return NULL;
}

static bool pattern_ok(const char *buf, long len)
{
	for (long i = 0; i < len; i++)
		if (buf[i] != pattern_at((uint64_t)i))
			return false;
	return true;
}

/* Read what is left of a pattern stream after `got` bytes, up to `want` in all; 1 if intact. */
static int rest_intact(int fd, char *buf, long got, long want)
{
	if (got < 0 || !pattern_ok(buf, got))
		return 0;
	while (got < want) {
		long n;

		if (poll_events(fd, POLLIN, 3000) == 0)
			return 0;
		n = recv(fd, buf + got, (size_t)(want - got), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return 0;
		got += n;
	}
	return pattern_ok(buf, got);
}

/* MSG_WAITALL returns only when the whole length arrived, across several sends. */
static void case_waitall(void)
{
	struct delayed_send d = { .chunks = 4, .chunk = 1000, .gap_ms = 15 };
	static char buf[8000];
	pthread_t th;
	long n;
	int c, s;

	make_pair(&c, &s);
	d.fd = c;
	pthread_create(&th, NULL, delayed_sender, &d);
	errno = 0;
	n = recv(s, buf, 4000, MSG_WAITALL);
	/* How short a short read is depends on scheduling: only whether it was. */
	obs_str("recv_waitall", n == 4000 ? "4000" : n > 0 ? "short" : errname(errno));
	obs_int("intact", rest_intact(s, buf, n, 4000));
	pthread_join(th, NULL);
	obs_recv("recv_after", s, 100, MSG_DONTWAIT);
}

/* MSG_WAITALL cut short by EOF returns what arrived. */
static void case_waitall_eof(void)
{
	struct delayed_send d = { .chunks = 2, .chunk = 50, .gap_ms = 15, .shut_after = true };
	static char buf[200];
	pthread_t th;
	long n;
	int c, s;

	make_pair(&c, &s);
	d.fd = c;
	pthread_create(&th, NULL, delayed_sender, &d);
	errno = 0;
	n = recv(s, buf, sizeof(buf), MSG_WAITALL);
	obs_str("recv_waitall", n == 100 ? "100" : n > 0 ? "short" : errname(errno));
	obs_int("intact", rest_intact(s, buf, n, 100));
	pthread_join(th, NULL);
	obs_recv("recv_after", s, 100, MSG_DONTWAIT);
}

/* MSG_TRUNC on TCP discards the bytes without copying them to the buffer. */
static void case_trunc(void)
{
	char buf[16];
	long n;
	int c, s;

	make_pair(&c, &s);
	send_all(c, "0123456789", 10);
	settle();
	memset(buf, 'X', sizeof(buf));
	errno = 0;
	n = recv(s, buf, 4, MSG_TRUNC);
	obs_ret("recv_trunc", n, errno);
	obs_bytes("buffer_after", buf, 4);
	obs_recv("recv_rest", s, 100, MSG_DONTWAIT);
}

static void case_dontwait(void)
{
	int c, s;

	make_pair(&c, &s);
	obs_recv("recv_empty", s, 100, MSG_DONTWAIT);
	OBS_RET("send", send(c, "x", 1, MSG_DONTWAIT));
	settle();
	obs_recv("recv", s, 100, MSG_DONTWAIT);
	shutdown(c, SHUT_WR);
	settle();
	obs_recv("recv_eof", s, 100, MSG_DONTWAIT);
}

/* SO_RCVLOWAT: no POLLIN and a blocking read waits while fewer bytes are queued. */
static void case_rcvlowat(void)
{
	int64_t t0;
	int c, s;

	make_pair(&c, &s);
	set_int(s, SOL_SOCKET, SO_RCVLOWAT, 10);
	set_timeo(s, SO_RCVTIMEO, 300);
	send_all(c, "12345", 5);
	settle();
	obs_events("poll_5_bytes", poll_events(s, POLLIN, 0));
	obs_ioctl("inq", s, SIOCINQ);
	t0 = now_ms();
	obs_recv("recv_5_bytes", s, 100, 0);
	obs_int("recv_waited", now_ms() - t0 >= 200);
	send_all(c, "6789012345", 10);
	settle();
	obs_events("poll_10_bytes", poll_events(s, POLLIN, 0));
	obs_recv("recv_10_bytes", s, 100, 0);
}

/* SO_RCVTIMEO: a blocking read with nothing to read fails with EAGAIN after the timeout. */
static void case_rcvtimeo(void)
{
	int64_t t0;
	int c, s;

	make_pair(&c, &s);
	set_timeo(s, SO_RCVTIMEO, 150);
	t0 = now_ms();
	obs_recv("recv_blocking", s, 100, 0);
	obs_int("waited", now_ms() - t0 >= 100);
	set_nonblock(s, true);
	t0 = now_ms();
	obs_recv("recv_nonblocking", s, 100, 0);
	obs_int("nonblocking_waited", now_ms() - t0 >= 100);
	send_all(c, "late", 4);
	set_nonblock(s, false);
	obs_recv("recv_data", s, 100, 0);
}

/* ----------------------------------------------------- send backpressure */

/*
 * The sender writes into a peer that does not read. TCP fills the peer's
 * window and its own send buffer, then blocks: with SO_SNDTIMEO the send
 * times out (a short count, then EAGAIN); non-blocking, it fails with EAGAIN
 * and POLLOUT clears. Then the peer reads everything: every byte, in order.
 */
#define FLOOD_CAP (32 * MiB)
#define FLOOD_CHUNK (64 * KiB)

static void flood(int c, int s, bool nonblocking)
{
	static char buf[FLOOD_CHUNK];
	uint64_t total = 0;
	int64_t t0, blocked_ms = 0;
	int err = 0;
	long last = 0;

	if (nonblocking)
		set_nonblock(c, true);
	else
		set_timeo(c, SO_SNDTIMEO, 200);
	/* Until a send fails: after the timeout TCP returns a short count (what it
	 * copied) and the next send fails; where the first failure falls depends
	 * on buffer sizes, so only the failure is recorded. */
	while (total < FLOOD_CAP) {
		fill_pattern(buf, sizeof(buf), total);
		t0 = now_ms();
		errno = 0;
		last = send(c, buf, sizeof(buf), MSG_NOSIGNAL);
		err = errno;
		if (now_ms() - t0 > blocked_ms)
			blocked_ms = now_ms() - t0;
		if (last < 0)
			break;
		total += (uint64_t)last;
	}
	obs_int("stopped_before_cap", total < FLOOD_CAP);
	obs_str("stop", last < 0 ? errname(err) : "none");
	if (!nonblocking)
		obs_int("send_blocked", blocked_ms >= 150);
	obs_events("pollout_full", poll_events(c, POLLOUT, 0));
	obs_int("received_in_order", drain_pattern(s, total, false) == (long)total);
	obs_events("pollout_drained", poll_events(c, POLLOUT, 1000));
}

static void case_sndtimeo(void)
{
	int c, s;

	make_pair(&c, &s);
	flood(c, s, false);
}

static void case_sndtimeo_rcvbuf(void)
{
	int c, s;

	make_pair(&c, &s);
	set_int(s, SOL_SOCKET, SO_RCVBUF, 64 * KiB);
	flood(c, s, false);
}

static void case_nonblock_full(void)
{
	int c, s;

	make_pair(&c, &s);
	flood(c, s, true);
}

static void case_nonblock_full_rcvbuf(void)
{
	int c, s;

	make_pair(&c, &s);
	set_int(s, SOL_SOCKET, SO_RCVBUF, 64 * KiB);
	flood(c, s, true);
}

static int pattern_memfd(size_t len)
{
	static char buf[64 * KiB];
	int fd = memfd_create("conform", MFD_CLOEXEC);

	if (fd < 0)
		fatal("memfd_create: %s", strerror(errno));
	for (size_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? len - off : sizeof(buf);

		fill_pattern(buf, n, off);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			fatal("pwrite: %s", strerror(errno));
	}
	return fd;
}

/* sendfile under SO_SNDTIMEO to a peer that does not read: a short count after the timeout. */
static void case_sendfile_sndtimeo(void)
{
	int c, s, f = pattern_memfd(FLOOD_CAP);
	off_t off = 0;
	long n;

	make_pair(&c, &s);
	set_timeo(c, SO_SNDTIMEO, 200);
	errno = 0;
	n = sendfile(c, f, &off, FLOOD_CAP);
	obs_int("short", n >= 0 && n < FLOOD_CAP);
	obs_str("result", n < 0 ? errname(errno) : n == FLOOD_CAP ? "all" : "partial");
	obs_int("received_in_order", drain_pattern(s, (uint64_t)off, false) == (long)off);
}

/* --------------------------------------------------------- endings */

/* shutdown(SHUT_WR) each way: EOF after the data; the other direction still works. */
static void case_shutdown_wr(void)
{
	int c, s;

	make_pair(&c, &s);
	send_all(c, "data", 4);
	OBS_RET("shutdown", shutdown(c, SHUT_WR));
	settle();
	obs_events("server_poll", poll_events(s, POLL_ALL, 0));
	obs_recv("server_recv", s, 100, 0);
	obs_recv("server_eof", s, 100, 0);
	OBS_RET("client_send_after_shut", send(c, "x", 1, MSG_NOSIGNAL));
	settle();
	obs_recv("server_after_eof", s, 100, MSG_DONTWAIT);
	send_all(s, "reply", 5);
	settle();
	obs_events("client_poll", poll_events(c, POLL_ALL, 0));
	obs_recv("client_recv", c, 100, 0);
	OBS_RET("server_shutdown", shutdown(s, SHUT_WR));
	settle();
	obs_events("client_poll_eof", poll_events(c, POLL_ALL, 0));
	obs_recv("client_eof", c, 100, 0);
}

/* shutdown(SHUT_RD): reads return EOF, the peer can still send, and this end can still write. */
static void case_shutdown_rd(void)
{
	int c, s;

	make_pair(&c, &s);
	send_all(c, "before", 6);
	settle();
	OBS_RET("shutdown", shutdown(s, SHUT_RD));
	obs_events("poll", poll_events(s, POLL_ALL, 0));
	obs_recv("recv1", s, 100, MSG_DONTWAIT);
	obs_recv("recv2", s, 100, MSG_DONTWAIT);
	OBS_RET("peer_send", send(c, "after", 5, MSG_NOSIGNAL));
	settle();
	obs_recv("recv3", s, 100, MSG_DONTWAIT);
	OBS_RET("send", send(s, "still", 5, MSG_NOSIGNAL));
	settle();
	obs_recv("peer_recv", c, 100, MSG_DONTWAIT);
}

/* What the peer of a reset connection sees: poll, read, write (with SIGPIPE). */
static void observe_reset_peer(int c)
{
	settle();
	obs_events("peer_poll", poll_events(c, POLL_ALL, 0));
	obs_recv("peer_recv", c, 100, MSG_DONTWAIT);
	obs_recv("peer_recv2", c, 100, MSG_DONTWAIT);
	/* (reading SO_ERROR clears it: after the reads, it shows what they left) */
	obs_int("peer_so_error", get_int(c, SOL_SOCKET, SO_ERROR));
	catch_signal(SIGPIPE, on_sigpipe);
	OBS_RET("peer_send", send(c, "x", 1, 0));
	obs_int("sigpipe", sigpipe_count);
}

/* close() with unread received data: TCP resets the connection (RFC 2525). */
static void case_close_unread(void)
{
	int c, s;

	make_pair(&c, &s);
	send_all(c, "unread", 6);
	settle();
	close(s);
	observe_reset_peer(c);
}

/* SO_LINGER {1, 0}: close() resets at once. */
static void case_linger0(void)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int c, s;

	make_pair(&c, &s);
	if (setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
		fatal("SO_LINGER: %s", strerror(errno));
	close(s);
	observe_reset_peer(c);
}

/* A graceful close after sending: the peer reads the data, then EOF; writing then fails with EPIPE. */
static void case_close_after_data(void)
{
	int c, s;

	make_pair(&c, &s);
	send_all(s, "last words", 10);
	close(s);
	settle();
	obs_events("peer_poll", poll_events(c, POLL_ALL, 0));
	obs_recv("peer_recv", c, 100, 0);
	obs_recv("peer_eof", c, 100, 0);
	catch_signal(SIGPIPE, on_sigpipe);
	OBS_RET("peer_send1", send(c, "x", 1, 0));
	settle();
	OBS_RET("peer_send2", send(c, "y", 1, 0));
	obs_int("sigpipe", sigpipe_count);
	obs_recv("peer_recv_after", c, 100, MSG_DONTWAIT);
}

/* Half-close with 1 MiB still in flight each way. */
static void case_half_close_in_flight(void)
{
	static char buf[MiB];
	int c, s;

	make_pair(&c, &s);
	fill_pattern(buf, sizeof(buf), 0);
	set_nonblock(c, false);
	struct delayed_send d = { .fd = c, .chunks = 256, .chunk = 4096, .gap_ms = 0, .shut_after = true };
	pthread_t th;

	pthread_create(&th, NULL, delayed_sender, &d);
	obs_int("server_read_until_eof", drain_pattern(s, 0, true));
	pthread_join(th, NULL);
	send_all(s, buf, sizeof(buf));
	shutdown(s, SHUT_WR);
	obs_int("client_read_until_eof", drain_pattern(c, 0, true));
}

/* Edge-triggered epoll: one event per arrival, none while nothing new arrives. */
static void case_epoll_et(void)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET | EPOLLRDHUP }, got[4];
	int ep = epoll_create1(EPOLL_CLOEXEC), c, s, n;

	make_pair(&c, &s);
	ev.data.fd = s;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
		fatal("epoll: %s", strerror(errno));
	obs_int("wait_idle", epoll_wait(ep, got, 4, 0));
	send_all(c, "a", 1);
	n = epoll_wait(ep, got, 4, 1000);
	obs_int("wait_data", n);
	obs_events("wait_data_events", n > 0 ? (int)got[0].events : 0);
	obs_int("wait_again", epoll_wait(ep, got, 4, 0));
	send_all(c, "b", 1);
	n = epoll_wait(ep, got, 4, 1000);
	obs_int("wait_more_unread", n);
	obs_recv("recv_partial", s, 1, 0);
	obs_int("wait_after_partial_read", epoll_wait(ep, got, 4, 0));
	obs_recv("recv_rest", s, 100, 0);
	shutdown(c, SHUT_WR);
	n = epoll_wait(ep, got, 4, 1000);
	obs_int("wait_eof", n);
	obs_events("wait_eof_events", n > 0 ? (int)got[0].events : 0);
	obs_int("wait_eof_again", epoll_wait(ep, got, 4, 0));
}

/* --------------------------------------------------- queue sizes, options */

static void case_fionread(void)
{
	static char buf[600];
	int c, s;

	make_pair(&c, &s);
	fill_pattern(buf, sizeof(buf), 0);
	send_all(c, buf, 100);
	send_all(c, buf + 100, 200);
	send_all(c, buf + 300, 300);
	settle();
	obs_ioctl("fionread", s, FIONREAD);
	obs_ioctl("siocinq", s, SIOCINQ);
	obs_ioctl("siocoutq", c, SIOCOUTQ);
	obs_ioctl("siocoutqnsd", c, SIOCOUTQNSD);
	recv_exact(s, buf, 150);
	obs_ioctl("fionread_after_150", s, FIONREAD);
	recv_exact(s, buf, 450);
	obs_ioctl("fionread_after_all", s, FIONREAD);
}

static void case_tcp_info(void)
{
	static char buf[100 * KiB];
	struct tcp_info ci, si;
	socklen_t len = sizeof(ci);
	int c, s;

	make_pair(&c, &s);
	fill_pattern(buf, sizeof(buf), 0);
	send_all(c, buf, sizeof(buf));
	recv_exact(s, buf, sizeof(buf));
	/* The receiver's delayed ACK decides when the last bytes count as acked. */
	for (int i = 0; i < 50 && get_int(c, SOL_SOCKET, SO_ERROR) == 0; i++) {
		int outq = -1;

		if (ioctl(c, SIOCOUTQ, &outq) == 0 && outq == 0)
			break;
		sleep_ms(10);
	}
	if (getsockopt(c, IPPROTO_TCP, TCP_INFO, &ci, &len) < 0 ||
	    (len = sizeof(si), getsockopt(s, IPPROTO_TCP, TCP_INFO, &si, &len) < 0))
		fatal("TCP_INFO: %s", strerror(errno));
	obs_int("state", ci.tcpi_state);
	obs_int("options", ci.tcpi_options);
	obs_int("unacked", ci.tcpi_unacked);
	obs_int("notsent_bytes", ci.tcpi_notsent_bytes);
	obs_int("snd_mss_set", ci.tcpi_snd_mss > 0);
	/* The hello (2 bytes each way) plus 100 KiB client to server. */
	obs_int("client_bytes_acked_covers_sent", ci.tcpi_bytes_acked >= 2 + sizeof(buf));
	obs_int("client_bytes_sent_covers_sent", ci.tcpi_bytes_sent >= 2 + sizeof(buf));
	obs_int("server_bytes_received_covers_sent", si.tcpi_bytes_received >= 2 + sizeof(buf));
	obs_int("client_data_segs_out_many", ci.tcpi_data_segs_out >= 3);
	obs_int("server_data_segs_in_many", si.tcpi_data_segs_in >= 3);
}

static void case_sockopts(void)
{
	int c, s;

	make_pair(&c, &s);
	set_int(c, IPPROTO_TCP, TCP_NODELAY, 1);
	set_int(c, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int(c, IPPROTO_TCP, TCP_KEEPIDLE, 1);
	set_int(c, IPPROTO_TCP, TCP_KEEPINTVL, 1);
	set_int(c, IPPROTO_TCP, TCP_KEEPCNT, 2);
	set_int(c, IPPROTO_TCP, TCP_USER_TIMEOUT, 500);
	obs_int("nodelay", get_int(c, IPPROTO_TCP, TCP_NODELAY));
	obs_int("keepalive", get_int(c, SOL_SOCKET, SO_KEEPALIVE));
	obs_int("keepidle", get_int(c, IPPROTO_TCP, TCP_KEEPIDLE));
	obs_int("keepintvl", get_int(c, IPPROTO_TCP, TCP_KEEPINTVL));
	obs_int("keepcnt", get_int(c, IPPROTO_TCP, TCP_KEEPCNT));
	obs_int("user_timeout", get_int(c, IPPROTO_TCP, TCP_USER_TIMEOUT));
	obs_int("so_type", get_int(s, SOL_SOCKET, SO_TYPE));
	obs_int("so_protocol", get_int(s, SOL_SOCKET, SO_PROTOCOL));
	obs_int("so_error", get_int(s, SOL_SOCKET, SO_ERROR));
	obs_int("so_acceptconn", get_int(s, SOL_SOCKET, SO_ACCEPTCONN));
	/* Small writes with TCP_NODELAY each arrive without waiting. */
	send_all(c, "n1", 2);
	obs_events("poll_n1", poll_events(s, POLLIN, 1000));
	obs_recv("recv_n1", s, 100, 0);
	send_all(c, "n2", 2);
	obs_events("poll_n2", poll_events(s, POLLIN, 1000));
	obs_recv("recv_n2", s, 100, 0);
	/* An idle connection with keepalive every second outlives its probes (1.5 s). */
	sleep_ms(1500);
	obs_int("so_error_after_idle", get_int(c, SOL_SOCKET, SO_ERROR));
	send_all(c, "alive", 5);
	obs_events("poll_alive", poll_events(s, POLLIN, 1000));
	obs_recv("recv_alive", s, 100, 0);
}

/* TCP_CORK holds small writes until uncorked. */
static void case_cork(void)
{
	int c, s;

	make_pair(&c, &s);
	set_int(c, IPPROTO_TCP, TCP_CORK, 1);
	send_all(c, "ab", 2);
	send_all(c, "cd", 2);
	obs_events("poll_corked", poll_events(s, POLLIN, 50));
	set_int(c, IPPROTO_TCP, TCP_CORK, 0);
	obs_events("poll_uncorked", poll_events(s, POLLIN, 1000));
	settle();
	obs_recv("recv", s, 100, 0);
}

/* MSG_MORE holds a small write until a write without it. */
static void case_msg_more(void)
{
	int c, s;

	make_pair(&c, &s);
	OBS_RET("send_more", send(c, "ab", 2, MSG_MORE));
	obs_events("poll_more", poll_events(s, POLLIN, 50));
	OBS_RET("send_last", send(c, "cd", 2, 0));
	obs_events("poll_last", poll_events(s, POLLIN, 1000));
	settle();
	obs_recv("recv", s, 100, 0);
}

/* writev with IOV_MAX buffers of different sizes: one write, every byte in order. */
static void case_writev_many(void)
{
	static char buf[64 * KiB];
	struct iovec iov[IOV_MAX + 1];
	size_t off = 0;
	int c, s;

	make_pair(&c, &s);
	fill_pattern(buf, sizeof(buf), 0);
	for (int i = 0; i < IOV_MAX + 1; i++) {
		size_t len = 1 + (size_t)(i * 37) % 60;

		iov[i].iov_base = buf + off;
		iov[i].iov_len = len;
		off += len;
	}
	OBS_RET("writev_over_max", writev(c, iov, IOV_MAX + 1));
	errno = 0;
	long n = writev(c, iov, IOV_MAX);
	obs_ret("writev", n, errno);
	obs_int("received_in_order", n > 0 && drain_pattern(s, (uint64_t)n, false) == n);
}

/* --------------------------------------------------- zero copy paths */

static void case_sendfile(void)
{
	int c, s, f = pattern_memfd(MiB);
	off_t off = 0;

	make_pair(&c, &s);
	OBS_RET("sendfile", sendfile(c, f, &off, MiB));
	obs_int("offset", off);
	obs_int("received_in_order", drain_pattern(s, MiB, false) == MiB);
}

/* splice from a pipe into the socket. */
static void case_splice_send(void)
{
	static char buf[64 * KiB];
	int c, s, p[2];
	long total = 0;

	make_pair(&c, &s);
	if (pipe2(p, O_CLOEXEC) < 0)
		fatal("pipe: %s", strerror(errno));
	for (int i = 0; i < 4; i++) {
		fill_pattern(buf, sizeof(buf), (uint64_t)i * sizeof(buf));
		if (write(p[1], buf, sizeof(buf) / 2) != (ssize_t)sizeof(buf) / 2)
			fatal("pipe write: %s", strerror(errno));
		long n = splice(p[0], NULL, c, NULL, sizeof(buf) / 2, 0);

		if (n < 0)
			fatal("splice: %s", strerror(errno));
		total += n;
		if (write(p[1], buf + sizeof(buf) / 2, sizeof(buf) / 2) != (ssize_t)sizeof(buf) / 2)
			fatal("pipe write: %s", strerror(errno));
		n = splice(p[0], NULL, c, NULL, sizeof(buf) / 2, 0);
		if (n < 0)
			fatal("splice: %s", strerror(errno));
		total += n;
	}
	obs_int("spliced", total);
	obs_int("received_in_order", drain_pattern(s, (uint64_t)total, false) == total);
}

/* splice from the socket into a pipe: the receive side of a proxy. */
static void case_splice_recv(void)
{
	static char buf[16 * KiB];
	int c, s, p[2];
	long total = 0, n = 0;
	int err = 0;
	int64_t deadline;

	make_pair(&c, &s);
	if (pipe2(p, O_CLOEXEC) < 0)
		fatal("pipe: %s", strerror(errno));
	fill_pattern(buf, sizeof(buf), 0);
	send_all(c, buf, sizeof(buf));
	settle();
	obs_events("poll", poll_events(s, POLLIN, 0));
	/* SPLICE_F_NONBLOCK covers the pipe only; the socket waits unless O_NONBLOCK. */
	set_nonblock(s, true);
	deadline = now_ms() + 500;
	while (total < (long)sizeof(buf) && now_ms() < deadline) {
		errno = 0;
		n = splice(s, NULL, p[1], NULL, sizeof(buf), SPLICE_F_NONBLOCK);
		err = errno;
		if (n > 0)
			total += n;
		else if (n == 0 || err != EAGAIN)
			break;
		else
			sleep_ms(10);
	}
	obs_int("spliced", total);
	obs_str("last", n > 0 ? "data" : n == 0 ? "eof" : errname(err));
	if (total > 0) {
		char got[sizeof(buf)];

		obs_int("pipe_in_order", read(p[0], got, (size_t)total) == total && pattern_ok(got, total));
	}
	/* Whatever splice did not take is still readable. */
	obs_int("recv_rest", drain_pattern(s, sizeof(buf) - (size_t)total, false) >= 0);
}

/*
 * MSG_ZEROCOPY: the send returns, then a completion arrives on the error
 * queue (on loopback with SO_EE_CODE_ZEROCOPY_COPIED, the kernel copied).
 * Applications free or reuse the buffer only after that completion.
 */
static void case_zerocopy(void)
{
	static char buf[64 * KiB];
	char control[128];
	int c, s;

	make_pair(&c, &s);
	set_int(c, SOL_SOCKET, SO_ZEROCOPY, 1);
	fill_pattern(buf, sizeof(buf), 0);
	OBS_RET("send", send(c, buf, sizeof(buf), MSG_ZEROCOPY));
	obs_int("received_in_order", drain_pattern(s, sizeof(buf), false) == (long)sizeof(buf));
	obs_events("poll_errqueue", poll_events(c, POLLERR, 1000));
	struct msghdr mh = { .msg_control = control, .msg_controllen = sizeof(control) };

	errno = 0;
	long n = recvmsg(c, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
	obs_ret("recv_errqueue", n, errno);
	for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm)) {
		struct sock_extended_err *ee = (struct sock_extended_err *)CMSG_DATA(cm);

		obs_int("ee_origin_zerocopy", ee->ee_origin == SO_EE_ORIGIN_ZEROCOPY);
		obs_int("ee_errno", ee->ee_errno);
		obs_int("ee_range", (long)ee->ee_data - (long)ee->ee_info + 1);
		break;
	}
}

/* ------------------------------------------- processes and listeners */

/* accept4 flags: the accepted socket is non-blocking and close-on-exec. */
static void case_accept4(void)
{
	int lfd = listener_on(0, false), c, s;

	c = connect_to(port_of(lfd));
	s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0)
		fatal("accept4: %s", strerror(errno));
	obs_int("nonblock", (fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
	obs_int("cloexec", (fcntl(s, F_GETFD) & FD_CLOEXEC) != 0);
	obs_recv("recv_empty", s, 100, 0);
	hello(c, s);
	send_all(c, "data", 4);
	obs_events("poll", poll_events(s, POLLIN, 1000));
	obs_recv("recv", s, 100, 0);
	obs_recv("recv_again", s, 100, 0);
}

/* An SO_REUSEPORT group: every connection is accepted by one member and carries its data. */
static void case_reuseport(void)
{
	enum { CONNS = 8 };
	int l[2], cs[CONNS], ss[CONNS], accepted = 0, paired = 0, intact = 0;
	int64_t deadline;

	l[0] = listener_on(0, true);
	l[1] = listener_on(port_of(l[0]), true);
	for (int i = 0; i < CONNS; i++)
		cs[i] = connect_to(port_of(l[0]));
	set_nonblock(l[0], true);
	set_nonblock(l[1], true);
	deadline = now_ms() + 2000;
	while (accepted < CONNS && now_ms() < deadline) {
		bool any = false;

		for (int k = 0; k < 2 && accepted < CONNS; k++) {
			int s = accept4(l[k], NULL, NULL, SOCK_CLOEXEC);

			if (s >= 0) {
				ss[accepted++] = s;
				any = true;
			}
		}
		if (!any)
			sleep_ms(5);
	}
	obs_int("accepted", accepted);
	/* Pair each accepted socket with its client by port, then exchange. */
	for (int j = 0; j < accepted; j++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int pport;

		set_nonblock(ss[j], false);
		if (getpeername(ss[j], (struct sockaddr *)&peer, &len) < 0)
			fatal("getpeername: %s", strerror(errno));
		pport = ntohs(family == AF_INET ? ((struct sockaddr_in *)&peer)->sin_port : ((struct sockaddr_in6 *)&peer)->sin6_port);
		for (int i = 0; i < CONNS; i++) {
			char msg[16], got[16];
			int n;

			if (port_of(cs[i]) != pport)
				continue;
			paired++;
			hello(cs[i], ss[j]);
			n = snprintf(msg, sizeof(msg), "conn%d", i);
			send_all(cs[i], msg, (size_t)n);
			recv_exact(ss[j], got, (size_t)n);
			intact += memcmp(msg, got, (size_t)n) == 0;
		}
	}
	obs_int("paired", paired);
	obs_int("intact", intact);
}

static void case_fork_dup(void)
{
	char buf[64];
	int c, s, d, status;
	pid_t pid;

	make_pair(&c, &s);
	d = dup(c);
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		send_all(d, "child;", 6);
		close(d);
		close(c);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	obs_int("child_exit", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	send_all(c, "parent-dup;", 11);
	close(d);
	send_all(c, "parent", 6);
	settle();
	recv_exact(s, buf, 23);
	obs_bytes("received", buf, 23);
	obs_events("poll_open", poll_events(s, POLL_ALL, 0));
	send_all(s, "back", 4);
	obs_recv("client_recv", c, 100, 0);
	close(c);
	settle();
	obs_recv("server_eof", s, 100, 0);
}

static void send_fd(int us, int fd)
{
	char control[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte = 'F';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (sendmsg(us, &mh, 0) != 1)
		fatal("sendmsg SCM_RIGHTS: %s", strerror(errno));
}

static int recv_fd(int us)
{
	char control[CMSG_SPACE(sizeof(int))];
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(us, &mh, 0) != 1 || !(cm = CMSG_FIRSTHDR(&mh)) || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* An accelerated socket passed to another process over a unix socket keeps working there. */
static void case_fd_pass(void)
{
	int c, s, us[2], status;
	pid_t pid;

	make_pair(&c, &s);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, us) < 0)
		fatal("socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		char buf[16];
		int fd;

		close(us[0]);
		close(c);
		close(s);
		fd = recv_fd(us[1]);
		if (fd < 0)
			_exit(10);
		send_all(fd, "from child", 10);
		recv_exact(fd, buf, 5);
		_exit(memcmp(buf, "reply", 5) == 0 ? 0 : 11);
	}
	close(us[1]);
	send_fd(us[0], c);
	close(c);
	obs_recv("server_recv", s, 100, 0);
	send_all(s, "reply", 5);
	waitpid(pid, &status, 0);
	obs_int("child_exit", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	settle();
	obs_events("server_poll_after_child", poll_events(s, POLL_ALL, 0));
	obs_recv("server_eof", s, 100, MSG_DONTWAIT);
}

/* ------------------------------------------------------------ io_uring */

struct uring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int uring_setup(struct uring *u)
{
	struct io_uring_params p;
	char *sq, *cq;

	memset(&p, 0, sizeof(p));
	u->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (u->fd < 0)
		return -errno;
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_CQ_RING);
	u->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || u->sqes == MAP_FAILED)
		fatal("io_uring mmap: %s", strerror(errno));
	u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	u->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	u->sq_array = (unsigned *)(sq + p.sq_off.array);
	u->cq_head = (unsigned *)(cq + p.cq_off.head);
	u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	u->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* Submit one send or recv and wait for its completion; returns cqe->res. */
static int uring_op(struct uring *u, int op, int fd, void *buf, unsigned len, int msg_flags)
{
	unsigned tail = *u->sq_tail, idx = tail & *u->sq_mask, head;
	struct io_uring_sqe *sqe = &u->sqes[idx];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = (uint8_t)op;
	sqe->fd = fd;
	sqe->addr = (uint64_t)(uintptr_t)buf;
	sqe->len = len;
	sqe->msg_flags = (uint32_t)msg_flags;
	u->sq_array[idx] = idx;
	__atomic_store_n(u->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, u->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		fatal("io_uring_enter: %s", strerror(errno));
	head = *u->cq_head;
	if (head == __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE))
		fatal("io_uring: no completion");
	res = u->cqes[head & *u->cq_mask].res;
	__atomic_store_n(u->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

static void obs_uring(const char *k, int res)
{
	if (res >= 0)
		obs_int(k, res);
	else
		obs_str(k, errname(-res));
}

static void case_io_uring(void)
{
	struct uring u;
	char buf[64];
	int c, s, err, res;

	make_pair(&c, &s);
	err = uring_setup(&u);
	obs_str("setup", err ? errname(-err) : "ok");
	if (err)
		return;
	obs_uring("send", uring_op(&u, IORING_OP_SEND, c, "ring-send", 9, 0));
	obs_recv("recv", s, 100, 0);
	send_all(s, "ring-recv", 9);
	memset(buf, 0, sizeof(buf));
	res = uring_op(&u, IORING_OP_RECV, c, buf, sizeof(buf), 0);
	obs_uring("recv_ring", res);
	if (res > 0)
		obs_bytes("recv_ring_data", buf, res);
	/* A recv that has to wait: submitted first, completed by the peer's send. */
	obs_uring("recv_nonblock_empty", uring_op(&u, IORING_OP_RECV, c, buf, sizeof(buf), MSG_DONTWAIT));
	close(u.fd);
}

/* ------------------------------------------------------------ cases */

struct conform_case {
	const char *name;
	void (*run)(void);
};

static const struct conform_case cases[] = {
	{ "oob_unread", case_oob_unread },
	{ "oob_drained", case_oob_drained },
	{ "oob_drained_v6", case_oob_drained_v6 },
	{ "oob_inline", case_oob_inline },
	{ "oob_none", case_oob_none },
	{ "peek", case_peek },
	{ "peek_multi", case_peek_multi },
	{ "waitall", case_waitall },
	{ "waitall_eof", case_waitall_eof },
	{ "trunc", case_trunc },
	{ "dontwait", case_dontwait },
	{ "rcvlowat", case_rcvlowat },
	{ "rcvtimeo", case_rcvtimeo },
	{ "sndtimeo", case_sndtimeo },
	{ "sndtimeo_rcvbuf", case_sndtimeo_rcvbuf },
	{ "nonblock_full", case_nonblock_full },
	{ "nonblock_full_rcvbuf", case_nonblock_full_rcvbuf },
	{ "sendfile_sndtimeo", case_sendfile_sndtimeo },
	{ "shutdown_wr", case_shutdown_wr },
	{ "shutdown_rd", case_shutdown_rd },
	{ "close_unread", case_close_unread },
	{ "linger0", case_linger0 },
	{ "close_after_data", case_close_after_data },
	{ "half_close_in_flight", case_half_close_in_flight },
	{ "epoll_et", case_epoll_et },
	{ "fionread", case_fionread },
	{ "tcp_info", case_tcp_info },
	{ "sockopts", case_sockopts },
	{ "cork", case_cork },
	{ "msg_more", case_msg_more },
	{ "writev_many", case_writev_many },
	{ "sendfile", case_sendfile },
	{ "splice_send", case_splice_send },
	{ "splice_recv", case_splice_recv },
	{ "zerocopy", case_zerocopy },
	{ "accept4", case_accept4 },
	{ "reuseport", case_reuseport },
	{ "fork_dup", case_fork_dup },
	{ "fd_pass", case_fd_pass },
	{ "io_uring", case_io_uring },
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: conform --list | conform CASE\n");
		return 2;
	}
	if (strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(argv[1], cases[i].name) == 0) {
			case_name = cases[i].name;
			signal(SIGALRM, on_alarm);
			signal(SIGPIPE, SIG_IGN);
			alarm(WATCHDOG_S);
			cases[i].run();
			print_result(NULL);
			return 0;
		}
	}
	fprintf(stderr, "conform: no case %s (conform --list)\n", argv[1]);
	return 2;
}
