/**
 * Statistics for interleaved on/off benchmark runs.
 *
 * Ratio convention: a pair's ratio is always `on / off` of the RAW metric, for
 * every metric. What counts as better depends on the metric's `direction`:
 *
 *   - "higher-is-better" (throughput, connections/s): ratio > 1 is a win.
 *   - "lower-is-better" (latency, packets on lo):     ratio < 1 is a win.
 *
 * So a throughput ratio of 1.5 and a latency ratio of 0.67 are both wins.
 * `verdictFor` turns a ratio into win / lose / even, counting ratios within
 * `tolerance` of 1.0 as even.
 */

export type BypassMode = 'on' | 'off';
export type Direction = 'higher-is-better' | 'lower-is-better';
export type Verdict = 'win' | 'lose' | 'even' | 'no-data';

/** Units the report knows how to format. */
export type MetricUnit = 'bit/s' | 'us' | 'conn/s' | 'req/s' | 'packets';

/** A run whose measurement counts. */
export interface KeptRun {
  readonly mode: BypassMode;
  /** The raw metric; finite and >= 0. */
  readonly value: number;
}

/**
 * A run that was not what it claims to be (e.g. the bypass was supposed to be
 * on but its counters did not move, or the tool's output failed to parse). It
 * is reported with its reason and never used in any statistic.
 */
export interface DiscardedRun {
  readonly mode: BypassMode;
  /** The value the run produced, if any; kept only for the report. */
  readonly value?: number;
  readonly discardReason: string;
}

export type BenchRun = KeptRun | DiscardedRun;

export function isDiscarded(run: BenchRun): run is DiscardedRun {
  return 'discardReason' in run && typeof run.discardReason === 'string';
}

/** One on run and one off run that were executed back to back. */
export interface RunPair {
  /** 0-based position of the pair in run order. */
  readonly index: number;
  readonly on: BenchRun;
  readonly off: BenchRun;
}

/** A discarded run, with where it sat in the run order. */
export interface DiscardedRunRecord {
  readonly pairIndex: number;
  readonly mode: BypassMode;
  readonly value?: number;
  readonly reason: string;
}

export interface ValueStats {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/** A series measured once per workload for comparison, e.g. the AF_UNIX reference. */
export interface ReferenceSeries {
  readonly label: string;
  readonly values: readonly number[];
}

export interface ReferenceSummary extends ValueStats {
  readonly label: string;
  /** reference median / off median, same raw orientation as the on/off ratio; null without off data. */
  readonly ratioToOff: number | null;
}

/** Which metric of which workload, and how to read it. */
export interface SeriesIdentity {
  readonly workload: string;
  readonly metric: string;
  readonly unit: MetricUnit;
  readonly direction: Direction;
}

/** Everything measured for one metric of one workload. */
export interface WorkloadSeries extends SeriesIdentity {
  /** Runs in the order they ran: consecutive twos are one on and one off, either order. */
  readonly runs: readonly BenchRun[];
  readonly reference?: ReferenceSeries;
}

export interface WorkloadSummary extends SeriesIdentity {
  /** Over every kept on run (including the kept half of a pair whose other half was discarded); null if none. */
  readonly on: ValueStats | null;
  /** Over every kept off run; null if none. */
  readonly off: ValueStats | null;
  /** on/off per complete pair (both halves kept), in run order. */
  readonly ratios: readonly number[];
  readonly ratioMedian: number | null;
  readonly ratioMin: number | null;
  readonly ratioMax: number | null;
  /** Pairs whose ratio counts. */
  readonly pairsUsed: number;
  readonly pairsTotal: number;
  readonly verdict: Verdict;
  /** The tolerance the verdict was computed with. */
  readonly evenTolerance: number;
  readonly discarded: readonly DiscardedRunRecord[];
  readonly reference: ReferenceSummary | null;
}

export interface SummarizeOptions {
  /** Ratios within this relative distance of 1.0 are "even". Default DEFAULT_EVEN_TOLERANCE. */
  readonly evenTolerance?: number;
}

/**
 * Ratios this close to 1.0 are called even: a smaller difference is not worth
 * a verdict. It is a choice, not a measured noise floor; how far runs of one
 * workload really spread: docs/benchmarks.md, Statistics.
 */
export const DEFAULT_EVEN_TOLERANCE = 0.03;

function assertMeasurement(value: number, what: string): void {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${what} must be a finite number >= 0, got ${value}`);
  }
}

/** Median; the mean of the two middle values for an even count. Throws RangeError on an empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) {
    throw new RangeError('median of an empty list');
  }
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] as number;
  if (sorted.length % 2 === 1) {
    return upper;
  }
  const lower = sorted[middle - 1] as number;
  return (lower + upper) / 2;
}

/** Smallest and largest value. Throws RangeError on an empty list. */
export function minMax(values: readonly number[]): { readonly min: number; readonly max: number } {
  if (values.length === 0) {
    throw new RangeError('minMax of an empty list');
  }
  let min = Infinity;
  let max = -Infinity;
  for (const value of values) {
    if (value < min) min = value;
    if (value > max) max = value;
  }
  return { min, max };
}

/** median, min, max and count; null for an empty list. */
export function valueStats(values: readonly number[]): ValueStats | null {
  if (values.length === 0) {
    return null;
  }
  return { median: median(values), ...minMax(values), n: values.length };
}

/**
 * Groups runs, given in the order they ran, into consecutive pairs. Each pair
 * must hold exactly one on and one off run (on-off or off-on). Throws
 * RangeError on an odd number of runs or a pair with two runs of one mode.
 */
export function pairInterleaved(runs: readonly BenchRun[]): RunPair[] {
  if (runs.length % 2 !== 0) {
    throw new RangeError(`interleaved runs must come in on/off pairs; got ${runs.length} runs`);
  }
  const pairs: RunPair[] = [];
  for (let first = 0; first < runs.length; first += 2) {
    const a = runs[first] as BenchRun;
    const b = runs[first + 1] as BenchRun;
    const index = first / 2;
    if (a.mode === b.mode) {
      throw new RangeError(`pair ${index} has two "${a.mode}" runs; expected one on and one off`);
    }
    pairs.push(a.mode === 'on' ? { index, on: a, off: b } : { index, on: b, off: a });
  }
  return pairs;
}

/**
 * on/off of the raw metric for every pair whose two halves were both kept, in
 * pair order. A pair with a discarded half is left out. Throws RangeError if a
 * kept value is negative or not finite, or an off value is 0 (ratio undefined:
 * a run that measured nothing should have been discarded).
 */
export function pairRatios(pairs: readonly RunPair[]): number[] {
  const ratios: number[] = [];
  for (const pair of pairs) {
    if (isDiscarded(pair.on) || isDiscarded(pair.off)) {
      continue;
    }
    assertMeasurement(pair.on.value, `pair ${pair.index} on value`);
    assertMeasurement(pair.off.value, `pair ${pair.index} off value`);
    if (pair.off.value === 0) {
      throw new RangeError(`pair ${pair.index} off value is 0; on/off ratio is undefined`);
    }
    ratios.push(pair.on.value / pair.off.value);
  }
  return ratios;
}

/** win / lose / even for an on/off ratio of a metric with the given direction. */
export function verdictFor(
  ratio: number | null,
  direction: Direction,
  evenTolerance: number = DEFAULT_EVEN_TOLERANCE,
): Verdict {
  if (ratio === null) {
    return 'no-data';
  }
  if (Math.abs(ratio - 1) <= evenTolerance) {
    return 'even';
  }
  const onIsHigher = ratio > 1;
  return onIsHigher === (direction === 'higher-is-better') ? 'win' : 'lose';
}

function keptValues(pairs: readonly RunPair[], mode: BypassMode): number[] {
  const values: number[] = [];
  for (const pair of pairs) {
    const run = pair[mode];
    if (!isDiscarded(run)) {
      assertMeasurement(run.value, `pair ${pair.index} ${mode} value`);
      values.push(run.value);
    }
  }
  return values;
}

function discardedRecords(pairs: readonly RunPair[]): DiscardedRunRecord[] {
  const records: DiscardedRunRecord[] = [];
  for (const pair of pairs) {
    for (const run of [pair.on, pair.off]) {
      if (isDiscarded(run)) {
        const base = { pairIndex: pair.index, mode: run.mode, reason: run.discardReason };
        records.push(run.value === undefined ? base : { ...base, value: run.value });
      }
    }
  }
  return records;
}

function summarizeReference(reference: ReferenceSeries, off: ValueStats | null): ReferenceSummary | null {
  for (const value of reference.values) {
    assertMeasurement(value, `${reference.label} reference value`);
  }
  const stats = valueStats(reference.values);
  if (stats === null) {
    return null;
  }
  const ratioToOff = off === null || off.median === 0 ? null : stats.median / off.median;
  return { label: reference.label, ...stats, ratioToOff };
}

/** Summarizes one workload metric from its interleaved runs. */
export function summarize(series: WorkloadSeries, options: SummarizeOptions = {}): WorkloadSummary {
  const pairs = pairInterleaved(series.runs);
  const ratios = pairRatios(pairs);
  const off = valueStats(keptValues(pairs, 'off'));
  const ratioStats = valueStats(ratios);
  const ratioMedian = ratioStats?.median ?? null;
  const evenTolerance = options.evenTolerance ?? DEFAULT_EVEN_TOLERANCE;
  return {
    workload: series.workload,
    metric: series.metric,
    unit: series.unit,
    direction: series.direction,
    on: valueStats(keptValues(pairs, 'on')),
    off,
    ratios,
    ratioMedian,
    ratioMin: ratioStats?.min ?? null,
    ratioMax: ratioStats?.max ?? null,
    pairsUsed: ratios.length,
    pairsTotal: pairs.length,
    verdict: verdictFor(ratioMedian, series.direction, evenTolerance),
    evenTolerance,
    discarded: discardedRecords(pairs),
    reference: series.reference === undefined ? null : summarizeReference(series.reference, off),
  };
}
