/**
 * The demo's words for a newcomer, checked on the published bench report (docs/bench/bench.json, a
 * real run): the proof sentence, the table, and the note on tiny writes shown only when that row loses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { changeText, renderDemoSummary } from '../src/demo.js';
import { PACKAGE_ROOT } from '../src/core/paths.js';
import type { BenchReport } from '../src/bench/runner.js';
import type { WorkloadSummary } from '../src/bench/stats.js';

const published = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'docs', 'bench', 'bench.json'), 'utf8')) as BenchReport;

function summary(workload: string, metric: string): WorkloadSummary {
  const s = published.summaries.find((x) => x.workload === workload && x.metric === metric);
  assert.ok(s, `${workload} / ${metric} in the published report`);
  return s;
}

test('changeText words a ratio the way its metric reads', () => {
  const bulk = summary('iperf3 -l 128K', 'throughput');
  assert.match(changeText(bulk), /^\d+\.\d\dx faster$/);
  assert.match(changeText(summary('iperf3 -l 64', 'throughput')), /^\d+\.\d\dx slower$/);
  assert.match(changeText(summary('sockperf pp -m 64', 'p50 latency')), /^\d+\.\d\dx lower \(better\)$/);
  assert.match(changeText(summary('lo packets, iperf3 -n 2G -l 128K', 'packets on lo')), /^\d+\.\d\d% fewer$/);
  assert.equal(changeText({ ...bulk, ratioMedian: null }), 'not measured (runs discarded, see above)');
  assert.match(changeText({ ...bulk, verdict: 'even', ratioMedian: 1.01 }), /^about the same \(1\.01x\)$/);
});

test('renderDemoSummary: the proof from the packet counts, the table, and the tiny-writes note only when that row loses', () => {
  const text = renderDemoSummary(published);
  const packets = summary('lo packets, iperf3 -n 2G -l 128K', 'packets on lo');
  assert.ok(text.includes(`tcpdump saw ${Math.round(packets.off?.median ?? NaN)} TCP packets on lo`), text);
  assert.match(text, /only the handshakes and teardowns/);
  assert.match(text, /throughput, iperf3 64 B writes .* slower/);
  assert.match(text, /Streams of tiny writes are slower with the bypass/);
  assert.match(text, /--small-write 4096/);

  const winning: BenchReport = {
    ...published,
    summaries: published.summaries.map((s) => (s.workload === 'iperf3 -l 64' ? { ...s, verdict: 'win' as const, ratioMedian: 1.2 } : s)),
  };
  assert.doesNotMatch(renderDemoSummary(winning), /Streams of tiny writes/);
});
