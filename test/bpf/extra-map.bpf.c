/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The shipped data plane plus one map, as a change to bpf/ would add it. Only
 * test/pins.test.ts loads it: a load pins the new map, `load --replace` onto
 * a load without it creates and pins it, and the next --replace reuses it.
 */
#include "sockbypass.bpf.c"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} extra_probe SEC(".maps");
