/**
 * The bench runner: the verification that decides whether a run is what it
 * claims (unit tests on fabricated counter deltas), how discarded runs are
 * kept out of the statistics, and a privileged smoke test that runs one tiny
 * workload for real and checks it leaves nothing behind, also on SIGINT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePrivileged, requireTools } from './support/privileged.js';
import { waitFor } from './support/sandbox.js';
import { bpftoolPrograms } from './support/witness.js';
import {
  bytesShares,
  countersDelta,
  verifyOffRun,
  verifyOnRun,
  DEFAULT_THRESHOLDS,
  type OnObservation,
} from '../src/bench/verify.js';
import { summarizeRuns } from '../src/bench/assemble.js';
import { planBench } from '../src/bench/plan.js';
import { writeBenchOutputs } from '../src/bench/render.js';
import type { RunRecord } from '../src/bench/report.js';
import { runBench } from '../src/bench/runner.js';
import {
  findTools,
  packetCount,
  parseTcpdumpCounts,
  selectWorkloads,
  WORKLOADS,
  type Workload,
} from '../src/bench/workloads.js';
import { zeroCounters, type Counters } from '../src/core/layout.js';
import { cgroup2Mount } from '../src/os/cgroup.js';
import { benchLeftovers, startBenchCli } from './support/bench-cli.js';

const MB = 1024 * 1024;
const CGROUP = '/sys/fs/cgroup/unified/sockbypass-bench-1';

function counters(partial: Partial<Counters>): Counters {
  return { ...zeroCounters(), ...partial };
}

/** What an accelerated iperf3 run of 100 MB looks like: 4 sockets, every byte redirected. */
function goodOn(delta: Partial<Counters> = {}): OnObservation {
  return {
    loaded: true,
    attachedCgroup: CGROUP,
    benchCgroup: CGROUP,
    delta: counters({
      socketsInserted: 4,
      socketsClosed: 4,
      messagesRedirected: 800,
      bytesRedirected: 100 * MB + 300,
      ...delta,
    }),
  };
}
const IPERF3 = { minSockets: 4, payloadBytes: 100 * MB };

test('verifyOnRun keeps a run whose counters show the workload redirected', () => {
  assert.deepEqual(verifyOnRun(goodOn(), IPERF3), []);
  // A handful of first-send misses out of many sends stays within 0.1%.
  assert.deepEqual(
    verifyOnRun(goodOn({ messagesRedirected: 100_000, redirectMisses: 2, bytesPassed: 128 }), IPERF3),
    [],
  );
});

test('verifyOnRun discards an ON run whose counters did not move', () => {
  const reasons = verifyOnRun(
    goodOn({ socketsInserted: 0, socketsClosed: 0, messagesRedirected: 0, bytesRedirected: 0 }),
    IPERF3,
  );
  assert.equal(reasons.length, 2, reasons.join(' | '));
  assert.match(reasons[0] ?? '', /only 0 sockets were accelerated; .* at least 4/);
  assert.match(
    reasons[1] ?? '',
    /^0 bytes went through the bypass \(0%\) \(redirected 0, by TCP under flow control 0\), less than 90% of the 104857600 bytes/,
  );
});

test('verifyOnRun discards an ON run when sockbypass was not loaded, or loaded elsewhere', () => {
  assert.match(verifyOnRun({ ...goodOn(), loaded: false }, IPERF3).join(), /not loaded when the run started/);
  assert.match(
    verifyOnRun({ ...goodOn(), attachedCgroup: '/sys/fs/cgroup/unified' }, IPERF3).join(),
    /attached to \/sys\/fs\/cgroup\/unified, not the bench cgroup/,
  );
});

test('verifyOnRun discards an ON run in which data went through TCP', () => {
  // Too few bytes seen by the bypass at all: 40% of what the tool moved.
  assert.match(
    verifyOnRun(goodOn({ bytesRedirected: 40 * MB }), IPERF3).join(),
    /^41943040 bytes went through the bypass \(40%\)/,
  );
  // Enough bytes, but many sends missed their peer (sticky TCP).
  const misses = verifyOnRun(goodOn({ messagesRedirected: 800, redirectMisses: 200, bytesPassed: 25 * MB }), IPERF3);
  assert.equal(misses.length, 1);
  assert.match(misses[0] ?? '', /^200 of 1000 sends \(26214400 of \d+ bytes\) missed their peer and went by TCP/);
  // Few sends, but a lot of bytes: the bytes check catches it too.
  assert.match(
    verifyOnRun(goodOn({ messagesRedirected: 100_000, redirectMisses: 5, bytesPassed: 10 * MB }), IPERF3).join(),
    /5 of 100005 sends/,
  );
  // The boundary: exactly 0.1% of sends is still kept, one more is not.
  assert.deepEqual(verifyOnRun(goodOn({ messagesRedirected: 999, redirectMisses: 1, bytesPassed: 64 }), IPERF3), []);
  assert.equal(verifyOnRun(goodOn({ messagesRedirected: 998, redirectMisses: 2, bytesPassed: 64 }), IPERF3).length, 1);
});

test('verifyOnRun counts flow control as the bypass at work; a minimum redirected share is opt-in', () => {
  // 80% socket to socket, 20% by TCP while the receiver's queue was full: kept.
  assert.deepEqual(
    verifyOnRun(goodOn({ bytesRedirected: 80 * MB, flowMessages: 160, flowBytes: 20 * MB, flowToTcp: 40 }), IPERF3),
    [],
  );
  // 40% redirected, 60% flow control: kept by default (flow control is what the product does) ...
  const mostlyFlow = goodOn({ bytesRedirected: 40 * MB, flowMessages: 480, flowBytes: 60 * MB });
  assert.deepEqual(verifyOnRun(mostlyFlow, IPERF3), []);
  // ... and discarded when a run must be mostly socket to socket.
  const reasons = verifyOnRun(mostlyFlow, IPERF3, { ...DEFAULT_THRESHOLDS, minRedirectedFraction: 0.5 });
  assert.deepEqual(reasons, [
    'only 41943040 bytes were redirected socket to socket (40%), less than 50% of the 104857600 bytes the tool moved; flow control sent 62914560 bytes by TCP',
  ]);
  assert.deepEqual(bytesShares(counters({ bytesRedirected: 75, flowBytes: 20, bytesPassed: 5 })), {
    redirected: 0.75,
    flowControlTcp: 0.2,
    missedTcp: 0.05,
  });
  assert.equal(bytesShares(counters({})), null);
});

test('verifyOnRun keeps a crr run whose sockets the short-connection rule left on TCP, and expects bytes only from the accelerated ones', () => {
  const crr = { minSockets: 2 * 30000, payloadBytes: 2 * 64 * 30000 };
  // The first connection joined and taught the service it is short; the other 29 999 stayed on TCP.
  const kept = {
    ...goodOn(),
    delta: counters({
      socketsInserted: 2,
      socketsClosed: 2,
      shortSkipped: 59998,
      messagesRedirected: 2,
      bytesRedirected: 128,
    }),
  };
  assert.deepEqual(verifyOnRun(kept, crr), []);
  // Too few decided sockets is still a discard, and so are accelerated sockets whose bytes went missing.
  const few = {
    ...goodOn(),
    delta: counters({ socketsInserted: 2, shortSkipped: 100, messagesRedirected: 2, bytesRedirected: 128 }),
  };
  assert.match(verifyOnRun(few, crr).join('\n'), /only 2 sockets were accelerated \(100 left on TCP as short\)/);
  const silent = {
    ...goodOn(),
    delta: counters({ socketsInserted: 30000, shortSkipped: 30000, messagesRedirected: 0, bytesRedirected: 0 }),
  };
  assert.match(verifyOnRun(silent, crr).join('\n'), /bytes went through the bypass/);
});

test('verifyOnRun discards an ON run with insert failures or policy skips', () => {
  assert.match(
    verifyOnRun(goodOn({ insertMapFull: 3 }), IPERF3).join(),
    /3 sockets failed to enter the map \(map full 3/,
  );
  assert.match(verifyOnRun(goodOn({ policySkipped: 2 }), IPERF3).join(), /2 sockets were skipped by policy/);
});

test('verifyOffRun keeps a run with nothing loaded and discards one with sockbypass anywhere above it', () => {
  assert.deepEqual(verifyOffRun({ loadedBefore: false, loadedAfter: false, effectivePrograms: [] }), []);
  // bpftool unavailable: the pin check alone decides.
  assert.deepEqual(verifyOffRun({ loadedBefore: false, loadedAfter: false, effectivePrograms: null }), []);
  assert.match(
    verifyOffRun({ loadedBefore: true, loadedAfter: false, effectivePrograms: [] }).join(),
    /loaded .* when the run started/,
  );
  assert.match(
    verifyOffRun({ loadedBefore: false, loadedAfter: true, effectivePrograms: [] }).join(),
    /when the run ended/,
  );
  assert.match(
    verifyOffRun({ loadedBefore: false, loadedAfter: false, effectivePrograms: ['id 7 sockbypass_sockops'] }).join(),
    /effective on the bench cgroup: id 7 sockbypass_sockops/,
  );
});

test('countersDelta subtracts field by field', () => {
  const d = countersDelta(
    counters({ socketsInserted: 2, bytesRedirected: 10 }),
    counters({ socketsInserted: 6, bytesRedirected: 110 }),
  );
  assert.equal(d.socketsInserted, 4);
  assert.equal(d.bytesRedirected, 100);
  assert.equal(d.redirectMisses, 0);
});

function record(
  index: number,
  pair: number,
  mode: 'on' | 'off',
  value: number | undefined,
  discardReason?: string,
): RunRecord {
  return {
    index,
    workload: 'w',
    title: 'W',
    pair,
    mode,
    positionInPair: index % 2 === 1 ? 1 : 2,
    startedAt: new Date(0).toISOString(),
    elapsedSeconds: 1,
    values: value === undefined ? {} : { bitsPerSecond: value },
    kept: discardReason === undefined,
    ...(discardReason === undefined ? {} : { discardReason }),
  };
}

const FAKE: Workload = {
  id: 'w',
  group: 'throughput',
  title: 'W',
  command: 'fake',
  metrics: [{ key: 'bitsPerSecond', name: 'throughput', unit: 'bit/s', direction: 'higher-is-better' }],
  needs: [],
  run: () => Promise.reject(new Error('not run')),
};

test('discarded runs are reported but never enter a statistic', () => {
  const runs = [
    record(1, 0, 'on', 30e9),
    record(2, 0, 'off', 10e9),
    record(3, 1, 'off', 11e9),
    // Claimed on, counters did not move: its (TCP-speed) value must not pull the on median down.
    record(4, 1, 'on', 10e9, 'only 0 sockets were accelerated'),
    record(5, 2, 'on', 32e9),
    record(6, 2, 'off', 9e9),
    record(7, 3, 'off', undefined, 'iperf3: connection refused'),
    record(8, 3, 'on', 31e9),
  ];
  const [summary] = summarizeRuns([FAKE], runs);
  assert.ok(summary);
  assert.equal(summary.pairsTotal, 4);
  assert.equal(summary.pairsUsed, 2);
  assert.deepEqual(summary.ratios, [3, 32 / 9]);
  assert.deepEqual(summary.on, { median: 31e9, min: 30e9, max: 32e9, n: 3 });
  assert.deepEqual(summary.off, { median: 10e9, min: 9e9, max: 11e9, n: 3 });
  assert.deepEqual(
    summary.discarded.map((d) => [d.pairIndex, d.mode, d.reason, d.value]),
    [
      [1, 'on', 'only 0 sockets were accelerated', 10e9],
      [3, 'off', 'iperf3: connection refused', undefined],
    ],
  );
});

test('the plan: --quick, --only, missing tools and the step count', () => {
  const all = {
    iperf3: '/x/iperf3',
    sockperf: '/x/sockperf',
    tcpdump: '/x/tcpdump',
    sbload: '/x/sbload',
    ip: '/x/ip',
    nsenter: '/x/nsenter',
    iptables: '/x/iptables',
    haproxy: '/x/haproxy',
  };
  const full = planBench({}, all);
  assert.equal(full.workloads.length, WORKLOADS.length);
  assert.equal(full.pairs, 3);
  assert.equal(full.seconds, 3);
  const quick = planBench({ quick: true }, all);
  assert.deepEqual(
    quick.workloads.map((w) => w.id),
    ['iperf3-64', 'iperf3-128K', 'pingpong-64', 'packets'],
  );
  // 4 workloads x 2 pairs x 2 runs, plus 3 references x 2 pairs x (AF_UNIX + same-tool TCP off and on).
  assert.equal(quick.totalSteps, 16 + 18);
  assert.deepEqual(
    planBench({ only: ['latency', 'crr'] }, all).workloads.map((w) => w.id),
    ['pingpong-64', 'pingpong-1K', 'pingpong-16K', 'crr'],
  );
  const noSbload = planBench({ only: ['crr', 'iperf3-1k'] }, { ...all, sbload: undefined });
  assert.deepEqual(
    noSbload.workloads.map((w) => w.id),
    ['iperf3-1K'],
  );
  assert.deepEqual(noSbload.skipped, [{ workload: 'crr', reason: 'sbload not installed' }]);
  assert.deepEqual(noSbload.referencesSkipped, [{ workload: 'iperf3-1K', reason: 'sbload not installed' }]);
  assert.throws(() => selectWorkloads(['iperf9']), /unknown workload "iperf9"/);
  assert.throws(() => planBench({ pairs: 0 }, all), /pairs must be a whole number/);
});

test('packets on lo: tcpdump\'s captured count, never "received by filter" (which sees lo packets twice), and no drops', () => {
  // What tcpdump 4.99 printed for an iperf3 run on lo with -s 96.
  const counts = parseTcpdumpCounts(
    'tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 96 bytes\n67097 packets captured\n135246 packets received by filter\n0 packets dropped by kernel\n',
  );
  assert.deepEqual(counts, { captured: 67097, receivedByFilter: 135246, droppedByKernel: 0 });
  assert.equal(packetCount(counts), 67097);
  assert.throws(
    () => packetCount({ captured: 60490, receivedByFilter: 129288, droppedByKernel: 8161 }),
    /dropped 8161 packets .* incomplete/,
  );
  assert.throws(() => parseTcpdumpCounts('tcpdump: lo: No such device exists\n'), /no "captured" count/);
});

// ------------------------------------------------------------------ privileged

function alive(pid: number, comm: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm;
  } catch {
    return false;
  }
}

function needIperf3(t: import('node:test').TestContext): boolean {
  return requireTools(t, findTools().iperf3 ? [] : ['iperf3'], 'scripts/setup.sh installs it');
}

test('bench smoke: iperf3 -l 128K, one pair of 1 s: ON redirected, OFF not, JSON well-formed, nothing left behind', async (t) => {
  if (!requirePrivileged(t) || !needIperf3(t)) return;
  const programsBefore = new Set(bpftoolPrograms().map((p) => p.id));
  const lines: string[] = [];
  const report = await runBench({
    only: ['iperf3-128K'],
    pairs: 1,
    seconds: 1,
    references: false,
    handleSignals: false,
    progress: (text) => lines.push(text),
    // A policy of its own: the ON run loads with it, and the report says so.
    policy: { ports: null, ranges: null, shortMessages: 0 },
  });
  t.diagnostic(lines.join('').trim());
  assert.match(report.settings.policy, /short connections: off/);

  assert.equal(report.runs.length, 2);
  assert.deepEqual(
    report.runs.map((r) => r.mode),
    ['on', 'off'],
    'pair 1 runs on first',
  );
  const on = report.runs[0] as RunRecord;
  const off = report.runs[1] as RunRecord;
  const iperf3Bytes = (on.detail as { bytes: number } | undefined)?.bytes ?? 0;
  assert.ok(iperf3Bytes > 0, 'the ON run measured something');
  // ON: the counters of its own load moved for iperf3's two connections.
  assert.ok(on.counters, 'ON run has counters');
  assert.ok(on.counters.socketsInserted >= 4, `sockets inserted: ${on.counters.socketsInserted}`);
  assert.ok(
    on.counters.bytesRedirected >= 0.5 * iperf3Bytes,
    `redirected ${on.counters.bytesRedirected} of ${iperf3Bytes} B`,
  );
  assert.ok(on.programIds && on.programIds.sockOps > 0);
  // Kept exactly when the verification says so (the thresholds are unit-tested above).
  const onReasons = verifyOnRun(
    { loaded: true, attachedCgroup: report.settings.cgroup, benchCgroup: report.settings.cgroup, delta: on.counters },
    { minSockets: 4, payloadBytes: iperf3Bytes },
    DEFAULT_THRESHOLDS,
  );
  assert.equal(on.kept, onReasons.length === 0, on.discardReason ?? '');
  // OFF: nothing loaded before or after, nothing sockbypass effective on the cgroup, no counters.
  assert.equal(off.kept, true, off.discardReason ?? '');
  assert.deepEqual(off.offCheck, { loadedBefore: false, loadedAfter: false, effectivePrograms: [] });
  assert.equal(off.counters, undefined);
  assert.ok((off.values.bitsPerSecond ?? 0) > 0);

  // The JSON (and the SVG next to it) are well-formed and complete.
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-bench-test-'));
  try {
    const paths = await writeBenchOutputs(report, dir);
    const json = JSON.parse(readFileSync(paths.json, 'utf8')) as typeof report;
    assert.equal(json.schema, 'sockbypass-bench/1');
    assert.equal(json.runs.length, 2);
    assert.equal(json.summaries.length, 1);
    assert.equal(json.summaries[0]?.pairsTotal, 1);
    assert.equal(json.machine.nproc > 0, true);
    assert.match(json.machine.kernel, /^\d+\.\d+/);
    assert.ok(Array.isArray(json.discarded));
    assert.match(readFileSync(paths.svg, 'utf8'), /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // Nothing left behind: cgroup, pins, our programs, our processes.
  assert.equal(report.cleanupProblems.length, 0, report.cleanupProblems.join('; '));
  assert.equal(existsSync(report.settings.cgroup), false, 'bench cgroup removed');
  assert.equal(existsSync(report.settings.pinDir), false, 'bench pin folder removed');
  assert.deepEqual(benchLeftovers(process.pid), []);
  const ours = new Set([on.programIds.sockOps, on.programIds.skMsg]);
  // Programs are freed once their last reference (sockets, links) is gone; allow the kernel a moment.
  await waitFor(() => !bpftoolPrograms().some((p) => ours.has(p.id)), 5000).catch(() => undefined);
  const remaining = bpftoolPrograms();
  assert.deepEqual(
    remaining.filter((p) => ours.has(p.id)),
    [],
    'the programs the bench loaded are gone',
  );
  const otherNew = remaining.filter((p) => !programsBefore.has(p.id));
  if (otherNew.length > 0)
    t.diagnostic(`sock_ops/sk_msg programs loaded meanwhile by others: ${JSON.stringify(otherNew)}`);
  assert.ok(
    report.processes.some((p) => /iperf3/.test(p.command)),
    'iperf3 processes recorded',
  );
  for (const p of report.processes) assert.equal(alive(p.pid, 'iperf3'), false, `iperf3 ${p.pid} still running`);
});

test('bench CLI interrupted by SIGINT mid-run exits 130 and leaves nothing behind', async (t) => {
  if (!requirePrivileged(t) || !needIperf3(t)) return;
  const bench = startBenchCli(['--only', 'iperf3-128K', '--pairs', '1', '--seconds', '5', '--no-reference']);
  const { child, exited } = bench;
  try {
    // Wait until the ON run is under way (loaded, iperf3 running), then Ctrl-C the group.
    await waitFor(() => /\[1\/2\] iperf3 -l 128K on/.test(bench.stderr()), 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(existsSync(join(cgroup2Mount(), `sockbypass-bench-${child.pid}`)), 'the bench cgroup exists mid-run');
    process.kill(-(child.pid as number), 'SIGINT');
    const code = await exited;
    assert.equal(code, 130, bench.stderr());
    assert.match(bench.stderr(), /interrupted by SIGINT; its processes, pins and cgroup were removed/);
    assert.deepEqual(benchLeftovers(child.pid as number), []);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
