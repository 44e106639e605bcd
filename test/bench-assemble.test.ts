/**
 * From a bench's records to its report (src/bench/assemble.ts): fed the runs and reference runs of a
 * real report (test/fixtures/bench/report-f672fef.json), it rebuilds every figure that report published.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { assembleReport } from '../src/bench/assemble.js';
import { planBench } from '../src/bench/plan.js';
import type { BenchReport } from '../src/bench/report.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/bench/${name}`, import.meta.url), 'utf8');
const published = JSON.parse(fixture('report-f672fef.json')) as BenchReport;
const ALL_TOOLS = {
  iperf3: '/x/iperf3',
  sockperf: '/x/sockperf',
  tcpdump: '/x/tcpdump',
  sbload: '/x/sbload',
  ip: '/x/ip',
  nsenter: '/x/nsenter',
  iptables: '/x/iptables',
  haproxy: '/x/haproxy',
};
/** The fixture predates the outside-veth rows: plan exactly the workloads it ran. */
const PUBLISHED_PLAN = { only: published.settings.workloads.map((w) => w.id) };

test('assembleReport rebuilds the published figures from the published runs', () => {
  const report = assembleReport({
    plan: planBench(PUBLISHED_PLAN, ALL_TOOLS),
    commandLine: published.commandLine,
    startedAt: new Date(published.startedAt),
    finishedAt: new Date(published.finishedAt),
    machine: published.machine,
    policy: 'the policy, as formatPolicy words it',
    thresholds: published.settings.thresholds,
    cgroup: published.settings.cgroup,
    pinDir: published.settings.pinDir,
    runs: published.runs,
    references: published.references,
    cleanupProblems: [],
    processes: published.processes,
  });
  // The fixture predates `leftAlone` (the outside-veth rows), added after `onRunBytes`.
  const publishedKeys = Object.keys(published);
  publishedKeys.splice(publishedKeys.indexOf('onRunBytes') + 1, 0, 'leftAlone');
  assert.deepEqual(Object.keys(report), publishedKeys, 'the JSON keeps its field order');
  assert.deepEqual(report.leftAlone, [], 'no outside-veth rows in that run');
  for (const field of ['durationSeconds', 'summaries', 'referenceChecks', 'discarded', 'onRunBytes'] as const) {
    assert.deepEqual(report[field], published[field], field);
  }
  const { policy, ...settings } = report.settings;
  assert.equal(policy, 'the policy, as formatPolicy words it');
  const { policy: _predates, ...publishedSettings } = published.settings;
  assert.deepEqual(settings, publishedSettings);
});

test('assembleReport lists every discarded run with its reason, and no kept one', () => {
  const [first, ...rest] = published.runs;
  assert.ok(first);
  const discarded = { ...first, kept: false, discardReason: 'only 0 sockets were accelerated' };
  const report = assembleReport({
    plan: planBench({}, ALL_TOOLS),
    commandLine: 'x',
    startedAt: new Date(0),
    finishedAt: new Date(1500),
    machine: published.machine,
    policy: 'the policy, as formatPolicy words it',
    thresholds: published.settings.thresholds,
    cgroup: 'c',
    pinDir: 'p',
    runs: [discarded, ...rest],
    references: [],
    cleanupProblems: ['x'],
    processes: [],
  });
  assert.equal(report.durationSeconds, 1.5);
  assert.deepEqual(report.discarded, [
    {
      index: first.index,
      workload: first.workload,
      title: first.title,
      pair: first.pair,
      mode: first.mode,
      reason: 'only 0 sockets were accelerated',
      values: first.values,
    },
  ]);
  assert.deepEqual(report.referenceChecks, [], 'no reference runs, no reference checks');
  assert.deepEqual(report.cleanupProblems, ['x']);
});
