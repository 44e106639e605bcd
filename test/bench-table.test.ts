import assert from 'node:assert/strict';
import { test } from 'node:test';
import { summarize, type BenchRun, type WorkloadSummary } from '../src/bench/stats.js';
import { renderBenchTable } from '../src/bench/table.js';

const on = (value: number): BenchRun => ({ mode: 'on', value });
const off = (value: number): BenchRun => ({ mode: 'off', value });

function sampleSummaries(): WorkloadSummary[] {
  return [
    summarize({
      workload: 'iperf3 1x128K',
      metric: 'throughput',
      unit: 'bit/s',
      direction: 'higher-is-better',
      runs: [
        on(30e9),
        off(20e9),
        on(33e9),
        off(22e9),
        { mode: 'on', value: 1e9, discardReason: 'counters did not move' },
        off(21e9),
      ],
      reference: { label: 'AF_UNIX', values: [40e9, 42e9] },
    }),
    summarize({
      workload: 'sockperf 64B',
      metric: 'p99',
      unit: 'us',
      direction: 'lower-is-better',
      runs: [on(12), off(10), on(13), off(10)],
    }),
    summarize({
      workload: 'crr',
      metric: 'connection rate',
      unit: 'conn/s',
      direction: 'higher-is-better',
      runs: [on(25100), off(25000), off(25000), on(24900)],
    }),
    summarize({
      workload: 'lo packets, bulk',
      metric: 'packets on lo',
      unit: 'packets',
      direction: 'lower-is-better',
      runs: [on(0), off(51234), on(3), off(50000)],
    }),
  ];
}

test('renders the exact table, legend and discarded runs', () => {
  const expected = [
    'Workload          Metric                     On median   On min-max  Off median  Off min-max  On/off  Ratio min-max  Verdict  Pairs  AF_UNIX (vs off)',
    '----------------  -------------------------  ---------  -----------  ----------  -----------  ------  -------------  -------  -----  ----------------',
    'iperf3 1x128K     throughput (Gbit/s)            31.50  30.00-33.00       21.00  20.00-22.00   1.50x      1.50-1.50  win        2/3     41.00 (1.95x)',
    'sockperf 64B      p99 (us)                       12.50  12.00-13.00       10.00  10.00-10.00   1.25x      1.20-1.30  lose       2/2                 -',
    'crr               connection rate (kconn/s)      25.00  24.90-25.10       25.00  25.00-25.00   1.00x      1.00-1.00  even       2/2                 -',
    'lo packets, bulk  packets on lo (packets)            2          0-3       50617  50000-51234   0.00x      0.00-0.00  win        2/2                 -',
    '',
  ];
  const text = renderBenchTable(sampleSummaries());
  const lines = text.split('\n');
  assert.deepEqual(lines.slice(0, 7), expected);
  assert.ok(text.includes('Discarded runs (not used in any statistic):'));
  assert.ok(text.includes('  iperf3 1x128K / throughput, pair 3, bypass on: counters did not move'));
  assert.ok(text.includes('Verdict "even" = on/off within 3% of 1.00x.'));
  assert.ok(text.includes('one-way (half the round trip)'));
});

test('columns are aligned: every cell of a column starts at the same offset', () => {
  const lines = renderBenchTable(sampleSummaries()).split('\n');
  const rule = lines[1] ?? '';
  const starts = [...rule.matchAll(/-+/g)].map((match) => match.index ?? -1);
  assert.equal(starts.length, 11);
  for (const line of lines.slice(2, 6)) {
    for (const [column, start] of starts.entries()) {
      if (column === 0) continue;
      assert.equal(line[start - 1], ' ', `column ${column} of ${JSON.stringify(line)} is not separated`);
      assert.equal(line[start - 2], ' ', `column ${column} of ${JSON.stringify(line)} is not separated`);
    }
  }
});

test('a workload with no valid pair shows n/a and dashes, not NaN', () => {
  const summary = summarize({
    workload: 'iperf3 1x64B',
    metric: 'throughput',
    unit: 'bit/s',
    direction: 'higher-is-better',
    runs: [{ mode: 'on', discardReason: 'iperf3: unable to connect' }, off(1e8)],
  });
  const text = renderBenchTable([summary]);
  assert.ok(!text.includes('NaN'));
  const row = text.split('\n')[2] ?? '';
  assert.match(
    row,
    /^iperf3 1x64B\s+throughput \(Mbit\/s\)\s+-\s+-\s+100\.0\s+100\.0-100\.0\s+-\s+-\s+n\/a\s+0\/1\s+-$/,
  );
});

test('no discarded runs, no discarded section', () => {
  const text = renderBenchTable(sampleSummaries().slice(1));
  assert.ok(!text.includes('Discarded runs'));
});
