/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by the sockbypass BPF programs and user space.
 *
 * Every struct here has exactly one TypeScript codec (src/layout.ts), and
 * test/layout.test.ts checks that codec against this layout as the compiled
 * object's BTF describes it, so a field changed here without the codec fails
 * the tests instead of corrupting reads.
 */
#ifndef SOCKBYPASS_H
#define SOCKBYPASS_H

/* Bumped whenever a map's key/value layout changes: a pinned load with another
 * layout version cannot be adopted or replaced in place. */
#define SOCKBYPASS_LAYOUT_VERSION 8

/*
 * The sockhash key of one socket, as that socket sees its connection.
 * Addresses are always 16 bytes: IPv4 is stored as the IPv4-mapped IPv6
 * address ::ffff:a.b.c.d, so an AF_INET client and the AF_INET6 socket a
 * dual-stack server accepted for it build keys of one form.
 *
 * The two ends of a connection find each other through the handshake, not
 * through their tuples (which NAT may make unrelated): each end stores the
 * other's key in its socket storage when the pair is proven (see
 * sockbypass.bpf.c, "Pairing"). So the key only has to be unique per socket:
 * - `netns_cookie`: the namespace this socket lives in (never 0), which
 *   keeps identical tuples in two namespaces apart;
 * - `handshake`: the active side's ISN + 1 and the passive side's ISN + 1,
 *   the same on both ends. It tells apart two connections that reuse one
 *   tuple (Linux reuses a loopback 4-tuple while the old socket, reset or in
 *   TIME_WAIT reuse, is still open and still in the map), and it is how user
 *   space finds the two ends of one connection.
 */
struct socket_key {
	__u32 local_ip[4];   /* network byte order */
	__u32 remote_ip[4];  /* network byte order */
	__u32 local_port;    /* host byte order */
	__u32 remote_port;   /* host byte order */
	__u64 netns_cookie;  /* this socket's network namespace */
	__u64 handshake;     /* (active ISN + 1) << 32 | (passive ISN + 1) */
};

/* Runtime policy, one entry in the `settings` array map. */
enum settings_flags {
	SETTINGS_PORT_FILTER = 1 << 0, /* accelerate only if either port is in `allowed_ports` */
	SETTINGS_ADDR_FILTER = 1 << 1, /* accelerate only if both addresses are in `allowed_ranges` */
	SETTINGS_NO_FLOW_CONTROL = 1 << 2, /* never switch to TCP: for measuring what flow control prevents */
};

struct settings {
	__u32 flags;          /* enum settings_flags */
	__u32 layout_version; /* SOCKBYPASS_LAYOUT_VERSION of the loader that wrote it */
	/* Lowers the bound on bytes queued for a receiver without an explicit
	 * SO_RCVBUF (tcp_rmem[2]) before its sender goes by TCP until the
	 * receiver catches up; 0: no lower bound. */
	__u32 queue_limit;
	/* Small-write streams: a sender whose writes so far average (bytes over
	 * messages, at least SMALL_WRITE_MIN_MESSAGES of them) under `small_write`
	 * bytes, while more than `small_backlog` bytes wait in its receiver's
	 * queue, is streaming small writes, which TCP coalesces better than the
	 * redirect carries them; it goes by TCP until its receiver catches up.
	 * 0 turns this off. */
	__u32 small_write;
	__u32 small_backlog;
	/* Short connections: joining the sockhash costs each socket a psock
	 * (allocated, its proto switched, freed through RCU), which a connection
	 * that sends one request and one response never earns back. When the
	 * sockets of a service (server address and port) sent fewer than
	 * `short_messages` messages each on average over its recent connections,
	 * its new connections stay on TCP. 0 turns this off. */
	__u32 short_messages;
};

/* Key of the `allowed_ranges` LPM trie: prefixlen counts bits of the 16-byte form. */
struct addr_range {
	__u32 prefixlen;
	__u32 addr[4];
};

/* One entry of the per-CPU `counters` array; user space sums it over CPUs. */
struct counters {
	__u64 sockets_inserted;
	__u64 insert_map_full;
	__u64 insert_exists;
	__u64 insert_other;
	__u64 policy_skipped;
	__u64 sockets_closed;
	__u64 messages_redirected;
	__u64 bytes_redirected;
	__u64 redirect_misses;
	__u64 bytes_passed;
	__u64 events_lost;
	__u64 flow_messages;     /* messages sent by TCP after flow control switched their socket */
	__u64 flow_bytes;
	__u64 flow_to_tcp;       /* switches to TCP: the receiver fell behind (a socket may switch many times) */
	__u64 sticky_tcp;        /* sockets that missed their peer and stay on TCP */
	__u64 short_skipped;     /* sockets left on TCP: their service's connections are short */
	__u64 pairs_joined;      /* connections whose two ends both joined the sockhash */
	__u64 left_no_peer;      /* sockets left on TCP: the peer is no socket of this load on this host */
	__u64 left_peer_declined; /* sockets left on TCP: the peer's end did not join (its policy, its map) */
	__u64 pair_unjoined;     /* active ends taken out again: their passive end could not join */
	__u64 flow_returns;      /* switches back from TCP to the redirect: the receiver caught up */
	__u64 sockets_left;      /* sockets that left the sockhash mid-connection: TCP for good, with no tcp_bpf */
	__u64 peer_left_messages; /* messages sent by TCP because the peer left the sockhash */
	__u64 peer_left_bytes;
};

enum event_type {
	EVENT_ACCELERATED_ACTIVE = 1,
	EVENT_ACCELERATED_PASSIVE = 2,
	EVENT_REFUSED_POLICY = 3,
	EVENT_REFUSED_MAP_FULL = 4,
	EVENT_REFUSED_EXISTS = 5,
	EVENT_REFUSED_OTHER = 6,
	EVENT_CLOSED = 7,
	EVENT_SKIPPED_SHORT = 8,
	EVENT_LEFT_PEER_DECLINED = 9,
};

/* One ring-buffer record. The key carries addresses, ports and netns. */
struct sock_event {
	__u64 timestamp_ns;  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 socket_cookie;
	struct socket_key key;
	__u32 type;          /* enum event_type */
	__u32 family;        /* AF_INET or AF_INET6, as the socket was created */
	__s32 error;         /* the insert's errno for EVENT_REFUSED_* (negative), else 0 */
};

#ifdef __BPF__
/*
 * Read one ctx field with a load of fixed offset. Reading every field
 * unconditionally and through volatile keeps clang from merging the IPv4 and
 * IPv6 reads into one computed ctx offset, which the verifier rejects
 * ("dereference of modified ctx ptr").
 */
#define SOCKBYPASS_CTX_READ(ctx, field) (*(volatile __u32 *)&(ctx)->field)

static __always_inline void socket_addr_from(__u32 out[4], __u32 family, __u32 ip4,
					     __u32 a, __u32 b, __u32 c, __u32 d)
{
	if (family == 2 /* AF_INET */) {
		out[0] = 0;
		out[1] = 0;
		out[2] = bpf_htonl(0x0000ffff);
		out[3] = ip4;
	} else {
		out[0] = a;
		out[1] = b;
		out[2] = c;
		out[3] = d;
	}
}

static __always_inline void socket_key_fill(struct socket_key *key, const __u32 local[4],
					    const __u32 remote[4], __u32 local_port,
					    __u32 remote_port, __u64 netns, __u64 tag)
{
	key->local_ip[0] = local[0];
	key->local_ip[1] = local[1];
	key->local_ip[2] = local[2];
	key->local_ip[3] = local[3];
	key->remote_ip[0] = remote[0];
	key->remote_ip[1] = remote[1];
	key->remote_ip[2] = remote[2];
	key->remote_ip[3] = remote[3];
	key->local_port = local_port;
	key->remote_port = remote_port;
	key->netns_cookie = netns;
	key->handshake = tag;
}

/*
 * The one key builder, used by sock_ops for both ends of a connection: `ctx`
 * is a struct bpf_sock_ops * for a full socket, or for the request socket of a
 * listener answering a SYN (the key the server end will have); and by sk_msg
 * (a struct sk_msg_md *) for its own key only, when a sender leaves the
 * sockhash: it redirects to the peer key stored at pairing. `family` is passed
 * in because a request socket of a dual-stack listener says AF_INET6 while
 * only its IPv4 fields are set. All these contexts keep local_port in host order and
 * remote_port in network order in the upper 16 bits, hence the bpf_ntohl.
 */
#define socket_key_build(key, ctx, family, netns, tag)                                        \
	({                                                                                \
		__u32 __l[4], __r[4];                                                     \
		socket_addr_from(__l, family, SOCKBYPASS_CTX_READ(ctx, local_ip4),        \
				 SOCKBYPASS_CTX_READ(ctx, local_ip6[0]),                  \
				 SOCKBYPASS_CTX_READ(ctx, local_ip6[1]),                  \
				 SOCKBYPASS_CTX_READ(ctx, local_ip6[2]),                  \
				 SOCKBYPASS_CTX_READ(ctx, local_ip6[3]));                 \
		socket_addr_from(__r, family, SOCKBYPASS_CTX_READ(ctx, remote_ip4),       \
				 SOCKBYPASS_CTX_READ(ctx, remote_ip6[0]),                 \
				 SOCKBYPASS_CTX_READ(ctx, remote_ip6[1]),                 \
				 SOCKBYPASS_CTX_READ(ctx, remote_ip6[2]),                 \
				 SOCKBYPASS_CTX_READ(ctx, remote_ip6[3]));                \
		socket_key_fill(key, __l, __r, SOCKBYPASS_CTX_READ(ctx, local_port),      \
				bpf_ntohl(SOCKBYPASS_CTX_READ(ctx, remote_port)), netns, tag);    \
	})
#endif /* __BPF__ */

#endif /* SOCKBYPASS_H */
