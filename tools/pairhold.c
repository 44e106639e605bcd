// SPDX-License-Identifier: GPL-2.0
/*
 * pairhold - open N loopback TCP connections, both ends in this process, and
 * hold them idle until signalled: the scale test's load (how many pairs the
 * sockhash holds, what an idle pair costs, whether held pairs slow new ones).
 *
 * Two file descriptors per pair: RLIMIT_NOFILE's hard limit (which only
 * CAP_SYS_RESOURCE can raise) bounds one process. So the pairs are split over
 * worker processes (forked, each at most --per-process pairs, by default as
 * many as its hard limit allows) that connect in parallel; each has its own
 * listeners, and a worker that outlives this process is killed
 * (PR_SET_PDEATHSIG).
 *
 * A worker makes its connections one at a time (blocking connect, then
 * accept), so the accept queue never overflows and each accepted socket is
 * the one just connected (checked by address). Its pair i connects to its
 * listener i % K (--listeners K): connect() shares an ephemeral port between
 * different destinations, so each listener has the whole port range.
 *
 * Once all are established (and, with --ping, each has carried 8 bytes each
 * way), it writes {"pairs":N,"workers":W,"establishSeconds":S,"pid":P} to
 * --ready-file (atomically, by rename) and waits for SIGTERM, SIGINT or
 * SIGUSR1. Then the workers close every connection (the client end first,
 * with RST, so no TIME_WAIT is left) and it prints one JSON object on stdout.
 *
 * usage: pairhold --pairs N [--family tcp4|tcp6] [--listeners K] [--ping]
 *                 [--per-process M] [--ready-file PATH] [--timeout S] [--hold-max S]
 * Exit 0 held and closed, 1 a ping came back wrong, 2 setup error (a worker
 * says on stderr how many of its pairs it established), 3 watchdog.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

static const char USAGE[] =
	"usage: pairhold --pairs N [--family tcp4|tcp6] [--listeners K] [--ping]\n"
	"                [--per-process M] [--ready-file PATH] [--timeout S] [--hold-max S]\n"
	"  --pairs N         connections to open (each has two sockets here)\n"
	"  --family F        tcp4 (127.0.0.1, default) or tcp6 (::1)\n"
	"  --listeners K     listening ports per worker; its pair i connects to listener i % K\n"
	"                    (default 1)\n"
	"  --per-process M   pairs per worker process (default: as many as RLIMIT_NOFILE allows)\n"
	"  --ping            once all are established, 8 bytes each way on every pair\n"
	"  --ready-file PATH where to write the ready JSON once all pairs are held\n"
	"  --timeout S       watchdog until ready (default 300)\n"
	"  --hold-max S      watchdog while holding (default 3600)\n"
	"Holds until SIGTERM/SIGINT/SIGUSR1, then closes all and prints one JSON object.\n";

static struct {
	long pairs, listeners, per_process;
	int family;
	bool ping;
	const char *ready_file;
	double timeout, hold_max;
} O = { .listeners = 1, .family = AF_INET, .timeout = 300, .hold_max = 3600 };

struct pair {
	int client, server;
};

static void parse_args(int argc, char **argv)
{
	enum { OPT_PAIRS = 256, OPT_FAMILY, OPT_LISTENERS, OPT_PING, OPT_READY, OPT_TIMEOUT, OPT_HOLD_MAX, OPT_PER_PROCESS,
	       OPT_HELP };
	static const struct option opts[] = {
		{ "pairs", required_argument, NULL, OPT_PAIRS },
		{ "family", required_argument, NULL, OPT_FAMILY },
		{ "listeners", required_argument, NULL, OPT_LISTENERS },
		{ "ping", no_argument, NULL, OPT_PING },
		{ "ready-file", required_argument, NULL, OPT_READY },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "hold-max", required_argument, NULL, OPT_HOLD_MAX },
		{ "per-process", required_argument, NULL, OPT_PER_PROCESS },
		{ "help", no_argument, NULL, OPT_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case OPT_PAIRS:
			O.pairs = (long)parse_u64("--pairs", optarg, 1, 400000);
			break;
		case OPT_FAMILY:
			if (!strcmp(optarg, "tcp4"))
				O.family = AF_INET;
			else if (!strcmp(optarg, "tcp6"))
				O.family = AF_INET6;
			else
				usage_error("--family: tcp4 or tcp6, not '%s'", optarg);
			break;
		case OPT_LISTENERS:
			O.listeners = (long)parse_u64("--listeners", optarg, 1, 1024);
			break;
		case OPT_PING:
			O.ping = true;
			break;
		case OPT_READY:
			O.ready_file = optarg;
			break;
		case OPT_TIMEOUT:
			O.timeout = parse_secs("--timeout", optarg);
			break;
		case OPT_HOLD_MAX:
			O.hold_max = parse_secs("--hold-max", optarg);
			break;
		case OPT_PER_PROCESS:
			O.per_process = (long)parse_u64("--per-process", optarg, 1, 400000);
			break;
		case OPT_HELP:
			fputs(USAGE, stdout);
			exit(0);
		default:
			usage_error("unknown option");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!O.pairs)
		usage_error("--pairs is required");
}

/* Raise the soft limit to `want`, and the hard one too where allowed (CAP_SYS_RESOURCE). */
static void raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		fatal("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want;
	if (rl.rlim_max < want)
		rl.rlim_max = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		fatal("need %llu file descriptors: setrlimit: %s (lower --per-process)", (unsigned long long)want,
		      strerror(errno));
}

/* Descriptors a worker needs besides its sockets: listeners, stdio, the pipe. */
static rlim_t fd_overhead(void)
{
	return (rlim_t)O.listeners + 16;
}

/* Pairs one process can hold under its hard RLIMIT_NOFILE. */
static long pairs_per_process(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		fatal("getrlimit: %s", strerror(errno));
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (rlim_t)1 << 24)
		return 400000;
	if (rl.rlim_max <= fd_overhead() + 2)
		fatal("RLIMIT_NOFILE %llu leaves no room for a pair", (unsigned long long)rl.rlim_max);
	return (long)((rl.rlim_max - fd_overhead()) / 2);
}

static int listen_on(void)
{
	struct addr a;
	int fd;

	addr_loopback(&a, O.family, 0);
	fd = socket(O.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fatal("socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) < 0)
		fatal("bind: %s", strerror(errno));
	/* One connection waits at a time; the kernel caps this at somaxconn anyway. */
	if (listen(fd, 16) < 0)
		fatal("listen: %s", strerror(errno));
	return fd;
}

static bool same_addr(const struct addr *a, const struct addr *b)
{
	return a->len == b->len && !memcmp(&a->ss, &b->ss, a->len);
}

/* Pair i: connect to its listener, accept it there, check the accepted socket is ours. */
static void open_pair(struct pair *p, long i, const int *lfds, const struct addr *targets)
{
	const struct addr *to = &targets[i % O.listeners];
	struct addr local, peer;
	int lfd = lfds[i % O.listeners];

	p->client = socket(O.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->client < 0)
		fatal("pair %ld: socket: %s (%ld pairs established)", i, strerror(errno), i);
	while (connect(p->client, (const struct sockaddr *)&to->ss, to->len) < 0) {
		if (errno != EINTR)
			fatal("pair %ld: connect: %s (%ld pairs established)", i, strerror(errno), i);
	}
	do {
		peer.len = sizeof(peer.ss);
		p->server = accept4(lfd, (struct sockaddr *)&peer.ss, &peer.len, SOCK_CLOEXEC);
	} while (p->server < 0 && errno == EINTR);
	if (p->server < 0)
		fatal("pair %ld: accept: %s (%ld pairs established)", i, strerror(errno), i);
	addr_local(p->client, &local);
	if (!same_addr(&local, &peer))
		fatal("pair %ld: accepted a connection that is not the one just made", i);
}

static bool io_full(int fd, void *buf, size_t n, bool writing)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k = writing ? write(fd, (char *)buf + done, n - done) : read(fd, (char *)buf + done, n - done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		done += (size_t)k;
	}
	return true;
}

/* 8 bytes each way on pair i: its index out, the same back. False if anything came back wrong. */
static bool ping_pair(const struct pair *p, long i)
{
	uint64_t out = mix64((uint64_t)i), got = 0, back = 0;

	if (!io_full(p->client, &out, sizeof(out), true) || !io_full(p->server, &got, sizeof(got), false))
		return false;
	if (got != out || !io_full(p->server, &got, sizeof(got), true) || !io_full(p->client, &back, sizeof(back), false))
		return false;
	return back == out;
}

/* What a worker tells the coordinator: first when it holds its pairs, then when it closed them. */
struct report {
	double establish_s;
	long ping_failures;
};

/* A worker: open pairs [first, first + count), report, hold until SIGTERM, close, report. */
static __attribute__((noreturn)) void worker(long first, long count, int report_fd, const sigset_t *stop)
{
	struct report r = { 0 };
	struct addr *targets;
	struct pair *pairs;
	int *lfds, sig;
	int64_t t0;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		fatal("prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	if (getppid() == 1)
		_exit(2); /* the coordinator is already gone */
	raise_nofile((rlim_t)(2 * count) + fd_overhead());
	lfds = xmalloc(sizeof(*lfds) * (size_t)O.listeners);
	targets = xmalloc(sizeof(*targets) * (size_t)O.listeners);
	for (long k = 0; k < O.listeners; k++) {
		lfds[k] = listen_on();
		addr_local(lfds[k], &targets[k]);
	}
	pairs = xmalloc(sizeof(*pairs) * (size_t)count);
	t0 = now_ns();
	for (long i = 0; i < count; i++)
		open_pair(&pairs[i], i, lfds, targets);
	if (O.ping) {
		for (long i = 0; i < count; i++)
			r.ping_failures += !ping_pair(&pairs[i], first + i);
	}
	r.establish_s = (double)(now_ns() - t0) / NSEC;
	if (write(report_fd, &r, sizeof(r)) != sizeof(r))
		fatal("report: %s", strerror(errno));

	while (sigwait(stop, &sig) != 0)
		;
	for (long i = 0; i < count; i++) {
		set_linger0(pairs[i].client);
		close(pairs[i].client);
		close(pairs[i].server);
	}
	for (long k = 0; k < O.listeners; k++)
		close(lfds[k]);
	if (write(report_fd, &r, sizeof(r)) != sizeof(r))
		fatal("report: %s", strerror(errno));
	_exit(0);
}

struct worker_proc {
	pid_t pid;
	int report_fd;
	long count;
};

static struct worker_proc *workers;
static long n_workers;

/* Kill every worker (by PID) and reap it; for the error paths. */
static void kill_workers(void)
{
	for (long w = 0; w < n_workers; w++) {
		if (workers[w].pid > 0) {
			kill(workers[w].pid, SIGKILL);
			waitpid(workers[w].pid, NULL, 0);
			workers[w].pid = 0;
		}
	}
}

/* Read worker w's next report; a worker that died instead takes every other one down with it. */
static void read_report(long w, struct report *r, const char *when)
{
	ssize_t k;

	do
		k = read(workers[w].report_fd, r, sizeof(*r));
	while (k < 0 && errno == EINTR);
	if (k == sizeof(*r))
		return;
	kill_workers();
	fatal("worker %ld (%ld pairs) failed %s; its error is on stderr", w, workers[w].count, when);
}

static void write_ready(double establish_s)
{
	char tmp[4096];
	FILE *f;

	if (!O.ready_file)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", O.ready_file);
	f = fopen(tmp, "w");
	if (!f)
		fatal("%s: %s", tmp, strerror(errno));
	fprintf(f, "{\"pairs\":%ld,\"workers\":%ld,\"establishSeconds\":%.3f,\"pid\":%d}\n", O.pairs, n_workers,
		establish_s, (int)getpid());
	if (fclose(f) != 0 || rename(tmp, O.ready_file) < 0)
		fatal("writing %s: %s", O.ready_file, strerror(errno));
}

int main(int argc, char **argv)
{
	struct report r;
	sigset_t stop;
	long per_process, ping_failures = 0;
	double slowest_worker_s = 0;
	int64_t t0, t_ready, t_stop;
	int sig;

	tool_init("pairhold", USAGE);
	parse_args(argc, argv);
	per_process = O.per_process ? O.per_process : pairs_per_process();
	n_workers = (O.pairs + per_process - 1) / per_process;

	/* Blocked before any worker exists (they inherit it); sigwait takes them. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGUSR1);
	sigprocmask(SIG_BLOCK, &stop, NULL);

	watchdog_arm(O.timeout);
	fflush(stdout);
	fflush(stderr);
	workers = xmalloc(sizeof(*workers) * (size_t)n_workers);
	t0 = now_ns();
	for (long w = 0; w < n_workers; w++) {
		long first = w * per_process;
		long count = O.pairs - first < per_process ? O.pairs - first : per_process;
		int fds[2];
		pid_t pid;

		if (pipe2(fds, O_CLOEXEC) < 0) {
			kill_workers();
			fatal("pipe: %s", strerror(errno));
		}
		pid = fork();
		if (pid < 0) {
			kill_workers();
			fatal("fork: %s", strerror(errno));
		}
		if (pid == 0) {
			close(fds[0]);
			/* stdout belongs to the coordinator's one JSON object; a worker's errors go to stderr. */
			if (!freopen("/dev/null", "w", stdout))
				_exit(2);
			tool_init("pairhold worker", USAGE);
			worker(first, count, fds[1], &stop);
		}
		close(fds[1]);
		workers[w] = (struct worker_proc){ .pid = pid, .report_fd = fds[0], .count = count };
	}
	for (long w = 0; w < n_workers; w++) {
		read_report(w, &r, "while connecting");
		if (r.establish_s > slowest_worker_s)
			slowest_worker_s = r.establish_s;
	}
	t_ready = now_ns();
	watchdog_disarm();
	write_ready((double)(t_ready - t0) / NSEC);

	watchdog_arm(O.hold_max);
	while (sigwait(&stop, &sig) != 0)
		;
	t_stop = now_ns();
	for (long w = 0; w < n_workers; w++)
		kill(workers[w].pid, SIGTERM);
	for (long w = 0; w < n_workers; w++) {
		read_report(w, &r, "while closing");
		ping_failures += r.ping_failures;
		waitpid(workers[w].pid, NULL, 0);
		workers[w].pid = 0;
	}
	watchdog_disarm();
	printf("{\"pairs\":%ld,\"workers\":%ld,\"listeners\":%ld,\"family\":\"%s\",\"establishSeconds\":%.3f,"
	       "\"slowestWorkerSeconds\":%.3f,\"heldSeconds\":%.3f,\"closeSeconds\":%.3f,\"pinged\":%s,"
	       "\"pingFailures\":%ld,\"signal\":\"%s\"}\n",
	       O.pairs, n_workers, O.listeners, O.family == AF_INET ? "tcp4" : "tcp6", (double)(t_ready - t0) / NSEC,
	       slowest_worker_s, (double)(t_stop - t_ready) / NSEC, (double)(now_ns() - t_stop) / NSEC,
	       O.ping ? "true" : "false", ping_failures, strsignal(sig));
	return ping_failures ? 1 : 0;
}
