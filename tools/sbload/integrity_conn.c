// SPDX-License-Identifier: GPL-2.0-only
/* sbload integrity: one connection end, a nonblocking state machine that sends its
 * stream with a random mix of syscalls and checks every byte it receives. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sbload/integrity.h"

/* Sizes in [1, max], skewed toward small: a power-of-two bucket (the smaller of
 * two uniform picks, so small buckets dominate even more than log-uniform), then
 * a uniform size inside it. Plain log-uniform moves most bytes in a handful of
 * huge calls; this way a 256 KiB stream takes dozens of calls, yet about one
 * call in a hundred is 512 KiB..1 MiB. */
static size_t rand_size(uint64_t *rng, size_t max)
{
	unsigned bits = 0, b, b2;
	size_t lo, hi;

	while (bits < 62 && ((size_t)2 << bits) <= max)
		bits++;
	b = (unsigned)(rnd(rng) % (bits + 1));
	b2 = (unsigned)(rnd(rng) % (bits + 1));
	if (b2 < b)
		b = b2;
	lo = (size_t)1 << b;
	hi = (lo << 1) - 1;
	if (hi > max)
		hi = max;
	return lo + (size_t)(rnd(rng) % (hi - lo + 1));
}

/* The size of the next call: random, never past the end of the stream. */
static size_t next_size(struct ep *e, uint64_t left)
{
	size_t n = rand_size(&e->rng, MAX_CHUNK);

	return n > left ? (size_t)left : n;
}

/* Cut buf[0..n) into 2..8 iovecs at random points; empty segments are allowed on
 * purpose (writev/readv must skip them). */
static int split_iov(uint64_t *rng, uint8_t *buf, size_t n, struct iovec *iov)
{
	size_t cut[8];
	int cnt = 2 + (int)(rnd(rng) % 7);

	for (int i = 0; i < cnt - 1; i++) {
		size_t c = (size_t)(rnd(rng) % (n + 1)), j = (size_t)i;

		while (j > 0 && cut[j - 1] > c) { /* insertion sort: at most 7 cuts */
			cut[j] = cut[j - 1];
			j--;
		}
		cut[j] = c;
	}
	cut[cnt - 1] = n;
	for (int i = 0, prev = 0; i < cnt; prev = 1, i++) {
		size_t start = prev ? cut[i - 1] : 0;

		iov[i].iov_base = buf + start;
		iov[i].iov_len = cut[i] - start;
	}
	return cnt;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

void ep_close(struct iworker *w, struct ep *e)
{
	if (e->done)
		return;
	if (e->fd >= 0)
		close(e->fd); /* also drops it from the epoll set */
	e->fd = -1;
	e->done = true;
	w->ndone++;
}

void ep_start_tx(struct ep *e, uint32_t stream, int dir)
{
	e->tx_allowed = true;
	e->tx_stream = stream;
	e->tx_key = stream_key(stream, dir);
	put_le32(e->tx_hdr, HDR_MAGIC);
	put_le32(e->tx_hdr + 4, stream);
}

void ep_setup_fd(struct ep *e)
{
	/* Only the occasional blocking MSG_WAITALL read uses this timeout; it keeps
	 * that read from stalling the loop when the peer is busy elsewhere. */
	struct timeval tv = { .tv_sec = 0, .tv_usec = WAITALL_TIMEOUT_US };

	if (setsockopt(e->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		fatal("setsockopt(SO_RCVTIMEO): %s", strerror(errno));
	/* Half the connections keep Nagle on: both send paths get exercised. */
	if (e->idx % 2)
		set_nodelay(e->fd);
	e->tx_md = md_new();
	e->rx_md = md_new();
}

/* Nonblocking-call result: 1 progress/retry, 0 would block, -1 connection failed. */
static int io_err(struct ep *e, const char *what)
{
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 0;
	if (errno == EINTR)
		return 1;
	ep_fail(e, "%s: %s", what, strerror(errno));
	return -1;
}

static void rx_check(struct ep *e, const uint8_t *p, size_t n)
{
	md_update(e->rx_md, p, n);
	if (!e->rx_bad) {
		size_t i = pattern_match(e->rx_key, e->rx_off, p, n);

		e->verified += i;
		if (i < n) {
			e->rx_bad = true; /* keep draining so the peer can finish cleanly */
			ep_fail(e, "received byte %llu differs (got 0x%02x, expected 0x%02x)",
				(unsigned long long)(e->rx_off + i), p[i], pattern_byte(e->rx_key, e->rx_off + i));
		}
	}
	e->rx_off += n;
}

static int rx_header(struct iworker *w, struct ep *e)
{
	ssize_t k = recv(e->fd, e->rx_hdr + e->rx_hdr_off, HDR_LEN - e->rx_hdr_off, MSG_DONTWAIT);
	uint32_t magic, id;

	if (k < 0)
		return io_err(e, "recv(header)");
	if (k == 0) {
		ep_fail(e, "connection closed before the stream header arrived");
		return -1;
	}
	e->rx_hdr_off += (unsigned)k;
	if (e->rx_hdr_off < HDR_LEN)
		return 1;
	magic = get_le32(e->rx_hdr);
	id = get_le32(e->rx_hdr + 4);
	if (magic != HDR_MAGIC) {
		ep_fail(e, "received a bad stream header (magic 0x%08x)", magic);
		return -1;
	}
	if (id >= (uint32_t)O.connections) {
		ep_fail(e, "header announces unknown stream %u", id);
		return -1;
	}
	if (w->seen[id]) {
		ep_fail(e, "header announces stream %u, which another connection already carries", id);
		return -1;
	}
	w->seen[id] = 1;
	e->rx_known = true;
	e->rx_stream = id;
	e->rx_key = stream_key(id, e->server ? DIR_C2S : DIR_S2C);
	if (e->server) {
		e->conn_id = id;
		e->id_known = true;
		if (!O.server_first)
			ep_start_tx(e, id, DIR_S2C); /* answer with the same stream id */
	} else if (!O.server_first && id != e->conn_id) {
		ep_fail(e, "received the server's stream %u on connection %u (cross-connection delivery)", id,
			e->conn_id);
		return -1;
	}
	return 1;
}

static int rx_step(struct iworker *w, struct ep *e)
{
	uint64_t left;
	size_t n;
	ssize_t k;
	unsigned op;

	if (e->rx_eof)
		return 0;
	if (e->rx_hdr_off < HDR_LEN)
		return rx_header(w, e);
	left = O.bytes - e->rx_off;
	if (left == 0) {
		/* Everything arrived; the next read must report EOF, not more data. */
		k = recv(e->fd, w->rxbuf, 4096, MSG_DONTWAIT);
		if (k < 0)
			return io_err(e, "recv(after end of stream)");
		if (k > 0) {
			ep_fail(e, "received %zd unexpected bytes after the end of the stream", k);
			return 1;
		}
		e->rx_eof = true;
		if (!e->rx_done) {
			e->rx_done = true;
			md_final(&e->rx_md, e->rx_dig);
		}
		return 1;
	}
	n = next_size(e, left);
	op = (unsigned)(rnd(&e->rng) % 100);
	if (op < 45) {
		w->st.read++;
		k = read(e->fd, w->rxbuf, n);
	} else if (op < 60) {
		struct iovec iov[8];
		int cnt = split_iov(&e->rng, w->rxbuf, n, iov);

		w->st.readv++;
		k = readv(e->fd, iov, cnt);
	} else if (op < 85) {
		/* Peek, then read the same amount: both must return the same bytes. */
		ssize_t p = recv(e->fd, w->peekbuf, n, MSG_PEEK | MSG_DONTWAIT);

		w->st.peek++;
		if (p <= 0) {
			k = p;
		} else {
			k = recv(e->fd, w->rxbuf, (size_t)p, MSG_DONTWAIT);
			if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				ep_fail(e, "MSG_PEEK returned %zd bytes at offset %llu but the following read found none",
					p, (unsigned long long)e->rx_off);
				return -1;
			}
			if (k > 0 && k < p)
				w->st.peek_short++;
			if (k > 0 && memcmp(w->rxbuf, w->peekbuf, (size_t)k) != 0) {
				ssize_t i = 0;

				while (w->rxbuf[i] == w->peekbuf[i])
					i++;
				ep_fail(e, "byte %llu returned by MSG_PEEK (0x%02x) differs from the byte then read (0x%02x)",
					(unsigned long long)(e->rx_off + (uint64_t)i), w->peekbuf[i], w->rxbuf[i]);
			}
		}
	} else {
		/* A real blocking MSG_WAITALL (bounded by SO_RCVTIMEO): the only way to
		 * exercise the kernel's wait-for-more path; nonblocking it degrades to a
		 * plain read. */
		w->st.waitall++;
		if (fcntl(e->fd, F_SETFL, 0) < 0)
			fatal("fcntl: %s", strerror(errno));
		k = recv(e->fd, w->rxbuf, n, MSG_WAITALL);
		int saved = errno;
		if (fcntl(e->fd, F_SETFL, O_NONBLOCK) < 0)
			fatal("fcntl: %s", strerror(errno));
		errno = saved;
		if (k >= 0 && (size_t)k < n)
			w->st.waitall_short++;
	}
	if (k < 0)
		return io_err(e, "read");
	if (k == 0) {
		ep_fail(e, "connection closed after %llu of %llu bytes", (unsigned long long)e->rx_off,
			(unsigned long long)O.bytes);
		e->rx_eof = true;
		return -1;
	}
	rx_check(e, w->rxbuf, (size_t)k);
	return 1;
}

static ssize_t tx_sendfile(struct iworker *w, struct ep *e, size_t n)
{
	off_t off;

	/*
	 * sendfile() hands page-cache pages to TCP by reference until the peer has
	 * read them, so rewriting a file range that may still be in flight would
	 * change bytes already "sent". Ranges are therefore never reused: each chunk
	 * goes to a fresh page-aligned offset, and when the span is used up the file
	 * is truncated, which detaches the old pages instead of overwriting them.
	 */
	w->tmp_off = (w->tmp_off + 4095) & ~(uint64_t)4095;
	if (w->tmp_off + n > SENDFILE_SPAN) {
		if (ftruncate(w->tmpfd, 0) < 0)
			fatal("ftruncate(temp file): %s", strerror(errno));
		w->tmp_off = 0;
	}
	for (size_t done = 0; done < n;) {
		ssize_t k = pwrite(w->tmpfd, w->txbuf + done, n - done, (off_t)(w->tmp_off + done));

		if (k < 0 && errno != EINTR)
			fatal("pwrite(temp file): %s", strerror(errno));
		if (k > 0)
			done += (size_t)k;
	}
	off = (off_t)w->tmp_off;
	w->tmp_off += n;
	return sendfile(e->fd, w->tmpfd, &off, n);
}

static ssize_t tx_splice(struct iworker *w, struct ep *e, size_t n)
{
	ssize_t m, k;
	size_t left;
	int saved;

	/* write() copies into pipe-owned pages (vmsplice would lend ours, which we reuse). */
	m = write(w->pipe_w, w->txbuf, n);
	if (m <= 0)
		fatal("write(pipe): %s", m < 0 ? strerror(errno) : "short write");
	do
		k = splice(w->pipe_r, NULL, e->fd, NULL, (size_t)m, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (k < 0 && errno == EINTR);
	saved = errno;
	/* The pipe is shared by all connections of this loop: whatever the socket
	 * did not take is discarded here and regenerated later. */
	left = (size_t)m - (k > 0 ? (size_t)k : 0);
	while (left) {
		ssize_t d = read(w->pipe_r, w->drainbuf, left);

		if (d < 0 && errno != EINTR)
			fatal("draining pipe: %s", strerror(errno));
		if (d > 0)
			left -= (size_t)d;
	}
	errno = saved;
	return k;
}

static int tx_step(struct iworker *w, struct ep *e)
{
	uint64_t left;
	size_t n, flip = 0;
	bool flipped = false;
	ssize_t k;
	unsigned op;
	const char *what;

	if (e->tx_shut)
		return 0;
	if (!e->tx_allowed) {
		/* --server-first: the client speaks only after server data has arrived. */
		if (e->server || !O.server_first || !e->rx_known || (e->rx_off == 0 && O.bytes > 0))
			return 0;
		ep_start_tx(e, e->conn_id, DIR_C2S);
	}
	if (e->tx_hdr_off < HDR_LEN) {
		k = send(e->fd, e->tx_hdr + e->tx_hdr_off, HDR_LEN - e->tx_hdr_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k < 0)
			return io_err(e, "send(header)");
		e->tx_hdr_off += (unsigned)k;
		return 1;
	}
	left = O.bytes - e->tx_off;
	if (left == 0) {
		if (shutdown(e->fd, SHUT_WR) < 0) {
			ep_fail(e, "shutdown: %s", strerror(errno));
			return -1;
		}
		e->tx_shut = true;
		md_final(&e->tx_md, e->tx_dig);
		return 1;
	}
	n = next_size(e, left);
	op = (unsigned)(rnd(&e->rng) % 100);
	if (op >= 85 && n > w->pipe_cap)
		n = w->pipe_cap;
	pattern_fill(e->tx_key, e->tx_off, w->txbuf, n);
	/* Hidden --corrupt-test-byte: corrupt one byte on the wire only. The hash
	 * below covers the intended byte, so this proves the checker can fail. */
	if (O.corrupt_byte >= 0 && !e->server && e->conn_id == 0 && (uint64_t)O.corrupt_byte >= e->tx_off &&
	    (uint64_t)O.corrupt_byte < e->tx_off + n) {
		flip = (size_t)((uint64_t)O.corrupt_byte - e->tx_off);
		w->txbuf[flip] ^= 0xff;
		flipped = true;
	}
	if (op < 40) {
		what = "write";
		w->st.write++;
		k = write(e->fd, w->txbuf, n);
	} else if (op < 70) {
		struct iovec iov[8];
		int cnt = split_iov(&e->rng, w->txbuf, n, iov);

		what = "writev";
		w->st.writev++;
		k = writev(e->fd, iov, cnt);
	} else if (op < 85) {
		what = "sendfile";
		w->st.sendfile++;
		k = tx_sendfile(w, e, n);
	} else {
		what = "splice";
		w->st.splice++;
		k = tx_splice(w, e, n);
	}
	if (flipped)
		w->txbuf[flip] ^= 0xff;
	if (k < 0)
		return io_err(e, what);
	if (k == 0)
		return 0;
	md_update(e->tx_md, w->txbuf, (size_t)k);
	e->tx_off += (uint64_t)k;
	return 1;
}

/* Epoll is edge-triggered: stopping before both directions would block could lose a wakeup. */
void pump(struct iworker *w, struct ep *e)
{
	if (e->done)
		return;
	if (e->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			ep_fail(e, "connect: %s", strerror(err));
			ep_close(w, e);
			return;
		}
		if (getpeername(e->fd, (struct sockaddr *)&ss, &sl) < 0)
			return; /* still in progress */
		e->connecting = false;
	}
	for (;;) {
		int r = rx_step(w, e), t;

		if (r < 0) {
			ep_close(w, e);
			return;
		}
		t = tx_step(w, e);
		if (t < 0) {
			ep_close(w, e);
			return;
		}
		if (e->tx_shut && e->rx_eof) {
			ep_close(w, e);
			return;
		}
		if (r == 0 && t == 0)
			return;
	}
}
