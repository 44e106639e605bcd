// SPDX-License-Identifier: GPL-2.0-only
/* sbload integrity: bidirectional byte-exactness over many connections; this file
 * runs the workers and reports failures and digests (see integrity.h). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sbload/integrity.h"

static struct {
	pthread_mutex_t lock;
	char first[320];
	char samples[MAX_SAMPLES][320];
	unsigned nsamples;
} F = { .lock = PTHREAD_MUTEX_INITIALIZER };

void failure_record(const char *msg)
{
	pthread_mutex_lock(&F.lock);
	if (!F.first[0])
		snprintf(F.first, sizeof(F.first), "%s", msg);
	if (F.nsamples < MAX_SAMPLES)
		snprintf(F.samples[F.nsamples++], sizeof(F.samples[0]), "%s", msg);
	pthread_mutex_unlock(&F.lock);
}

void ep_fail(struct ep *e, const char *fmt, ...)
{
	char what[256], msg[320];
	va_list ap;

	if (e->failed)
		return;
	e->failed = true;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (e->id_known)
		snprintf(msg, sizeof(msg), "conn %u: %s %s", e->conn_id, e->server ? "server" : "client", what);
	else
		snprintf(msg, sizeof(msg), "conn ? (server accept #%u): server %s", e->idx, what);
	failure_record(msg);
}

EVP_MD_CTX *md_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		fatal("EVP SHA-256 init failed");
	return md;
}

void md_final(EVP_MD_CTX **md, uint8_t *out)
{
	if (EVP_DigestFinal_ex(*md, out, NULL) != 1)
		fatal("EVP SHA-256 final failed");
	EVP_MD_CTX_free(*md);
	*md = NULL;
}

void md_update(EVP_MD_CTX *md, const void *p, size_t n)
{
	if (n && EVP_DigestUpdate(md, p, n) != 1)
		fatal("EVP SHA-256 update failed");
}

static void hex32(const uint8_t *d, char *out)
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* One digest per direction over all streams (id order), so split-process runs can
 * compare the client's and the server's view; null if any stream is incomplete. */
static void print_aggregate(const char *key, const uint8_t *const *d)
{
	EVP_MD_CTX *md = md_new();
	uint8_t out[32];
	char hex[65];

	printf(",\"%s\":", key);
	for (int i = 0; i < O.connections; i++) {
		if (!d[i]) {
			EVP_MD_CTX_free(md);
			printf("null");
			return;
		}
		md_update(md, d[i], 32);
	}
	md_final(&md, out);
	hex32(out, hex);
	printf("\"%s\"", hex);
}

int mode_integrity(void)
{
	struct endpoints ep;
	struct iworker sw, cw;
	bool srv = O.role != ROLE_CLIENT, cli = O.role != ROLE_SERVER;
	int64_t t0, t1, deadline;
	uint64_t verified = 0, unknown = 0;
	const uint8_t **c2s_tx = xmalloc(sizeof(void *) * (size_t)O.connections);
	const uint8_t **c2s_rx = xmalloc(sizeof(void *) * (size_t)O.connections);
	const uint8_t **s2c_tx = xmalloc(sizeof(void *) * (size_t)O.connections);
	const uint8_t **s2c_rx = xmalloc(sizeof(void *) * (size_t)O.connections);
	struct ep **c2s_rx_ep = xmalloc(sizeof(void *) * (size_t)O.connections);
	struct ep **s2c_rx_ep = xmalloc(sizeof(void *) * (size_t)O.connections);
	uint8_t *failed_ids = xmalloc((size_t)O.connections);
	struct ep **ends = xmalloc(sizeof(void *) * 2 * (size_t)O.connections);
	size_t nends = 0;
	struct iostats st;
	int failures = 0;

	/* One fd per connection end plus the worker's epoll, pipe, temp file, listener. */
	raise_nofile((rlim_t)O.connections * (srv && cli ? 2 : 1) + 64);
	setup_endpoints(&ep, O.connections + 64);
	t0 = now_ns();
	deadline = t0 + (int64_t)(O.seconds * NSEC);
	memset(&sw, 0, sizeof(sw));
	memset(&cw, 0, sizeof(cw));
	if (srv)
		iworker_init(&sw, true, ep.lfd, NULL, deadline);
	if (cli)
		iworker_init(&cw, false, -1, &ep.peer, deadline);
	if (srv && cli) {
		pthread_check(pthread_create(&sw.th, NULL, iworker_run, &sw), "pthread_create");
		iworker_run(&cw);
		pthread_join(sw.th, NULL);
	} else {
		iworker_run(srv ? &sw : &cw);
	}
	t1 = now_ns();
	if (srv)
		iworker_timeouts(&sw);
	if (cli)
		iworker_timeouts(&cw);

	/* The ends this process ran: the server's, then the client's. */
	if (srv)
		for (uint32_t i = 0; i < sw.neps; i++)
			ends[nends++] = &sw.eps[i];
	if (cli)
		for (uint32_t i = 0; i < cw.neps; i++)
			ends[nends++] = &cw.eps[i];

	/* Collect per-stream digests: c2s is sent by client ends, s2c by server ends. */
	for (size_t k = 0; k < nends; k++) {
		struct ep *e = ends[k];

		verified += e->verified;
		if (e->tx_shut)
			(e->server ? s2c_tx : c2s_tx)[e->tx_stream] = e->tx_dig;
		if (e->rx_known) {
			(e->server ? c2s_rx_ep : s2c_rx_ep)[e->rx_stream] = e;
			if (e->rx_done)
				(e->server ? c2s_rx : s2c_rx)[e->rx_stream] = e->rx_dig;
		}
	}
	/* Same process: the receiver's hash must equal the sender's. */
	if (srv && cli) {
		for (int i = 0; i < O.connections; i++) {
			if (c2s_tx[i] && c2s_rx[i] && memcmp(c2s_tx[i], c2s_rx[i], 32))
				ep_fail(c2s_rx_ep[i], "SHA-256 of the received c2s stream differs from the sender's");
			if (s2c_tx[i] && s2c_rx[i] && memcmp(s2c_tx[i], s2c_rx[i], 32))
				ep_fail(s2c_rx_ep[i], "SHA-256 of the received s2c stream differs from the sender's");
		}
	}
	/* Failures count connections, not ends: a reset seen by both ends counts once. */
	for (size_t k = 0; k < nends; k++) {
		struct ep *e = ends[k];

		if (e->failed && e->id_known)
			failed_ids[e->conn_id] = 1;
		else if (e->failed)
			unknown++;
	}
	for (int i = 0; i < O.connections; i++)
		failures += failed_ids[i];
	failures += (int)unknown;
	if (srv && !cli && sw.neps < (uint32_t)O.connections) {
		/* Split server: connections that never arrived. */
		char msg[128];

		snprintf(msg, sizeof(msg), "server: only %u of %d connections arrived before the deadline", sw.neps,
			 O.connections);
		failure_record(msg);
		failures += O.connections - (int)sw.neps;
	}
	memset(&st, 0, sizeof(st));
	for (int pass = 0; pass < 2; pass++) {
		struct iostats *s = pass ? &cw.st : &sw.st;

		st.write += s->write;
		st.writev += s->writev;
		st.sendfile += s->sendfile;
		st.splice += s->splice;
		st.read += s->read;
		st.readv += s->readv;
		st.peek += s->peek;
		st.waitall += s->waitall;
		st.waitall_short += s->waitall_short;
		st.peek_short += s->peek_short;
	}
	teardown_endpoints(&ep);

	json_begin();
	printf(",\"connections\":%d,\"bytes\":%llu,\"seed\":%llu,\"earlyData\":%s,\"serverFirst\":%s,"
	       "\"seconds\":%.6f,\"bytesVerified\":%llu,\"failures\":%d,\"firstFailure\":",
	       O.connections, (unsigned long long)O.bytes, (unsigned long long)O.seed,
	       O.early_data ? "true" : "false", O.server_first ? "true" : "false", (double)(t1 - t0) / 1e9,
	       (unsigned long long)verified, failures);
	if (F.first[0])
		json_str(stdout, F.first);
	else
		printf("null");
	printf(",\"failureSamples\":[");
	for (unsigned i = 0; i < F.nsamples; i++) {
		if (i)
			printf(",");
		json_str(stdout, F.samples[i]);
	}
	printf("],\"bytesQueuedAtAccept\":%llu", (unsigned long long)sw.queued_at_accept);
	/* Digests of what arrived where this process received it, else of what it sent. */
	print_aggregate("c2sSha256", srv ? c2s_rx : c2s_tx);
	print_aggregate("s2cSha256", cli ? s2c_rx : s2c_tx);
	printf(",\"calls\":{\"write\":%llu,\"writev\":%llu,\"sendfile\":%llu,\"splice\":%llu,\"read\":%llu,"
	       "\"readv\":%llu,\"peek\":%llu,\"peekShort\":%llu,\"waitall\":%llu,\"waitallShort\":%llu}",
	       (unsigned long long)st.write, (unsigned long long)st.writev, (unsigned long long)st.sendfile,
	       (unsigned long long)st.splice, (unsigned long long)st.read, (unsigned long long)st.readv,
	       (unsigned long long)st.peek, (unsigned long long)st.peek_short, (unsigned long long)st.waitall,
	       (unsigned long long)st.waitall_short);
	json_end();
	return failures ? 1 : 0;
}
