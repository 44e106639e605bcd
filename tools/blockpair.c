// SPDX-License-Identifier: GPL-2.0
/*
 * blockpair - blocking readers and writers on both ends of many loopback TCP
 * connections, counting every read or write that fails. A blocking socket
 * (no O_NONBLOCK, no SO_RCVTIMEO/SO_SNDTIMEO) has no business failing with
 * EAGAIN: any EAGAIN counted here is spurious. On a socket in sockbypass's
 * sockhash, reads go through the kernel's tcp_bpf_recvmsg, which returns
 * EAGAIN to a blocking read woken without data (by its own send buffer
 * draining, for one); this tool is what shows whether that happens.
 *
 * Both ends live in this process (so one cgroup covers them). --concurrency
 * workers each run connections one after the other, each worker on its own
 * listener. Connections alternate between two shapes:
 *   duplex  each end has a writer thread and a reader thread: both ends write
 *           --bytes in large writes (they fill the send buffer once the
 *           stream goes by TCP) while the other end reads; each writer then
 *           shuts down its write side, and its end's reader goes on reading
 *           until EOF;
 *   turn    a request and a response: the client writes --bytes, shuts down
 *           and blocking-reads until EOF; the server reads until EOF, then
 *           writes --bytes and shuts down (the client's read waits while its
 *           own send buffer drains).
 * Reads mix read() of up to --read-size bytes with recv(MSG_WAITALL); every
 * byte is checked against the stream's pattern. A read that fails with
 * EAGAIN/EWOULDBLOCK is counted and retried (so the rest of the stream is
 * still verified); EINTR is retried; any other error ends that stream as a
 * failure. With --read-pause-us, a reader sleeps that long after one read in
 * eight (outside any socket call). Each failed call is counted by errno, by shape, by end (client,
 * server) and by phase:
 *   reading-while-writing   the reader's own end is still writing;
 *   reading-across-shutdown its own end shut down its write side while the
 *                           read was waiting;
 *   reading-after-shutdown  its own end had shut down before the read;
 *   reading-before-writing  turn's server, before its response;
 *   writing                 a write.
 * Each EAGAIN also notes the socket's TCP state when the call returned.
 *
 * usage: blockpair [--family tcp4|tcp6] [--connections N] [--concurrency N]
 *                  [--bytes B] [--write-size B] [--read-size B] [--read-pause-us N]
 *                  [--sndbuf B] [--shape duplex|turn|both] [--seed N] [--seconds S]
 * Output: one JSON line. Exit 0 when every byte arrived and no call failed,
 * 1 when some call failed or a byte was wrong, 2 setup error, 3 watchdog.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

static const char USAGE[] =
	"usage: blockpair [--family tcp4|tcp6] [--connections N] [--concurrency N] [--bytes B]\n"
	"                 [--write-size B] [--read-size B] [--read-pause-us N] [--sndbuf B]\n"
	"                 [--shape duplex|turn|both]\n"
	"                 [--seed N] [--seconds S]\n";

enum shape { SHAPE_DUPLEX, SHAPE_TURN, SHAPES };
enum end { END_CLIENT, END_SERVER, ENDS };
enum phase { PH_READ_WHILE_WRITING, PH_READ_ACROSS_SHUTDOWN, PH_READ_AFTER_SHUTDOWN, PH_READ_BEFORE_WRITING, PH_WRITE,
	     PHASES };

static const char *const SHAPE_NAME[SHAPES] = { "duplex", "turn" };
static const char *const END_NAME[ENDS] = { "client", "server" };
static const char *const PHASE_NAME[PHASES] = { "reading-while-writing", "reading-across-shutdown",
						 "reading-after-shutdown", "reading-before-writing", "writing" };

static const char *const TCP_STATE_NAME[] = { "?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
					      "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK",
					      "LISTEN", "CLOSING" };
#define TCP_STATES (sizeof(TCP_STATE_NAME) / sizeof(TCP_STATE_NAME[0]))

static struct {
	int family;
	uint64_t connections, concurrency, bytes, write_size, read_size, sndbuf, seed, read_pause_us;
	int shapes; /* bit per enum shape */
	double seconds;
} O = { .family = AF_INET, .connections = 1000, .concurrency = 8, .bytes = 2 * MiB, .write_size = 1 * MiB,
	.read_size = 256 * KiB, .seed = 1, .shapes = 3, .seconds = 120 };

/* ------------------------------------------------------------ results */

#define ERRNOS 4
enum { E_EAGAIN, E_EINTR, E_ECONNRESET, E_OTHER };
static const char *const ERRNO_NAME[ERRNOS] = { "EAGAIN", "EINTR", "ECONNRESET", "other" };

#define SAMPLES 16

static pthread_mutex_t R_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t connections, bytes_verified, failures;
	uint64_t reads, writes, waitall_reads;
	uint64_t errors[ERRNOS];
	uint64_t eagain[SHAPES][ENDS][PHASES];
	uint64_t eagain_with_outq; /* EAGAINs while the reader's own send queue held bytes */
	uint64_t eagain_state[TCP_STATES];
	uint64_t conns_with_eagain;
	int other_errno; /* the first errno counted as "other" */
	char first_failure[256];
	char samples[SAMPLES][200];
	int nsamples;
} R;

static int errno_class(int e)
{
	if (e == EAGAIN || e == EWOULDBLOCK)
		return E_EAGAIN;
	if (e == EINTR)
		return E_EINTR;
	if (e == ECONNRESET)
		return E_ECONNRESET;
	return E_OTHER;
}

/* --------------------------------------------------------- one connection */

struct conn;

/* One direction's end of a connection: a socket and what it does. */
struct side {
	struct conn *c;
	enum end end;
	int fd;
	uint64_t out_key, in_key; /* pattern keys of what this end writes and reads */
	uint8_t *wbuf, *rbuf;
	uint64_t rng;
	atomic_bool write_done; /* set just before it shuts down its write side */
	/* results of this side, merged under R_lock at the end */
	uint64_t got, reads, writes, waitall_reads, errors[ERRNOS], eagain[PHASES], eagain_with_outq;
	uint64_t eagain_state[TCP_STATES]; /* by the TCP state when the call returned */
	int other_errno;
	bool failed;
	char failure[200];
};

struct conn {
	uint64_t id;
	enum shape shape;
	int64_t t0;
	struct side side[ENDS];
};

__attribute__((format(printf, 2, 3))) static void side_fail(struct side *s, const char *fmt, ...)
{
	va_list ap;

	if (s->failed)
		return;
	s->failed = true;
	va_start(ap, fmt);
	vsnprintf(s->failure, sizeof(s->failure), fmt, ap);
	va_end(ap);
}

static int outq(int fd)
{
	int v = -1;

	return ioctl(fd, SIOCOUTQ, &v) < 0 ? -1 : v;
}

static int inq(int fd)
{
	int v = -1;

	return ioctl(fd, SIOCINQ, &v) < 0 ? -1 : v;
}

static unsigned tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || ti.tcpi_state >= TCP_STATES)
		return 0;
	return ti.tcpi_state;
}

static void count_error(struct side *s, enum phase ph, int e)
{
	int k = errno_class(e);

	s->errors[k]++;
	if (k == E_OTHER && !s->other_errno)
		s->other_errno = e;
	if (k != E_EAGAIN)
		return;
	s->eagain[ph]++;
	int oq = outq(s->fd), iq = inq(s->fd);
	unsigned st = tcp_state(s->fd);

	s->eagain_state[st]++;

	if (oq > 0)
		s->eagain_with_outq++;
	pthread_mutex_lock(&R_lock);
	if (R.nsamples < SAMPLES)
		snprintf(R.samples[R.nsamples++], sizeof(R.samples[0]),
			 "conn %llu %s %s %s at byte %llu, +%lld ms, %s, SIOCOUTQ %d, SIOCINQ %d, peer %s",
			 (unsigned long long)s->c->id, SHAPE_NAME[s->c->shape], END_NAME[s->end], PHASE_NAME[ph],
			 (unsigned long long)s->got, (long long)((now_ns() - s->c->t0) / 1000000), TCP_STATE_NAME[st], oq, iq,
			 atomic_load(&s->c->side[1 - s->end].write_done) ? "had shut down" : "still writing");
	pthread_mutex_unlock(&R_lock);
}

/* Write this end's whole stream, then shut down its write side. */
static void write_all(struct side *s)
{
	uint64_t sent = 0;

	while (sent < O.bytes) {
		uint64_t left = O.bytes - sent;
		/* Large writes: between half and all of --write-size. */
		size_t n = O.write_size / 2 + rnd(&s->rng) % (O.write_size / 2 + 1);

		if (n > left)
			n = left;
		pattern_fill(s->out_key, sent, s->wbuf, n);
		for (size_t off = 0; off < n;) {
			ssize_t k = write(s->fd, s->wbuf + off, n - off);

			s->writes++;
			if (k < 0) {
				int e = errno;

				count_error(s, PH_WRITE, e);
				if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
					continue;
				side_fail(s, "%s write at byte %llu: %s", END_NAME[s->end],
					  (unsigned long long)(sent + off), strerror(e));
				goto done;
			}
			off += (size_t)k;
		}
		sent += n;
	}
done:
	/* Set first: a reader woken by what the shutdown causes must see it. */
	atomic_store(&s->write_done, true);
	if (shutdown(s->fd, SHUT_WR) < 0 && !s->failed)
		side_fail(s, "%s shutdown: %s", END_NAME[s->end], strerror(errno));
}

/* Read and check the other end's whole stream, then its EOF. */
static void read_all(struct side *s, enum phase fixed)
{
	for (;;) {
		bool done_before = atomic_load(&s->write_done);
		uint64_t r = rnd(&s->rng);
		bool waitall = (r & 3) == 0;
		/* Past the stream's end a read asks for more, so EOF is what ends it. */
		uint64_t left = O.bytes > s->got ? O.bytes - s->got : 0;
		size_t want = 1 + (size_t)((r >> 8) % O.read_size);
		ssize_t k;

		if (waitall && left > 0 && want > left)
			want = (size_t)left;
		k = recv(s->fd, s->rbuf, want, waitall ? MSG_WAITALL : 0);
		s->reads++;
		if (waitall)
			s->waitall_reads++;
		if (k < 0) {
			int e = errno;
			enum phase ph = fixed != PHASES      ? fixed
					: done_before               ? PH_READ_AFTER_SHUTDOWN
					: atomic_load(&s->write_done) ? PH_READ_ACROSS_SHUTDOWN
								    : PH_READ_WHILE_WRITING;

			count_error(s, ph, e);
			if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR) {
				if (s->eagain[ph] > 1000000) {
					side_fail(s, "%s read: EAGAIN a million times", END_NAME[s->end]);
					return;
				}
				continue;
			}
			side_fail(s, "%s read at byte %llu: %s", END_NAME[s->end], (unsigned long long)s->got,
				  strerror(e));
			return;
		}
		if (k == 0) {
			if (!s->failed && s->got != O.bytes)
				side_fail(s, "%s read EOF at byte %llu of %llu", END_NAME[s->end],
					  (unsigned long long)s->got, (unsigned long long)O.bytes);
			return;
		}
		/* After a wrong byte, drain to EOF unchecked so the peer's writer can finish. */
		if (!s->failed && s->got + (uint64_t)k > O.bytes)
			side_fail(s, "%s read %llu bytes past the stream's end", END_NAME[s->end],
				  (unsigned long long)(s->got + (uint64_t)k - O.bytes));
		if (!s->failed) {
			size_t ok = pattern_match(s->in_key, s->got, s->rbuf, (size_t)k);

			if (ok != (size_t)k)
				side_fail(s, "%s read: byte %llu differs", END_NAME[s->end],
					  (unsigned long long)(s->got + ok));
		}
		s->got += (uint64_t)k;
		/* A reader that is neither copying nor waiting, now and then: that is when a sender
		 * that flow control moved to TCP may come back to the redirect. */
		if (O.read_pause_us && (r >> 40) % 8 == 0)
			usleep((useconds_t)O.read_pause_us);
	}
}

static void *duplex_writer(void *arg)
{
	write_all(arg);
	return NULL;
}

static void *duplex_reader(void *arg)
{
	read_all(arg, PHASES);
	return NULL;
}

/* turn: the client asks, then waits for the answer. */
static void *turn_client(void *arg)
{
	struct side *s = arg;

	write_all(s);
	read_all(s, PH_READ_AFTER_SHUTDOWN);
	return NULL;
}

static void *turn_server(void *arg)
{
	struct side *s = arg;

	read_all(s, PH_READ_BEFORE_WRITING);
	if (!s->failed)
		write_all(s);
	else
		shutdown(s->fd, SHUT_WR);
	return NULL;
}

/* ---------------------------------------------------------------- workers */

struct worker {
	int lfd;
	struct addr laddr;
	uint8_t *buf[ENDS][2]; /* write and read buffer of each end */
	pthread_t tid;
};

static atomic_ullong next_conn;

static int connect_to(const struct addr *a)
{
	int fd = socket(O.family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	if (O.sndbuf)
		setsockopt_int(fd, SOL_SOCKET, SO_SNDBUF, (int)O.sndbuf, "SO_SNDBUF");
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		fatal("connect: %s", strerror(errno));
	return fd;
}

static void merge(struct conn *c)
{
	pthread_mutex_lock(&R_lock);
	R.connections++;
	bool any_eagain = false;

	for (int e = 0; e < ENDS; e++) {
		struct side *s = &c->side[e];

		if (!s->failed)
			R.bytes_verified += s->got;
		R.reads += s->reads;
		R.writes += s->writes;
		R.waitall_reads += s->waitall_reads;
		for (int k = 0; k < ERRNOS; k++)
			R.errors[k] += s->errors[k];
		for (int p = 0; p < PHASES; p++) {
			R.eagain[c->shape][e][p] += s->eagain[p];
			any_eagain |= s->eagain[p] > 0;
		}
		R.eagain_with_outq += s->eagain_with_outq;
		for (size_t i = 0; i < TCP_STATES; i++)
			R.eagain_state[i] += s->eagain_state[i];
		if (s->other_errno && !R.other_errno)
			R.other_errno = s->other_errno;
	}
	if (any_eagain)
		R.conns_with_eagain++;
	if (c->side[0].failed || c->side[1].failed) {
		R.failures++;
		if (!R.first_failure[0])
			snprintf(R.first_failure, sizeof(R.first_failure), "conn %llu (%s): %s",
				 (unsigned long long)c->id, SHAPE_NAME[c->shape],
				 c->side[0].failed ? c->side[0].failure : c->side[1].failure);
	}
	pthread_mutex_unlock(&R_lock);
}

static void run_conn(struct worker *w, uint64_t id)
{
	struct conn c = { .id = id, .t0 = now_ns() };
	pthread_t t[4];
	int nt = 0;

	if (O.shapes == 3)
		c.shape = id % 2 ? SHAPE_TURN : SHAPE_DUPLEX;
	else
		c.shape = O.shapes == 1 ? SHAPE_DUPLEX : SHAPE_TURN;
	c.side[END_CLIENT].fd = connect_to(&w->laddr);
	c.side[END_SERVER].fd = accept4(w->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c.side[END_SERVER].fd < 0)
		fatal("accept: %s", strerror(errno));
	for (int e = 0; e < ENDS; e++) {
		struct side *s = &c.side[e];

		s->c = &c;
		s->end = (enum end)e;
		/* Keys: one stream per direction of each connection. */
		s->out_key = mix64(O.seed * 4 + 0x100000000ULL * id + (uint64_t)e);
		s->in_key = mix64(O.seed * 4 + 0x100000000ULL * id + (uint64_t)(1 - e));
		s->wbuf = w->buf[e][0];
		s->rbuf = w->buf[e][1];
		s->rng = mix64(O.seed ^ (id * 2 + (uint64_t)e + 1) * G64);
	}
	if (c.shape == SHAPE_DUPLEX) {
		for (int e = 0; e < ENDS; e++) {
			pthread_check(pthread_create(&t[nt++], NULL, duplex_writer, &c.side[e]), "pthread_create");
			pthread_check(pthread_create(&t[nt++], NULL, duplex_reader, &c.side[e]), "pthread_create");
		}
	} else {
		pthread_check(pthread_create(&t[nt++], NULL, turn_client, &c.side[END_CLIENT]), "pthread_create");
		pthread_check(pthread_create(&t[nt++], NULL, turn_server, &c.side[END_SERVER]), "pthread_create");
	}
	for (int i = 0; i < nt; i++)
		pthread_check(pthread_join(t[i], NULL), "pthread_join");
	close(c.side[END_CLIENT].fd);
	close(c.side[END_SERVER].fd);
	merge(&c);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		uint64_t id = atomic_fetch_add(&next_conn, 1);

		if (id >= O.connections)
			return NULL;
		run_conn(w, id);
	}
}

static void listen_on(struct worker *w)
{
	w->lfd = socket(O.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (w->lfd < 0)
		fatal("socket: %s", strerror(errno));
	setsockopt_int(w->lfd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR");
	if (O.sndbuf)
		setsockopt_int(w->lfd, SOL_SOCKET, SO_SNDBUF, (int)O.sndbuf, "SO_SNDBUF");
	addr_loopback(&w->laddr, O.family, 0);
	if (bind(w->lfd, (struct sockaddr *)&w->laddr.ss, w->laddr.len) < 0)
		fatal("bind: %s", strerror(errno));
	if (listen(w->lfd, 16) < 0)
		fatal("listen: %s", strerror(errno));
	addr_local(w->lfd, &w->laddr);
}

/* ----------------------------------------------------------------- output */

static void print_json(double secs)
{
	printf("{\"family\":\"%s\",\"connections\":%llu,\"bytes\":%llu,\"shapes\":\"%s\",\"seconds\":%.3f,"
	       "\"bytesVerified\":%llu,\"failures\":%llu,\"firstFailure\":",
	       O.family == AF_INET ? "tcp4" : "tcp6", (unsigned long long)R.connections,
	       (unsigned long long)O.bytes, O.shapes == 3 ? "both" : SHAPE_NAME[O.shapes == 1 ? 0 : 1], secs,
	       (unsigned long long)R.bytes_verified, (unsigned long long)R.failures);
	if (R.first_failure[0])
		json_str(stdout, R.first_failure);
	else
		fputs("null", stdout);
	printf(",\"reads\":%llu,\"waitallReads\":%llu,\"writes\":%llu", (unsigned long long)R.reads,
	       (unsigned long long)R.waitall_reads, (unsigned long long)R.writes);
	printf(",\"eagain\":%llu,\"connectionsWithEagain\":%llu,\"eagainWithSendQueue\":%llu",
	       (unsigned long long)R.errors[E_EAGAIN], (unsigned long long)R.conns_with_eagain,
	       (unsigned long long)R.eagain_with_outq);
	fputs(",\"errors\":{", stdout);
	for (int k = 0; k < ERRNOS; k++)
		printf("%s\"%s\":%llu", k ? "," : "", ERRNO_NAME[k], (unsigned long long)R.errors[k]);
	fputs("},\"otherErrno\":", stdout);
	if (R.other_errno)
		json_str(stdout, strerror(R.other_errno));
	else
		fputs("null", stdout);
	/* "shape end phase": count, only where EAGAIN occurred */
	fputs(",\"eagainWhere\":{", stdout);
	bool first = true;

	for (int sh = 0; sh < SHAPES; sh++)
		for (int e = 0; e < ENDS; e++)
			for (int p = 0; p < PHASES; p++)
				if (R.eagain[sh][e][p]) {
					printf("%s\"%s %s %s\":%llu", first ? "" : ",", SHAPE_NAME[sh], END_NAME[e],
					       PHASE_NAME[p], (unsigned long long)R.eagain[sh][e][p]);
					first = false;
				}
	fputs("},\"eagainTcpState\":{", stdout);
	first = true;
	for (size_t i = 0; i < TCP_STATES; i++)
		if (R.eagain_state[i]) {
			printf("%s\"%s\":%llu", first ? "" : ",", TCP_STATE_NAME[i], (unsigned long long)R.eagain_state[i]);
			first = false;
		}
	fputs("},\"eagainSamples\":[", stdout);
	for (int i = 0; i < R.nsamples; i++) {
		if (i)
			fputc(',', stdout);
		json_str(stdout, R.samples[i]);
	}
	fputs("]}\n", stdout);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	tool_init("blockpair", USAGE);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			usage_error("%s: needs a value", a);
		i++;
		if (!strcmp(a, "--family")) {
			if (!strcmp(v, "tcp4"))
				O.family = AF_INET;
			else if (!strcmp(v, "tcp6"))
				O.family = AF_INET6;
			else
				usage_error("--family: tcp4 or tcp6");
		} else if (!strcmp(a, "--connections"))
			O.connections = parse_u64(a, v, 1, 10000000);
		else if (!strcmp(a, "--concurrency"))
			O.concurrency = parse_u64(a, v, 1, 256);
		else if (!strcmp(a, "--bytes"))
			O.bytes = parse_u64(a, v, 1, 64 * 1024 * MiB);
		else if (!strcmp(a, "--write-size"))
			O.write_size = parse_u64(a, v, 2, 64 * MiB);
		else if (!strcmp(a, "--read-size"))
			O.read_size = parse_u64(a, v, 1, 64 * MiB);
		else if (!strcmp(a, "--sndbuf"))
			O.sndbuf = parse_u64(a, v, 0, 1U << 30);
		else if (!strcmp(a, "--read-pause-us"))
			O.read_pause_us = parse_u64(a, v, 0, 1000000);
		else if (!strcmp(a, "--seed"))
			O.seed = parse_u64(a, v, 0, UINT64_MAX);
		else if (!strcmp(a, "--seconds"))
			O.seconds = parse_secs(a, v);
		else if (!strcmp(a, "--shape")) {
			if (!strcmp(v, "duplex"))
				O.shapes = 1;
			else if (!strcmp(v, "turn"))
				O.shapes = 2;
			else if (!strcmp(v, "both"))
				O.shapes = 3;
			else
				usage_error("--shape: duplex, turn or both");
		} else
			usage_error("unknown option %s", a);
	}
	watchdog_arm(O.seconds);

	struct worker *w = xmalloc(O.concurrency * sizeof(*w));
	int64_t t0 = now_ns();

	for (uint64_t i = 0; i < O.concurrency; i++) {
		listen_on(&w[i]);
		for (int e = 0; e < ENDS; e++) {
			w[i].buf[e][0] = xmalloc(O.write_size);
			w[i].buf[e][1] = xmalloc(O.read_size);
		}
	}
	for (uint64_t i = 0; i < O.concurrency; i++)
		pthread_check(pthread_create(&w[i].tid, NULL, worker_main, &w[i]), "pthread_create");
	for (uint64_t i = 0; i < O.concurrency; i++)
		pthread_check(pthread_join(w[i].tid, NULL), "pthread_join");
	watchdog_disarm();
	print_json((double)(now_ns() - t0) / 1e9);
	uint64_t failed_calls = 0;

	for (int k = 0; k < ERRNOS; k++)
		failed_calls += R.errors[k];
	return R.failures || failed_calls ? 1 : 0;
}
