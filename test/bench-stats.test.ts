import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_EVEN_TOLERANCE,
  median,
  minMax,
  pairInterleaved,
  pairRatios,
  summarize,
  verdictFor,
  type BenchRun,
  type WorkloadSeries,
} from '../src/bench/stats.js';

const on = (value: number): BenchRun => ({ mode: 'on', value });
const off = (value: number): BenchRun => ({ mode: 'off', value });

test('median of an odd count is the middle value', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([7]), 7);
  assert.equal(median([5, 9, 1, 7, 3]), 5);
});

test('median of an even count is the mean of the two middle values', () => {
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([10, 20]), 15);
});

test('median does not reorder its input and sorts numerically', () => {
  const values = [10, 9, 100];
  assert.equal(median(values), 10);
  assert.deepEqual(values, [10, 9, 100]);
});

test('median and minMax of an empty list throw', () => {
  assert.throws(() => median([]), RangeError);
  assert.throws(() => minMax([]), RangeError);
});

test('minMax', () => {
  assert.deepEqual(minMax([3, -1, 8, 2]), { min: -1, max: 8 });
  assert.deepEqual(minMax([4]), { min: 4, max: 4 });
});

test('pairInterleaved pairs consecutive runs, in either order within a pair', () => {
  const a = on(1);
  const b = off(2);
  const c = off(3);
  const d = on(4);
  assert.deepEqual(pairInterleaved([a, b, c, d]), [
    { index: 0, on: a, off: b },
    { index: 1, on: d, off: c },
  ]);
});

test('pairInterleaved refuses an odd count and a pair of one mode', () => {
  assert.throws(() => pairInterleaved([on(1), off(1), on(1)]), /3 runs/);
  assert.throws(() => pairInterleaved([on(1), on(1)]), /two "on" runs/);
});

test('ratio is on/off of the raw metric for both directions', () => {
  // Throughput: on 20 Gbit/s, off 10 Gbit/s -> 2.0 (higher is better, a win).
  assert.deepEqual(pairRatios(pairInterleaved([on(20e9), off(10e9)])), [2]);
  // Latency: on 5 us, off 10 us -> 0.5 (lower is better, also a win).
  assert.deepEqual(pairRatios(pairInterleaved([on(5), off(10)])), [0.5]);
});

test("verdict orientation follows the metric's direction", () => {
  assert.equal(verdictFor(2, 'higher-is-better'), 'win');
  assert.equal(verdictFor(0.5, 'higher-is-better'), 'lose');
  assert.equal(verdictFor(0.5, 'lower-is-better'), 'win');
  assert.equal(verdictFor(2, 'lower-is-better'), 'lose');
  assert.equal(verdictFor(null, 'lower-is-better'), 'no-data');
});

test('ratios within the tolerance are even', () => {
  assert.equal(DEFAULT_EVEN_TOLERANCE, 0.03);
  assert.equal(verdictFor(1.02, 'higher-is-better'), 'even');
  assert.equal(verdictFor(0.98, 'lower-is-better'), 'even');
  assert.equal(verdictFor(1.02, 'higher-is-better', 0.01), 'win');
  assert.equal(verdictFor(1, 'higher-is-better', 0), 'even');
});

test('pair ratios skip a pair with a discarded half', () => {
  const pairs = pairInterleaved([
    on(30),
    off(10),
    { mode: 'on', value: 11, discardReason: 'bypass counters did not move' },
    off(10),
    on(20),
    { mode: 'off', discardReason: 'iperf3: unable to connect' },
  ]);
  assert.deepEqual(pairRatios(pairs), [3]);
});

test('an off value of 0 makes the ratio undefined and throws; NaN values throw', () => {
  assert.throws(() => pairRatios(pairInterleaved([on(5), off(0)])), /off value is 0/);
  assert.throws(() => pairRatios(pairInterleaved([on(Number.NaN), off(1)])), RangeError);
});

const throughput = (runs: readonly BenchRun[]): WorkloadSeries => ({
  workload: 'iperf3 1x64B',
  metric: 'throughput',
  unit: 'bit/s',
  direction: 'higher-is-better',
  runs,
});

test('summarize: a discarded run is listed with its reason and never averaged in', () => {
  const summary = summarize(
    throughput([
      on(20),
      off(10),
      // Claimed on, but the bypass did not engage: its huge value must not move the on median.
      { mode: 'on', value: 1000, discardReason: 'bypass on but sockmap counters did not move' },
      off(12),
      on(30),
      off(10),
      on(24),
      off(12),
    ]),
  );
  assert.deepEqual(summary.on, { median: 24, min: 20, max: 30, n: 3 });
  // The off half of the broken pair is a valid run and counts for the off statistics.
  assert.deepEqual(summary.off, { median: 11, min: 10, max: 12, n: 4 });
  // Ratios from pairs 0, 2 and 3 only: 20/10, 30/10, 24/12.
  assert.deepEqual(summary.ratios, [2, 3, 2]);
  assert.equal(summary.ratioMedian, 2);
  assert.equal(summary.ratioMin, 2);
  assert.equal(summary.ratioMax, 3);
  assert.equal(summary.pairsUsed, 3);
  assert.equal(summary.pairsTotal, 4);
  assert.equal(summary.verdict, 'win');
  assert.equal(summary.evenTolerance, 0.03);
  assert.deepEqual(summary.discarded, [
    { pairIndex: 1, mode: 'on', value: 1000, reason: 'bypass on but sockmap counters did not move' },
  ]);
  assert.equal(summary.reference, null);
});

test('summarize: the ratio median is the median of per-pair ratios, not on median / off median', () => {
  const summary = summarize(throughput([on(10), off(10), on(30), off(10), on(90), off(100)]));
  // Ratios 1, 3, 0.9 -> median 1; on median / off median would be 30 / 10 = 3.
  assert.deepEqual(summary.ratios, [1, 3, 0.9]);
  assert.equal(summary.ratioMedian, 1);
  assert.equal(summary.verdict, 'even');
});

test('summarize: lower-is-better latency with an AF_UNIX reference', () => {
  const summary = summarize({
    workload: 'sockperf 64B',
    metric: 'p99',
    unit: 'us',
    direction: 'lower-is-better',
    runs: [on(8), off(10), off(12), on(6), on(7), off(10)],
    reference: { label: 'AF_UNIX', values: [5, 4, 6] },
  });
  assert.deepEqual(summary.ratios, [0.8, 0.5, 0.7]);
  assert.equal(summary.ratioMedian, 0.7);
  assert.equal(summary.verdict, 'win');
  assert.deepEqual(summary.reference, { label: 'AF_UNIX', median: 5, min: 4, max: 6, n: 3, ratioToOff: 0.5 });
});

test('summarize: with every pair broken there is no ratio and no verdict', () => {
  const summary = summarize(
    throughput([
      { mode: 'on', discardReason: 'parse error' },
      off(10),
      off(10),
      { mode: 'on', discardReason: 'counters flat' },
    ]),
  );
  assert.equal(summary.on, null);
  assert.deepEqual(summary.off, { median: 10, min: 10, max: 10, n: 2 });
  assert.deepEqual(summary.ratios, []);
  assert.equal(summary.ratioMedian, null);
  assert.equal(summary.verdict, 'no-data');
  assert.equal(summary.pairsUsed, 0);
  assert.equal(summary.discarded.length, 2);
});

test('summarize honours a custom even tolerance', () => {
  const summary = summarize(throughput([on(105), off(100)]), { evenTolerance: 0.1 });
  assert.equal(summary.verdict, 'even');
  assert.equal(summary.evenTolerance, 0.1);
});
