/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What the native tools (sbload, endings, slowreader) share: how they fail
 * (one JSON error on stdout, a message on stderr, fixed exit codes), the
 * watchdog, clocks, socket and argument helpers, and the byte pattern their
 * streams carry, so that any range of a stream can be regenerated and checked.
 *
 * Exit status of every tool: 2 error (fatal), 3 watchdog fired.
 */
#ifndef SOCKBYPASS_TOOLS_COMMON_H
#define SOCKBYPASS_TOOLS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)
#define NSEC 1000000000LL

/* ------------------------------------------------------------ failing */

/* Name the tool (stderr prefix) and its usage text (printed by usage_error). */
void tool_init(const char *name, const char *usage);
/* Once set, JSON errors carry "mode" first, as {"mode":..,"error":..}. */
void tool_set_mode(const char *mode);

void json_str(FILE *f, const char *s);

/* Report one error ("<tool>: msg" on stderr, {"error":msg} on stdout) and _exit(2).
 * Safe from any thread: the first caller wins. */
__attribute__((noreturn, format(printf, 1, 2))) void fatal(const char *fmt, ...);
/* The usage text on stderr, then fatal(). */
__attribute__((noreturn, format(printf, 1, 2))) void usage_error(const char *fmt, ...);

/* Hard timeout: whatever hangs, the process ends by itself with a JSON error, exit 3. */
void watchdog_arm(double secs);
void watchdog_disarm(void);

void *xmalloc(size_t n); /* zeroed */
void pthread_check(int rc, const char *what);

/* --------------------------------------------------------------- time */

int64_t now_ns(void); /* CLOCK_MONOTONIC */
void sleep_until(int64_t t_ns);
void sleep_ms(long ms);

/* ------------------------------------------------------------ sockets */

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

int addr_af(const struct addr *a);
int addr_port(const struct addr *a); /* 0 for AF_UNIX */
void addr_set_port(struct addr *a, int port);
/* 127.0.0.1:port or [::1]:port. */
void addr_loopback(struct addr *a, int family, int port);
/* Where fd is bound (getsockname). */
void addr_local(int fd, struct addr *a);

void setsockopt_int(int fd, int level, int opt, int val, const char *name);
/* SO_LINGER {1,0}: close() sends RST instead of FIN. */
void set_linger0(int fd);

/* ---------------------------------------------------------- arguments */

/* A byte count: decimal or 0x hex, with an optional K, M or G suffix (powers of 1024). */
uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max);
double parse_secs(const char *opt, const char *s);

/* ------------------------------------------------------------ pattern */

#define G64 0x9e3779b97f4a7c15ULL

/* splitmix64's finalizer. */
uint64_t mix64(uint64_t z);
/* splitmix64: for I/O decisions (sizes, syscalls); not part of the data. */
uint64_t rnd(uint64_t *state);

/* Bytes [off, off+n) of the stream named by key: word i of the stream is
 * mix64(key + (i+1)*G64), little-endian. Counter-based, so any range can be
 * regenerated on either side. */
void pattern_fill(uint64_t key, uint64_t off, uint8_t *buf, size_t n);
/* How many leading bytes of buf match the stream at off (n if all do). */
size_t pattern_match(uint64_t key, uint64_t off, const uint8_t *buf, size_t n);
uint8_t pattern_byte(uint64_t key, uint64_t off);

#endif
