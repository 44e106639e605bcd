/**
 * The outside-veth rows (issue 11, "do no harm"): their inverted verification
 * (an ON run must show that nothing joined the sockhash), how --only and the
 * plan pick them, their summary and its text (unit tests on fabricated
 * counters), and a privileged smoke test that runs one row for real (a server
 * in a namespace outside the cgroup, the client inside it) and checks that
 * nothing is left behind, also when interrupted by SIGINT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { requirePrivileged, requireTools } from './support/privileged.js';
import { waitFor } from './support/sandbox.js';
import { leftAloneSummaries } from '../src/bench/assemble.js';
import { OUTSIDE_VETH_WORKLOADS } from '../src/bench/outside-workloads.js';
import { planBench } from '../src/bench/plan.js';
import { renderLeftAlone } from '../src/bench/render.js';
import type { RunRecord } from '../src/bench/report.js';
import { runBench } from '../src/bench/runner.js';
import { expectsLeftAlone, verifyOnRun, type LeftAloneExpectation, type OnObservation } from '../src/bench/verify.js';
import { findTools, selectWorkloads, WORKLOADS } from '../src/bench/workloads.js';
import { zeroCounters, type Counters } from '../src/core/layout.js';
import { benchLeftovers, startBenchCli } from './support/bench-cli.js';
import { netnsNames } from './support/netns.js';

const CGROUP = '/sys/fs/cgroup/unified/sockbypass-bench-1';
const OUTSIDE_IDS = ['outside-veth-128K', 'outside-veth-1K', 'outside-veth-pingpong-64', 'outside-veth-crr'];
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

function counters(partial: Partial<Counters>): Counters {
  return { ...zeroCounters(), ...partial };
}

/** An ON iperf3 run to a server outside the cgroup as it should be: two client sockets seen and left alone, nothing else. */
function leftAloneOn(delta: Partial<Counters> = {}): OnObservation {
  return { loaded: true, attachedCgroup: CGROUP, benchCgroup: CGROUP, delta: counters({ leftNoPeer: 2, ...delta }) };
}
const IPERF3_OUTSIDE: LeftAloneExpectation = { leftAlone: true, minConnections: 2 };

test('left alone: an ON run that inserted nothing and counted every connection as having no peer here is kept', () => {
  assert.deepEqual(verifyOnRun(leftAloneOn(), IPERF3_OUTSIDE), []);
  assert.deepEqual(verifyOnRun(leftAloneOn({ leftNoPeer: 10_028 }), { leftAlone: true, minConnections: 10_028 }), []);
  assert.equal(expectsLeftAlone(IPERF3_OUTSIDE), true);
  assert.equal(expectsLeftAlone({ minSockets: 4, payloadBytes: 1 }), false);
});

test('left alone: an ON run in which any socket joined the sockhash is refused', () => {
  const joined = verifyOnRun(leftAloneOn({ socketsInserted: 1, leftNoPeer: 1 }), IPERF3_OUTSIDE);
  assert.match(
    joined.join(' | '),
    /^1 sockets joined the sockhash \(0 pairs\), though the peer is outside the cgroup \| only 1 sockets were left alone .* at least 2 connections$/,
  );
  assert.match(
    verifyOnRun(leftAloneOn({ pairsJoined: 1 }), IPERF3_OUTSIDE).join(),
    /0 sockets joined the sockhash \(1 pairs\)/,
  );
  assert.match(
    verifyOnRun(leftAloneOn({ insertMapFull: 2 }), IPERF3_OUTSIDE).join(),
    /2 sockets tried to join the sockhash \(map full 2, exists 0, other 0\)/,
  );
  // sk_msg runs only for sockets in the sockhash: any send it saw means one was there.
  assert.match(
    verifyOnRun(leftAloneOn({ redirectMisses: 3, bytesPassed: 192 }), IPERF3_OUTSIDE).join(),
    /sk_msg saw 3 sends \(redirected 0, flow control 0, missed 3\): some socket was in the sockhash/,
  );
  assert.match(verifyOnRun(leftAloneOn({ flowMessages: 1 }), IPERF3_OUTSIDE).join(), /sk_msg saw 1 sends/);
});

test('left alone: the connections must have been seen and left for having no peer, not skipped by policy or unseen', () => {
  // Nothing counted at all: the program never saw the connections (not the run it claims).
  assert.match(
    verifyOnRun(leftAloneOn({ leftNoPeer: 0 }), IPERF3_OUTSIDE).join(),
    /only 0 sockets were left alone for having no peer here \(left_no_peer\); the workload opened at least 2/,
  );
  // Even a workload that reports no connection needs one left alone: leftNoPeer > 0.
  assert.match(
    verifyOnRun(leftAloneOn({ leftNoPeer: 0 }), { leftAlone: true, minConnections: 0 }).join(),
    /at least 1 connections/,
  );
  const byPolicy = verifyOnRun(leftAloneOn({ leftNoPeer: 0, policySkipped: 2 }), IPERF3_OUTSIDE);
  assert.equal(byPolicy.length, 2, byPolicy.join(' | '));
  assert.match(byPolicy[0] ?? '', /2 sockets were skipped by policy: this row measures pairing, not the policy/);
});

test('left alone: the load checks still apply (loaded, and into the bench cgroup)', () => {
  assert.deepEqual(verifyOnRun({ ...leftAloneOn(), loaded: false }, IPERF3_OUTSIDE), [
    'bypass on claimed, but sockbypass was not loaded when the run started',
  ]);
  assert.match(
    verifyOnRun({ ...leftAloneOn(), attachedCgroup: '/sys/fs/cgroup/unified' }, IPERF3_OUTSIDE).join(),
    /not the bench cgroup/,
  );
});

test('--only: outside-veth-* and the group "outside" pick the four outside rows, in catalogue order; a pattern that matches nothing is an error', () => {
  assert.deepEqual(
    OUTSIDE_VETH_WORKLOADS.map((w) => w.id),
    OUTSIDE_IDS,
  );
  assert.deepEqual(
    selectWorkloads(['outside-veth-*']).map((w) => w.id),
    OUTSIDE_IDS,
  );
  assert.deepEqual(
    selectWorkloads(['outside']).map((w) => w.id),
    OUTSIDE_IDS,
  );
  assert.deepEqual(
    selectWorkloads(['OUTSIDE-VETH-*', 'crr']).map((w) => w.id),
    ['crr', ...OUTSIDE_IDS],
  );
  assert.deepEqual(
    selectWorkloads(['outside-veth-*-64']).map((w) => w.id),
    ['outside-veth-pingpong-64'],
  );
  // The pattern is a pattern of ids, not a regular expression: "." is a dot.
  assert.throws(() => selectWorkloads(['outside.veth-*']), /unknown workload "outside\.veth-\*"/);
  assert.throws(() => selectWorkloads(['nothing-*']), /unknown workload/);
});

test('the plan: outside rows are in the full bench, not in --quick; they have no reference; without ip or nsenter they are skipped', () => {
  const full = planBench({}, ALL_TOOLS);
  // After the same-host rows, before the nat rows.
  assert.deepEqual(
    full.workloads
      .map((w) => w.id)
      .filter((id) => id.startsWith('outside-') || id.startsWith('nat-'))
      .slice(0, 4),
    OUTSIDE_IDS,
  );
  assert.equal(full.workloads.length, WORKLOADS.length);
  assert.equal(
    planBench({ quick: true }, ALL_TOOLS).workloads.some((w) => w.group === 'outside'),
    false,
  );
  for (const w of OUTSIDE_VETH_WORKLOADS) {
    assert.equal(w.reference, undefined, w.id);
    assert.ok(w.needs.includes('ip') && w.needs.includes('nsenter'), w.id);
  }
  // Two runs per pair and nothing else: 4 rows x 5 pairs x 2, plus crr's 5 pairs x 2.
  assert.equal(planBench({ only: ['outside-veth-*', 'crr'], pairs: 5 }, ALL_TOOLS).totalSteps, 50);
  const noIp = planBench({ only: ['outside', 'crr'] }, { ...ALL_TOOLS, ip: undefined });
  assert.deepEqual(
    noIp.workloads.map((w) => w.id),
    ['crr'],
  );
  assert.deepEqual(
    noIp.skipped.map((s) => s.reason),
    ['ip not installed', 'ip not installed', 'ip not installed', 'ip not installed'],
  );
  const noNsenterNoSockperf = planBench(
    { only: ['outside-veth-pingpong-64'] },
    { ...ALL_TOOLS, nsenter: undefined, sockperf: undefined },
  );
  assert.deepEqual(noNsenterNoSockperf.skipped, [
    { workload: 'outside-veth-pingpong-64', reason: 'sockperf, nsenter not installed' },
  ]);
});

function onRun(index: number, workload: string, c: Partial<Counters>, discardReason?: string): RunRecord {
  return {
    index,
    workload,
    title: workload,
    pair: index,
    mode: 'on',
    positionInPair: 1,
    startedAt: new Date(0).toISOString(),
    elapsedSeconds: 1,
    values: { connectionsPerSecond: 1 },
    kept: discardReason === undefined,
    ...(discardReason === undefined ? {} : { discardReason }),
    counters: counters(c),
  };
}

test('leftAloneSummaries: sockets inserted over every ON run (refused ones too), left_no_peer over the kept ones; only outside rows', () => {
  const crr = OUTSIDE_VETH_WORKLOADS[3];
  assert.ok(crr);
  const runs = [
    onRun(1, crr.id, { leftNoPeer: 30_000 }),
    onRun(2, crr.id, { leftNoPeer: 31_000 }),
    onRun(3, crr.id, { leftNoPeer: 29_000, socketsInserted: 2 }, '2 sockets joined the sockhash'),
    onRun(4, crr.id, { leftNoPeer: 32_000 }),
    onRun(5, 'crr', { socketsInserted: 60_000 }),
  ];
  const same = WORKLOADS.find((w) => w.id === 'crr');
  assert.ok(same);
  const summaries = leftAloneSummaries([same, crr], runs);
  assert.deepEqual(summaries, [
    {
      workload: crr.id,
      title: crr.title,
      onRuns: 4,
      socketsInserted: 2,
      leftNoPeer: { median: 31_000, min: 30_000, max: 32_000 },
    },
  ]);
  const text = renderLeftAlone(summaries);
  assert.match(
    text,
    /^ON runs to a server outside the cgroup \(nothing may join the sockhash; a run that inserted anything is discarded\):\n/,
  );
  assert.match(
    text,
    /outside veth sbload crr 64 B  2 sockets joined in 4 ON runs; left alone for having no peer here: 31000 per kept ON run \(median, 30000-32000\)\n$/,
  );
  assert.equal(renderLeftAlone([]), '');
  assert.match(
    renderLeftAlone(leftAloneSummaries([crr], [])),
    /0 sockets joined in 0 ON runs; left alone for having no peer here: no kept ON run/,
  );
});

// ------------------------------------------------------------------ privileged

function needTools(t: import('node:test').TestContext): boolean {
  const tools = findTools();
  const missing = (['sbload', 'ip', 'nsenter'] as const).filter((name) => tools[name] === undefined);
  return requireTools(t, missing, 'make builds sbload; iproute2 and util-linux give ip and nsenter');
}

test('bench smoke: outside-veth-crr, one pair of 1 s: ON inserted nothing and left every connection alone, the server ran outside the cgroup, nothing left behind', async (t) => {
  if (!requirePrivileged(t) || !needTools(t)) return;
  const lines: string[] = [];
  const report = await runBench({
    only: ['outside-veth-crr'],
    pairs: 1,
    seconds: 1,
    handleSignals: false,
    progress: (text) => lines.push(text),
  });
  t.diagnostic(lines.join('').trim());
  assert.deepEqual(
    report.runs.map((r) => [r.mode, r.kept, r.discardReason]),
    [
      ['on', true, undefined],
      ['off', true, undefined],
    ],
  );
  const on = report.runs[0] as RunRecord;
  const connections = (on.detail as { connections?: number } | undefined)?.connections ?? 0;
  assert.ok(connections > 100, `the ON run made ${connections} connections`);
  assert.ok(on.counters, 'ON run has counters');
  assert.equal(on.counters.socketsInserted, 0);
  assert.equal(on.counters.pairsJoined, 0);
  assert.equal(
    on.counters.messagesRedirected + on.counters.redirectMisses + on.counters.flowMessages,
    0,
    'sk_msg saw no send',
  );
  assert.ok(
    on.counters.leftNoPeer >= connections,
    `left_no_peer ${on.counters.leftNoPeer} for ${connections} connections`,
  );
  assert.ok((report.runs[1]?.values.connectionsPerSecond ?? 0) > 0, 'the OFF run measured a rate');
  assert.deepEqual(
    report.leftAlone.map((s) => [s.workload, s.onRuns, s.socketsInserted]),
    [['outside-veth-crr', 1, 0]],
  );

  // The server ran in its own namespace outside the cgroup, the client in the other one inside it.
  const servers = report.processes.filter((p) => / crr --role server /.test(p.command));
  const clients = report.processes.filter((p) => / crr --role client /.test(p.command));
  assert.equal(servers.length, 2);
  assert.equal(clients.length, 2);
  const namespaces = new Set<string>();
  for (const p of [...servers, ...clients]) {
    const ns = /--net=\/run\/netns\/(\S+)/.exec(p.command)?.[1];
    assert.ok(ns, p.command);
    namespaces.add(ns);
  }
  assert.deepEqual([...namespaces].sort(), [
    `${report.settings.cgroup.split('/').pop()}-cli`,
    `${report.settings.cgroup.split('/').pop()}-srv`,
  ]);
  assert.ok(
    servers.every((p) => !p.inCgroup && p.command.includes('-srv --')),
    'servers outside the cgroup, in the server namespace',
  );
  assert.ok(
    clients.every((p) => p.inCgroup && p.command.includes('-cli --')),
    'clients inside the cgroup, in the client namespace',
  );

  assert.deepEqual(report.cleanupProblems, []);
  assert.equal(existsSync(report.settings.cgroup), false, 'bench cgroup removed');
  assert.equal(existsSync(report.settings.pinDir), false, 'bench pin folder removed');
  assert.deepEqual(benchLeftovers(process.pid), [], 'no cgroup, pin folder or namespace left');
});

test('bench CLI on an outside row interrupted by SIGINT mid-run exits 130 and leaves no namespace, cgroup or pin behind', async (t) => {
  if (!requirePrivileged(t) || !needTools(t)) return;
  const bench = startBenchCli(['--only', 'outside-veth-crr', '--pairs', '1', '--seconds', '5']);
  const { child, exited } = bench;
  const pid = bench.pid;
  try {
    await waitFor(() => /\[1\/2\] outside veth sbload crr 64 B on/.test(bench.stderr()), 20_000);
    // Mid-run: the namespaces exist (the client is connecting through them).
    await waitFor(() => netnsNames().some((n) => n.startsWith(`sockbypass-bench-${pid}`)), 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    process.kill(-pid, 'SIGINT');
    const code = await exited;
    assert.equal(code, 130, bench.stderr());
    assert.match(bench.stderr(), /interrupted by SIGINT/);
    assert.deepEqual(benchLeftovers(pid), []);
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(-pid, 'SIGKILL');
  }
});
