import { BenchParseError } from './errors.js';

/**
 * One `sockperf ping-pong` client run.
 *
 * Every latency here is what sockperf prints, which is ONE-WAY latency: sockperf
 * measures each round trip and reports half of it (in its source,
 * `pLat[i] = rtt / 2` and `avgLatency = avgRtt / 2`). Double a value to get the
 * round-trip time; do not compare these numbers directly with a tool that
 * reports full round trips.
 */
export interface SockperfPingPongResult {
  /**
   * Transport sockperf actually used. sockperf defaults to UDP; a TCP
   * benchmark must pass `--tcp` to both server and client, and should check
   * that this says "TCP".
   */
  readonly protocol: 'TCP' | 'UDP';
  /** Median one-way latency, microseconds. */
  readonly p50Us: number;
  /** 99th-percentile one-way latency, microseconds. */
  readonly p99Us: number;
  /** 99.9th-percentile one-way latency, microseconds. */
  readonly p999Us: number;
  /** Mean one-way latency, microseconds (sockperf's `avg-latency`). */
  readonly avgUs: number;
  /** Standard deviation of the one-way latency, microseconds. */
  readonly stdDevUs: number;
  /** Smallest observed one-way latency, microseconds. */
  readonly minUs: number;
  /** Largest observed one-way latency, microseconds. */
  readonly maxUs: number;
  /** Number of round trips the statistics are computed from. */
  readonly observations: number;
  /** Length of the measured window (after warm-up/cool-down), seconds. */
  readonly validSeconds: number;
  readonly droppedMessages: number;
  readonly duplicatedMessages: number;
  readonly outOfOrderMessages: number;
}

const ANSI_ESCAPE = /\x1b\[[0-9;]*m/g;
const NUMBER = String.raw`(\d+(?:\.\d+)?)`;

/** Messages sockperf prints (still exiting 0) when a run measured nothing. */
const FAILURE_MESSAGES: readonly RegExp[] = [
  /^sockperf: ERROR: (.*)$/m,
  /(No messages were received from the server\..*)$/m,
  /(No valid observations found\..*)$/m,
  /(No messages were sent)$/m,
];

function fail(reason: string): never {
  throw new BenchParseError('sockperf', reason);
}

function matchNumber(text: string, pattern: RegExp, what: string): number {
  const match = pattern.exec(text);
  const captured = match?.[1];
  if (captured === undefined) {
    fail(`missing ${what}`);
  }
  return Number(captured);
}

function percentileTable(text: string): Map<string, number> {
  const table = new Map<string, number>();
  const line = new RegExp(String.raw`---> percentile\s+${NUMBER}\s*=\s*${NUMBER}`, 'g');
  for (const match of text.matchAll(line)) {
    const [, percentile, value] = match;
    if (percentile !== undefined && value !== undefined) {
      table.set(Number(percentile).toFixed(3), Number(value));
    }
  }
  return table;
}

function requirePercentile(table: Map<string, number>, percentile: string): number {
  const value = table.get(percentile);
  if (value === undefined) {
    fail(`missing percentile ${percentile}`);
  }
  return value;
}

/**
 * Parses the text output (stdout) of `sockperf ping-pong` (checked against
 * sockperf 3.7; older versions that print `avg-lat=` are accepted too).
 *
 * Throws BenchParseError when sockperf reports an error (e.g. "Can`t connect
 * socket" — sockperf still exits 0 then), when the output is empty or cut
 * short before the end of the percentile table, when statistics for more than
 * one server are present, or when a required value is missing.
 */
export function parseSockperfPingPong(rawText: string): SockperfPingPongResult {
  const text = rawText.replace(ANSI_ESCAPE, '');
  if (text.trim() === '') {
    fail('empty output');
  }
  for (const pattern of FAILURE_MESSAGES) {
    const message = pattern.exec(text)?.[1];
    if (message !== undefined) {
      fail(`sockperf reported an error: ${message.trim()}`);
    }
  }

  const serverBlocks = text.match(/Printing statistics for Server No:/g)?.length ?? 0;
  if (serverBlocks > 1) {
    fail(`statistics for ${serverBlocks} servers; expected one`);
  }
  // <MIN> is the last line sockperf prints for a run; without it the output was cut short.
  if (!/---> <MIN> observation\s*=\s*\d/.test(text)) {
    fail('output ends before the percentile table is complete (truncated?)');
  }

  const protocolMatch = /PORT\s*=\s*\d+\s*#\s*(TCP|UDP)\b/.exec(text);
  const protocol = protocolMatch?.[1];
  if (protocol !== 'TCP' && protocol !== 'UDP') {
    fail('missing transport protocol ("# TCP" or "# UDP")');
  }

  const validSeconds = matchNumber(
    text,
    new RegExp(String.raw`\[Valid Duration\] RunTime=${NUMBER} sec`),
    '[Valid Duration] RunTime',
  );
  const avgUs = matchNumber(text, new RegExp(String.raw`avg-lat(?:ency)?=\s*${NUMBER}`), 'avg-latency');
  const stdDevUs = matchNumber(text, new RegExp(String.raw`std-dev=\s*${NUMBER}`), 'std-dev');
  const droppedMessages = matchNumber(text, /# dropped messages = (\d+)/, 'dropped message count');
  const duplicatedMessages = matchNumber(text, /# duplicated messages = (\d+)/, 'duplicated message count');
  const outOfOrderMessages = matchNumber(text, /# out-of-order messages = (\d+)/, 'out-of-order message count');
  const observations = matchNumber(text, /Total (\d+) observations/, 'observation count');
  if (observations === 0) {
    fail('zero observations');
  }
  const maxUs = matchNumber(text, new RegExp(String.raw`---> <MAX> observation\s*=\s*${NUMBER}`), '<MAX> observation');
  const minUs = matchNumber(text, new RegExp(String.raw`---> <MIN> observation\s*=\s*${NUMBER}`), '<MIN> observation');

  const percentiles = percentileTable(text);
  return {
    protocol,
    p50Us: requirePercentile(percentiles, '50.000'),
    p99Us: requirePercentile(percentiles, '99.000'),
    p999Us: requirePercentile(percentiles, '99.900'),
    avgUs,
    stdDevUs,
    minUs,
    maxUs,
    observations,
    validSeconds,
    droppedMessages,
    duplicatedMessages,
    outOfOrderMessages,
  };
}
