/**
 * The bench report as people read it (src/bench/render.ts), on a fixture: a copy of the published
 * f672fef report (test/fixtures/bench/report-f672fef.json) and its text (report-f672fef.txt, the
 * published bench.txt plus the policy line that report predates).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { renderBenchReport, renderBenchSvg, renderOnRunBytes, renderReferenceChecks } from '../src/bench/render.js';
import type { BenchReport } from '../src/bench/report.js';

// Tests run from dist/test/; fixtures stay in the source tree.
const fixture = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/bench/${name}`, import.meta.url), 'utf8');
const published = JSON.parse(fixture('report-f672fef.json')) as BenchReport;
const real: BenchReport = {
  ...published,
  settings: { ...published.settings, policy: '(not recorded by this report; set by the test)' },
};

test('renderBenchReport on a real report: settings, the main table, where the bytes went, the reference check', () => {
  assert.equal(renderBenchReport(real), fixture('report-f672fef.txt'));
});

test('renderBenchReport lists failed reference runs, skipped workloads and cleanup problems only when there are some', () => {
  const text = renderBenchReport({
    ...real,
    references: [
      ...real.references.filter((r) => r.error === undefined),
      { workload: 'crr', pair: 0, kind: 'af_unix', command: 'sbload', values: {}, error: 'Error: boom' },
    ],
    settings: {
      ...real.settings,
      skipped: [{ workload: 'crr', reason: 'sbload not installed' }],
      referencesSkipped: [{ workload: 'iperf3-1K', reason: 'sbload not installed' }],
    },
    cleanupProblems: ['cgroup /sys/fs/cgroup/unified/x: EBUSY'],
  });
  assert.match(text, /\nReference runs that failed \(not used\):\n  crr, pair 1, af_unix: Error: boom\n/);
  assert.match(
    text,
    /\nSkipped:\n  crr: sbload not installed\n  iperf3-1K \(AF_UNIX reference\): sbload not installed\n/,
  );
  assert.match(text, /\nCleanup problems:\n  cgroup \/sys\/fs\/cgroup\/unified\/x: EBUSY\n$/);
  const clean = renderBenchReport({ ...real, references: real.references.filter((r) => r.error === undefined) });
  assert.doesNotMatch(clean, /Reference runs that failed|Skipped:|Cleanup problems:/);
});

test('renderOnRunBytes: the share range, flow-control switches, short connections and senders that left, only where present', () => {
  const text = renderOnRunBytes([
    {
      workload: 'a',
      title: 'alpha',
      runs: 3,
      redirectedShare: { median: 0.5, min: 0.25, max: 0.75 },
      flowToTcpMedian: 2,
      shortSkippedShare: 0,
      socketsLeftMedian: 1,
    },
    {
      workload: 'b',
      title: 'beta longer',
      runs: 3,
      redirectedShare: { median: 1, min: 1, max: 1 },
      flowToTcpMedian: 0,
      shortSkippedShare: 0.5,
    },
    {
      workload: 'c',
      title: 'gamma',
      runs: 0,
      redirectedShare: null,
      flowToTcpMedian: null,
      shortSkippedShare: null,
    },
  ]);
  assert.equal(
    text,
    'Bytes of kept ON runs that went socket to socket (the rest went by TCP under flow control):\n' +
      '  alpha        50.0% (25.0%-75.0%), 2 switches to TCP per run (median); 1 socket(s) per run left the sockhash (a small-write sender, then its receiver), their later bytes by plain TCP (not in the share)\n' +
      '  beta longer  100.0%; 50.0% of its sockets left on TCP as short connections (median)\n',
  );
  assert.equal(renderOnRunBytes([]), '');
  assert.equal(renderReferenceChecks([]), '');
});

test('renderBenchSvg titles the chart with the machine and the settings', () => {
  assert.match(
    renderBenchSvg(real),
    /<text class="title"[^>]*>sockbypass on\/off \(Linux 6\.18\.44-fc-v782, 2 CPUs, 3 pairs x 3 s\)<\/text>/,
  );
});
