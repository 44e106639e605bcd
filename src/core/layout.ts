/**
 * The one TypeScript codec of each struct in bpf/sockbypass.h.
 * test/layout.test.ts checks every codec's size and offsets, and the enum
 * values below, against the BTF that clang emitted for the C header.
 */
import { StructCodec } from './codec.js';
import { formatAddress, parseAddress } from './address.js';
import { KNOBS, type Knobs } from './knobs.js';

/** Must equal SOCKBYPASS_LAYOUT_VERSION in bpf/sockbypass.h (checked by test). */
export const LAYOUT_VERSION = 8;

interface RawSocketKey {
  localIp: Buffer;
  remoteIp: Buffer;
  localPort: number;
  remotePort: number;
  netnsCookie: bigint;
  handshake: bigint;
}

export const socketKeyCodec = new StructCodec<RawSocketKey>('socket_key', [
  { name: 'localIp', c: 'local_ip', type: { array: 'u32', length: 4 } },
  { name: 'remoteIp', c: 'remote_ip', type: { array: 'u32', length: 4 } },
  { name: 'localPort', c: 'local_port', type: 'u32' },
  { name: 'remotePort', c: 'remote_port', type: 'u32' },
  { name: 'netnsCookie', c: 'netns_cookie', type: 'u64' },
  { name: 'handshake', c: 'handshake', type: 'u64' },
]);

/** One socket's view of its connection, as the sockhash keys it. */
export interface SocketKey {
  /** Dotted quad for IPv4 and IPv4-mapped, IPv6 text otherwise. */
  localAddress: string;
  remoteAddress: string;
  localPort: number;
  remotePort: number;
  /** The cookie of the network namespace this socket lives in (never 0). */
  netnsCookie: bigint;
  /** (active side's ISN + 1) << 32 | (passive side's ISN + 1): the same on both ends, whatever NAT did to the tuples. */
  handshake: bigint;
}

function keyFromRaw(raw: RawSocketKey): SocketKey {
  return {
    localAddress: formatAddress(raw.localIp),
    remoteAddress: formatAddress(raw.remoteIp),
    localPort: raw.localPort,
    remotePort: raw.remotePort,
    netnsCookie: raw.netnsCookie,
    handshake: raw.handshake,
  };
}

export function decodeSocketKey(buf: Buffer, offset = 0): SocketKey {
  return keyFromRaw(socketKeyCodec.decode(buf, offset));
}

export function encodeSocketKey(key: SocketKey): Buffer {
  return socketKeyCodec.encode({
    localIp: parseAddress(key.localAddress),
    remoteIp: parseAddress(key.remoteAddress),
    localPort: key.localPort,
    remotePort: key.remotePort,
    netnsCookie: key.netnsCookie,
    handshake: key.handshake,
  });
}

/**
 * Whether two keys are the two ends of one connection: the same handshake
 * tag, and the client port the same on both (the active end's local port is
 * the passive end's remote port; NAT on one host keeps it, see pair_id in
 * bpf/sockbypass.bpf.c). The tuples may differ otherwise (REDIRECT, DNAT).
 */
export function samePair(a: SocketKey, b: SocketKey): boolean {
  return a.handshake === b.handshake && (a.localPort === b.remotePort || a.remotePort === b.localPort);
}

export const SETTINGS_FLAGS = { portFilter: 1 << 0, addressFilter: 1 << 1, noFlowControl: 1 << 2 } as const;

/** struct settings: a header, then the knobs (knobs.ts) in the C order. */
export interface Settings extends Knobs {
  flags: number;
  layoutVersion: number;
}

export const settingsCodec = new StructCodec<Settings>('settings', [
  { name: 'flags', c: 'flags', type: 'u32' },
  { name: 'layoutVersion', c: 'layout_version', type: 'u32' },
  ...KNOBS.map(({ field, c }) => ({ name: field, c, type: 'u32' as const })),
]);

interface RawAddrRange {
  prefixLength: number;
  addr: Buffer;
}

export const addrRangeCodec = new StructCodec<RawAddrRange>('addr_range', [
  { name: 'prefixLength', c: 'prefixlen', type: 'u32' },
  { name: 'addr', c: 'addr', type: { array: 'u32', length: 4 } },
]);

// struct counters has its table and codec in counters.ts; re-exported here with the other structs' codecs.
export { countersCodec, sumCounters, zeroCounters, type Counters } from './counters.js';

/** Values of enum event_type (checked against BTF). */
export const EVENT_TYPES = {
  accelerated_active: 1,
  accelerated_passive: 2,
  refused_policy: 3,
  refused_map_full: 4,
  refused_exists: 5,
  refused_other: 6,
  closed: 7,
  skipped_short: 8,
  left_peer_declined: 9,
} as const;
export type EventType = keyof typeof EVENT_TYPES;
const EVENT_NAMES = new Map<number, EventType>(
  Object.entries(EVENT_TYPES).map(([name, value]) => [value, name as EventType]),
);

interface RawSockEvent {
  timestampNs: bigint;
  socketCookie: bigint;
  key: RawSocketKey;
  type: number;
  family: number;
  error: number;
}

export const sockEventCodec = new StructCodec<RawSockEvent>('sock_event', [
  { name: 'timestampNs', c: 'timestamp_ns', type: 'u64' },
  { name: 'socketCookie', c: 'socket_cookie', type: 'u64' },
  { name: 'key', c: 'key', type: socketKeyCodec as StructCodec<object> },
  { name: 'type', c: 'type', type: 'u32' },
  { name: 'family', c: 'family', type: 'u32' },
  { name: 'error', c: 'error', type: 's32' },
]);

export interface SockEvent {
  /** CLOCK_MONOTONIC nanoseconds. */
  timestampNs: bigint;
  type: EventType | 'unknown';
  family: 'inet' | 'inet6' | 'other';
  socketCookie: bigint;
  key: SocketKey;
  /** Negative errno of a refused insert, else 0. */
  error: number;
}

export function decodeSockEvent(buf: Buffer, offset = 0): SockEvent {
  const raw = sockEventCodec.decode(buf, offset);
  return {
    timestampNs: raw.timestampNs,
    type: EVENT_NAMES.get(raw.type) ?? 'unknown',
    family: raw.family === 2 ? 'inet' : raw.family === 10 ? 'inet6' : 'other',
    socketCookie: raw.socketCookie,
    key: keyFromRaw(raw.key),
    error: raw.error,
  };
}
