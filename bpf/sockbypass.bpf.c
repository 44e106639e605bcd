// SPDX-License-Identifier: GPL-2.0
/*
 * sockbypass data plane.
 *
 * sock_ops pairs the two ends of a TCP connection on this host during the
 * handshake and puts both sockets into `sock_hash`, each under its own view
 * of the connection (struct socket_key), with the other's key in its socket
 * storage. sk_msg runs on every sendmsg of those sockets and hands the data
 * straight to the peer's receive queue. A socket whose peer is not proven to
 * join (another host, a process outside the cgroup, a peer the policy
 * excludes) is never inserted: it keeps the kernel's own TCP code.
 *
 * Nothing here deletes a socket that a peer may redirect to: deleting a
 * socket's entry while it has unread redirected data, or while a redirect to
 * it is in flight, loses that data. The exits (prepare_leave,
 * leave_at_shutdown, on_tcp_ack) take a socket whose peer provably never
 * redirected to it and now never will, and then that peer once nothing can
 * reach it.
 * The kernel removes each socket from the map itself when it closes.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "sockbypass.h"

#define AF_INET 2
#define AF_INET6 10
#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef EEXIST
#define EEXIST 17
#endif
#ifndef ENOMEM
#define ENOMEM 12
#endif
#define SEND_SHUTDOWN 2

char LICENSE[] SEC("license") = "GPL";

/*
 * Per-socket state (BPF_MAP_TYPE_SK_STORAGE), created by sock_ops when it
 * inserts the socket, read by sk_msg on every message.
 *
 * Byte order across the two paths: a receiver reads its redirected queue
 * before its TCP receive queue, so a sender may switch from redirect to TCP
 * at any time (the TCP bytes are newer). The way back is safe only when the
 * receiver has read every TCP byte this sender wrote and no reader is inside
 * tcp_recvmsg, where it would take later TCP bytes first or wait for TCP
 * bytes that no longer come (MSG_WAITALL): see may_return().
 */
enum sock_mode {
	MODE_REDIRECT = 0,    /* sendmsg goes straight to the peer's queue */
	MODE_TCP_FLOW = 1,    /* its receiver fell behind (flow control, small-write stream): TCP until may_return() */
	MODE_TCP_STICKY = 2,  /* a message missed the peer: TCP for good, to keep byte order */
	MODE_TCP_SMALL = 3,   /* a small-write stream (see small_write_stream): TCP for good */
	MODE_TCP_PEER_LEFT = 4, /* its peer left the sockhash before this socket ever redirected: TCP for good */
};

/*
 * Leaving the sockhash mid-connection (docs/architecture.md, "Leaving the
 * sockhash"): a socket may leave only if its peer never redirected to it, and
 * its leaving must forbid the peer's first redirect. The two ends settle that
 * on one word per connection (`pair_words`), changed only by atomic OR: a
 * socket sets its WORD_LEAVING and looks for the peer's WORD_REDIRECTED; the
 * peer sets WORD_REDIRECTED before its first redirect and looks for
 * WORD_LEAVING; whichever OR comes second sees the other's bit. These are the
 * active (client) end's bits; the passive end's are shifted by
 * WORD_SHIFT_PASSIVE.
 */
enum pair_word_bits {
	WORD_REDIRECTED = 1, /* this end has redirected, or is about to for the first time */
	WORD_LEAVING = 2,    /* this end leaves the sockhash: the other must never redirect to it */
};
#define WORD_SHIFT_PASSIVE 2

/* struct sock_state.exit_state: one socket's own progress, changed by atomic OR. */
enum exit_bits {
	EXIT_REDIRECTED = 1,      /* its WORD_REDIRECTED is set: later redirects need no look */
	EXIT_MAY_LEAVE = 4,       /* it may leave the sockhash (prepare_leave) */
	EXIT_LEFT = 8,            /* and did (on_tcp_ack, leave_at_shutdown) */
	EXIT_PEER_TAKEN_OUT = 16, /* and then took its peer out too (on_tcp_ack) */
};

struct sock_state {
	struct socket_key peer; /* the key the other end inserted: where sk_msg redirects */
	/* The peer's struct sock, as the last redirect found it: read (never
	 * written) to decide when flow control may come back. A stale value is
	 * harmless: every redirect still goes through the map by key. */
	__u64 peer_sk;
	__u64 netns_cookie;  /* this socket's socket_key.netns_cookie */
	__u64 handshake;     /* and its socket_key.handshake */
	__u32 mode;          /* enum sock_mode */
	__u32 passive;       /* 1 if this socket was accepted: its local end is the service */
	/* Every message sk_msg saw (sendmsg chunks) and their bytes, in any mode:
	 * the mean write size of the small-write rule, and the messages per socket
	 * of the short-connection rule. */
	__u64 messages;
	__u64 bytes;
	__u64 exit_state;    /* enum exit_bits */
};

/*
 * Key of the `services` LRU hash: the server end of a connection (the passive
 * side's local address and port), with the netns cookie for loopback as in
 * struct socket_key. Its value is the short-connection rule's moving average
 * of messages per socket, times SERVICE_AVG_SCALE.
 *
 * Both structs are internal to the data plane: user space never reads them,
 * so they live here and not in sockbypass.h, whose structs each have a
 * TypeScript codec.
 */
struct service_key {
	__u32 ip[4];         /* network byte order */
	__u32 port;          /* host byte order */
	__u32 pad;
	__u64 netns_cookie;
};
#define SERVICE_AVG_SCALE 16

/* Sized by user space before load (setMaxEntries); this is only the default. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct socket_key);
	__type(value, __u64); /* 8 bytes: user-space lookups return the socket cookie */
} sock_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_state);
} sock_states SEC(".maps");

extern void *bpf_cast_to_kern_ctx(void *) __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* sk_user_data carries flag bits below the psock pointer (SK_USER_DATA_PTRMASK). */
#define SK_USER_DATA_FLAGS 7UL

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* port, host byte order */
	__type(value, __u8);
} allowed_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct addr_range);
	__type(value, __u8);
} allowed_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counters);
} counters SEC(".maps");

/* The short-connection rule's memory: messages per socket, by service. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct service_key);
	__type(value, __u32); /* moving average of messages per socket, times SERVICE_AVG_SCALE */
} services SEC(".maps");

/*
 * Pairing. Both ends of one connection compute the same identity from the
 * handshake: the two initial sequence numbers (+ 1, as snd_nxt/rcv_nxt read
 * at ESTABLISHED), the client's port, and, for a loopback connection (which
 * cannot leave its namespace), the namespace. NAT on one host (REDIRECT,
 * DNAT) rewrites addresses and the server port but not sequence numbers, so
 * the identity survives it; a middlebox that rewrites either ISN (a SYN
 * proxy) or the client port (SNAT with port rewriting) makes the two ends
 * compute different identities, and they simply do not pair.
 *
 * 1. A listener in a loaded cgroup answers a SYN: sock_ops runs for the
 *    request socket (BPF_SOCK_OPS_RWND_INIT, after its ISN is chosen, for
 *    SYN cookies too) and records {PAIR_PENDING, its own future key} under
 *    the identity, if its policy allows.
 * 2. The client's ACTIVE_ESTABLISHED (SYN-ACK received, before the final ACK
 *    is sent): no entry means no local listener of this load answered, so
 *    the socket is left alone. Otherwise it claims the entry, inserts itself
 *    with the passive key as its peer, and publishes its own key (JOINED).
 * 3. The server's PASSIVE_ESTABLISHED (the final ACK received, which the
 *    client sent after step 2 finished, on whatever CPU): JOINED means its
 *    peer is in, so it inserts itself with the active key as its peer; still
 *    PENDING means the client never joined (outside the cgroup, another
 *    host, its policy), so it declines and stays out. Either way the entry
 *    is deleted. Entries of handshakes that never complete age out of the LRU.
 */
struct pair_id {
	__u32 active_isn;    /* the active side's ISN + 1 */
	__u32 passive_isn;   /* the passive side's ISN + 1 */
	__u32 client_port;   /* host byte order */
	__u32 pad;
	__u64 netns_cookie;  /* loopback only; 0 otherwise */
};

enum pair_state {
	PAIR_PENDING = 0,  /* the listener answered the SYN */
	PAIR_CLAIMED = 1,  /* the active end is joining */
	PAIR_JOINED = 2,   /* the active end is in the map; `active` is its key */
	PAIR_DECLINED = 3, /* one end stays out: the other must not join */
};

struct pair_entry {
	__u64 state;       /* enum pair_state, changed only by 64-bit atomic ops (BPF ISA v1) */
	struct socket_key passive;
	struct socket_key active;
};

/* Sized by user space before load, like sock_hash. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pair_id);
	__type(value, struct pair_entry);
} pairs SEC(".maps");

/*
 * The word of each joined connection (enum pair_word_bits), keyed by its
 * active end's key, which the sockhash keeps unique: inserted when the client
 * joins, deleted when it closes. Sized by user space (one per pair). A
 * connection without a word (the map was full) never leaves the sockhash.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, struct socket_key);
	__type(value, __u64);
} pair_words SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline struct settings *settings_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&settings, &zero);
}

static __always_inline struct counters *counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline bool is_loopback(const __u32 addr[4])
{
	/* 127.0.0.0/8 as ::ffff:127.0.0.0/104, or ::1 */
	if (addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0x0000ffff))
		return (bpf_ntohl(addr[3]) >> 24) == 127;
	return addr[0] == 0 && addr[1] == 0 && addr[2] == 0 && addr[3] == bpf_htonl(1);
}

/*
 * The handshake tag of struct socket_key. At ESTABLISHED neither side has
 * sent data yet, so snd_nxt and rcv_nxt are each side's ISN + 1; the active
 * side's comes first on both ends.
 */
static __always_inline __u64 handshake_tag(struct bpf_sock_ops *skops, bool active)
{
	__u32 snd = skops->snd_nxt, rcv = skops->rcv_nxt;

	return active ? ((__u64)snd << 32) | rcv : ((__u64)rcv << 32) | snd;
}

/* The pairing identity of a connection, from one end's key. */
static __always_inline void pair_id_of(struct pair_id *id, const struct socket_key *key, bool active)
{
	id->active_isn = key->handshake >> 32;
	id->passive_isn = (__u32)key->handshake;
	id->client_port = active ? key->local_port : key->remote_port;
	id->pad = 0;
	id->netns_cookie = is_loopback(key->local_ip) && is_loopback(key->remote_ip) ? key->netns_cookie : 0;
#ifdef SOCKBYPASS_TEST_NETNS_BLIND
	/* Test-only variant: a naive pairing table keyed by the client port
	 * alone (no handshake, no namespace), whose entries outlive their
	 * handshake and which any client may take: the isolation test must
	 * catch it cross-wiring namespaces. */
	id->active_isn = 0;
	id->passive_isn = 0;
	id->netns_cookie = 0;
#endif
}

static __always_inline bool addr_allowed(const __u32 addr[4])
{
	struct addr_range range = {
		.prefixlen = 128,
		.addr = { addr[0], addr[1], addr[2], addr[3] },
	};

	return bpf_map_lookup_elem(&allowed_ranges, &range) != NULL;
}

static __always_inline bool policy_allows(const struct socket_key *key)
{
	struct settings *cfg = settings_get();
	__u32 port;

	if (!cfg)
		return false;
	if (cfg->flags & SETTINGS_PORT_FILTER) {
		port = key->local_port;
		if (!bpf_map_lookup_elem(&allowed_ports, &port)) {
			port = key->remote_port;
			if (!bpf_map_lookup_elem(&allowed_ports, &port))
				return false;
		}
	}
	if (cfg->flags & SETTINGS_ADDR_FILTER) {
		if (!addr_allowed(key->local_ip) || !addr_allowed(key->remote_ip))
			return false;
	}
	return true;
}

static __always_inline void emit_event(struct bpf_sock_ops *skops, const struct socket_key *key,
				       __u32 family, __u32 type, __s32 error)
{
	struct counters *c;
	struct sock_event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		c = counters_get();
		if (c)
			c->events_lost++;
		return;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->socket_cookie = bpf_get_socket_cookie(skops);
	e->key = *key;
	e->type = type;
	e->family = family;
	e->error = error;
	bpf_ringbuf_submit(e, 0);
}

/* The service of a connection: its passive (server) end, from either side's key. */
static __always_inline void service_of(struct service_key *svc, const struct socket_key *key, bool passive)
{
	const __u32 *ip = passive ? key->local_ip : key->remote_ip;

	svc->ip[0] = ip[0];
	svc->ip[1] = ip[1];
	svc->ip[2] = ip[2];
	svc->ip[3] = ip[3];
	svc->port = passive ? key->local_port : key->remote_port;
	svc->pad = 0;
	svc->netns_cookie = key->netns_cookie;
}

/* Whether the service's recent connections were too short to pay for joining the sockhash. */
static __always_inline bool service_is_short(const struct service_key *svc)
{
	struct settings *cfg = settings_get();
	__u32 *avg;

	if (!cfg || !cfg->short_messages)
		return false;
	avg = bpf_map_lookup_elem(&services, svc);
	return avg && *avg < cfg->short_messages * SERVICE_AVG_SCALE;
}

/* Cap per sample, so one long connection moves the average by a bounded step. */
#define SERVICE_SAMPLE_MAX 1024

/*
 * A closing socket's messages into its service's moving average (1/8 to the
 * newest). A connection that carried nothing (a TCP health check: connect,
 * close) says nothing about the service's traffic and is not counted, or
 * frequent probes would hold a busy service's real connections on TCP.
 */
static __always_inline void service_learn(const struct service_key *svc, __u32 messages)
{
	__u32 sample, *avg;

	if (!messages)
		return;

	sample = (messages > SERVICE_SAMPLE_MAX ? SERVICE_SAMPLE_MAX : messages) * SERVICE_AVG_SCALE;
	avg = bpf_map_lookup_elem(&services, svc);
	if (avg) {
		/* Racy read-modify-write across CPUs: a lost sample only delays the average. */
		*avg = *avg - (*avg >> 3) + (sample >> 3);
		return;
	}
	bpf_map_update_elem(&services, svc, &sample, BPF_ANY);
}

/* A BTF view of a kernel object whose address we hold as a number. */
#define kernel_view(type, addr) ((type *)bpf_rdonly_cast((void *)(addr), bpf_core_type_id_kernel(type)))

static __always_inline struct sk_psock *psock_of(struct sock *sk)
{
	__u64 data = (__u64)sk->sk_user_data & ~SK_USER_DATA_FLAGS;

	return data ? kernel_view(struct sk_psock, data) : NULL;
}

/* Bytes waiting in a socket's redirected (ingress_msg) queue. */
static __always_inline __u32 redirected_queue_bytes(struct sock *sk)
{
	struct sk_psock *psock = psock_of(sk);

	return psock ? psock->msg_tot_len : 0;
}

/* The connection's word (pair_words): keyed by its active end's key, `own` for the active end. */
static __always_inline __u64 *pair_word_of(const struct sock_state *st, const struct socket_key *own)
{
	return bpf_map_lookup_elem(&pair_words, st->passive ? &st->peer : own);
}

/* A pair_word_bits bit of this socket's end (`mine`) or of its peer's. */
static __always_inline __u64 word_bit(const struct sock_state *st, __u64 bit, bool mine)
{
	return (mine ? st->passive : !st->passive) ? bit << WORD_SHIFT_PASSIVE : bit;
}

/*
 * Set this socket's WORD_LEAVING; true if its peer never redirected to it, so
 * it may leave (its redirected queue is empty and will stay so).
 */
static __always_inline bool claim_leave(const struct sock_state *st, const struct socket_key *own)
{
	__u64 *word = pair_word_of(st, own);

	return word && !(__sync_fetch_and_or(word, word_bit(st, WORD_LEAVING, true)) &
			 word_bit(st, WORD_REDIRECTED, false));
}

/* Step 1 of pairing: a listener of this load answers a SYN (see struct pair_id). */
static __always_inline void on_syn_answered(struct bpf_sock_ops *skops)
{
	struct bpf_sock_ops_kern *kctx = bpf_cast_to_kern_ctx(skops);
	struct tcp_request_sock *treq = kernel_view(struct tcp_request_sock, kctx->sk);
	struct pair_entry entry = {};
	struct service_key svc;
	struct pair_id id;
	__u32 family;
	__u64 tag;

	/* A dual-stack listener's request for an IPv4 client says AF_INET6 but
	 * sets only the IPv4 fields; the request's ops tell the truth. */
	family = treq->req.req.rsk_ops->family;
	if (family != AF_INET && family != AF_INET6)
		return;
	tag = ((__u64)(treq->rcv_isn + 1) << 32) | (__u32)(treq->snt_isn + 1);
	socket_key_build(&entry.passive, skops, family, bpf_get_netns_cookie(skops), tag);
	if (!policy_allows(&entry.passive))
		return;
	service_of(&svc, &entry.passive, true);
	if (service_is_short(&svc))
		return;
	pair_id_of(&id, &entry.passive, false);
	entry.state = PAIR_PENDING;
	/* Two handshakes with one identity (ISNs come from a host-wide key over
	 * the tuple plus a clock, so identical tuples in two namespaces in the
	 * same tick could meet): neither may pair, or a client could join the
	 * wrong server. The first one's entry is marked, the second not recorded. */
#ifdef SOCKBYPASS_TEST_NETNS_BLIND
	/* The test-only variant records like a naive design, last one wins. */
	bpf_map_update_elem(&pairs, &id, &entry, BPF_ANY);
	return;
#endif
	if (bpf_map_update_elem(&pairs, &id, &entry, BPF_NOEXIST) == -EEXIST) {
		struct pair_entry *other = bpf_map_lookup_elem(&pairs, &id);

		if (other)
			__sync_lock_test_and_set(&other->state, PAIR_DECLINED);
	}
}

/* The sockhash insert of one end, counted and reported on failure. */
static __always_inline long insert_socket(struct bpf_sock_ops *skops, struct socket_key *key, __u32 family,
					  struct counters *c)
{
	__u32 type = EVENT_REFUSED_OTHER;
	long err;

	/* BPF_NOEXIST: replacing an entry would drop a live socket from the map. */
	err = bpf_sock_hash_update(skops, &sock_hash, key, BPF_NOEXIST);
	if (!err)
		return 0;
	if (err == -E2BIG)
		type = EVENT_REFUSED_MAP_FULL;
	else if (err == -EEXIST)
		type = EVENT_REFUSED_EXISTS;
	if (c) {
		if (type == EVENT_REFUSED_MAP_FULL)
			c->insert_map_full++;
		else if (type == EVENT_REFUSED_EXISTS)
			c->insert_exists++;
		else
			c->insert_other++;
	}
	emit_event(skops, key, family, type, (__s32)err);
	return err;
}

/* Socket storage for a joining end; NULL (counted) if it cannot be had. */
static __always_inline struct sock_state *state_create(struct bpf_sock_ops *skops, const struct socket_key *key,
						       const struct socket_key *peer, __u32 family,
						       bool active, struct counters *c)
{
	struct bpf_sock *sk = skops->sk;
	struct sock_state *st = NULL;

	if (sk)
		st = bpf_sk_storage_get(&sock_states, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		if (c)
			c->insert_other++;
		emit_event(skops, key, family, EVENT_REFUSED_OTHER, -ENOMEM);
		return NULL;
	}
	st->peer = *peer;
	st->netns_cookie = key->netns_cookie;
	st->handshake = key->handshake;
	st->mode = MODE_REDIRECT;
	st->peer_sk = 0;
	st->passive = !active;
	st->messages = 0;
	st->bytes = 0;
	st->exit_state = 0;
	return st;
}

/* An end that joined: see its close, for the counters and the short-connection rule. */
static __always_inline void watch_close(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/*
 * A joined end also sees the ACKs of what it sends by TCP (none while it
 * redirects): the moment it may leave the sockhash (on_tcp_ack).
 */
static __always_inline void watch_joined(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG |
						 BPF_SOCK_OPS_RTT_CB_FLAG);
}

/* Whether policy and the short-connection rule let this end join; counted and reported if not. */
static __always_inline bool may_join(struct bpf_sock_ops *skops, const struct socket_key *key, __u32 family,
				     bool active, struct counters *c)
{
	struct service_key svc;

	if (!policy_allows(key)) {
		if (c)
			c->policy_skipped++;
		emit_event(skops, key, family, EVENT_REFUSED_POLICY, 0);
		return false;
	}
	service_of(&svc, key, !active);
	if (service_is_short(&svc)) {
		if (c)
			c->short_skipped++;
		emit_event(skops, key, family, EVENT_SKIPPED_SHORT, 0);
		/* The passive side keeps the service's average current: its close
		 * reports the connection's TCP segments (see on_state_change). */
		if (!active)
			watch_close(skops);
		return false;
	}
	return true;
}

/* Step 2 of pairing: the client end, when the SYN-ACK arrives. */
static __always_inline void on_active_established(struct bpf_sock_ops *skops, struct socket_key *key, __u32 family,
						  struct counters *c)
{
	struct pair_entry *entry;
	struct pair_id id;
	__u64 word = 0;

	pair_id_of(&id, key, true);
	entry = bpf_map_lookup_elem(&pairs, &id);
	if (!may_join(skops, key, family, true, c)) {
		if (entry)
			__sync_val_compare_and_swap(&entry->state, PAIR_PENDING, PAIR_DECLINED);
		return;
	}
	if (!entry) {
		/* Another host, a listener outside the cgroup, or one its policy
		 * kept out: nothing here will ever redirect to this socket. */
		if (c)
			c->left_no_peer++;
		return;
	}
#ifdef SOCKBYPASS_TEST_NETNS_BLIND
	/* Test-only: a naive table that lets any client take any entry. */
	if (0) {
#else
	if (__sync_val_compare_and_swap(&entry->state, PAIR_PENDING, PAIR_CLAIMED) != PAIR_PENDING) {
#endif
		/* The passive end decided first (TCP Fast Open establishes it at
		 * the SYN) and stayed out. */
		if (c)
			c->left_peer_declined++;
		emit_event(skops, key, family, EVENT_LEFT_PEER_DECLINED, 0);
		return;
	}
	if (!state_create(skops, key, &entry->passive, family, true, c) || insert_socket(skops, key, family, c)) {
		__sync_lock_test_and_set(&entry->state, PAIR_DECLINED);
		return;
	}
	entry->active = *key;
	/* Before JOINED, so the server end's first send finds it. BPF_ANY: a word
	 * under this key can only be this socket's (the sockhash took the key). */
	bpf_map_update_elem(&pair_words, key, &word, BPF_ANY);
	/* Atomic exchange: the key above is visible before JOINED is. */
	__sync_lock_test_and_set(&entry->state, PAIR_JOINED);
	if (c)
		c->sockets_inserted++;
	watch_joined(skops);
	emit_event(skops, key, family, EVENT_ACCELERATED_ACTIVE, 0);
}

/* Step 3 of pairing: the server end, when the final ACK arrives. */
static __always_inline void on_passive_established(struct bpf_sock_ops *skops, struct socket_key *key, __u32 family,
						   struct counters *c)
{
	struct pair_entry *entry;
	struct pair_id id;
	__u64 state;

	pair_id_of(&id, key, false);
	entry = bpf_map_lookup_elem(&pairs, &id);
	if (!entry) {
		/* Policy or the short-connection rule kept it out at the SYN
		 * (counted now, with the reason as it stands), or its entry aged out. */
		if (may_join(skops, key, family, false, c) && c)
			c->left_no_peer++;
		return;
	}
	state = __sync_val_compare_and_swap(&entry->state, PAIR_PENDING, PAIR_DECLINED);
	if (state != PAIR_JOINED) {
		/* PENDING (now DECLINED): the client never joined: it is outside
		 * the cgroup, or on another host. DECLINED: its policy kept it out.
		 * CLAIMED cannot be seen here, since the client sends the final ACK
		 * after its join; were it seen, the client's first message would
		 * miss and go by TCP for good. */
		if (c) {
			if (state == PAIR_PENDING)
				c->left_no_peer++;
			else
				c->left_peer_declined++;
		}
		bpf_map_delete_elem(&pairs, &id);
		return;
	}
	if (!state_create(skops, key, &entry->active, family, false, c) || insert_socket(skops, key, family, c)) {
		/* The client is in the map with no peer: take it out again, which
		 * gives it back the kernel's own TCP code. Safe: nothing can have
		 * been redirected to it, since this end never joined. */
		bpf_map_delete_elem(&sock_hash, &entry->active);
		if (c)
			c->pair_unjoined++;
		bpf_map_delete_elem(&pairs, &id);
		return;
	}
#ifndef SOCKBYPASS_TEST_NETNS_BLIND
	/* (The test-only variant keeps its entries, as a naive table would.) */
	bpf_map_delete_elem(&pairs, &id);
#endif
	if (c) {
		c->sockets_inserted++;
		c->pairs_joined++;
	}
	watch_joined(skops);
	emit_event(skops, key, family, EVENT_ACCELERATED_PASSIVE, 0);
}

static __always_inline void on_established(struct bpf_sock_ops *skops, bool active)
{
	struct socket_key key = {};
	struct counters *c = counters_get();
	__u32 family = skops->family;

	if (family != AF_INET && family != AF_INET6)
		return;
	socket_key_build(&key, skops, family, bpf_get_netns_cookie(skops), handshake_tag(skops, active));
	if (active)
		on_active_established(skops, &key, family, c);
	else
		on_passive_established(skops, &key, family, c);
}

#define O_NONBLOCK 04000

/*
 * This socket sent its FIN (shutdown(SHUT_WR) or close): it will send nothing
 * more. A blocking socket whose peer never redirected to it leaves the
 * sockhash now, before its reader waits for the answer: there,
 * tcp_bpf_recvmsg would give the blocking read EAGAIN when the ACK of this FIN
 * wakes it (README, "Known limitation"); tcp_recvmsg waits on. The peer's
 * answer then goes by TCP. A non-blocking socket (an event loop) takes EAGAIN
 * as "wait" anyway, and stays, so the answer stays redirected.
 */
static __always_inline void leave_at_shutdown(struct bpf_sock_ops *skops)
{
	struct bpf_sock_ops_kern *kctx = bpf_cast_to_kern_ctx(skops);
	struct socket_key key = {};
	struct sock_state *st;
	struct counters *c;
	struct bpf_sock *sk = skops->sk;
	struct socket *sock;

	st = sk ? bpf_sk_storage_get(&sock_states, sk, 0, 0) : NULL;
	if (!st || (st->exit_state & EXIT_LEFT))
		return;
	sock = kernel_view(struct sock, kctx->sk)->sk_socket;
	if (!sock || !sock->file || (sock->file->f_flags & O_NONBLOCK))
		return;
	socket_key_build(&key, skops, skops->family, st->netns_cookie, st->handshake);
	if (!(st->exit_state & EXIT_MAY_LEAVE) && !claim_leave(st, &key))
		return;
	__sync_fetch_and_or(&st->exit_state, EXIT_MAY_LEAVE | EXIT_LEFT);
	if (bpf_map_delete_elem(&sock_hash, &key) == 0) {
		c = counters_get();
		if (c)
			c->sockets_left++;
	}
}

static __always_inline void on_state_change(struct bpf_sock_ops *skops)
{
	struct socket_key key = {};
	struct service_key svc;
	struct sock_state *st;
	struct counters *c;
	struct bpf_sock *sk;
	__u32 family = skops->family;

	if (skops->args[1] == BPF_TCP_FIN_WAIT1 || skops->args[1] == BPF_TCP_LAST_ACK) {
		leave_at_shutdown(skops);
		return;
	}
	if (skops->args[1] != BPF_TCP_CLOSE)
		return;
	sk = skops->sk;
	st = sk ? bpf_sk_storage_get(&sock_states, sk, 0, 0) : NULL;
	if (!st) {
		/* A passive socket the short-connection rule left on TCP: its data
		 * segments both ways, halved, are its share of the messages. */
		socket_key_build(&key, skops, family, bpf_get_netns_cookie(skops), 0);
		service_of(&svc, &key, true);
		service_learn(&svc, (skops->data_segs_in + skops->data_segs_out) / 2);
		return;
	}
	c = counters_get();
	if (c)
		c->sockets_closed++;
	socket_key_build(&key, skops, family, st->netns_cookie, st->handshake);
	if (!st->passive)
		bpf_map_delete_elem(&pair_words, &key);
	service_of(&svc, &key, st->passive);
	service_learn(&svc, st->messages > SERVICE_SAMPLE_MAX ? SERVICE_SAMPLE_MAX : (__u32)st->messages);
	emit_event(skops, &key, family, EVENT_CLOSED, 0);
}

/*
 * An ACK of bytes this socket sent by TCP. If sk_msg found it may leave the
 * sockhash (prepare_leave), it leaves now: sock_ops may delete from a
 * sockhash, sk_msg may not. Its psock goes once no sendmsg holds it.
 *
 * Later ACKs take its peer out too, once that is safe: only this socket ever
 * redirects to it (the peer's key is stored nowhere else), and
 * nothing will again once this socket's psock is gone (every sendmsg that
 * could redirect holds it, up to its return); the peer's redirected queue
 * must then be empty, or deleting it would purge what it has not read. Only
 * this socket could fill that queue, so empty stays empty. The delete goes by
 * the peer's key, which only the peer's socket holds: a stale `peer_sk`
 * address can only delay it.
 */
static __always_inline void on_tcp_ack(struct bpf_sock_ops *skops)
{
	struct bpf_sock_ops_kern *kctx = bpf_cast_to_kern_ctx(skops);
	struct socket_key key = {};
	struct sock_state *st;
	struct counters *c;
	struct bpf_sock *sk = skops->sk;
	__u64 state;

	st = sk ? bpf_sk_storage_get(&sock_states, sk, 0, 0) : NULL;
	if (!st)
		return;
	state = st->exit_state;
	if (!(state & EXIT_MAY_LEAVE) || (state & EXIT_PEER_TAKEN_OUT))
		return;
	c = counters_get();
	if (!(state & EXIT_LEFT)) {
		__sync_fetch_and_or(&st->exit_state, EXIT_LEFT);
		socket_key_build(&key, skops, skops->family, st->netns_cookie, st->handshake);
		if (bpf_map_delete_elem(&sock_hash, &key) == 0 && c)
			c->sockets_left++;
		return;
	}
	if (psock_of(kernel_view(struct sock, kctx->sk)) || !st->peer_sk ||
	    redirected_queue_bytes(kernel_view(struct sock, st->peer_sk)))
		return;
	__sync_fetch_and_or(&st->exit_state, EXIT_PEER_TAKEN_OUT);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RTT_CB_FLAG);
	if (bpf_map_delete_elem(&sock_hash, &st->peer) == 0 && c)
		c->sockets_left++;
}

SEC("sockops")
int sockbypass_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_RWND_INIT:
		/* Also called for an active socket's SYN: only a request socket
		 * (not a full one) is a listener answering. */
		if (!skops->is_fullsock)
			on_syn_answered(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_established(skops, true);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(skops, false);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		on_state_change(skops);
		break;
	case BPF_SOCK_OPS_RTT_CB:
		on_tcp_ack(skops);
		break;
	}
	return 1;
}


#define SOCK_RCVBUF_LOCK 2

/*
 * How many bytes a receiver may have queued: what TCP would let it hold. Its
 * SO_RCVBUF if the application set one. Otherwise TCP autotunes the buffer of
 * a reader that reads toward net.ipv4.tcp_rmem[2], the bound here (the
 * redirected receiver's own sk_rcvbuf never autotunes: tcp_recvmsg, which
 * grows it, never sees those bytes). `queue_limit`, when set, lowers the
 * bound (tests force frequent switches with it). A reader that does not read
 * at all would keep TCP's buffer small; telling it from a reader descheduled
 * for a while takes a clock and guesses that misfire on a busy host, so the
 * bound stays tcp_rmem[2] (docs/conformance.md, backpressure).
 */
static __always_inline __u32 queue_limit_of(struct sock *peer, const struct settings *cfg)
{
	__u32 limit;

	if (peer->sk_userlocks & SOCK_RCVBUF_LOCK)
		return peer->sk_rcvbuf;
	limit = peer->__sk_common.skc_net.net->ipv4.sysctl_tcp_rmem[2];
	if (limit < (__u32)peer->sk_rcvbuf)
		limit = peer->sk_rcvbuf;
	if (cfg->queue_limit && cfg->queue_limit < limit)
		limit = cfg->queue_limit;
	return limit;
}

/*
 * Whether the host's TCP memory is past net.ipv4.tcp_mem[0]. Redirected bytes
 * are charged to the receiver like TCP's, but where TCP makes a sender wait
 * when memory runs short, a redirect that cannot be charged fails the sendmsg
 * with ENOMEM, and under pressure (tcp_mem[1]) the kernel refuses a receiver
 * with more than its share. So redirects stop at tcp_mem[0], before pressure,
 * and TCP's own accounting handles the rest until memory is low again.
 */
static __always_inline bool tcp_memory_high(struct sock *sk)
{
	struct proto *prot = sk->__sk_common.skc_prot;
	long allocated = 0, low = 0;

	if (!prot->memory_allocated || !prot->sysctl_mem)
		return false;
	bpf_probe_read_kernel(&allocated, sizeof(allocated), prot->memory_allocated);
	bpf_probe_read_kernel(&low, sizeof(low), prot->sysctl_mem);
	return low > 0 && allocated > low;
}

/* Fewer messages than this say too little about a socket's mean write size. */
#define SMALL_WRITE_MIN_MESSAGES 1024

/* After a redirect to `target`: should this sender's next messages go by TCP? */
static __always_inline bool must_use_tcp(struct sock *target, __u64 size, const struct settings *cfg)
{
	__u32 queued = redirected_queue_bytes(target);

	if (cfg->flags & SETTINGS_NO_FLOW_CONTROL)
		return false;
	if (queued + size > queue_limit_of(target, cfg) || tcp_memory_high(target))
		return true;
	/* tcp_bpf's reads ignore SO_RCVLOWAT; TCP's path honours it. */
	if (target->sk_rcvlowat > 1)
		return true;
	return false;
}

/*
 * A sender streaming small writes while its receiver has a backlog: TCP
 * coalesces them better than the redirect carries them one by one. The mean
 * over the socket's life, not a moving average: a stream of mostly tiny
 * writes with a rare huge one moves its bytes in large messages, and the
 * redirect pays for it; only the mean says so. Such a stream stays on TCP
 * (coming back would only rebuild the backlog).
 */
static __always_inline bool small_write_stream(struct sock *target, const struct sock_state *st,
					       const struct settings *cfg)
{
	return cfg->small_write && !(cfg->flags & SETTINGS_NO_FLOW_CONTROL) &&
	       redirected_queue_bytes(target) > cfg->small_backlog && st->messages >= SMALL_WRITE_MIN_MESSAGES &&
	       st->bytes < (__u64)cfg->small_write * st->messages;
}

extern const void woken_wake_function __ksym;

/* How many wait-queue entries may_return() looks at before it assumes the worst. */
#define WAITERS_CHECKED 4

/*
 * Whether a task sleeps on the socket's wait queue inside a socket call: a
 * reader in tcp_recvmsg (sk_wait_data) or tcp_bpf_recvmsg, or a writer
 * waiting for memory, all wait with woken_wake_function. poll, select and
 * epoll waiters use their own wake functions and are outside recv.
 */
static __always_inline bool task_sleeps_on(struct sock *sk)
{
	__u64 entry_off = bpf_core_field_offset(struct wait_queue_entry, entry);
	struct socket_wq *wq = sk->sk_wq;
	struct wait_queue_entry *w;
	__u64 head, pos;
	int i;

	if (!wq)
		return false;
	head = (__u64)wq + bpf_core_field_offset(struct socket_wq, wait) +
	       bpf_core_field_offset(struct wait_queue_head, head);
	pos = (__u64)wq->wait.head.next;
	for (i = 0; i < WAITERS_CHECKED; i++) {
		if (pos == head || !pos)
			return false;
		w = kernel_view(struct wait_queue_entry, pos - entry_off);
		if ((__u64)w->func == (__u64)&woken_wake_function)
			return true;
		pos = (__u64)w->entry.next;
	}
	return true;
}

/*
 * A sender that flow control moved to TCP may redirect again only when
 * nothing the receiver does can see the switch out of order:
 * - the receiver has read every byte this sender wrote by TCP (its
 *   copied_seq has reached our write_seq; redirected bytes advance neither);
 * - no reader is inside tcp_recvmsg: one copying holds the socket lock, one
 *   waiting (MSG_WAITALL, or a second reader thread) sleeps on the wait queue;
 *   either would take later TCP bytes first or wait for TCP bytes that no
 *   longer come. A reader entering later finds the TCP queue empty and reads
 *   the redirected queue (tcp_bpf_recvmsg);
 * - SO_RCVLOWAT is not set (tcp_bpf ignores it), the receiver's queue is at
 *   most half its limit (so a switch does not flap), and host TCP memory is
 *   low.
 */
static __always_inline bool may_return(struct sock *me, struct sock_state *st, const struct settings *cfg)
{
	struct tcp_sock *mine, *theirs;
	struct sock *peer;

	if (!st->peer_sk)
		return false;
	peer = kernel_view(struct sock, st->peer_sk);
	if (peer->sk_rcvlowat > 1 || peer->sk_lock.owned)
		return false;
	if (redirected_queue_bytes(peer) > queue_limit_of(peer, cfg) / 2 || tcp_memory_high(peer))
		return false;
	mine = kernel_view(struct tcp_sock, me);
	theirs = kernel_view(struct tcp_sock, st->peer_sk);
	if (theirs->copied_seq != mine->write_seq)
		return false;
	return !task_sleeps_on(peer);
}

/*
 * A sender that goes by TCP for good (a small-write stream) leaves the
 * sockhash, which gives it back the kernel's own TCP code: no tcp_bpf_sendmsg
 * on each write, no program run, no tcp_bpf_recvmsg. Leaving frees its psock
 * once its current sendmsg returns, and the kernel purges a psock's queue of
 * redirected bytes with it; a redirect to it already past the map lookup
 * would be lost too. So it leaves only if its peer never redirected to it,
 * settled on the connection's word (claim_leave), which also forbids the
 * peer's first redirect. Its own redirects in flight go to the peer, which
 * stays in the map. sk_msg may not delete from a sockhash, so this only marks
 * the socket; its next TCP ACK runs sock_ops, which deletes it (on_tcp_ack).
 */
static __always_inline void prepare_leave(struct sk_msg_md *msg, struct sock_state *st)
{
	struct socket_key key = {};

	if (!st->passive)
		socket_key_build(&key, msg, msg->family, st->netns_cookie, st->handshake);
	if (claim_leave(st, &key))
		__sync_fetch_and_or(&st->exit_state, EXIT_MAY_LEAVE);
}

/*
 * Before a socket's first redirect: set its WORD_REDIRECTED, so its peer never
 * leaves the sockhash from now on; false if the peer already left (or is
 * leaving), and this socket must not redirect to it.
 */
static __always_inline bool may_redirect_first(struct sk_msg_md *msg, struct sock_state *st)
{
	struct socket_key key = {};
	__u64 *word;

	__sync_fetch_and_or(&st->exit_state, EXIT_REDIRECTED);
	if (!st->passive)
		socket_key_build(&key, msg, msg->family, st->netns_cookie, st->handshake);
	word = pair_word_of(st, &key);
	return !word || !(__sync_fetch_and_or(word, word_bit(st, WORD_REDIRECTED, true)) &
			  word_bit(st, WORD_LEAVING, false));
}

static __always_inline void count_passed(struct counters *c, __u64 size)
{
	if (c) {
		c->redirect_misses++;
		c->bytes_passed += size;
	}
}

SEC("sk_msg")
int sockbypass_redirect(struct sk_msg_md *msg)
{
	struct sk_msg *kmsg = bpf_cast_to_kern_ctx(msg);
	struct counters *c = counters_get();
	struct sock_state *st;
	struct settings *cfg;
	struct sock *target;
	__u64 size = msg->size;
	long verdict;

	/* Never return a drop: on SK_DROP the sender gets EACCES. Whatever
	 * cannot be redirected takes the TCP path with SK_PASS. */
	if (!msg->sk)
		return SK_PASS;
	st = bpf_sk_storage_get(&sock_states, msg->sk, 0, 0);
	if (!st) {
		count_passed(c, size);
		return SK_PASS;
	}
	st->messages++;
	st->bytes += size;
	cfg = settings_get();
	if (!cfg)
		return SK_PASS;
	if (st->mode == MODE_TCP_FLOW || st->mode == MODE_TCP_SMALL) {
		if (st->mode == MODE_TCP_SMALL || !may_return(kmsg->sk, st, cfg)) {
			if (c) {
				c->flow_messages++;
				c->flow_bytes += size;
			}
			return SK_PASS;
		}
		st->mode = MODE_REDIRECT;
		if (c)
			c->flow_returns++;
	}
	if (st->mode == MODE_TCP_STICKY) {
		count_passed(c, size);
		return SK_PASS;
	}

	/* After shutdown(SHUT_WR) TCP fails a send with EPIPE, but tcp_bpf_sendmsg
	 * does not check SEND_SHUTDOWN: a redirect would deliver bytes after the
	 * peer's EOF. TCP's path refuses them; the socket has nothing more to send. */
	if (kmsg->sk->sk_shutdown & SEND_SHUTDOWN) {
		st->mode = MODE_TCP_STICKY;
		count_passed(c, size);
		return SK_PASS;
	}
	if (!(st->exit_state & EXIT_REDIRECTED) && !may_redirect_first(msg, st))
		st->mode = MODE_TCP_PEER_LEFT;
	if (st->mode == MODE_TCP_PEER_LEFT) {
		if (c) {
			c->peer_left_messages++;
			c->peer_left_bytes += size;
		}
		return SK_PASS;
	}
	verdict = bpf_msg_redirect_hash(msg, &sock_hash, &st->peer, BPF_F_INGRESS);
	if (verdict != SK_PASS) {
		/* The peer is not in the map (yet: early data before its end joined,
		 * or it could not join): this socket's bytes go by TCP from now on,
		 * since the peer may read them after later redirected ones. */
		st->mode = MODE_TCP_STICKY;
		if (c)
			c->sticky_tcp++;
		count_passed(c, size);
		return SK_PASS;
	}
	if (c) {
		c->messages_redirected++;
		c->bytes_redirected += size;
	}

	/* Flow control: this message is committed to the peer's queue. If that
	 * queue is now over its limit, later ones go by TCP, whose window makes a
	 * fast writer wait for a slow reader, until may_return(). */
	target = kmsg->sk_redir;
	if (!target)
		return SK_PASS;
	st->peer_sk = (__u64)target;
	if (small_write_stream(target, st, cfg)) {
		st->mode = MODE_TCP_SMALL;
		if (c)
			c->flow_to_tcp++;
		prepare_leave(msg, st);
	} else if (must_use_tcp(target, size, cfg)) {
		st->mode = MODE_TCP_FLOW;
		if (c)
			c->flow_to_tcp++;
	}
	return SK_PASS;
}
