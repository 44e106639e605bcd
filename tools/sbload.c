// SPDX-License-Identifier: GPL-2.0-only
/*
 * sbload - native load generator and byte-integrity checker for sockbypass.
 *
 *   sbload stream     bulk throughput
 *   sbload rr         request/response round-trip latency
 *   sbload crr        connect + request + response + close rate
 *   sbload integrity  bidirectional byte-exactness over many connections
 *
 * Node is far too slow to generate microsecond-scale load, so `sockbypass bench`
 * and the integrity suite drive this binary instead.  Every mode has a deadline
 * and a hard watchdog, prints exactly one JSON object on stdout (also on errors:
 * {"mode":..,"error":..}) and writes diagnostics to stderr.
 *
 * Exit status: 0 ok, 1 integrity failures found, 2 error, 3 watchdog fired.
 *
 * Server and client run as threads of this one process by default (--role both),
 * so that putting the process into a cgroup covers both ends; --role server|client
 * splits them across processes or network namespaces.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define NSEC 1000000000LL

/* ---------------------------------------------------------------- options */

enum mode { MODE_STREAM, MODE_RR, MODE_CRR, MODE_INTEGRITY };
enum family { FAM_TCP4, FAM_TCP6, FAM_UNIX, FAM_TCP4MAPPED };
enum role { ROLE_BOTH, ROLE_SERVER, ROLE_CLIENT };

static const char *const mode_names[] = { "stream", "rr", "crr", "integrity" };
static const char *const family_names[] = { "tcp4", "tcp6", "unix", "tcp4mapped" };
static const char *const role_names[] = { "both", "server", "client" };

struct opts {
	enum mode mode;
	const char *mode_name;
	enum family family;
	bool family_set;
	enum role role;
	size_t size;
	size_t read_size;
	double seconds;
	bool seconds_set;
	double timeout;
	int streams;
	uint64_t count;
	uint64_t warmup;
	bool linger0;
	int connections;
	uint64_t bytes;
	uint64_t seed;
	const char *listen, *connect, *bind, *ready_file;
	bool early_data, server_first;
	int64_t corrupt_byte; /* -1: off */
};

/* Written by main() before any thread starts, read-only afterwards. */
static struct opts O = { .mode_name = "unknown", .corrupt_byte = -1 };

/* ------------------------------------------------------ errors, JSON, time */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void watchdog_disarm(void)
{
	struct itimerval it;

	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
}

static pthread_mutex_t exit_lock = PTHREAD_MUTEX_INITIALIZER;

/* Report one error (stderr text + JSON on stdout) and exit; safe from any thread:
 * the first caller wins, later ones block on exit_lock until _exit. */
__attribute__((noreturn, format(printf, 1, 2))) static void fatal(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&exit_lock);
	watchdog_disarm();
	fprintf(stderr, "sbload: %s\n", msg);
	printf("{\"mode\":");
	json_str(stdout, O.mode_name);
	printf(",\"error\":");
	json_str(stdout, msg);
	printf("}\n");
	fflush(stdout);
	fflush(stderr);
	_exit(2);
}

static char wd_out[256], wd_err[256];
static size_t wd_out_len, wd_err_len;

static void on_watchdog(int sig)
{
	(void)sig;
	/* Only async-signal-safe calls here; both messages were formatted up front. */
	if (write(STDERR_FILENO, wd_err, wd_err_len) < 0) {
	}
	if (write(STDOUT_FILENO, wd_out, wd_out_len) < 0) {
	}
	_exit(3);
}

/* Hard timeout: whatever hangs (a peer that never connects, a stuck read), the
 * process ends by itself with a JSON error. */
static void watchdog_arm(double secs)
{
	struct sigaction sa;
	struct itimerval it;

	snprintf(wd_err, sizeof(wd_err), "sbload: watchdog: %s did not finish within %.1f s, aborting\n",
		 O.mode_name, secs);
	snprintf(wd_out, sizeof(wd_out), "{\"mode\":\"%s\",\"error\":\"watchdog: did not finish within %.1f s\"}\n",
		 O.mode_name, secs);
	wd_err_len = strlen(wd_err);
	wd_out_len = strlen(wd_out);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_watchdog;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		fatal("sigaction: %s", strerror(errno));
	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = (time_t)secs;
	it.it_value.tv_usec = (suseconds_t)((secs - (double)(time_t)secs) * 1e6);
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		fatal("setitimer: %s", strerror(errno));
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static void sleep_until(int64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / NSEC), .tv_nsec = (long)(t % NSEC) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p)
		fatal("out of memory (%zu bytes)", n);
	return p;
}

static void pthread_check(int rc, const char *what)
{
	if (rc)
		fatal("%s: %s", what, strerror(rc));
}

/* ------------------------------------------------------------ addresses */

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

static int addr_af(const struct addr *a)
{
	return a->ss.ss_family;
}

static int addr_port(const struct addr *a)
{
	if (addr_af(a) == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (addr_af(a) == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return 0;
}

static void addr_set_port(struct addr *a, int port)
{
	if (addr_af(a) == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
	else if (addr_af(a) == AF_INET6)
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
}

/* "1.2.3.4:P", "[::1]:P", "::1:P" (last colon splits), "/path" or "@abstract". */
static void parse_addr(const char *opt, const char *s, struct addr *a)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *port;
	char *end;
	unsigned long p;
	size_t hl;

	memset(a, 0, sizeof(*a));
	if (s[0] == '/' || s[0] == '@' || s[0] == '.') {
		struct sockaddr_un *u = (struct sockaddr_un *)&a->ss;
		size_t n = strlen(s);

		if (n >= sizeof(u->sun_path) || n < 2)
			fatal("%s: unix socket name '%s' has a bad length", opt, s);
		u->sun_family = AF_UNIX;
		if (s[0] == '@') { /* abstract namespace: leading NUL, no file to clean up */
			memcpy(u->sun_path + 1, s + 1, n - 1);
			a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		} else {
			memcpy(u->sun_path, s, n + 1);
			a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		}
		return;
	}
	if (s[0] == '[') {
		const char *e = strchr(s, ']');

		if (!e || e[1] != ':')
			fatal("%s: expected [ADDR]:PORT, got '%s'", opt, s);
		hl = (size_t)(e - s - 1);
		if (hl >= sizeof(host))
			fatal("%s: address too long: '%s'", opt, s);
		memcpy(host, s + 1, hl);
		port = e + 2;
	} else {
		const char *c = strrchr(s, ':');

		if (!c)
			fatal("%s: expected ADDR:PORT, got '%s'", opt, s);
		hl = (size_t)(c - s);
		if (hl >= sizeof(host))
			fatal("%s: address too long: '%s'", opt, s);
		memcpy(host, s, hl);
		port = c + 1;
	}
	host[hl] = '\0';
	errno = 0;
	p = strtoul(port, &end, 10);
	if (errno || *port == '\0' || *end != '\0' || p > 65535)
		fatal("%s: bad port in '%s'", opt, s);
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		a->len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		a->len = sizeof(*sin6);
	} else {
		fatal("%s: '%s' is not a numeric IPv4/IPv6 address", opt, host);
	}
}

static void addr_str(const struct addr *a, char *buf, size_t n)
{
	char h[INET6_ADDRSTRLEN];

	if (addr_af(a) == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->ss)->sin_addr, h, sizeof(h));
		snprintf(buf, n, "%s:%d", h, addr_port(a));
	} else if (addr_af(a) == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->ss)->sin6_addr, h, sizeof(h));
		snprintf(buf, n, "[%s]:%d", h, addr_port(a));
	} else {
		const struct sockaddr_un *u = (const struct sockaddr_un *)&a->ss;
		size_t plen = a->len - offsetof(struct sockaddr_un, sun_path);

		if (plen > 0 && u->sun_path[0] == '\0')
			snprintf(buf, n, "@%.*s", (int)(plen - 1), u->sun_path + 1);
		else
			snprintf(buf, n, "%s", u->sun_path);
	}
}

/* Which address families the chosen --family needs on each side. */
static int family_listen_af(void)
{
	switch (O.family) {
	case FAM_TCP4:
		return AF_INET;
	case FAM_UNIX:
		return AF_UNIX;
	default:
		return AF_INET6; /* tcp6, and tcp4mapped's dual-stack listener */
	}
}

static int family_connect_af(void)
{
	switch (O.family) {
	case FAM_TCP6:
		return AF_INET6;
	case FAM_UNIX:
		return AF_UNIX;
	default:
		return AF_INET; /* tcp4, and tcp4mapped's IPv4 client */
	}
}

static void default_listen_addr(struct addr *a)
{
	char name[96];

	switch (O.family) {
	case FAM_TCP4:
		parse_addr("--listen", "127.0.0.1:0", a);
		break;
	case FAM_TCP6:
		parse_addr("--listen", "[::1]:0", a);
		break;
	case FAM_TCP4MAPPED:
		parse_addr("--listen", "[::]:0", a);
		break;
	case FAM_UNIX:
		/* Abstract name: nothing on disk to clean up, unique per process. */
		snprintf(name, sizeof(name), "@sbload-%d-%s-%lld", (int)getpid(), O.mode_name,
			 (long long)(now_ns() % 1000000007));
		parse_addr("--listen", name, a);
		break;
	}
}

/* The address a same-process client uses to reach our own listener. */
static void loopback_peer(const struct addr *bound, struct addr *out)
{
	*out = *bound;
	if (O.family == FAM_TCP4MAPPED) {
		parse_addr("--connect", "127.0.0.1:0", out);
		addr_set_port(out, addr_port(bound));
	} else if (addr_af(out) == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&out->ss;

		if (s->sin_addr.s_addr == htonl(INADDR_ANY))
			s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (addr_af(out) == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&s->sin6_addr))
			s->sin6_addr = in6addr_loopback;
	}
}

/* ------------------------------------------------------------- sockets */

static void setsockopt_int(int fd, int level, int opt, int val, const char *name)
{
	if (setsockopt(fd, level, opt, &val, sizeof(val)) < 0)
		fatal("setsockopt(%s): %s", name, strerror(errno));
}

static void set_nodelay(int fd)
{
	if (O.family != FAM_UNIX)
		setsockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY");
}

static int sock_listen(const struct addr *a, int backlog, struct addr *bound)
{
	int fd = socket(addr_af(a), SOCK_STREAM | SOCK_CLOEXEC, 0);
	char s[160];

	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	if (addr_af(a) != AF_UNIX)
		setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	if (addr_af(a) == AF_INET6) /* tcp4mapped needs the dual-stack listener */
		setsockopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, O.family == FAM_TCP4MAPPED ? 0 : 1, "IPV6_V6ONLY");
	if (addr_af(a) == AF_UNIX) {
		const struct sockaddr_un *u = (const struct sockaddr_un *)&a->ss;
		struct stat st;

		/* Replace a stale socket file from an earlier run, never anything else. */
		if (u->sun_path[0] && lstat(u->sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(u->sun_path);
	}
	addr_str(a, s, sizeof(s));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		fatal("bind %s: %s", s, strerror(errno));
	if (listen(fd, backlog) < 0)
		fatal("listen %s: %s", s, strerror(errno));
	bound->len = sizeof(bound->ss);
	if (getsockname(fd, (struct sockaddr *)&bound->ss, &bound->len) < 0)
		fatal("getsockname: %s", strerror(errno));
	return fd;
}

static void unlink_unix_path(const struct addr *a)
{
	const struct sockaddr_un *u = (const struct sockaddr_un *)&a->ss;

	if (addr_af(a) == AF_UNIX && u->sun_path[0])
		unlink(u->sun_path);
}

/* Tell the caller we are listening: write the port (TCP) or socket name (unix)
 * to a temp file and rename it, so the reader never sees a half-written file. */
static void write_ready_file(const struct addr *bound)
{
	char tmp[PATH_MAX], content[160];
	FILE *f;

	if (!O.ready_file)
		return;
	if (addr_af(bound) == AF_UNIX)
		addr_str(bound, content, sizeof(content));
	else
		snprintf(content, sizeof(content), "%d", addr_port(bound));
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", O.ready_file, (int)getpid());
	f = fopen(tmp, "w");
	if (!f)
		fatal("--ready-file %s: %s", tmp, strerror(errno));
	fprintf(f, "%s\n", content);
	if (fclose(f) != 0 || rename(tmp, O.ready_file) < 0)
		fatal("--ready-file %s: %s", O.ready_file, strerror(errno));
}

/* Create a client socket, bound to --bind if given (a non-zero port becomes
 * PORT+idx so that parallel connections get distinct, reproducible 4-tuples). */
static int client_socket(const struct addr *to, int idx, bool nonblock)
{
	int fd = socket(addr_af(to), SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	if (O.bind) {
		struct addr b;
		char s[160];

		parse_addr("--bind", O.bind, &b);
		if (addr_af(&b) != addr_af(to))
			fatal("--bind %s: address family differs from the connect address", O.bind);
		if (addr_port(&b))
			addr_set_port(&b, addr_port(&b) + idx);
		setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
		addr_str(&b, s, sizeof(s));
		if (bind(fd, (struct sockaddr *)&b.ss, b.len) < 0)
			fatal("bind %s: %s", s, strerror(errno));
	}
	return fd;
}

static int connect_blocking(const struct addr *to, int idx)
{
	int fd = client_socket(to, idx, false);
	char s[160];

	if (connect(fd, (const struct sockaddr *)&to->ss, to->len) < 0) {
		int err = errno;

		/* An interrupted connect keeps going in the background: wait for it
		 * rather than calling connect() again (that would give EALREADY). */
		if (err == EINTR) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			socklen_t len = sizeof(err);

			while (poll(&p, 1, -1) < 0 && errno == EINTR)
				;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
		}
		if (err) {
			addr_str(to, s, sizeof(s));
			fatal("connect %s: %s", s, strerror(err));
		}
	}
	return fd;
}

static int accept_blocking(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd >= 0)
			return fd;
		if (errno != EINTR && errno != ECONNABORTED)
			fatal("accept: %s", strerror(errno));
	}
}

/* Blocking I/O of exactly n bytes; handles EINTR and partial transfers. */
static int write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Returns n, fewer only at EOF, or -1. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t k = read(fd, p + got, n - got);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static void raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		fatal("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= want)
		return;
	struct rlimit nl = { .rlim_cur = want, .rlim_max = rl.rlim_max < want ? want : rl.rlim_max };
	if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
		return;
	/* Without CAP_SYS_RESOURCE only the soft limit can move. */
	nl.rlim_cur = nl.rlim_max = rl.rlim_max;
	if (rl.rlim_max < want || setrlimit(RLIMIT_NOFILE, &nl) < 0)
		fatal("need %llu file descriptors but RLIMIT_NOFILE allows %llu", (unsigned long long)want,
		      (unsigned long long)rl.rlim_max);
}

/* Listener (server/both roles, plus --ready-file) and the address clients connect to. */
struct endpoints {
	int lfd;
	struct addr bound; /* where the listener is */
	struct addr peer;  /* where the client connects */
};

static void setup_endpoints(struct endpoints *ep, int backlog)
{
	struct addr la;

	ep->lfd = -1;
	if (O.role != ROLE_CLIENT) {
		if (O.listen)
			parse_addr("--listen", O.listen, &la);
		else
			default_listen_addr(&la);
		if (addr_af(&la) != family_listen_af())
			fatal("--listen %s does not match --family %s", O.listen ? O.listen : "",
			      family_names[O.family]);
		ep->lfd = sock_listen(&la, backlog, &ep->bound);
		write_ready_file(&ep->bound);
	}
	if (O.role == ROLE_BOTH) {
		loopback_peer(&ep->bound, &ep->peer);
	} else if (O.role == ROLE_CLIENT) {
		if (!O.connect)
			fatal("--role client needs --connect ADDR:PORT");
		parse_addr("--connect", O.connect, &ep->peer);
		if (addr_af(&ep->peer) != family_connect_af())
			fatal("--connect %s does not match --family %s", O.connect, family_names[O.family]);
	}
}

static void teardown_endpoints(struct endpoints *ep)
{
	if (ep->lfd >= 0) {
		close(ep->lfd);
		unlink_unix_path(&ep->bound);
	}
}

/* Common leading JSON fields. Printed only after all worker threads are joined. */
static void json_begin(void)
{
	watchdog_disarm();
	printf("{\"mode\":\"%s\",\"role\":\"%s\",\"family\":\"%s\"", O.mode_name, role_names[O.role],
	       family_names[O.family]);
}

static void json_end(void)
{
	printf("}\n");
	fflush(stdout);
}

/* ================================================================ stream */

struct stream_end {
	pthread_t th;
	int fd;
	size_t bufsize;
	pthread_barrier_t *go;
	atomic_bool *stop;
	uint64_t bytes;
	int64_t t_first, t_end;
};

static void *stream_writer(void *arg)
{
	struct stream_end *s = arg;
	char *buf = xmalloc(s->bufsize);
	ssize_t n;

	memset(buf, 0x5a, s->bufsize);
	pthread_barrier_wait(s->go);
	while (!atomic_load_explicit(s->stop, memory_order_relaxed)) {
		if (write_full(s->fd, buf, s->bufsize) < 0)
			fatal("stream: write: %s", strerror(errno));
		s->bytes += s->bufsize;
	}
	if (shutdown(s->fd, SHUT_WR) < 0)
		fatal("stream: shutdown: %s", strerror(errno));
	/* The receiver closes only after reading everything, so waiting for its EOF
	 * makes a client-side figure count delivered bytes, not bytes still queued. */
	while ((n = read(s->fd, buf, s->bufsize)) != 0)
		if (n < 0 && errno != EINTR)
			fatal("stream: waiting for the receiver to finish: %s", strerror(errno));
	s->t_end = now_ns();
	close(s->fd);
	free(buf);
	return NULL;
}

static void *stream_reader(void *arg)
{
	struct stream_end *s = arg;
	char *buf = xmalloc(s->bufsize);

	for (;;) {
		ssize_t n = read(s->fd, buf, s->bufsize);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("stream: read: %s", strerror(errno));
		}
		if (n == 0)
			break;
		if (!s->bytes)
			s->t_first = now_ns();
		s->bytes += (uint64_t)n;
	}
	s->t_end = now_ns();
	close(s->fd);
	free(buf);
	return NULL;
}

static int mode_stream(void)
{
	int n = O.streams;
	struct stream_end *w = xmalloc(sizeof(*w) * (size_t)n), *r = xmalloc(sizeof(*r) * (size_t)n);
	bool writers = O.role != ROLE_SERVER, readers = O.role != ROLE_CLIENT;
	atomic_bool stop = false;
	pthread_barrier_t go;
	struct endpoints ep;
	int64_t t0 = 0, t1 = 0;
	uint64_t bytes = 0;

	setup_endpoints(&ep, n + 16);
	pthread_check(pthread_barrier_init(&go, NULL, (unsigned)(writers ? n + 1 : 1)), "pthread_barrier_init");
	for (int i = 0; i < n; i++) {
		w[i] = (struct stream_end){ .fd = -1, .bufsize = O.size, .go = &go, .stop = &stop };
		r[i] = (struct stream_end){ .fd = -1, .bufsize = O.read_size, .go = &go, .stop = &stop };
		if (writers)
			w[i].fd = connect_blocking(&ep.peer, i);
		if (readers) {
			r[i].fd = accept_blocking(ep.lfd);
			if (!t0)
				t0 = now_ns(); /* server-only: the clock starts at the first connection */
		}
	}
	for (int i = 0; i < n; i++) {
		if (readers)
			pthread_check(pthread_create(&r[i].th, NULL, stream_reader, &r[i]), "pthread_create");
		if (writers)
			pthread_check(pthread_create(&w[i].th, NULL, stream_writer, &w[i]), "pthread_create");
	}
	if (writers) {
		pthread_barrier_wait(&go); /* all connections are up: start the clock */
		t0 = now_ns();
		sleep_until(t0 + (int64_t)(O.seconds * NSEC));
		atomic_store(&stop, true);
	}
	for (int i = 0; i < n; i++) {
		if (writers) {
			pthread_join(w[i].th, NULL);
			if (!readers) {
				bytes += w[i].bytes;
				t1 = w[i].t_end > t1 ? w[i].t_end : t1;
			}
		}
		if (readers) {
			pthread_join(r[i].th, NULL);
			bytes += r[i].bytes;
			t1 = r[i].t_end > t1 ? r[i].t_end : t1;
		}
	}
	teardown_endpoints(&ep);
	pthread_barrier_destroy(&go);

	double secs = (double)(t1 - t0) / 1e9;
	json_begin();
	printf(",\"size\":%zu,\"readSize\":%zu,\"streams\":%d,\"seconds\":%.6f,\"bytes\":%llu,\"bitsPerSecond\":%.0f",
	       O.size, O.read_size, n, secs, (unsigned long long)bytes, secs > 0 ? (double)bytes * 8 / secs : 0.0);
	json_end();
	free(w);
	free(r);
	return 0;
}

/* ==================================================================== rr */

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

static int mode_rr(void)
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

/* =================================================================== crr */

/*
 * Server: one nonblocking epoll loop, so that parallel clients (--streams) do not
 * measure thread creation. Each connection: read the request, write the response,
 * then wait for the client's close (EOF or RST) before closing our end. Closing
 * second makes the server the passive closer, so it never holds TIME_WAIT either.
 */
struct crr_conn {
	int fd;
	size_t got, sent;
	enum { CRR_READ, CRR_WRITE, CRR_AWAIT_CLOSE } phase;
	bool want_out;
};

struct crr_server {
	pthread_t th;
	int lfd, evfd;
	int64_t deadline;
	int64_t t_first, t_last; /* first and last response sent */
	uint64_t served, errors;
};

static void crr_conn_close(struct crr_conn *c)
{
	close(c->fd);
	free(c);
}

static void crr_conn_event(int epfd, struct crr_server *s, struct crr_conn *c, char *scratch, const char *resp)
{
	for (;;) {
		ssize_t k;

		switch (c->phase) {
		case CRR_READ:
			k = read(c->fd, scratch, O.size - c->got);
			if (k > 0) {
				c->got += (size_t)k;
				if (c->got == O.size)
					c->phase = CRR_WRITE;
				continue;
			}
			if (k < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			s->errors++; /* EOF or reset before a full request */
			crr_conn_close(c);
			return;
		case CRR_WRITE:
			k = send(c->fd, resp + c->sent, O.size - c->sent, MSG_NOSIGNAL);
			if (k >= 0) {
				c->sent += (size_t)k;
				if (c->sent == O.size) {
					s->t_last = now_ns();
					if (!s->served++)
						s->t_first = s->t_last;
					c->phase = CRR_AWAIT_CLOSE;
				}
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && !c->want_out) {
				struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };

				c->want_out = true;
				epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
			}
			if (errno != EAGAIN) {
				s->errors++;
				crr_conn_close(c);
			}
			return;
		case CRR_AWAIT_CLOSE:
			k = read(c->fd, scratch, O.size);
			if (k > 0) {
				s->errors++; /* the client sent more than one request */
				continue;
			}
			if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
				if (c->want_out) {
					struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

					c->want_out = false;
					epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
				}
				return;
			}
			/* EOF, or ECONNRESET from the client's SO_LINGER{1,0} close: done. */
			crr_conn_close(c);
			return;
		}
	}
}

static void *crr_server_main(void *arg)
{
	struct crr_server *s = arg;
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	char *scratch = xmalloc(O.size), *resp = xmalloc(O.size);
	struct epoll_event ev, evs[64];
	int64_t last_activity = now_ns();

	memset(resp, 0x52, O.size);
	if (epfd < 0)
		fatal("epoll_create1: %s", strerror(errno));
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &s->lfd };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->lfd, &ev) < 0)
		fatal("epoll_ctl: %s", strerror(errno));
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &s->evfd };
	if (s->evfd >= 0 && epoll_ctl(epfd, EPOLL_CTL_ADD, s->evfd, &ev) < 0)
		fatal("epoll_ctl: %s", strerror(errno));
	for (;;) {
		int n = epoll_wait(epfd, evs, 64, 100);
		int64_t t = now_ns();

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait: %s", strerror(errno));
		}
		if (n > 0)
			last_activity = t;
		/* Split-process server: stop once clients have gone quiet for 2 s. */
		if (s->evfd < 0 && ((s->served && t - last_activity > 2 * NSEC) || t > s->deadline))
			break;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &s->evfd)
				goto out;
			if (evs[i].data.ptr == &s->lfd) {
				for (;;) {
					int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					struct crr_conn *c;

					if (fd < 0) {
						if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
							break;
						fatal("crr: accept: %s", strerror(errno));
					}
					set_nodelay(fd);
					c = xmalloc(sizeof(*c));
					c->fd = fd;
					ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
					if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
						fatal("epoll_ctl: %s", strerror(errno));
				}
				continue;
			}
			crr_conn_event(epfd, s, evs[i].data.ptr, scratch, resp);
		}
	}
out:
	/* Connections still open here are leaked until exit; the process ends right after. */
	close(epfd);
	free(scratch);
	free(resp);
	return NULL;
}

struct crr_client {
	pthread_t th;
	const struct addr *to;
	int idx;
	int64_t deadline, t_end;
	uint64_t ok, failed;
	int first_errno;
	const char *first_what;
};

static void crr_fail(struct crr_client *c, const char *what, int err)
{
	if (!c->failed++) {
		c->first_what = what;
		c->first_errno = err;
	}
}

static void *crr_client_main(void *arg)
{
	struct crr_client *c = arg;
	char *req = xmalloc(O.size), *resp = xmalloc(O.size);

	memset(req, 0x51, O.size);
	while (now_ns() < c->deadline) {
		int fd = client_socket(c->to, c->idx, false);
		ssize_t k;

		if (O.linger0 && O.family != FAM_UNIX) {
			/*
			 * SO_LINGER {1,0}: close() sends RST instead of FIN, so the client
			 * never enters TIME_WAIT. Without it every connection parks its
			 * ephemeral port in TIME_WAIT for 60 s; over back-to-back runs the
			 * port range fills up, connect() starts failing or slowing down, and
			 * later runs are measured against a different kernel state than
			 * earlier ones (e.g. bypass vs. baseline would not be comparable).
			 */
			struct linger l = { .l_onoff = 1, .l_linger = 0 };

			if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) < 0)
				fatal("setsockopt(SO_LINGER): %s", strerror(errno));
		}
		set_nodelay(fd);
		if (connect(fd, (const struct sockaddr *)&c->to->ss, c->to->len) < 0) {
			int err = errno;

			crr_fail(c, "connect", err);
			close(fd);
			if (err == EADDRNOTAVAIL || err == EAGAIN)
				usleep(1000); /* out of ephemeral ports: let some free up */
			continue;
		}
		if (write_full(fd, req, O.size) < 0) {
			crr_fail(c, "write", errno);
			close(fd);
			continue;
		}
		k = read_full(fd, resp, O.size);
		if (k < 0 || (size_t)k < O.size) {
			crr_fail(c, "read", k < 0 ? errno : EPIPE);
			close(fd);
			continue;
		}
		close(fd);
		c->ok++;
	}
	c->t_end = now_ns();
	free(req);
	free(resp);
	return NULL;
}

static int mode_crr(void)
{
	struct endpoints ep;
	struct crr_server srv = { .lfd = -1, .evfd = -1 };
	struct crr_client *cl = NULL;
	int n = O.streams;
	uint64_t ok = 0, failed = 0;
	char first[160] = "";
	int64_t t0, t1;

	setup_endpoints(&ep, 4096);
	t0 = now_ns();
	if (O.role != ROLE_CLIENT) {
		int fl = fcntl(ep.lfd, F_GETFL);

		if (fl < 0 || fcntl(ep.lfd, F_SETFL, fl | O_NONBLOCK) < 0)
			fatal("fcntl: %s", strerror(errno));
		srv.lfd = ep.lfd;
		/* Split-process server: the client starts later than we do, so allow slack;
		 * the idle rule in crr_server_main normally ends it first. */
		srv.deadline = t0 + (int64_t)((O.seconds + 5) * NSEC);
		if (O.role == ROLE_BOTH) {
			srv.evfd = eventfd(0, EFD_CLOEXEC);
			if (srv.evfd < 0)
				fatal("eventfd: %s", strerror(errno));
		}
		pthread_check(pthread_create(&srv.th, NULL, crr_server_main, &srv), "pthread_create");
	}
	t1 = t0;
	if (O.role != ROLE_SERVER) {
		cl = xmalloc(sizeof(*cl) * (size_t)n);
		for (int i = 0; i < n; i++) {
			cl[i] = (struct crr_client){ .to = &ep.peer, .idx = i, .deadline = t0 + (int64_t)(O.seconds * NSEC) };
			pthread_check(pthread_create(&cl[i].th, NULL, crr_client_main, &cl[i]), "pthread_create");
		}
		for (int i = 0; i < n; i++) {
			pthread_join(cl[i].th, NULL);
			ok += cl[i].ok;
			failed += cl[i].failed;
			t1 = cl[i].t_end > t1 ? cl[i].t_end : t1;
			if (cl[i].failed && !first[0])
				snprintf(first, sizeof(first), "%s: %s", cl[i].first_what, strerror(cl[i].first_errno));
		}
	}
	if (O.role != ROLE_CLIENT) {
		if (srv.evfd >= 0 && eventfd_write(srv.evfd, 1) < 0)
			fatal("eventfd_write: %s", strerror(errno));
		pthread_join(srv.th, NULL);
		if (O.role == ROLE_SERVER) {
			/* Rate over the busy period, not the idle wait that ends the server. */
			ok = srv.served;
			failed = srv.errors;
			t0 = srv.t_first;
			t1 = srv.t_last;
		}
	}
	teardown_endpoints(&ep);

	double secs = (double)(t1 - t0) / 1e9;
	json_begin();
	printf(",\"size\":%zu,\"streams\":%d,\"linger0\":%s,\"seconds\":%.6f,\"connections\":%llu,"
	       "\"connectionsPerSecond\":%.1f,\"failures\":%llu,\"firstError\":",
	       O.size, n, O.linger0 ? "true" : "false", secs, (unsigned long long)ok,
	       secs > 0 ? (double)ok / secs : 0.0, (unsigned long long)failed);
	if (first[0])
		json_str(stdout, first);
	else
		printf("null");
	json_end();
	free(cl);
	return 0;
}

/* ============================================================= integrity */

/*
 * Each connection carries two independent streams, client->server (c2s) and
 * server->client (s2c), each --bytes long and preceded by an 8-byte header
 * {magic, stream id}. The header tells the receiver which stream to expect:
 * normally the client announces its connection id and the server answers with
 * the same id; with --server-first the server speaks first, using its accept
 * index, and the client only starts writing after it has received data.
 *
 * Stream content is counter-based (byte at offset o depends only on seed, id,
 * direction and o), so any range can be regenerated on either side: senders
 * never buffer what they failed to write, receivers compare every byte against
 * the regenerated expectation, and both ends also hash what they sent/received.
 */
#define HDR_LEN 8
#define HDR_MAGIC 0x444c4253u /* "SBLD" little-endian */
#define MAX_CHUNK MiB	      /* largest single write or read */
#define DIR_C2S 0
#define DIR_S2C 1
#define WAITALL_TIMEOUT_US 5000 /* bound on a blocking MSG_WAITALL read */
#define SENDFILE_SPAN (64 * MiB)
#define LISTENER_TAG UINT64_MAX
#define MAX_SAMPLES 8
#define G64 0x9e3779b97f4a7c15ULL

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* splitmix64: for I/O decisions (sizes, syscalls); not part of the data. */
static inline uint64_t rnd(uint64_t *s)
{
	return mix64(*s += G64);
}

static uint64_t stream_key(uint32_t id, int dir)
{
	return mix64(O.seed * G64 ^ mix64(((uint64_t)id << 1 | (uint64_t)dir) + 0x51b1a5d0ULL));
}

/* Stream bytes [off, off+n): word i of the stream is mix64(key + (i+1)*G64), little-endian. */
static void gen_fill(uint64_t key, uint64_t off, uint8_t *buf, size_t n)
{
	uint64_t w = off >> 3, v;
	size_t skip = off & 7;

	if (skip && n) {
		size_t take = 8 - skip < n ? 8 - skip : n;

		v = htole64(mix64(key + (w + 1) * G64));
		memcpy(buf, (uint8_t *)&v + skip, take);
		buf += take;
		n -= take;
		w++;
	}
	for (; n >= 8; n -= 8, buf += 8, w++) {
		v = htole64(mix64(key + (w + 1) * G64));
		memcpy(buf, &v, 8);
	}
	if (n) {
		v = htole64(mix64(key + (w + 1) * G64));
		memcpy(buf, &v, n);
	}
}

/* Sizes in [1, max], skewed toward small: a power-of-two bucket (the smaller of
 * two uniform picks, so small buckets dominate even more than log-uniform), then
 * a uniform size inside it. Plain log-uniform moves most bytes in a handful of
 * huge calls; this way a 256 KiB stream takes dozens of calls, yet about one
 * call in a hundred is 512 KiB..1 MiB. */
static size_t rand_size(uint64_t *rng, size_t max)
{
	unsigned bits = 0, b, b2;
	size_t lo, hi;

	while (bits < 62 && ((size_t)2 << bits) <= max)
		bits++;
	b = (unsigned)(rnd(rng) % (bits + 1));
	b2 = (unsigned)(rnd(rng) % (bits + 1));
	if (b2 < b)
		b = b2;
	lo = (size_t)1 << b;
	hi = (lo << 1) - 1;
	if (hi > max)
		hi = max;
	return lo + (size_t)(rnd(rng) % (hi - lo + 1));
}

/* Cut buf[0..n) into 2..8 iovecs at random points; empty segments are allowed on
 * purpose (writev/readv must skip them). */
static int split_iov(uint64_t *rng, uint8_t *buf, size_t n, struct iovec *iov)
{
	size_t cut[8];
	int cnt = 2 + (int)(rnd(rng) % 7);

	for (int i = 0; i < cnt - 1; i++) {
		size_t c = (size_t)(rnd(rng) % (n + 1)), j = (size_t)i;

		while (j > 0 && cut[j - 1] > c) { /* insertion sort: at most 7 cuts */
			cut[j] = cut[j - 1];
			j--;
		}
		cut[j] = c;
	}
	cut[cnt - 1] = n;
	for (int i = 0, prev = 0; i < cnt; prev = 1, i++) {
		size_t start = prev ? cut[i - 1] : 0;

		iov[i].iov_base = buf + start;
		iov[i].iov_len = cut[i] - start;
	}
	return cnt;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

struct ep { /* one end of one connection */
	int fd;
	bool server;
	bool connecting, done, failed;
	uint32_t idx;	  /* client: connection index; server: accept order */
	uint32_t conn_id; /* for reports; server learns it from the client's header */
	bool id_known;
	uint64_t rng;
	/* transmit */
	bool tx_allowed, tx_shut;
	uint8_t tx_hdr[HDR_LEN];
	unsigned tx_hdr_off;
	uint32_t tx_stream;
	uint64_t tx_key, tx_off;
	EVP_MD_CTX *tx_md;
	uint8_t tx_dig[32];
	/* receive */
	uint8_t rx_hdr[HDR_LEN];
	unsigned rx_hdr_off;
	bool rx_known, rx_eof, rx_done, rx_bad;
	uint32_t rx_stream;
	uint64_t rx_key, rx_off, verified;
	EVP_MD_CTX *rx_md;
	uint8_t rx_dig[32];
};

struct iostats {
	uint64_t write, writev, sendfile, splice;
	uint64_t read, readv, peek, waitall, waitall_short, peek_short;
};

struct iworker { /* one epoll loop: all server ends, or all client ends */
	pthread_t th;
	bool server;
	int epfd, lfd;
	const struct addr *peer;
	struct ep *eps;
	uint32_t neps, ndone;
	uint8_t *seen; /* stream ids already announced by a header */
	uint8_t *txbuf, *rxbuf, *peekbuf, *expbuf, *drainbuf;
	int tmpfd, pipe_r, pipe_w;
	size_t pipe_cap;
	uint64_t tmp_off;
	uint64_t queued_at_accept; /* bytes already readable when accept() returned */
	uint64_t rng;
	int64_t deadline;
	struct iostats st;
};

static struct {
	pthread_mutex_t lock;
	char first[320];
	char samples[MAX_SAMPLES][320];
	unsigned nsamples;
} F = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Record the first failure of an endpoint; later ones on the same end are noise. */
__attribute__((format(printf, 2, 3))) static void ep_fail(struct ep *e, const char *fmt, ...)
{
	char what[256], msg[320];
	va_list ap;

	if (e->failed)
		return;
	e->failed = true;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (e->id_known)
		snprintf(msg, sizeof(msg), "conn %u: %s %s", e->conn_id, e->server ? "server" : "client", what);
	else
		snprintf(msg, sizeof(msg), "conn ? (server accept #%u): server %s", e->idx, what);
	pthread_mutex_lock(&F.lock);
	if (!F.first[0])
		snprintf(F.first, sizeof(F.first), "%s", msg);
	if (F.nsamples < MAX_SAMPLES)
		snprintf(F.samples[F.nsamples++], sizeof(F.samples[0]), "%s", msg);
	pthread_mutex_unlock(&F.lock);
}

static EVP_MD_CTX *md_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		fatal("EVP SHA-256 init failed");
	return md;
}

static void md_final(EVP_MD_CTX **md, uint8_t *out)
{
	if (EVP_DigestFinal_ex(*md, out, NULL) != 1)
		fatal("EVP SHA-256 final failed");
	EVP_MD_CTX_free(*md);
	*md = NULL;
}

static void md_update(EVP_MD_CTX *md, const void *p, size_t n)
{
	if (n && EVP_DigestUpdate(md, p, n) != 1)
		fatal("EVP SHA-256 update failed");
}

static void ep_close(struct iworker *w, struct ep *e)
{
	if (e->done)
		return;
	if (e->fd >= 0)
		close(e->fd); /* also drops it from the epoll set */
	e->fd = -1;
	e->done = true;
	w->ndone++;
}

static void ep_start_tx(struct ep *e, uint32_t stream, int dir)
{
	e->tx_allowed = true;
	e->tx_stream = stream;
	e->tx_key = stream_key(stream, dir);
	put_le32(e->tx_hdr, HDR_MAGIC);
	put_le32(e->tx_hdr + 4, stream);
}

static void ep_setup_fd(struct ep *e)
{
	/* Only the occasional blocking MSG_WAITALL read uses this timeout; it keeps
	 * that read from stalling the loop when the peer is busy elsewhere. */
	struct timeval tv = { .tv_sec = 0, .tv_usec = WAITALL_TIMEOUT_US };

	if (setsockopt(e->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		fatal("setsockopt(SO_RCVTIMEO): %s", strerror(errno));
	/* Half the connections keep Nagle on: both send paths get exercised. */
	if (e->idx % 2)
		set_nodelay(e->fd);
	e->tx_md = md_new();
	e->rx_md = md_new();
}

/* Nonblocking-call result: 1 progress/retry, 0 would block, -1 connection failed. */
static int io_err(struct ep *e, const char *what)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	if (errno == EINTR)
		return 1;
	ep_fail(e, "%s: %s", what, strerror(errno));
	return -1;
}

static void rx_check(struct iworker *w, struct ep *e, const uint8_t *p, size_t n)
{
	md_update(e->rx_md, p, n);
	if (!e->rx_bad) {
		gen_fill(e->rx_key, e->rx_off, w->expbuf, n);
		if (memcmp(p, w->expbuf, n) == 0) {
			e->verified += n;
		} else {
			size_t i = 0;

			while (p[i] == w->expbuf[i])
				i++;
			e->verified += i;
			e->rx_bad = true; /* keep draining so the peer can finish cleanly */
			ep_fail(e, "received byte %llu differs (got 0x%02x, expected 0x%02x)",
				(unsigned long long)(e->rx_off + i), p[i], w->expbuf[i]);
		}
	}
	e->rx_off += n;
}

static int rx_header(struct iworker *w, struct ep *e)
{
	ssize_t k = recv(e->fd, e->rx_hdr + e->rx_hdr_off, HDR_LEN - e->rx_hdr_off, MSG_DONTWAIT);
	uint32_t magic, id;

	if (k < 0)
		return io_err(e, "recv(header)");
	if (k == 0) {
		ep_fail(e, "connection closed before the stream header arrived");
		return -1;
	}
	e->rx_hdr_off += (unsigned)k;
	if (e->rx_hdr_off < HDR_LEN)
		return 1;
	magic = get_le32(e->rx_hdr);
	id = get_le32(e->rx_hdr + 4);
	if (magic != HDR_MAGIC) {
		ep_fail(e, "received a bad stream header (magic 0x%08x)", magic);
		return -1;
	}
	if (id >= (uint32_t)O.connections) {
		ep_fail(e, "header announces unknown stream %u", id);
		return -1;
	}
	if (w->seen[id]) {
		ep_fail(e, "header announces stream %u, which another connection already carries", id);
		return -1;
	}
	w->seen[id] = 1;
	e->rx_known = true;
	e->rx_stream = id;
	e->rx_key = stream_key(id, e->server ? DIR_C2S : DIR_S2C);
	if (e->server) {
		e->conn_id = id;
		e->id_known = true;
		if (!O.server_first)
			ep_start_tx(e, id, DIR_S2C); /* answer with the same stream id */
	} else if (!O.server_first && id != e->conn_id) {
		ep_fail(e, "received the server's stream %u on connection %u (cross-connection delivery)", id,
			e->conn_id);
		return -1;
	}
	return 1;
}

static int rx_step(struct iworker *w, struct ep *e)
{
	uint64_t left;
	size_t n;
	ssize_t k;
	unsigned op;

	if (e->rx_eof)
		return 0;
	if (e->rx_hdr_off < HDR_LEN)
		return rx_header(w, e);
	left = O.bytes - e->rx_off;
	if (left == 0) {
		/* Everything arrived; the next read must report EOF, not more data. */
		k = recv(e->fd, w->rxbuf, 4096, MSG_DONTWAIT);
		if (k < 0)
			return io_err(e, "recv(after end of stream)");
		if (k > 0) {
			ep_fail(e, "received %zd unexpected bytes after the end of the stream", k);
			return 1;
		}
		e->rx_eof = true;
		if (!e->rx_done) {
			e->rx_done = true;
			md_final(&e->rx_md, e->rx_dig);
		}
		return 1;
	}
	n = rand_size(&e->rng, MAX_CHUNK);
	if (n > left)
		n = (size_t)left;
	op = (unsigned)(rnd(&e->rng) % 100);
	if (op < 45) {
		w->st.read++;
		k = read(e->fd, w->rxbuf, n);
	} else if (op < 60) {
		struct iovec iov[8];
		int cnt = split_iov(&e->rng, w->rxbuf, n, iov);

		w->st.readv++;
		k = readv(e->fd, iov, cnt);
	} else if (op < 85) {
		/* Peek, then read the same amount: both must return the same bytes. */
		ssize_t p = recv(e->fd, w->peekbuf, n, MSG_PEEK | MSG_DONTWAIT);

		w->st.peek++;
		if (p <= 0) {
			k = p;
		} else {
			k = recv(e->fd, w->rxbuf, (size_t)p, MSG_DONTWAIT);
			if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				ep_fail(e, "MSG_PEEK returned %zd bytes at offset %llu but the following read found none",
					p, (unsigned long long)e->rx_off);
				return -1;
			}
			if (k > 0 && k < p)
				w->st.peek_short++;
			if (k > 0 && memcmp(w->rxbuf, w->peekbuf, (size_t)k) != 0) {
				ssize_t i = 0;

				while (w->rxbuf[i] == w->peekbuf[i])
					i++;
				ep_fail(e, "byte %llu returned by MSG_PEEK (0x%02x) differs from the byte then read (0x%02x)",
					(unsigned long long)(e->rx_off + (uint64_t)i), w->peekbuf[i], w->rxbuf[i]);
			}
		}
	} else {
		/* A real blocking MSG_WAITALL (bounded by SO_RCVTIMEO): the only way to
		 * exercise the kernel's wait-for-more path; nonblocking it degrades to a
		 * plain read. */
		w->st.waitall++;
		if (fcntl(e->fd, F_SETFL, 0) < 0)
			fatal("fcntl: %s", strerror(errno));
		k = recv(e->fd, w->rxbuf, n, MSG_WAITALL);
		int saved = errno;
		if (fcntl(e->fd, F_SETFL, O_NONBLOCK) < 0)
			fatal("fcntl: %s", strerror(errno));
		errno = saved;
		if (k >= 0 && (size_t)k < n)
			w->st.waitall_short++;
	}
	if (k < 0)
		return io_err(e, "read");
	if (k == 0) {
		ep_fail(e, "connection closed after %llu of %llu bytes", (unsigned long long)e->rx_off,
			(unsigned long long)O.bytes);
		e->rx_eof = true;
		return -1;
	}
	rx_check(w, e, w->rxbuf, (size_t)k);
	return 1;
}

static ssize_t tx_sendfile(struct iworker *w, struct ep *e, size_t n)
{
	off_t off;

	/*
	 * sendfile() hands page-cache pages to TCP by reference until the peer has
	 * read them, so rewriting a file range that may still be in flight would
	 * change bytes already "sent". Ranges are therefore never reused: each chunk
	 * goes to a fresh page-aligned offset, and when the span is used up the file
	 * is truncated, which detaches the old pages instead of overwriting them.
	 */
	w->tmp_off = (w->tmp_off + 4095) & ~(uint64_t)4095;
	if (w->tmp_off + n > SENDFILE_SPAN) {
		if (ftruncate(w->tmpfd, 0) < 0)
			fatal("ftruncate(temp file): %s", strerror(errno));
		w->tmp_off = 0;
	}
	for (size_t done = 0; done < n;) {
		ssize_t k = pwrite(w->tmpfd, w->txbuf + done, n - done, (off_t)(w->tmp_off + done));

		if (k < 0 && errno != EINTR)
			fatal("pwrite(temp file): %s", strerror(errno));
		if (k > 0)
			done += (size_t)k;
	}
	off = (off_t)w->tmp_off;
	w->tmp_off += n;
	return sendfile(e->fd, w->tmpfd, &off, n);
}

static ssize_t tx_splice(struct iworker *w, struct ep *e, size_t n)
{
	ssize_t m, k;
	size_t left;
	int saved;

	/* write() copies into pipe-owned pages (vmsplice would lend ours, which we reuse). */
	m = write(w->pipe_w, w->txbuf, n);
	if (m <= 0)
		fatal("write(pipe): %s", m < 0 ? strerror(errno) : "short write");
	do
		k = splice(w->pipe_r, NULL, e->fd, NULL, (size_t)m, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (k < 0 && errno == EINTR);
	saved = errno;
	/* The pipe is shared by all connections of this loop: whatever the socket
	 * did not take is discarded here and regenerated later. */
	left = (size_t)m - (k > 0 ? (size_t)k : 0);
	while (left) {
		ssize_t d = read(w->pipe_r, w->drainbuf, left);

		if (d < 0 && errno != EINTR)
			fatal("draining pipe: %s", strerror(errno));
		if (d > 0)
			left -= (size_t)d;
	}
	errno = saved;
	return k;
}

static int tx_step(struct iworker *w, struct ep *e)
{
	uint64_t left;
	size_t n, flip = 0;
	bool flipped = false;
	ssize_t k;
	unsigned op;
	const char *what;

	if (e->tx_shut)
		return 0;
	if (!e->tx_allowed) {
		/* --server-first: the client speaks only after server data has arrived. */
		if (e->server || !O.server_first || !e->rx_known || (e->rx_off == 0 && O.bytes > 0))
			return 0;
		ep_start_tx(e, e->conn_id, DIR_C2S);
	}
	if (e->tx_hdr_off < HDR_LEN) {
		k = send(e->fd, e->tx_hdr + e->tx_hdr_off, HDR_LEN - e->tx_hdr_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0)
			return io_err(e, "send(header)");
		e->tx_hdr_off += (unsigned)k;
		return 1;
	}
	left = O.bytes - e->tx_off;
	if (left == 0) {
		if (shutdown(e->fd, SHUT_WR) < 0) {
			ep_fail(e, "shutdown: %s", strerror(errno));
			return -1;
		}
		e->tx_shut = true;
		md_final(&e->tx_md, e->tx_dig);
		return 1;
	}
	n = rand_size(&e->rng, MAX_CHUNK);
	if (n > left)
		n = (size_t)left;
	op = (unsigned)(rnd(&e->rng) % 100);
	if (op >= 85 && n > w->pipe_cap)
		n = w->pipe_cap;
	gen_fill(e->tx_key, e->tx_off, w->txbuf, n);
	/* Hidden --corrupt-test-byte: corrupt one byte on the wire only. The hash
	 * below covers the intended byte, so this proves the checker can fail. */
	if (O.corrupt_byte >= 0 && !e->server && e->conn_id == 0 && (uint64_t)O.corrupt_byte >= e->tx_off &&
	    (uint64_t)O.corrupt_byte < e->tx_off + n) {
		flip = (size_t)((uint64_t)O.corrupt_byte - e->tx_off);
		w->txbuf[flip] ^= 0xff;
		flipped = true;
	}
	if (op < 40) {
		what = "write";
		w->st.write++;
		k = write(e->fd, w->txbuf, n);
	} else if (op < 70) {
		struct iovec iov[8];
		int cnt = split_iov(&e->rng, w->txbuf, n, iov);

		what = "writev";
		w->st.writev++;
		k = writev(e->fd, iov, cnt);
	} else if (op < 85) {
		what = "sendfile";
		w->st.sendfile++;
		k = tx_sendfile(w, e, n);
	} else {
		what = "splice";
		w->st.splice++;
		k = tx_splice(w, e, n);
	}
	if (flipped)
		w->txbuf[flip] ^= 0xff;
	if (k < 0)
		return io_err(e, what);
	if (k == 0)
		return 0;
	md_update(e->tx_md, w->txbuf, (size_t)k);
	e->tx_off += (uint64_t)k;
	return 1;
}

/* Drive one connection end until both directions would block or it is finished.
 * Epoll is edge-triggered, so stopping earlier could lose a wakeup. */
static void pump(struct iworker *w, struct ep *e)
{
	if (e->done)
		return;
	if (e->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			ep_fail(e, "connect: %s", strerror(err));
			ep_close(w, e);
			return;
		}
		if (getpeername(e->fd, (struct sockaddr *)&ss, &sl) < 0)
			return; /* still in progress */
		e->connecting = false;
	}
	for (;;) {
		int r = rx_step(w, e), t;

		if (r < 0) {
			ep_close(w, e);
			return;
		}
		t = tx_step(w, e);
		if (t < 0) {
			ep_close(w, e);
			return;
		}
		if (e->tx_shut && e->rx_eof) {
			ep_close(w, e);
			return;
		}
		if (r == 0 && t == 0)
			return;
	}
}

static void ep_watch(struct iworker *w, struct ep *e, uint32_t i)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = i };

	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, e->fd, &ev) < 0)
		fatal("epoll_ctl: %s", strerror(errno));
}

static void client_open(struct iworker *w, uint32_t i)
{
	struct ep *e = &w->eps[i];

	e->idx = e->conn_id = i;
	e->id_known = true;
	e->rng = mix64(w->rng ^ (i + 1));
	e->fd = client_socket(w->peer, (int)i, true);
	ep_setup_fd(e);
	if (!O.server_first)
		ep_start_tx(e, i, DIR_C2S); /* written as soon as connect completes (early data) */
	if (connect(e->fd, (const struct sockaddr *)&w->peer->ss, w->peer->len) < 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			ep_fail(e, "connect: %s", strerror(errno));
			ep_close(w, e);
			return;
		}
		e->connecting = true;
	}
	w->neps++;
	ep_watch(w, e, i);
	pump(w, e);
}

static void server_accept(struct iworker *w)
{
	while (w->neps < (uint32_t)O.connections) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ep *e;
		uint32_t i;

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fatal("integrity: accept: %s", strerror(errno));
		}
		i = w->neps++;
		e = &w->eps[i];
		e->fd = fd;
		e->server = true;
		e->idx = i;
		e->rng = mix64(w->rng ^ (i + 1));
		ep_setup_fd(e);
		/* Evidence for --early-data: the client's bytes were there before accept. */
		int q = 0;
		if (ioctl(fd, FIONREAD, &q) == 0 && q > 0)
			w->queued_at_accept += (uint64_t)q;
		if (O.server_first)
			ep_start_tx(e, i, DIR_S2C); /* speak before reading anything */
		ep_watch(w, e, i);
		pump(w, e);
	}
}

static int make_tmpfile(void)
{
	const char *dir = getenv("TMPDIR");
	char path[PATH_MAX];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(path, sizeof(path), "%s/sbload.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		fatal("temp file in %s: %s", dir, strerror(errno));
	unlink(path);
	return fd;
}

static void iworker_init(struct iworker *w, bool server, int lfd, const struct addr *peer, int64_t deadline)
{
	int p[2];

	w->server = server;
	w->lfd = lfd;
	w->peer = peer;
	w->deadline = deadline;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0)
		fatal("epoll_create1: %s", strerror(errno));
	w->eps = xmalloc(sizeof(*w->eps) * (size_t)O.connections);
	for (int i = 0; i < O.connections; i++)
		w->eps[i].fd = -1;
	w->seen = xmalloc((size_t)O.connections);
	w->txbuf = xmalloc(MAX_CHUNK);
	w->rxbuf = xmalloc(MAX_CHUNK);
	w->peekbuf = xmalloc(MAX_CHUNK);
	w->expbuf = xmalloc(MAX_CHUNK);
	w->drainbuf = xmalloc(MAX_CHUNK);
	w->tmpfd = make_tmpfile();
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		fatal("pipe2: %s", strerror(errno));
	w->pipe_r = p[0];
	w->pipe_w = p[1];
	fcntl(w->pipe_w, F_SETPIPE_SZ, (int)MAX_CHUNK); /* best effort; the real size is read back */
	int cap = fcntl(w->pipe_w, F_GETPIPE_SZ);
	if (cap <= 0)
		fatal("F_GETPIPE_SZ: %s", strerror(errno));
	w->pipe_cap = (size_t)cap;
	w->rng = mix64(O.seed ^ (server ? 0x5e5e5e5eULL : 0xc1c1c1c1ULL));
}

static bool iworker_finished(const struct iworker *w)
{
	return w->neps == (uint32_t)O.connections && w->ndone == w->neps;
}

static void *iworker_run(void *arg)
{
	struct iworker *w = arg;
	struct epoll_event evs[256];

	if (w->server) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = LISTENER_TAG };

		/* --early-data: clients connect and write into a server that is not
		 * accepting yet; their data waits in the not-yet-accepted sockets. */
		if (O.early_data)
			usleep(100 * 1000);
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->lfd, &ev) < 0)
			fatal("epoll_ctl: %s", strerror(errno));
	} else {
		for (uint32_t i = 0; i < (uint32_t)O.connections; i++)
			client_open(w, i);
	}
	while (!iworker_finished(w)) {
		int64_t left = w->deadline - now_ns();
		int n;

		if (left <= 0)
			break;
		n = epoll_wait(w->epfd, evs, 256, (int)(left / 1000000 > 200 ? 200 : left / 1000000 + 1));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == LISTENER_TAG)
				server_accept(w);
			else
				pump(w, &w->eps[evs[i].data.u64]);
		}
	}
	return NULL;
}

static void iworker_timeouts(struct iworker *w)
{
	for (uint32_t i = 0; i < w->neps; i++) {
		struct ep *e = &w->eps[i];

		if (!e->done) {
			ep_fail(e, "deadline reached: sent %llu and received %llu of %llu bytes%s",
				(unsigned long long)e->tx_off, (unsigned long long)e->rx_off,
				(unsigned long long)O.bytes, e->connecting ? " (still connecting)" : "");
			ep_close(w, e);
		}
	}
}

static void hex32(const uint8_t *d, char *out)
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* One digest per direction over all streams (id order), so split-process runs can
 * compare the client's and the server's view; null if any stream is incomplete. */
static void print_aggregate(const char *key, const uint8_t *const *d)
{
	EVP_MD_CTX *md = md_new();
	uint8_t out[32];
	char hex[65];

	printf(",\"%s\":", key);
	for (int i = 0; i < O.connections; i++) {
		if (!d[i]) {
			EVP_MD_CTX_free(md);
			printf("null");
			return;
		}
		md_update(md, d[i], 32);
	}
	md_final(&md, out);
	hex32(out, hex);
	printf("\"%s\"", hex);
}

static int mode_integrity(void)
{
	struct endpoints ep;
	struct iworker sw, cw;
	bool srv = O.role != ROLE_CLIENT, cli = O.role != ROLE_SERVER;
	int64_t t0, t1, deadline;
	uint64_t verified = 0, unknown = 0;
	const uint8_t **c2s_tx = xmalloc(sizeof(void *) * (size_t)O.connections);
	const uint8_t **c2s_rx = xmalloc(sizeof(void *) * (size_t)O.connections);
	const uint8_t **s2c_tx = xmalloc(sizeof(void *) * (size_t)O.connections);
	const uint8_t **s2c_rx = xmalloc(sizeof(void *) * (size_t)O.connections);
	struct ep **c2s_rx_ep = xmalloc(sizeof(void *) * (size_t)O.connections);
	struct ep **s2c_rx_ep = xmalloc(sizeof(void *) * (size_t)O.connections);
	uint8_t *failed_ids = xmalloc((size_t)O.connections);
	struct iostats st;
	int failures = 0;

	/* One fd per connection end plus the worker's epoll, pipe, temp file, listener. */
	raise_nofile((rlim_t)O.connections * (srv && cli ? 2 : 1) + 64);
	setup_endpoints(&ep, O.connections + 64);
	t0 = now_ns();
	deadline = t0 + (int64_t)(O.seconds * NSEC);
	memset(&sw, 0, sizeof(sw));
	memset(&cw, 0, sizeof(cw));
	if (srv)
		iworker_init(&sw, true, ep.lfd, NULL, deadline);
	if (cli)
		iworker_init(&cw, false, -1, &ep.peer, deadline);
	if (srv && cli) {
		pthread_check(pthread_create(&sw.th, NULL, iworker_run, &sw), "pthread_create");
		iworker_run(&cw);
		pthread_join(sw.th, NULL);
	} else {
		iworker_run(srv ? &sw : &cw);
	}
	t1 = now_ns();
	if (srv)
		iworker_timeouts(&sw);
	if (cli)
		iworker_timeouts(&cw);

	/* Collect per-stream digests: c2s is sent by client ends, s2c by server ends. */
	for (int pass = 0; pass < 2; pass++) {
		struct iworker *w = pass ? &cw : &sw;

		if (pass ? !cli : !srv)
			continue;
		for (uint32_t i = 0; i < w->neps; i++) {
			struct ep *e = &w->eps[i];

			verified += e->verified;
			if (e->tx_shut)
				(w->server ? s2c_tx : c2s_tx)[e->tx_stream] = e->tx_dig;
			if (e->rx_known) {
				(w->server ? c2s_rx_ep : s2c_rx_ep)[e->rx_stream] = e;
				if (e->rx_done)
					(w->server ? c2s_rx : s2c_rx)[e->rx_stream] = e->rx_dig;
			}
		}
	}
	/* Same process: the receiver's hash must equal the sender's. */
	if (srv && cli) {
		for (int i = 0; i < O.connections; i++) {
			if (c2s_tx[i] && c2s_rx[i] && memcmp(c2s_tx[i], c2s_rx[i], 32))
				ep_fail(c2s_rx_ep[i], "SHA-256 of the received c2s stream differs from the sender's");
			if (s2c_tx[i] && s2c_rx[i] && memcmp(s2c_tx[i], s2c_rx[i], 32))
				ep_fail(s2c_rx_ep[i], "SHA-256 of the received s2c stream differs from the sender's");
		}
	}
	/* Failures count connections, not ends: a reset seen by both ends counts once. */
	for (int pass = 0; pass < 2; pass++) {
		struct iworker *w = pass ? &cw : &sw;

		if (pass ? !cli : !srv)
			continue;
		for (uint32_t i = 0; i < w->neps; i++) {
			struct ep *e = &w->eps[i];

			if (!e->failed)
				continue;
			if (e->id_known)
				failed_ids[e->conn_id] = 1;
			else
				unknown++;
		}
	}
	for (int i = 0; i < O.connections; i++)
		failures += failed_ids[i];
	failures += (int)unknown;
	if (srv && !cli && sw.neps < (uint32_t)O.connections) {
		/* Split server: connections that never arrived. */
		char msg[128];

		snprintf(msg, sizeof(msg), "server: only %u of %d connections arrived before the deadline", sw.neps,
			 O.connections);
		pthread_mutex_lock(&F.lock);
		if (!F.first[0])
			snprintf(F.first, sizeof(F.first), "%s", msg);
		if (F.nsamples < MAX_SAMPLES)
			snprintf(F.samples[F.nsamples++], sizeof(F.samples[0]), "%s", msg);
		pthread_mutex_unlock(&F.lock);
		failures += O.connections - (int)sw.neps;
	}
	memset(&st, 0, sizeof(st));
	for (int pass = 0; pass < 2; pass++) {
		struct iostats *s = pass ? &cw.st : &sw.st;

		st.write += s->write;
		st.writev += s->writev;
		st.sendfile += s->sendfile;
		st.splice += s->splice;
		st.read += s->read;
		st.readv += s->readv;
		st.peek += s->peek;
		st.waitall += s->waitall;
		st.waitall_short += s->waitall_short;
		st.peek_short += s->peek_short;
	}
	teardown_endpoints(&ep);

	json_begin();
	printf(",\"connections\":%d,\"bytes\":%llu,\"seed\":%llu,\"earlyData\":%s,\"serverFirst\":%s,"
	       "\"seconds\":%.6f,\"bytesVerified\":%llu,\"failures\":%d,\"firstFailure\":",
	       O.connections, (unsigned long long)O.bytes, (unsigned long long)O.seed,
	       O.early_data ? "true" : "false", O.server_first ? "true" : "false", (double)(t1 - t0) / 1e9,
	       (unsigned long long)verified, failures);
	if (F.first[0])
		json_str(stdout, F.first);
	else
		printf("null");
	printf(",\"failureSamples\":[");
	for (unsigned i = 0; i < F.nsamples; i++) {
		if (i)
			printf(",");
		json_str(stdout, F.samples[i]);
	}
	printf("],\"bytesQueuedAtAccept\":%llu", (unsigned long long)sw.queued_at_accept);
	/* Digests of what arrived where this process received it, else of what it sent. */
	print_aggregate("c2sSha256", srv ? c2s_rx : c2s_tx);
	print_aggregate("s2cSha256", cli ? s2c_rx : s2c_tx);
	printf(",\"calls\":{\"write\":%llu,\"writev\":%llu,\"sendfile\":%llu,\"splice\":%llu,\"read\":%llu,"
	       "\"readv\":%llu,\"peek\":%llu,\"peekShort\":%llu,\"waitall\":%llu,\"waitallShort\":%llu}",
	       (unsigned long long)st.write, (unsigned long long)st.writev, (unsigned long long)st.sendfile,
	       (unsigned long long)st.splice, (unsigned long long)st.read, (unsigned long long)st.readv,
	       (unsigned long long)st.peek, (unsigned long long)st.peek_short, (unsigned long long)st.waitall,
	       (unsigned long long)st.waitall_short);
	json_end();
	return failures ? 1 : 0;
}

/* ================================================================== main */

static void usage(FILE *f)
{
	fputs("usage: sbload <stream|rr|crr|integrity> [options]\n"
	      "\n"
	      "common:\n"
	      "  --family tcp4|tcp6|tcp4mapped|unix  default tcp4 (or taken from --listen/--connect);\n"
	      "                        tcp4mapped = AF_INET client to an IPV6_V6ONLY=0 [::] listener\n"
	      "  --role both|server|client  default both: server and client threads in this process\n"
	      "  --listen ADDR:PORT|/path|@name  server address (default loopback, port 0;\n"
	      "                        tcp4mapped: [::]:0; unix: an abstract name)\n"
	      "  --connect ADDR:PORT|/path|@name  client target (required with --role client)\n"
	      "  --bind ADDR:PORT      client source address (SO_REUSEADDR); a non-zero PORT\n"
	      "                        is used as PORT+i by connection i\n"
	      "  --ready-file PATH     once listening, the server writes its port (unix: name) there\n"
	      "  --seconds S           run time (stream, rr, crr; default 5) or deadline\n"
	      "                        (integrity; default 60); fractions allowed\n"
	      "  --timeout S           hard watchdog (default deadline + 10 s), exit 3\n"
	      "stream:    --size BYTES (write size, default 128K) --streams N (default 1)\n"
	      "           --read-size BYTES (default max(size, 64K))\n"
	      "rr:        --size BYTES (each direction, default 64) --count N --warmup N (default 500)\n"
	      "crr:       --size BYTES (default 64) --streams N (parallel clients, default 1)\n"
	      "           --no-linger0 (default: SO_LINGER{1,0}, close sends RST)\n"
	      "integrity: --connections N (default 100) --bytes B (per direction, default 256K)\n"
	      "           --seed X --early-data --server-first\n"
	      "BYTES accept K, M, G suffixes (powers of 1024).\n"
	      "Output: one JSON object on stdout. Exit 0 ok, 1 integrity failures, 2 error, 3 watchdog.\n",
	      f);
}

__attribute__((noreturn, format(printf, 1, 2))) static void usage_error(const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	usage(stderr);
	fatal("%s", msg);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		usage_error("%s: '%s' is not a number", opt, s);
	switch (*end) {
	case 'k': case 'K': mul = KiB; end++; break;
	case 'm': case 'M': mul = MiB; end++; break;
	case 'g': case 'G': mul = MiB * 1024; end++; break;
	default: break;
	}
	if (*end || (v && mul > UINT64_MAX / v) || v * mul < min || v * mul > max)
		usage_error("%s: '%s' is out of range [%llu, %llu]", opt, s, (unsigned long long)min,
			    (unsigned long long)max);
	return v * mul;
}

static double parse_secs(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1e6)
		usage_error("%s: '%s' is not a positive number of seconds", opt, s);
	return v;
}

enum {
	OPT_FAMILY = 256, OPT_ROLE, OPT_LISTEN, OPT_CONNECT, OPT_BIND, OPT_READY, OPT_SECONDS, OPT_TIMEOUT,
	OPT_SIZE, OPT_READ_SIZE, OPT_STREAMS, OPT_COUNT, OPT_WARMUP, OPT_LINGER0, OPT_NO_LINGER0,
	OPT_CONNECTIONS, OPT_BYTES, OPT_SEED, OPT_EARLY, OPT_SERVER_FIRST, OPT_CORRUPT, OPT_HELP,
};

static const struct option long_opts[] = {
	{ "family", required_argument, NULL, OPT_FAMILY },
	{ "role", required_argument, NULL, OPT_ROLE },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "ready-file", required_argument, NULL, OPT_READY },
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "read-size", required_argument, NULL, OPT_READ_SIZE },
	{ "streams", required_argument, NULL, OPT_STREAMS },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "linger0", no_argument, NULL, OPT_LINGER0 },
	{ "no-linger0", no_argument, NULL, OPT_NO_LINGER0 },
	{ "connections", required_argument, NULL, OPT_CONNECTIONS },
	{ "bytes", required_argument, NULL, OPT_BYTES },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "early-data", no_argument, NULL, OPT_EARLY },
	{ "server-first", no_argument, NULL, OPT_SERVER_FIRST },
	/* Test hook, deliberately not in usage(): corrupt this offset of connection 0's
	 * client->server stream on the wire, after hashing. */
	{ "corrupt-test-byte", required_argument, NULL, OPT_CORRUPT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static enum family parse_family(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, family_names[i]))
			return (enum family)i;
	usage_error("--family: unknown family '%s'", s);
}

static enum role parse_role(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(s, role_names[i]))
			return (enum role)i;
	usage_error("--role: unknown role '%s'", s);
}

static void parse_args(int argc, char **argv)
{
	bool size_set = false, read_size_set = false;
	int c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		if (argc < 2)
			fatal("missing mode");
		exit(0);
	}
	for (int i = 0; i < 4; i++)
		if (!strcmp(argv[1], mode_names[i])) {
			O.mode = (enum mode)i;
			O.mode_name = mode_names[i];
		}
	if (!strcmp(O.mode_name, "unknown"))
		usage_error("unknown mode '%s'", argv[1]);
	O.family = FAM_TCP4;
	O.role = ROLE_BOTH;
	O.streams = 1;
	O.warmup = 500;
	O.linger0 = true;
	O.connections = 100;
	O.bytes = 256 * KiB;
	O.seed = 1;
	optind = 2;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_FAMILY: O.family = parse_family(optarg); O.family_set = true; break;
		case OPT_ROLE: O.role = parse_role(optarg); break;
		case OPT_LISTEN: O.listen = optarg; break;
		case OPT_CONNECT: O.connect = optarg; break;
		case OPT_BIND: O.bind = optarg; break;
		case OPT_READY: O.ready_file = optarg; break;
		case OPT_SECONDS: O.seconds = parse_secs("--seconds", optarg); O.seconds_set = true; break;
		case OPT_TIMEOUT: O.timeout = parse_secs("--timeout", optarg); break;
		case OPT_SIZE: O.size = (size_t)parse_u64("--size", optarg, 1, 64 * MiB); size_set = true; break;
		case OPT_READ_SIZE:
			O.read_size = (size_t)parse_u64("--read-size", optarg, 1, 64 * MiB);
			read_size_set = true;
			break;
		case OPT_STREAMS: O.streams = (int)parse_u64("--streams", optarg, 1, 256); break;
		case OPT_COUNT: O.count = parse_u64("--count", optarg, 1, 1ULL << 32); break;
		case OPT_WARMUP: O.warmup = parse_u64("--warmup", optarg, 0, 1ULL << 32); break;
		case OPT_LINGER0: O.linger0 = true; break;
		case OPT_NO_LINGER0: O.linger0 = false; break;
		case OPT_CONNECTIONS: O.connections = (int)parse_u64("--connections", optarg, 1, 100000); break;
		case OPT_BYTES: O.bytes = parse_u64("--bytes", optarg, 0, 1ULL << 40); break;
		case OPT_SEED: O.seed = parse_u64("--seed", optarg, 0, UINT64_MAX); break;
		case OPT_EARLY: O.early_data = true; break;
		case OPT_SERVER_FIRST: O.server_first = true; break;
		case OPT_CORRUPT: O.corrupt_byte = (int64_t)parse_u64("--corrupt-test-byte", optarg, 0, 1ULL << 40); break;
		case OPT_HELP: usage(stdout); exit(0);
		default:
			usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);

	/* Without --family, follow the address given. */
	if (!O.family_set && (O.listen || O.connect)) {
		struct addr a;

		parse_addr(O.listen ? "--listen" : "--connect", O.listen ? O.listen : O.connect, &a);
		O.family = addr_af(&a) == AF_UNIX ? FAM_UNIX : addr_af(&a) == AF_INET6 ? FAM_TCP6 : FAM_TCP4;
	}
	if (O.family == FAM_UNIX && O.bind)
		usage_error("--bind applies to TCP only");
	if (O.role == ROLE_CLIENT && !O.connect)
		usage_error("--role client needs --connect");
	if (O.role == ROLE_SERVER && O.connect)
		usage_error("--connect is for the client role");
	if (O.mode != MODE_INTEGRITY && (O.early_data || O.server_first || O.corrupt_byte >= 0))
		usage_error("--early-data, --server-first and --corrupt-test-byte are integrity options");
	if (!size_set)
		O.size = O.mode == MODE_STREAM ? 128 * KiB : 64;
	if (!read_size_set)
		O.read_size = O.size > 64 * KiB ? O.size : 64 * KiB;
	if (!O.seconds_set)
		O.seconds = O.mode == MODE_INTEGRITY ? 60 : O.mode == MODE_RR && O.count ? 60 : 5;
	if (!O.timeout)
		O.timeout = O.seconds + 10;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	/* A peer that resets must show up as EPIPE/ECONNRESET, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	watchdog_arm(O.timeout);
	switch (O.mode) {
	case MODE_STREAM:
		return mode_stream();
	case MODE_RR:
		return mode_rr();
	case MODE_CRR:
		return mode_crr();
	case MODE_INTEGRITY:
		return mode_integrity();
	}
	return 2;
}
