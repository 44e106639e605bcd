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
import { defaultKnobs, KNOBS, knobProblem, type Knobs } from './knobs.js';

/** Which connections are accelerated, and the knobs (knobs.ts; an absent knob has its default). */
export interface Policy extends Partial<Knobs> {
  /** null: every port. */
  ports: number[] | null;
  /** null: every address. CIDR text, e.g. "127.0.0.0/8", "::1/128". */
  ranges: string[] | null;
  /**
   * false: never switch a sender to TCP, however far its receiver lags (host
   * memory then bounds nothing). Only for measuring what flow control prevents.
   */
  flowControl?: boolean;
}

export const ALLOW_ALL: Policy = { ports: null, ranges: null };

export interface PolicyMaps {
  settings: BpfMap;
  allowed_ports: BpfMap;
  allowed_ranges: BpfMap;
}

/** Throws a usage error for a policy the data plane cannot take; load and writePolicy call it. */
export function validatePolicy(policy: Policy): void {
  for (const p of policy.ports ?? []) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw usage(`bad port ${p}: want 1..65535`);
  }
  for (const knob of KNOBS) {
    const value = policy[knob.field];
    const problem = value === undefined ? undefined : knobProblem(knob, value);
    if (problem) throw usage(problem);
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

/** Validate `policy` and write it into the load's maps. */
export function writePolicy(maps: PolicyMaps, policy: Policy): void {
  validatePolicy(policy);
  writeValidPolicy(maps, policy);
}

/** writePolicy for a policy already validated (load validates before it touches the kernel). */
export function writeValidPolicy(maps: PolicyMaps, policy: Policy): void {
  // The maps' capacity is set in C; read it rather than writing it down twice.
  const portRoom = maps.allowed_ports.info.maxEntries;
  const rangeRoom = maps.allowed_ranges.info.maxEntries;
  if ((policy.ports?.length ?? 0) > portRoom)
    throw usage(`too many ports: ${policy.ports?.length}, the policy holds at most ${portRoom}`);
  if ((policy.ranges?.length ?? 0) > rangeRoom)
    throw usage(`too many ranges: ${policy.ranges?.length}, the policy holds at most ${rangeRoom}`);
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
  maps.settings.update(u32(0), settingsCodec.encode({ flags, layoutVersion: LAYOUT_VERSION, ...knobsOf(policy) }));
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
    ...Object.fromEntries(KNOBS.map(({ field }) => [field, settings?.[field] ?? 0])),
    ...(flags & SETTINGS_FLAGS.noFlowControl ? { flowControl: false } : {}),
  };
}

/** Every knob of `policy`, the defaults filling the absent ones: what writePolicy writes. */
export function knobsOf(policy: Policy): Knobs {
  const knobs = defaultKnobs();
  for (const { field } of KNOBS) knobs[field] = policy[field] ?? knobs[field];
  return knobs;
}

export function formatPolicy(policy: Policy): string {
  const ports = policy.ports ? policy.ports.join(',') : 'all';
  const ranges = policy.ranges ? policy.ranges.join(',') : 'all';
  const knobs = knobsOf(policy);
  const phrases = KNOBS.map((k) => k.describe(knobs[k.field], knobs)).filter((p) => p !== undefined);
  const flow = policy.flowControl === false ? '; flow control OFF' : '';
  return `ports ${ports}; addresses ${ranges}; ${phrases.join('; ')}${flow}`;
}
