import { BenchParseError } from './errors.js';
import { isJsonObject, JsonFields } from './json-fields.js';

/** One iperf3 TCP client run, as measured by the receiving side. */
export interface Iperf3Result {
  /** Receiver-side rate, from `end.sum_received.bits_per_second`. */
  readonly bitsPerSecond: number;
  /** Bytes the receiver got, from `end.sum_received.bytes`. */
  readonly bytes: number;
  /** Receiver-side duration in seconds, from `end.sum_received.seconds`. */
  readonly seconds: number;
  /**
   * Sender-side TCP retransmits (`end.sum_sent.retransmits`), when iperf3
   * reports them (Linux TCP does; other platforms may not).
   */
  readonly retransmits?: number;
  /** Parallel streams the run used (`start.test_start.num_streams`, i.e. `-P`). */
  readonly streams: number;
  /** Write size in bytes (`start.test_start.blksize`, i.e. `-l`). */
  readonly blockSizeBytes: number;
}

/**
 * Parses the output of `iperf3 -c ... --json`.
 *
 * Throws BenchParseError for: empty output, invalid or truncated JSON, a run
 * iperf3 itself reports as failed (top-level `"error"` key — note iperf3 3.12
 * with `--json` exits 0 even when the connection is refused, so the exit code
 * cannot be relied on), missing fields, or a run in which the receiver got no
 * bytes.
 */
export function parseIperf3Json(text: string): Iperf3Result {
  const root = JsonFields.parse('iperf3', text);
  const testStart = root.object('start').object('test_start');
  const streams = testStart.count('num_streams');
  const blockSizeBytes = testStart.count('blksize');

  const end = root.object('end');
  const received = end.object('sum_received');
  const bitsPerSecond = received.number('bits_per_second');
  const bytes = received.count('bytes');
  const seconds = received.number('seconds');
  if (seconds === 0 || bytes === 0) {
    throw new BenchParseError('iperf3', `receiver got ${bytes} bytes in ${seconds} s; nothing was measured`);
  }

  const result: Iperf3Result = { bitsPerSecond, bytes, seconds, streams, blockSizeBytes };
  const sent = end.raw('sum_sent');
  if (isJsonObject(sent)) {
    const retransmits = sent['retransmits'];
    if (typeof retransmits === 'number' && Number.isInteger(retransmits) && retransmits >= 0) {
      return { ...result, retransmits };
    }
  }
  return result;
}
