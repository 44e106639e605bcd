/* SPDX-License-Identifier: GPL-2.0-only */
/* What sbload's files share: the options, endpoints, socket I/O and the modes. */
#ifndef SOCKBYPASS_SBLOAD_H
#define SOCKBYPASS_SBLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "common.h"

enum mode { MODE_STREAM, MODE_RR, MODE_CRR, MODE_INTEGRITY };
enum family { FAM_TCP4, FAM_TCP6, FAM_UNIX, FAM_TCP4MAPPED };
enum role { ROLE_BOTH, ROLE_SERVER, ROLE_CLIENT };

extern const char *const mode_names[4];
extern const char *const family_names[4];
extern const char *const role_names[3];

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
extern struct opts O;

/* net.c: addresses, sockets, the listener and the JSON frame */
void parse_addr(const char *opt, const char *s, struct addr *a);
void addr_str(const struct addr *a, char *buf, size_t n);
void set_nodelay(int fd);
int client_socket(const struct addr *to, int idx, bool nonblock);
int connect_blocking(const struct addr *to, int idx);
int accept_blocking(int lfd);
int write_full(int fd, const void *buf, size_t n);
ssize_t read_full(int fd, void *buf, size_t n);
void raise_nofile(rlim_t want);

/* Listener (server/both roles, plus --ready-file) and the address clients connect to. */
struct endpoints {
	int lfd;
	struct addr bound; /* where the listener is */
	struct addr peer;  /* where the client connects */
};

void setup_endpoints(struct endpoints *ep, int backlog);
void teardown_endpoints(struct endpoints *ep);
void json_begin(void);
void json_end(void);

/* One per mode; each returns the exit status. */
int mode_stream(void);
int mode_rr(void);
int mode_crr(void);
int mode_integrity(void);

#endif
