// SPDX-License-Identifier: GPL-2.0-only
/* sbload stream: bulk throughput over --streams parallel connections. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sbload/sbload.h"

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

int mode_stream(void)
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
