// SPDX-License-Identifier: GPL-2.0
/*
 * multiread - several threads read one socket at once. For each of many
 * loopback TCP connections, one end writes a stream (random write sizes) and
 * shuts down; the other end has --readers threads all doing blocking recv()
 * on the same socket until EOF. Which thread gets which bytes is up to the
 * kernel, so the stream is made of self-locating 8-byte words: word i holds
 * i (48 bits) and a 16-bit check of i. Each chunk a thread receives is placed
 * in the stream by the first word inside it whose check holds and whose whole
 * chunk then matches the stream there. Per connection, every placed chunk must
 * match byte for byte, no two may overlap, each thread's chunks must come in
 * stream order (a later recv returns later bytes), and the bytes of the chunks
 * too short to hold a whole word must fill exactly the gaps left: no byte
 * lost, duplicated, altered or reordered. Connections alternate which end
 * writes (the client, then the server). Writes are 1 to --max-write bytes
 * (default 128 KiB); the reading end never writes, so with small writes
 * sockbypass's small-write rule takes both sockets out of its sockhash
 * mid-stream, while the readers wait. A blocking recv that fails with EAGAIN
 * is counted and retried. --skip B (for the checker's own test) makes each
 * writer leave out B bytes in the middle of its stream: every stream must fail.
 *
 * Readers use plain recv(): with MSG_WAITALL two TCP readers may legally
 * interleave inside one call (the first waits with the lock released), which
 * no stream check can tell from a fault.
 *
 * usage: multiread [--family tcp4|tcp6] [--connections N] [--concurrency N]
 *                  [--readers N] [--bytes B] [--max-write B] [--seed N] [--seconds S] [--skip B]
 * Output: one JSON line. Exit 0 when every stream arrived whole, 1 when one
 * did not, 2 setup error, 3 watchdog.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

static const char USAGE[] =
	"usage: multiread [--family tcp4|tcp6] [--connections N] [--concurrency N] [--readers N]\n"
	"                 [--bytes B] [--max-write B] [--seed N] [--seconds S] [--skip B]\n";

#define MAX_READERS 8
#define MAX_READ (64 * KiB)
#define MAX_WRITE (128 * KiB)
#define INDEX_MASK ((1ULL << 48) - 1)

static struct {
	int family;
	uint64_t connections, concurrency, readers, bytes, seed, skip, max_write;
	double seconds;
} O = { .family = AF_INET, .connections = 100, .concurrency = 4, .readers = 3, .bytes = 4 * MiB, .seed = 1,
	.max_write = MAX_WRITE, .seconds = 120 };

static atomic_uint_fast64_t next_conn, chunks, placed, short_bytes, eagain, failures, verified;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_failure[256];

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&failures, 1);
	pthread_mutex_lock(&fail_lock);
	if (!first_failure[0]) {
		va_start(ap, fmt);
		vsnprintf(first_failure, sizeof(first_failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&fail_lock);
}

static uint64_t word_check(uint64_t key, uint64_t i)
{
	return mix64(key ^ (i * G64)) & 0xffff;
}

/* The stream's byte at `off`: little-endian words {i, check(i)}. */
static uint8_t stream_byte(uint64_t key, uint64_t off)
{
	uint64_t i = off / 8, w = (i & INDEX_MASK) | word_check(key, i) << 48;

	return (uint8_t)(w >> (8 * (off % 8)));
}

static void stream_fill(uint64_t key, uint64_t off, uint8_t *buf, size_t n)
{
	for (size_t k = 0; k < n; k++)
		buf[k] = stream_byte(key, off + k);
}

static bool stream_matches(uint64_t key, uint64_t off, const uint8_t *buf, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (buf[k] != stream_byte(key, off + k))
			return false;
	return true;
}

/* Where in the stream a chunk lies, or -1 if it holds no whole word that places it. */
static int64_t chunk_place(uint64_t key, const uint8_t *buf, size_t n)
{
	for (size_t a = 0; a < 8 && a + 8 <= n; a++) {
		uint64_t w;

		memcpy(&w, buf + a, 8);
		uint64_t i = w & INDEX_MASK;
		if (w >> 48 != word_check(key, i) || i * 8 < a)
			continue;
		uint64_t start = i * 8 - a;
		if (start + n <= O.bytes && stream_matches(key, start, buf, n))
			return (int64_t)start;
	}
	return -1;
}

struct span {
	uint64_t start, len;
};

struct conn {
	uint64_t id, key;
	int wfd, rfd; /* the writing end, the reading end */
	pthread_mutex_t lock;
	struct span *spans;
	size_t nspans, cap;
	uint64_t unplaced; /* bytes of chunks too short to place */
};

static void conn_record(struct conn *c, int64_t start, size_t len)
{
	pthread_mutex_lock(&c->lock);
	if (start < 0) {
		c->unplaced += len;
	} else {
		if (c->nspans == c->cap) {
			c->cap = c->cap ? 2 * c->cap : 1024;
			c->spans = realloc(c->spans, c->cap * sizeof(*c->spans));
			if (!c->spans)
				fatal("out of memory");
		}
		c->spans[c->nspans++] = (struct span){ (uint64_t)start, len };
	}
	pthread_mutex_unlock(&c->lock);
}

static void *reader_main(void *arg)
{
	struct conn *c = arg;
	uint8_t *buf = xmalloc(MAX_READ);
	uint64_t rng = mix64(c->key ^ (uint64_t)pthread_self()), last = 0;
	bool any = false;

	for (;;) {
		size_t want = 1 + rnd(&rng) % MAX_READ;
		ssize_t n = recv(c->rfd, buf, want, 0);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			atomic_fetch_add(&eagain, 1);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail("conn %lu: recv: %s", (unsigned long)c->id, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		atomic_fetch_add(&chunks, 1);
		int64_t at = chunk_place(c->key, buf, (size_t)n);
		if (at < 0 && n >= 15) {
			fail("conn %lu: a %zd-byte chunk matches no place in the stream", (unsigned long)c->id, n);
			break;
		}
		if (at >= 0) {
			atomic_fetch_add(&placed, 1);
			if (any && (uint64_t)at <= last) {
				fail("conn %lu: a thread read offset %ld after offset %lu", (unsigned long)c->id, (long)at,
				     (unsigned long)last);
				break;
			}
			last = (uint64_t)at;
			any = true;
		} else {
			atomic_fetch_add(&short_bytes, (uint64_t)n);
		}
		conn_record(c, at, (size_t)n);
	}
	free(buf);
	return NULL;
}

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Placed chunks must not overlap, and the short ones must fill exactly what they leave. */
static void conn_check(struct conn *c)
{
	uint64_t covered = 0, gaps = 0, end = 0;

	qsort(c->spans, c->nspans, sizeof(*c->spans), cmp_span);
	for (size_t k = 0; k < c->nspans; k++) {
		struct span *s = &c->spans[k];

		if (s->start < end) {
			fail("conn %lu: bytes %lu..%lu were read twice", (unsigned long)c->id, (unsigned long)s->start,
			     (unsigned long)end);
			return;
		}
		gaps += s->start - end;
		end = s->start + s->len;
		covered += s->len;
	}
	gaps += O.bytes - end;
	if (gaps != c->unplaced || covered + c->unplaced != O.bytes) {
		fail("conn %lu: %lu bytes placed, %lu in gaps, %lu in short chunks, of %lu", (unsigned long)c->id,
		     (unsigned long)covered, (unsigned long)gaps, (unsigned long)c->unplaced,
		     (unsigned long)O.bytes);
		return;
	}
	atomic_fetch_add(&verified, O.bytes);
}

static void writer_run(struct conn *c)
{
	uint8_t *buf = xmalloc(MAX_WRITE);
	uint64_t rng = mix64(c->key + 1), off = 0, skip = O.skip;

	while (off < O.bytes) {
		size_t n = 1 + rnd(&rng) % O.max_write;

		if (n > O.bytes - off)
			n = (size_t)(O.bytes - off);
		if (skip && off == O.bytes / 2) {
			off += skip; /* never sent: the readers must notice */
			skip = 0;
			continue;
		}
		if (skip && off < O.bytes / 2 && off + n > O.bytes / 2)
			n = (size_t)(O.bytes / 2 - off);
		stream_fill(c->key, off, buf, n);
		ssize_t w = send(c->wfd, buf, n, MSG_NOSIGNAL);
		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			if (errno == EAGAIN)
				atomic_fetch_add(&eagain, 1);
			continue;
		}
		if (w < 0) {
			fail("conn %lu: send: %s", (unsigned long)c->id, strerror(errno));
			break;
		}
		off += (uint64_t)w;
	}
	shutdown(c->wfd, SHUT_WR);
	free(buf);
}

static void run_connection(int lfd, const struct addr *at, uint64_t id)
{
	struct conn c = { .id = id, .key = mix64(O.seed * G64 + id) };
	pthread_t th[MAX_READERS];
	int cfd, sfd;

	cfd = socket(O.family, SOCK_STREAM, 0);
	if (cfd < 0 || connect(cfd, (const struct sockaddr *)&at->ss, at->len) < 0)
		fatal("connect: %s", strerror(errno));
	sfd = accept(lfd, NULL, NULL);
	if (sfd < 0)
		fatal("accept: %s", strerror(errno));
	c.wfd = id % 2 ? sfd : cfd;
	c.rfd = id % 2 ? cfd : sfd;
	pthread_mutex_init(&c.lock, NULL);
	for (uint64_t r = 0; r < O.readers; r++)
		pthread_check(pthread_create(&th[r], NULL, reader_main, &c), "pthread_create");
	writer_run(&c);
	for (uint64_t r = 0; r < O.readers; r++)
		pthread_join(th[r], NULL);
	conn_check(&c);
	close(cfd);
	close(sfd);
	free(c.spans);
	pthread_mutex_destroy(&c.lock);
}

static void *worker_main(void *arg)
{
	(void)arg;
	struct addr at;
	int lfd = socket(O.family, SOCK_STREAM, 0);

	addr_loopback(&at, O.family, 0);
	if (lfd < 0 || bind(lfd, (const struct sockaddr *)&at.ss, at.len) < 0 || listen(lfd, 16) < 0)
		fatal("listen: %s", strerror(errno));
	addr_local(lfd, &at);
	for (;;) {
		uint64_t id = atomic_fetch_add(&next_conn, 1);

		if (id >= O.connections)
			break;
		run_connection(lfd, &at, id);
	}
	close(lfd);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t workers[64];
	int64_t t0;

	tool_init("multiread", USAGE);
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val)
			usage_error("%s needs a value", opt);
		i++;
		if (!strcmp(opt, "--family")) {
			if (!strcmp(val, "tcp4"))
				O.family = AF_INET;
			else if (!strcmp(val, "tcp6"))
				O.family = AF_INET6;
			else
				usage_error("--family: tcp4 or tcp6, not %s", val);
		} else if (!strcmp(opt, "--connections")) {
			O.connections = parse_u64(opt, val, 1, 1000000);
		} else if (!strcmp(opt, "--concurrency")) {
			O.concurrency = parse_u64(opt, val, 1, 64);
		} else if (!strcmp(opt, "--readers")) {
			O.readers = parse_u64(opt, val, 1, MAX_READERS);
		} else if (!strcmp(opt, "--bytes")) {
			O.bytes = parse_u64(opt, val, 8, 1ULL << 40);
		} else if (!strcmp(opt, "--seed")) {
			O.seed = parse_u64(opt, val, 0, UINT64_MAX);
		} else if (!strcmp(opt, "--max-write")) {
			O.max_write = parse_u64(opt, val, 1, MAX_WRITE);
		} else if (!strcmp(opt, "--skip")) {
			O.skip = parse_u64(opt, val, 0, 1 << 20);
		} else if (!strcmp(opt, "--seconds")) {
			O.seconds = parse_secs(opt, val);
		} else {
			usage_error("unknown option %s", opt);
		}
	}
	watchdog_arm(O.seconds);
	t0 = now_ns();
	for (uint64_t w = 0; w < O.concurrency; w++)
		pthread_check(pthread_create(&workers[w], NULL, worker_main, NULL), "pthread_create");
	for (uint64_t w = 0; w < O.concurrency; w++)
		pthread_join(workers[w], NULL);
	watchdog_disarm();
	printf("{\"connections\":%lu,\"readers\":%lu,\"bytes\":%lu,\"seconds\":%.3f,\"bytesVerified\":%lu,"
	       "\"chunks\":%lu,\"placed\":%lu,\"shortBytes\":%lu,\"eagain\":%lu,\"failures\":%lu,\"firstFailure\":",
	       (unsigned long)O.connections, (unsigned long)O.readers, (unsigned long)O.bytes,
	       (double)(now_ns() - t0) / 1e9, (unsigned long)verified, (unsigned long)chunks, (unsigned long)placed,
	       (unsigned long)short_bytes, (unsigned long)eagain, (unsigned long)failures);
	if (first_failure[0])
		json_str(stdout, first_failure);
	else
		fputs("null", stdout);
	fputs("}\n", stdout);
	return failures ? 1 : 0;
}
