import { BenchParseError } from './errors.js';
import { JsonFields } from './json-fields.js';

/** `sbload` in stream mode: one-way bulk transfer. */
export interface SbloadStreamResult {
  readonly mode: 'stream';
  readonly bytes: number;
  readonly seconds: number;
  readonly bitsPerSecond: number;
}

/**
 * `sbload` in request/response mode. Latencies are exactly as sbload prints
 * them (microseconds); they are NOT converted to sockperf's one-way
 * convention, so check sbload's own definition before comparing the two.
 */
export interface SbloadRrResult {
  readonly mode: 'rr';
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  readonly roundTrips: number;
}

/** `sbload` in connect/request/response mode: connection setup rate. */
export interface SbloadCrrResult {
  readonly mode: 'crr';
  readonly connectionsPerSecond: number;
  readonly connections: number;
  /** Connections that failed; a non-zero value is reported, not rejected. */
  readonly failures: number;
}

export type SbloadResult = SbloadStreamResult | SbloadRrResult | SbloadCrrResult;
export type SbloadMode = SbloadResult['mode'];
export type SbloadResultOf<M extends SbloadMode> = Extract<SbloadResult, { mode: M }>;

function fail(reason: string): never {
  throw new BenchParseError('sbload', reason);
}

function parseStream(fields: JsonFields): SbloadStreamResult {
  const bytes = fields.count('bytes');
  const seconds = fields.number('seconds');
  const bitsPerSecond = fields.number('bitsPerSecond');
  if (bytes === 0 || seconds === 0) {
    fail(`stream moved ${bytes} bytes in ${seconds} s; nothing was measured`);
  }
  return { mode: 'stream', bytes, seconds, bitsPerSecond };
}

function parseRr(fields: JsonFields): SbloadRrResult {
  const p50Us = fields.number('p50Us');
  const p99Us = fields.number('p99Us');
  const p999Us = fields.number('p999Us');
  const roundTrips = fields.count('roundTrips');
  if (roundTrips === 0) {
    fail('rr completed 0 round trips; nothing was measured');
  }
  if (!(p50Us <= p99Us && p99Us <= p999Us)) {
    fail(`percentiles out of order: p50Us=${p50Us} p99Us=${p99Us} p999Us=${p999Us}`);
  }
  return { mode: 'rr', p50Us, p99Us, p999Us, roundTrips };
}

function parseCrr(fields: JsonFields): SbloadCrrResult {
  const connectionsPerSecond = fields.number('connectionsPerSecond');
  const connections = fields.count('connections');
  const failures = fields.count('failures');
  if (connections === 0) {
    fail('crr completed 0 connections; nothing was measured');
  }
  return { mode: 'crr', connectionsPerSecond, connections, failures };
}

/**
 * Parses the single JSON object `build/sbload` prints. Unknown extra fields
 * are ignored; a missing or mistyped required field, an unknown `mode`, an
 * `"error"` key, empty or truncated output, or (when `expectedMode` is given)
 * a different mode all throw BenchParseError.
 */
export function parseSbloadOutput(text: string): SbloadResult;
export function parseSbloadOutput<M extends SbloadMode>(text: string, expectedMode: M): SbloadResultOf<M>;
export function parseSbloadOutput(text: string, expectedMode?: SbloadMode): SbloadResult {
  const fields = JsonFields.parse('sbload', text);
  const mode = fields.raw('mode');
  if (expectedMode !== undefined && mode !== expectedMode) {
    fail(`expected mode "${expectedMode}", got ${JSON.stringify(mode)}`);
  }
  switch (mode) {
    case 'stream':
      return parseStream(fields);
    case 'rr':
      return parseRr(fields);
    case 'crr':
      return parseCrr(fields);
    default:
      return fail(`missing or unknown mode ${JSON.stringify(mode)}`);
  }
}
