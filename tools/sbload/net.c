// SPDX-License-Identifier: GPL-2.0-only
/* sbload: addresses, sockets, the listener and the JSON frame every mode prints. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sbload/sbload.h"

/* "1.2.3.4:P", "[::1]:P", "::1:P" (last colon splits), "/path" or "@abstract". */
void parse_addr(const char *opt, const char *s, struct addr *a)
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

void addr_str(const struct addr *a, char *buf, size_t n)
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

/* Which address family each --family needs on each side: tcp4mapped is a
 * dual-stack [::] listener with an IPv4 client. */
static const int listen_af[] = {
	[FAM_TCP4] = AF_INET, [FAM_TCP6] = AF_INET6, [FAM_UNIX] = AF_UNIX, [FAM_TCP4MAPPED] = AF_INET6,
};
static const int connect_af[] = {
	[FAM_TCP4] = AF_INET, [FAM_TCP6] = AF_INET6, [FAM_UNIX] = AF_UNIX, [FAM_TCP4MAPPED] = AF_INET,
};

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
		addr_loopback(out, AF_INET, addr_port(bound));
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

void set_nodelay(int fd)
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
int client_socket(const struct addr *to, int idx, bool nonblock)
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

int connect_blocking(const struct addr *to, int idx)
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

int accept_blocking(int lfd)
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
int write_full(int fd, const void *buf, size_t n)
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
ssize_t read_full(int fd, void *buf, size_t n)
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

void raise_nofile(rlim_t want)
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


void setup_endpoints(struct endpoints *ep, int backlog)
{
	struct addr la;

	ep->lfd = -1;
	if (O.role != ROLE_CLIENT) {
		if (O.listen)
			parse_addr("--listen", O.listen, &la);
		else
			default_listen_addr(&la);
		if (addr_af(&la) != listen_af[O.family])
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
		if (addr_af(&ep->peer) != connect_af[O.family])
			fatal("--connect %s does not match --family %s", O.connect, family_names[O.family]);
	}
}

void teardown_endpoints(struct endpoints *ep)
{
	if (ep->lfd >= 0) {
		close(ep->lfd);
		unlink_unix_path(&ep->bound);
	}
}

/* Common leading JSON fields. Printed only after all worker threads are joined. */
void json_begin(void)
{
	watchdog_disarm();
	printf("{\"mode\":\"%s\",\"role\":\"%s\",\"family\":\"%s\"", O.mode_name, role_names[O.role],
	       family_names[O.family]);
}

void json_end(void)
{
	printf("}\n");
	fflush(stdout);
}

