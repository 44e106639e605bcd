/**
 * The demo's words for a newcomer, checked on a fixture: a copy of a real bench report
 * (test/fixtures/bench/report-f672fef.json, the full run published at f672fef) and variants of it
 * made here, one per wording branch. Publishing a new run does not touch these tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { changeText, renderDemoSummary } from '../src/demo.js';
import type { BenchReport } from '../src/bench/report.js';
import type { WorkloadSummary } from '../src/bench/stats.js';

// Tests run from dist/test/; fixtures stay in the source tree.
const fixture = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/bench/${name}`, import.meta.url), 'utf8');
const real = JSON.parse(fixture('report-f672fef.json')) as BenchReport;

const PACKETS = ['lo packets, iperf3 -n 2G -l 128K', 'packets on lo'] as const;
const TINY_WRITES = ['iperf3 -l 64', 'throughput'] as const;

function summary(report: BenchReport, [workload, metric]: readonly [string, string]): WorkloadSummary {
  const s = report.summaries.find((x) => x.workload === workload && x.metric === metric);
  assert.ok(s, `${workload} / ${metric} in the report`);
  return s;
}

/** The report with one summary replaced by `change(summary)`. */
function withSummary(
  report: BenchReport,
  row: readonly [string, string],
  change: (s: WorkloadSummary) => WorkloadSummary,
): BenchReport {
  const old = summary(report, row);
  return { ...report, summaries: report.summaries.map((s) => (s === old ? change(s) : s)) };
}

test('the fixture is the real report the wording branches start from', () => {
  assert.equal(real.schema, 'sockbypass-bench/1');
  assert.equal(summary(real, TINY_WRITES).verdict, 'lose');
  assert.equal(Math.round(summary(real, PACKETS).on?.median ?? NaN), 13);
  assert.deepEqual(real.discarded, []);
  assert.deepEqual(real.cleanupProblems, []);
});

test('changeText words a ratio the way its metric reads', () => {
  const bulk = summary(real, ['iperf3 -l 128K', 'throughput']);
  assert.equal(changeText(bulk), '2.74x faster');
  assert.equal(changeText(summary(real, TINY_WRITES)), '2.38x slower');
  assert.equal(changeText(summary(real, ['sockperf pp -m 64', 'p50 latency'])), '1.15x lower (better)');
  assert.equal(changeText(summary(real, ['sockperf pp -m 64', 'p99.9 latency'])), '1.04x higher (worse)');
  assert.equal(changeText(summary(real, PACKETS)), '99.98% fewer');
  assert.equal(changeText({ ...summary(real, PACKETS), ratioMedian: 1.5 }), '1.50x as many');
  assert.equal(changeText({ ...bulk, ratioMedian: null }), 'not measured (runs discarded, see above)');
  assert.equal(changeText({ ...bulk, verdict: 'even', ratioMedian: 1.01 }), 'about the same (1.01x)');
});

test('renderDemoSummary on the real report: the proof, the table, the tiny-writes note, the cleanup line', () => {
  assert.equal(renderDemoSummary(real), fixture('report-f672fef.demo.txt'));
});

test('renderDemoSummary: tiny writes that do not lose get no note', () => {
  for (const verdict of ['win', 'even'] as const) {
    const text = renderDemoSummary(
      withSummary(real, TINY_WRITES, (s) => ({ ...s, verdict, ratioMedian: verdict === 'win' ? 1.2 : 1.01 })),
    );
    assert.doesNotMatch(text, /Streams of tiny writes/);
    assert.doesNotMatch(text, /--small-write/);
    assert.match(
      text,
      verdict === 'win'
        ? /throughput, iperf3 64 B writes .* 1\.20x faster/
        : /throughput, iperf3 64 B writes .* about the same \(1\.01x\)/,
    );
  }
  assert.match(renderDemoSummary(real), /Streams of tiny writes were slower with the bypass[\s\S]*--small-write/);
});

test('renderDemoSummary: packets beyond the handshakes are put down to flow control', () => {
  const text = renderDemoSummary(
    withSummary(real, PACKETS, (s) => ({
      ...s,
      on: s.on && { ...s.on, median: 500 },
      ratioMedian: 500 / (s.off?.median ?? NaN),
    })),
  );
  assert.match(
    text,
    /tcpdump saw 65446 TCP packets on lo\nwith the bypass off and 500 with it on \(99\.24% fewer\): more than the 40 or so/,
  );
  assert.match(text, /part of the data went by TCP: flow control/);
  assert.doesNotMatch(text, /only the handshakes and teardowns/);
});

test('renderDemoSummary: a packet count whose runs were all discarded is said to be missing, not shown', () => {
  const text = renderDemoSummary(
    withSummary(real, PACKETS, (s) => ({ ...s, on: null, off: null, ratioMedian: null, verdict: 'no-data' })),
  );
  assert.match(text, /^The packet count could not be shown: its runs were discarded/);
  assert.doesNotMatch(text, /tcpdump saw/);
  assert.match(text, /TCP packets on lo to move 2 GiB +n\/a +n\/a +not measured/);
});

test('renderDemoSummary lists discarded runs and cleanup problems instead of the all-clean line', () => {
  const text = renderDemoSummary({
    ...real,
    discarded: [
      {
        index: 3,
        workload: 'iperf3-64',
        title: 'iperf3 -l 64',
        pair: 1,
        mode: 'on',
        reason: 'only 0 sockets were accelerated',
        values: {},
      },
    ],
    cleanupProblems: ['cgroup /sys/fs/cgroup/unified/sockbypass-bench-1: EBUSY'],
  });
  assert.match(
    text,
    /Runs discarded because they were not what they claimed \(not used above\):\n  iperf3 -l 64, bypass on: only 0 sockets were accelerated/,
  );
  assert.match(text, /Cleanup problems:\n  cgroup \/sys\/fs\/cgroup\/unified\/sockbypass-bench-1: EBUSY/);
  assert.doesNotMatch(text, /sockbypass is unloaded again/);
});
