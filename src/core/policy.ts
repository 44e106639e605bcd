/**
 * Which connections sockbypass accelerates, kept in maps so it changes at
 * runtime without a reload. A change applies to connections established
 * afterwards; accelerated ones stay so until they close.
 *
 * ports: a connection qualifies if either of its ports is listed.
 * ranges: a connection qualifies if both of its addresses fall in a range.
 */
import type { BpfMap } from '../libbpf/index.js';
import { addrRangeCodec, LAYOUT_VERSION, SETTINGS_FLAGS, settingsCodec } from './layout.js';
import { formatAddress, parseRange } from './address.js';
import { usage } from '../errors.js';

export interface Policy {
  /** null: every port. */
  ports: number[] | null;
  /** null: every address. CIDR text, e.g. "127.0.0.0/8", "::1/128". */
  ranges: string[] | null;
  /**
   * Most bytes queued for a receiver without an explicit SO_RCVBUF before its
   * sender switches to TCP (until the receiver catches up); undefined or 0: the
   * namespace's tcp_rmem[2], what TCP would let it hold. It can only lower that
   * bound. A receiver with SO_RCVBUF set is held to it.
   */
  queueLimit?: number;
  /**
   * Small-write streams go by TCP: writes under `smallWrite` bytes while more
   * than `smallBacklog` bytes wait at the receiver. smallWrite 0 turns it off.
   */
  smallWrite?: number;
  smallBacklog?: number;
  /**
   * Short connections stay on TCP: when a service's (server address and port) recent sockets sent
   * fewer than this many messages each on average, its new connections are not accelerated.
   * undefined: DEFAULT_SHORT_MESSAGES; 0: off.
   */
  shortMessages?: number;
  /**
   * false: never switch a sender to TCP, however far its receiver lags (host
   * memory then bounds nothing). Only for measuring what flow control prevents.
   */
  flowControl?: boolean;
}

/**
 * Receivers without an explicit SO_RCVBUF are held to what TCP would let them hold (tcp_rmem[2]);
 * flow control comes back once they catch up (docs/architecture.md), so no larger bound is needed.
 */
export const DEFAULT_QUEUE_LIMIT = 0;

/**
 * Off by default. TCP coalesces a stream of writes under 4 KiB better than the redirect carries them
 * (each redirected message locks the receiving socket and wakes its reader: iperf3 -l 64 at 0.47x of
 * TCP redirected, 0.97x with smallWrite 4096; -l 1K 0.45x and 0.85x). The data plane judges a socket
 * by the mean of all its writes (bytes over messages, from 1024 messages on), so a mix of mostly tiny
 * writes with rare huge ones stays redirected (sbload integrity 20 x 64 MiB: 3.27 s with the rule,
 * 3.94 s without, 5.78 s without sockbypass). It is not the default because a socket that went by
 * TCP while staying in the sockhash reads through tcp_bpf_recvmsg, which returns EAGAIN to a
 * *blocking* read woken without data (here: by its own send buffer draining): sbload stream -l 64,
 * whose writer blocks reading for EOF after its stream, failed so in 2 of 10 runs with the rule and
 * 0 of 10 without (README, "Byte order and flow control").
 */
export const DEFAULT_SMALL_WRITE = 0;
export const DEFAULT_SMALL_BACKLOG = 65536;

/**
 * Joining the sockhash costs each socket a psock (allocated, its proto switched, freed through RCU):
 * measured, 6 to 7% of the connection rate of connect, one 64 B request, one 64 B response, close,
 * while the redirect of two messages gains little (docs/benchmarks.md). Under 2 messages per socket
 * on average is that pattern; a service whose sockets exchange more is accelerated.
 */
export const DEFAULT_SHORT_MESSAGES = 2;
export const SHORT_MESSAGES_MAX = 1024;

export const ALLOW_ALL: Policy = { ports: null, ranges: null };

export interface PolicyMaps {
  settings: BpfMap;
  allowed_ports: BpfMap;
  allowed_ranges: BpfMap;
}

export function validatePolicy(policy: Policy): void {
  for (const p of policy.ports ?? []) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw usage(`bad port ${p}: want 1..65535`);
  }
  for (const [name, value] of [
    ['queue limit', policy.queueLimit],
    ['small write', policy.smallWrite],
    ['small backlog', policy.smallBacklog],
  ] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1)) {
      throw usage(`bad ${name} ${value}: want 0..${2 ** 31 - 1} bytes`);
    }
  }
  // The data plane caps each socket's sample at 1024 messages (SERVICE_SAMPLE_MAX), so a higher
  // threshold would call every service short.
  const short = policy.shortMessages;
  if (short !== undefined && (!Number.isInteger(short) || short < 0 || short > SHORT_MESSAGES_MAX)) {
    throw usage(`bad short messages ${short}: want 0..${SHORT_MESSAGES_MAX} messages`);
  }
  for (const r of policy.ranges ?? []) {
    try {
      parseRange(r);
    } catch (err) {
      throw usage((err as Error).message);
    }
  }
}

function clear(map: BpfMap): void {
  for (const key of [...map.keys()]) map.delete(key);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

export function writePolicy(maps: PolicyMaps, policy: Policy): void {
  validatePolicy(policy);
  // The maps' capacity is set in C; read it rather than writing it down twice.
  const portRoom = maps.allowed_ports.info.maxEntries;
  const rangeRoom = maps.allowed_ranges.info.maxEntries;
  if ((policy.ports?.length ?? 0) > portRoom) throw usage(`too many ports: ${policy.ports?.length}, the policy holds at most ${portRoom}`);
  if ((policy.ranges?.length ?? 0) > rangeRoom) throw usage(`too many ranges: ${policy.ranges?.length}, the policy holds at most ${rangeRoom}`);
  // Sets first, then the flags that turn them on, so no new connection sees a half-written filter.
  clear(maps.allowed_ports);
  for (const p of policy.ports ?? []) maps.allowed_ports.update(u32(p), Buffer.from([1]));
  clear(maps.allowed_ranges);
  for (const r of policy.ranges ?? []) {
    const { addr, prefixLength } = parseRange(r);
    maps.allowed_ranges.update(addrRangeCodec.encode({ prefixLength, addr }), Buffer.from([1]));
  }
  const flags =
    (policy.ports ? SETTINGS_FLAGS.portFilter : 0) |
    (policy.ranges ? SETTINGS_FLAGS.addressFilter : 0) |
    (policy.flowControl === false ? SETTINGS_FLAGS.noFlowControl : 0);
  maps.settings.update(
    u32(0),
    settingsCodec.encode({
      flags,
      layoutVersion: LAYOUT_VERSION,
      queueLimit: policy.queueLimit ?? DEFAULT_QUEUE_LIMIT,
      smallWrite: policy.smallWrite ?? DEFAULT_SMALL_WRITE,
      smallBacklog: policy.smallBacklog ?? DEFAULT_SMALL_BACKLOG,
      shortMessages: policy.shortMessages ?? DEFAULT_SHORT_MESSAGES,
    }),
  );
}

export function readPolicy(maps: PolicyMaps): Policy {
  const value = maps.settings.lookup(u32(0));
  const settings = value ? settingsCodec.decode(value) : undefined;
  const flags = settings?.flags ?? 0;
  const ports = [...maps.allowed_ports.keys()].map((k) => k.readUInt32LE(0)).sort((a, b) => a - b);
  const ranges = [...maps.allowed_ranges.keys()].map((k) => {
    const { prefixLength, addr } = addrRangeCodec.decode(k);
    const text = formatAddress(addr);
    return text.includes(':') ? `${text}/${prefixLength}` : `${text}/${prefixLength - 96}`;
  });
  return {
    ports: flags & SETTINGS_FLAGS.portFilter ? ports : null,
    ranges: flags & SETTINGS_FLAGS.addressFilter ? ranges : null,
    queueLimit: settings?.queueLimit ?? 0,
    smallWrite: settings?.smallWrite ?? 0,
    smallBacklog: settings?.smallBacklog ?? 0,
    shortMessages: settings?.shortMessages ?? 0,
    ...(flags & SETTINGS_FLAGS.noFlowControl ? { flowControl: false } : {}),
  };
}

export function formatPolicy(policy: Policy): string {
  const ports = policy.ports ? policy.ports.join(',') : 'all';
  const ranges = policy.ranges ? policy.ranges.join(',') : 'all';
  // Unset fields are what writePolicy writes for them: the defaults.
  const limit = policy.queueLimit ?? DEFAULT_QUEUE_LIMIT;
  const queue = `the receiver's SO_RCVBUF if set, else ${limit ? `${limit} bytes` : 'tcp_rmem[2]'}`;
  const smallWrite = policy.smallWrite ?? DEFAULT_SMALL_WRITE;
  const small = smallWrite === 0 ? 'off' : `senders whose writes average under ${smallWrite} B go by TCP once over ${policy.smallBacklog ?? DEFAULT_SMALL_BACKLOG} B are queued`;
  const shortMessages = policy.shortMessages ?? DEFAULT_SHORT_MESSAGES;
  const short = shortMessages === 0 ? 'off' : `services whose sockets sent under ${shortMessages} messages each on average stay on TCP`;
  const flow = policy.flowControl === false ? '; flow control OFF' : '';
  return `ports ${ports}; addresses ${ranges}; queue limit ${queue}; small-write rule ${small}; short connections: ${short}${flow}`;
}
