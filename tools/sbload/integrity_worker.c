// SPDX-License-Identifier: GPL-2.0-only
/* sbload integrity: the epoll loops, one for all server ends and one for all
 * client ends, with the buffers, pipe and temp file their ends share. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sbload/integrity.h"

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

void iworker_init(struct iworker *w, bool server, int lfd, const struct addr *peer, int64_t deadline)
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

void *iworker_run(void *arg)
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

void iworker_timeouts(struct iworker *w)
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
