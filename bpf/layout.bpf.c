// SPDX-License-Identifier: GPL-2.0
/*
 * Never loaded. Compiled only so that its BTF describes every struct shared
 * with user space, including those the programs use only through pointers
 * (clang emits no BTF for those in sockbypass.bpf.o). test/layout.test.ts
 * reads sizes and offsets from here to check the TypeScript codecs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "sockbypass.h"

struct socket_key layout_socket_key;
struct settings layout_settings;
struct addr_range layout_addr_range;
struct counters layout_counters;
struct sock_event layout_sock_event;
enum event_type layout_event_type;
