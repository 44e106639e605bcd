// SPDX-License-Identifier: GPL-2.0-only
/* Shared by the native tools; see common.h. */
#include "common.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ failing */

static const char *tool_name = "tool";
static const char *tool_usage = "";
static const char *tool_mode;

void tool_init(const char *name, const char *usage)
{
	tool_name = name;
	tool_usage = usage;
}

void tool_set_mode(const char *mode)
{
	tool_mode = mode;
}

/* One character of a JSON string, escaped as needed. */
static const char *json_char(unsigned char c, char piece[8])
{
	if (c == '"' || c == '\\')
		snprintf(piece, 8, "\\%c", c);
	else if (c < 0x20)
		snprintf(piece, 8, "\\u%04x", c);
	else
		piece[0] = (char)c, piece[1] = '\0';
	return piece;
}

void json_str(FILE *f, const char *s)
{
	char piece[8];

	fputc('"', f);
	for (; *s; s++)
		fputs(json_char((unsigned char)*s, piece), f);
	fputc('"', f);
}

/* Appends s to buf (size n, holding len bytes; truncates); returns the new length. */
static size_t put(char *buf, size_t n, size_t len, const char *s)
{
	while (*s && len + 1 < n)
		buf[len++] = *s++;
	buf[len] = '\0';
	return len;
}

static size_t put_json_str(char *buf, size_t n, size_t len, const char *s)
{
	char piece[8];

	len = put(buf, n, len, "\"");
	for (; *s; s++)
		len = put(buf, n, len, json_char((unsigned char)*s, piece));
	return put(buf, n, len, "\"");
}

/* {"mode":..,"error":msg}\n, or {"error":msg}\n before a mode is known. */
static size_t error_json(char *buf, size_t n, const char *msg)
{
	size_t len = put(buf, n, 0, "{");

	if (tool_mode) {
		len = put(buf, n, len, "\"mode\":");
		len = put_json_str(buf, n, len, tool_mode);
		len = put(buf, n, len, ",");
	}
	len = put(buf, n, len, "\"error\":");
	len = put_json_str(buf, n, len, msg);
	return put(buf, n, len, "}\n");
}

static pthread_mutex_t exit_lock = PTHREAD_MUTEX_INITIALIZER;

static __attribute__((noreturn)) void vfatal(const char *fmt, va_list ap)
{
	char msg[512], out[4096];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* Later callers block here until the first one's _exit. */
	pthread_mutex_lock(&exit_lock);
	watchdog_disarm();
	fprintf(stderr, "%s: %s\n", tool_name, msg);
	fwrite(out, 1, error_json(out, sizeof(out), msg), stdout);
	fflush(stdout);
	fflush(stderr);
	_exit(2);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfatal(fmt, ap);
}

void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(tool_usage, stderr);
	va_start(ap, fmt);
	vfatal(fmt, ap);
}

static char wd_out[1024], wd_err[512];
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

void watchdog_arm(double secs)
{
	struct sigaction sa;
	struct itimerval it;
	char msg[128];

	snprintf(wd_err, sizeof(wd_err), "%s: watchdog: %s%sdid not finish within %.1f s, aborting\n", tool_name,
		 tool_mode ? tool_mode : "", tool_mode ? " " : "", secs);
	wd_err_len = strlen(wd_err);
	snprintf(msg, sizeof(msg), "watchdog: did not finish within %.1f s", secs);
	wd_out_len = error_json(wd_out, sizeof(wd_out), msg);
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

void watchdog_disarm(void)
{
	struct itimerval it;

	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
}

void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p)
		fatal("out of memory (%zu bytes)", n);
	return p;
}

void pthread_check(int rc, const char *what)
{
	if (rc)
		fatal("%s: %s", what, strerror(rc));
}

/* --------------------------------------------------------------- time */

int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

void sleep_until(int64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / NSEC), .tv_nsec = (long)(t % NSEC) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

void sleep_ms(long ms)
{
	sleep_until(now_ns() + (int64_t)ms * 1000000);
}

/* ------------------------------------------------------------ sockets */

int addr_af(const struct addr *a)
{
	return a->ss.ss_family;
}

int addr_port(const struct addr *a)
{
	if (addr_af(a) == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (addr_af(a) == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return 0;
}

void addr_set_port(struct addr *a, int port)
{
	if (addr_af(a) == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)port);
	else if (addr_af(a) == AF_INET6)
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)port);
}

void addr_loopback(struct addr *a, int family, int port)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&a->ss;

		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a->len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&a->ss;

		s->sin6_family = AF_INET6;
		s->sin6_addr = in6addr_loopback;
		a->len = sizeof(*s);
	}
	addr_set_port(a, port);
}

void addr_local(int fd, struct addr *a)
{
	a->len = sizeof(a->ss);
	if (getsockname(fd, (struct sockaddr *)&a->ss, &a->len) < 0)
		fatal("getsockname: %s", strerror(errno));
}

void setsockopt_int(int fd, int level, int opt, int val, const char *name)
{
	if (setsockopt(fd, level, opt, &val, sizeof(val)) < 0)
		fatal("setsockopt(%s): %s", name, strerror(errno));
}

void set_linger0(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) < 0)
		fatal("setsockopt(SO_LINGER): %s", strerror(errno));
}

/* ---------------------------------------------------------- arguments */

uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
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
	if (*end)
		usage_error("%s: '%s' is not a number", opt, s);
	if ((v && mul > UINT64_MAX / v) || v * mul < min || v * mul > max)
		usage_error("%s: '%s' is out of range [%llu, %llu]", opt, s, (unsigned long long)min,
			    (unsigned long long)max);
	return v * mul;
}

double parse_secs(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > 1e6)
		usage_error("%s: '%s' is not a positive number of seconds", opt, s);
	return v;
}

/* ------------------------------------------------------------ pattern */

uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t rnd(uint64_t *state)
{
	return mix64(*state += G64);
}

static uint64_t pattern_word(uint64_t key, uint64_t w)
{
	return htole64(mix64(key + (w + 1) * G64));
}

void pattern_fill(uint64_t key, uint64_t off, uint8_t *buf, size_t n)
{
	uint64_t w = off >> 3, v;
	size_t skip = off & 7;

	if (skip && n) {
		size_t take = 8 - skip < n ? 8 - skip : n;

		v = pattern_word(key, w);
		memcpy(buf, (uint8_t *)&v + skip, take);
		buf += take;
		n -= take;
		w++;
	}
	for (; n >= 8; n -= 8, buf += 8, w++) {
		v = pattern_word(key, w);
		memcpy(buf, &v, 8);
	}
	if (n) {
		v = pattern_word(key, w);
		memcpy(buf, &v, n);
	}
}

size_t pattern_match(uint64_t key, uint64_t off, const uint8_t *buf, size_t n)
{
	uint8_t expect[4096];

	for (size_t done = 0; done < n;) {
		size_t take = n - done < sizeof(expect) ? n - done : sizeof(expect);

		pattern_fill(key, off + done, expect, take);
		if (memcmp(buf + done, expect, take)) {
			size_t i = 0;

			while (buf[done + i] == expect[i])
				i++;
			return done + i;
		}
		done += take;
	}
	return n;
}

uint8_t pattern_byte(uint64_t key, uint64_t off)
{
	uint8_t b;

	pattern_fill(key, off, &b, 1);
	return b;
}
