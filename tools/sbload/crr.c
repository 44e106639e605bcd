// SPDX-License-Identifier: GPL-2.0-only
/* sbload crr: connect + request + response + close rate. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sbload/sbload.h"

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
			set_linger0(fd);
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

int mode_crr(void)
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
