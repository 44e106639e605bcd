/** Which tool's output could not be turned into a measurement. */
export type BenchOutputSource = 'iperf3' | 'sockperf' | 'sbload';

/**
 * Thrown when a benchmark tool's output cannot be turned into a measurement:
 * the tool reported a failure, the output is empty, truncated or malformed,
 * or a required field is missing. Parsers throw this instead of returning NaN
 * or zero, so a failed run can never be mistaken for a slow one.
 */
export class BenchParseError extends Error {
  readonly source: BenchOutputSource;
  readonly reason: string;

  constructor(source: BenchOutputSource, reason: string) {
    super(`${source}: ${reason}`);
    this.name = 'BenchParseError';
    this.source = source;
    this.reason = reason;
  }
}
