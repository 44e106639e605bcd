/**
 * The data plane's counters: one row per field of `struct counters`
 * (bpf/sockbypass.h), in the C order. The codec, `status`, `status --watch`
 * and the Prometheus metrics of `run` all come from this table;
 * test/layout.test.ts checks it against the struct in the object's BTF.
 *
 * A new counter: the field in `struct counters`, its increment in the data
 * plane, and one row here.
 */
import type { BpfMap } from '../libbpf/index.js';
import { StructCodec } from './codec.js';

export interface CounterSpec {
  /** Name in TypeScript (the key in Counters, status --json, watch --json). */
  name: string;
  /** Field of struct counters. */
  c: string;
  /** Row label in `status` and `status --watch`. */
  label: string;
  /** counter: only goes up (the watch shows a rate); gauge: goes up and down. */
  kind: 'counter' | 'gauge';
  unit: 'sockets' | 'messages' | 'bytes' | 'events';
  /** Prometheus metric; rows sharing a name are one metric told apart by their labels. */
  metric: { name: string; help: string; labels?: Readonly<Record<string, string>> };
}

const INSERT_FAILURES = {
  name: 'sockbypass_insert_failures_total',
  help: 'Sockets that could not be put into the sockhash, by reason.',
} as const;

export const COUNTERS = [
  {
    name: 'socketsInserted',
    c: 'sockets_inserted',
    label: 'sockets inserted',
    kind: 'counter',
    unit: 'sockets',
    metric: {
      name: 'sockbypass_sockets_accelerated_total',
      help: 'Sockets put into the sockhash: both ends of each paired connection (a client end whose server end could not join is counted here and in pair_unjoined).',
    },
  },
  {
    name: 'insertMapFull',
    c: 'insert_map_full',
    label: 'insert failed: map full',
    kind: 'counter',
    unit: 'sockets',
    metric: { ...INSERT_FAILURES, labels: { reason: 'map_full' } },
  },
  {
    name: 'insertExists',
    c: 'insert_exists',
    label: 'insert failed: exists',
    kind: 'counter',
    unit: 'sockets',
    metric: { ...INSERT_FAILURES, labels: { reason: 'exists' } },
  },
  {
    name: 'insertOther',
    c: 'insert_other',
    label: 'insert failed: other',
    kind: 'counter',
    unit: 'sockets',
    metric: { ...INSERT_FAILURES, labels: { reason: 'other' } },
  },
  {
    name: 'policySkipped',
    c: 'policy_skipped',
    label: 'skipped by policy',
    kind: 'counter',
    unit: 'sockets',
    metric: {
      name: 'sockbypass_policy_skipped_total',
      help: 'Established sockets the policy (ports, ranges) left on the normal path.',
    },
  },
  {
    name: 'socketsClosed',
    c: 'sockets_closed',
    label: 'sockets closed',
    kind: 'counter',
    unit: 'sockets',
    metric: { name: 'sockbypass_sockets_closed_total', help: 'Accelerated sockets that closed.' },
  },
  {
    name: 'messagesRedirected',
    c: 'messages_redirected',
    label: 'messages redirected',
    kind: 'counter',
    unit: 'messages',
    metric: {
      name: 'sockbypass_redirected_messages_total',
      help: 'sendmsg calls redirected straight into the peer socket.',
    },
  },
  {
    name: 'bytesRedirected',
    c: 'bytes_redirected',
    label: 'bytes redirected',
    kind: 'counter',
    unit: 'bytes',
    metric: { name: 'sockbypass_redirected_bytes_total', help: 'Bytes redirected straight into the peer socket.' },
  },
  {
    name: 'redirectMisses',
    c: 'redirect_misses',
    label: 'redirect misses',
    kind: 'counter',
    unit: 'messages',
    metric: {
      name: 'sockbypass_redirect_misses_total',
      help: 'sendmsg calls of accelerated sockets whose peer was not in the map (sent over TCP).',
    },
  },
  {
    name: 'bytesPassed',
    c: 'bytes_passed',
    label: 'bytes passed to TCP',
    kind: 'counter',
    unit: 'bytes',
    metric: { name: 'sockbypass_passed_bytes_total', help: 'Bytes of redirect misses, sent over the normal TCP path.' },
  },
  {
    name: 'eventsLost',
    c: 'events_lost',
    label: 'events lost',
    kind: 'counter',
    unit: 'events',
    metric: { name: 'sockbypass_events_lost_total', help: 'Events dropped because the ring buffer was full.' },
  },
  {
    name: 'flowMessages',
    c: 'flow_messages',
    label: 'flow control: messages',
    kind: 'counter',
    unit: 'messages',
    metric: {
      name: 'sockbypass_flow_control_messages_total',
      help: 'sendmsg calls sent over TCP by sockets that flow control switched there (receiver behind).',
    },
  },
  {
    name: 'flowBytes',
    c: 'flow_bytes',
    label: 'flow control: bytes',
    kind: 'counter',
    unit: 'bytes',
    metric: {
      name: 'sockbypass_flow_control_bytes_total',
      help: 'Bytes sent over TCP by sockets that flow control switched there (receiver behind).',
    },
  },
  {
    name: 'flowToTcp',
    c: 'flow_to_tcp',
    label: 'flow: switches to TCP',
    kind: 'counter',
    unit: 'events',
    metric: {
      name: 'sockbypass_flow_switches_total',
      help: 'Switches from the redirect to TCP by flow control (the receiver fell behind); see sockbypass_flow_returns_total.',
    },
  },
  {
    name: 'stickyTcp',
    c: 'sticky_tcp',
    label: 'sticky TCP sockets',
    kind: 'counter',
    unit: 'sockets',
    metric: {
      name: 'sockbypass_sticky_tcp_sockets_total',
      help: 'Sockets whose message missed their peer (early data) and stay on TCP for good (keeps byte order).',
    },
  },
  {
    name: 'shortSkipped',
    c: 'short_skipped',
    label: 'short: sockets on TCP',
    kind: 'counter',
    unit: 'sockets',
    metric: {
      name: 'sockbypass_short_skipped_sockets_total',
      help: "Sockets left on TCP because their service's recent connections were short (short-connection rule).",
    },
  },
  {
    name: 'pairsJoined',
    c: 'pairs_joined',
    label: 'connections accelerated',
    kind: 'counter',
    unit: 'events',
    metric: {
      name: 'sockbypass_pairs_joined_total',
      help: 'Connections whose two ends (both on this host, in the cgroup, allowed by policy) joined the sockhash.',
    },
  },
  {
    name: 'leftNoPeer',
    c: 'left_no_peer',
    label: 'left alone: no local peer',
    kind: 'counter',
    unit: 'sockets',
    metric: {
      name: 'sockbypass_left_alone_sockets_total',
      help: 'Sockets never inserted because their connection cannot be accelerated, by reason.',
      labels: { reason: 'no_local_peer' },
    },
  },
  {
    name: 'leftPeerDeclined',
    c: 'left_peer_declined',
    label: 'left alone: peer declined',
    kind: 'counter',
    unit: 'sockets',
    metric: {
      name: 'sockbypass_left_alone_sockets_total',
      help: 'Sockets never inserted because their connection cannot be accelerated, by reason.',
      labels: { reason: 'peer_declined' },
    },
  },
  {
    name: 'pairUnjoined',
    c: 'pair_unjoined',
    label: 'unjoined: peer map full',
    kind: 'counter',
    unit: 'sockets',
    metric: {
      name: 'sockbypass_pair_unjoined_sockets_total',
      help: 'Client ends taken out of the sockhash again because their server end could not join (map full).',
    },
  },
  {
    name: 'flowReturns',
    c: 'flow_returns',
    label: 'flow: returns to redirect',
    kind: 'counter',
    unit: 'events',
    metric: {
      name: 'sockbypass_flow_returns_total',
      help: 'Switches back from TCP to the redirect: the receiver caught up and no reader was inside tcp_recvmsg.',
    },
  },
  {
    name: 'socketsLeft',
    c: 'sockets_left',
    label: 'sockets left the sockhash',
    kind: 'counter',
    unit: 'sockets',
    metric: {
      name: 'sockbypass_sockets_left_total',
      help: 'Sockets that left the sockhash mid-connection (a small-write sender, or a socket that sent its FIN, whose peer never redirected to it; then that peer): plain TCP from then on.',
    },
  },
  {
    name: 'peerLeftMessages',
    c: 'peer_left_messages',
    label: 'peer left: messages',
    kind: 'counter',
    unit: 'messages',
    metric: {
      name: 'sockbypass_peer_left_messages_total',
      help: 'Messages sent by TCP because the peer left the sockhash before this socket ever redirected (see sockbypass_sockets_left_total).',
    },
  },
  {
    name: 'peerLeftBytes',
    c: 'peer_left_bytes',
    label: 'peer left: bytes',
    kind: 'counter',
    unit: 'bytes',
    metric: {
      name: 'sockbypass_peer_left_bytes_total',
      help: 'Bytes of those messages.',
    },
  },
] as const satisfies readonly CounterSpec[];

export type CounterName = (typeof COUNTERS)[number]['name'];

/** Summed over CPUs. Counts since load; `--replace` keeps them. */
export type Counters = Record<CounterName, number>;

export const countersCodec = new StructCodec<Record<CounterName, bigint>>(
  'counters',
  COUNTERS.map(({ name, c }) => ({ name, c, type: 'u64' as const })),
);

export function zeroCounters(): Counters {
  return Object.fromEntries(COUNTERS.map(({ name }) => [name, 0])) as Counters;
}

/** Sum the per-CPU copies of the counters struct. */
export function sumCounters(perCpu: readonly Buffer[]): Counters {
  const total = zeroCounters();
  for (const buf of perCpu) {
    const raw = countersCodec.decode(buf);
    for (const { name } of COUNTERS) total[name] += Number(raw[name]);
  }
  return total;
}

/** The counters of a load (its `counters` map, e.g. a PinnedState's), summed over CPUs. */
export function readCounters(state: { maps: { counters: BpfMap } }): Counters {
  const perCpu = state.maps.counters.lookupPerCpu(Buffer.alloc(4));
  return perCpu ? sumCounters(perCpu) : zeroCounters();
}
