// SPDX-License-Identifier: GPL-2.0
/*
 * sockbypass data plane.
 *
 * sock_ops puts every established TCP socket that policy allows into
 * `sock_hash`, keyed by its own view of the connection (struct socket_key).
 * sk_msg runs on every sendmsg of those sockets, builds the key the peer
 * inserted for itself and hands the data straight to the peer's receive
 * queue. When the peer is not in the map the data takes the normal TCP path.
 *
 * Nothing here deletes a live entry: deleting a socket's entry while it has
 * unread redirected data loses that data. The kernel removes each socket
 * from the map itself when it closes.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sockbypass.h"

#define AF_INET 2
#define AF_INET6 10
#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef EEXIST
#define EEXIST 17
#endif

char LICENSE[] SEC("license") = "GPL";

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

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

static __always_inline struct counters *counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline __u64 netns_of(void *ctx)
{
#ifdef SOCKBYPASS_TEST_NETNS_BLIND
	/* Test-only variant: proves the isolation test catches a netns-blind key. */
	return 0;
#else
	return bpf_get_netns_cookie(ctx);
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
	__u32 zero = 0;
	struct settings *cfg = bpf_map_lookup_elem(&settings, &zero);
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
	/* sock_ops runs in softirq for most callbacks: the current task is
	 * whoever happened to be on the CPU, so no pid is claimed here. */
	e->pid = 0;
	__builtin_memset(e->comm, 0, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void on_established(struct bpf_sock_ops *skops, bool active)
{
	struct socket_key key = {};
	struct counters *c = counters_get();
	__u32 family;
	long err;

	family = socket_key_build(&key, skops, netns_of(skops), false);
	if (family != AF_INET && family != AF_INET6)
		return;

	if (!policy_allows(&key)) {
		if (c)
			c->policy_skipped++;
		emit_event(skops, &key, family, EVENT_REFUSED_POLICY, 0);
		return;
	}

	/* BPF_NOEXIST: replacing an entry would drop a live socket from the map. */
	err = bpf_sock_hash_update(skops, &sock_hash, &key, BPF_NOEXIST);
	if (err) {
		__u32 type = EVENT_REFUSED_OTHER;

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
		emit_event(skops, &key, family, type, (__s32)err);
		return;
	}

	if (c)
		c->sockets_inserted++;
	/* Ask for state callbacks on this socket only, to see it close. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	emit_event(skops, &key, family,
		   active ? EVENT_ACCELERATED_ACTIVE : EVENT_ACCELERATED_PASSIVE, 0);
}

static __always_inline void on_state_change(struct bpf_sock_ops *skops)
{
	struct socket_key key = {};
	struct counters *c;
	__u32 family;

	if (skops->args[1] != BPF_TCP_CLOSE)
		return;
	c = counters_get();
	if (c)
		c->sockets_closed++;
	family = socket_key_build(&key, skops, netns_of(skops), false);
	emit_event(skops, &key, family, EVENT_CLOSED, 0);
}

SEC("sockops")
int sockbypass_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_established(skops, true);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(skops, false);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		on_state_change(skops);
		break;
	}
	return 1;
}

SEC("sk_msg")
int sockbypass_redirect(struct sk_msg_md *msg)
{
	struct socket_key peer = {};
	struct counters *c;
	__u64 size = msg->size;
	long verdict;

	socket_key_build(&peer, msg, netns_of(msg), true);
	verdict = bpf_msg_redirect_hash(msg, &sock_hash, &peer, BPF_F_INGRESS);

	c = counters_get();
	if (verdict == SK_PASS) {
		if (c) {
			c->messages_redirected++;
			c->bytes_redirected += size;
		}
	} else if (c) {
		c->redirect_misses++;
		c->bytes_passed += size;
	}
	/* Never return the helper's verdict: on a miss it is SK_DROP, which
	 * would turn every send to a peer outside the map into EACCES. */
	return SK_PASS;
}
