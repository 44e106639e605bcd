/* SPDX-License-Identifier: GPL-2.0-only */
/* sbload integrity: what its connection state machine, workers and report share. */
#ifndef SOCKBYPASS_SBLOAD_INTEGRITY_H
#define SOCKBYPASS_SBLOAD_INTEGRITY_H

#include <openssl/evp.h>
#include <pthread.h>

#include "sbload/sbload.h"

/*
 * Each connection carries two independent streams, client->server (c2s) and
 * server->client (s2c), each --bytes long and preceded by an 8-byte header
 * {magic, stream id}. The header tells the receiver which stream to expect:
 * normally the client announces its connection id and the server answers with
 * the same id; with --server-first the server speaks first, using its accept
 * index, and the client only starts writing after it has received data.
 *
 * Stream content is counter-based (byte at offset o depends only on seed, id,
 * direction and o), so any range can be regenerated on either side: senders
 * never buffer what they failed to write, receivers compare every byte against
 * the regenerated expectation, and both ends also hash what they sent/received.
 */
#define HDR_LEN 8
#define HDR_MAGIC 0x444c4253u /* "SBLD" little-endian */
#define MAX_CHUNK MiB	      /* largest single write or read */
#define DIR_C2S 0
#define DIR_S2C 1
#define WAITALL_TIMEOUT_US 5000 /* bound on a blocking MSG_WAITALL read */
#define SENDFILE_SPAN (64 * MiB)
#define LISTENER_TAG UINT64_MAX
#define MAX_SAMPLES 8

/* The pattern key of stream `id` in direction `dir` (DIR_C2S or DIR_S2C). */
static inline uint64_t stream_key(uint32_t id, int dir)
{
	return mix64(O.seed * G64 ^ mix64(((uint64_t)id << 1 | (uint64_t)dir) + 0x51b1a5d0ULL));
}

struct ep { /* one end of one connection */
	int fd;
	bool server;
	bool connecting, done, failed;
	uint32_t idx;	  /* client: connection index; server: accept order */
	uint32_t conn_id; /* for reports; server learns it from the client's header */
	bool id_known;
	uint64_t rng;
	/* transmit */
	bool tx_allowed, tx_shut;
	uint8_t tx_hdr[HDR_LEN];
	unsigned tx_hdr_off;
	uint32_t tx_stream;
	uint64_t tx_key, tx_off;
	EVP_MD_CTX *tx_md;
	uint8_t tx_dig[32];
	/* receive */
	uint8_t rx_hdr[HDR_LEN];
	unsigned rx_hdr_off;
	bool rx_known, rx_eof, rx_done, rx_bad;
	uint32_t rx_stream;
	uint64_t rx_key, rx_off, verified;
	EVP_MD_CTX *rx_md;
	uint8_t rx_dig[32];
};

struct iostats {
	uint64_t write, writev, sendfile, splice;
	uint64_t read, readv, peek, waitall, waitall_short, peek_short;
};

struct iworker { /* one epoll loop: all server ends, or all client ends */
	pthread_t th;
	bool server;
	int epfd, lfd;
	const struct addr *peer;
	struct ep *eps;
	uint32_t neps, ndone;
	uint8_t *seen; /* stream ids already announced by a header */
	uint8_t *txbuf, *rxbuf, *peekbuf, *drainbuf;
	int tmpfd, pipe_r, pipe_w;
	size_t pipe_cap;
	uint64_t tmp_off;
	uint64_t queued_at_accept; /* bytes already readable when accept() returned */
	uint64_t rng;
	int64_t deadline;
	struct iostats st;
};

/* integrity.c: failures and digests */
/* Record one failure message: the first, and up to MAX_SAMPLES samples. */
void failure_record(const char *msg);
/* Record the first failure of an endpoint; later ones on the same end are noise. */
__attribute__((format(printf, 2, 3))) void ep_fail(struct ep *e, const char *fmt, ...);
EVP_MD_CTX *md_new(void);
void md_update(EVP_MD_CTX *md, const void *p, size_t n);
void md_final(EVP_MD_CTX **md, uint8_t *out);

/* integrity_conn.c: one connection end */
void ep_start_tx(struct ep *e, uint32_t stream, int dir);
void ep_setup_fd(struct ep *e);
void ep_close(struct iworker *w, struct ep *e);
/* Drive one connection end until both directions would block or it is finished. */
void pump(struct iworker *w, struct ep *e);

/* integrity_worker.c: the epoll loops */
void iworker_init(struct iworker *w, bool server, int lfd, const struct addr *peer, int64_t deadline);
void *iworker_run(void *arg);
/* Fail and close every end still open at the deadline. */
void iworker_timeouts(struct iworker *w);

#endif
