/**
 * The nat rows (issue 12, "Through NAT"): how --only and the plan pick them,
 * their verification (an ON run must pair every connection hop and leave no
 * end alone; unit tests on fabricated counters), the small parsers they rely
 * on, a pattern built over a recording NatHost, and a privileged smoke test
 * that runs one row through the CLI and checks that nothing is left behind.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requirePrivileged, requireTools } from './support/privileged.js';
import { waitFor } from './support/sandbox.js';
import { displayUnitFor, formatWithUnit } from '../src/bench/format.js';
import { haproxyConfig, listeningPorts } from '../src/bench/haproxy.js';
import type { HostedProcess, NatHost } from '../src/bench/nat-host.js';
import { buildPattern } from '../src/bench/nat-topology.js';
import {
  NAT_WORKLOADS,
  requestRate,
  streamClientProblem,
  TOLERATED_STREAM_CLIENT_FAILURE,
} from '../src/bench/nat-workloads.js';
import { iptablesTables } from '../src/bench/netfilter.js';
import { planBench } from '../src/bench/plan.js';
import type { BenchReport, RunRecord } from '../src/bench/report.js';
import { verifyOffRun, verifyOnRun, type OnObservation, type PairedExpectation } from '../src/bench/verify.js';
import { findTools, selectWorkloads, WORKLOADS } from '../src/bench/workloads.js';
import { ToolFailure } from '../src/bench/env.js';
import { zeroCounters, type Counters } from '../src/core/layout.js';
import { PACKAGE_ROOT } from '../src/core/paths.js';
import { benchLeftovers, startBenchCli } from './support/bench-cli.js';
import { netnsNames } from './support/netns.js';

const CGROUP = '/sys/fs/cgroup/unified/sockbypass-bench-1';
const NAT_IDS = [
  'nat-sidecar-out-stream',
  'nat-sidecar-out-rr',
  'nat-sidecar-in-stream',
  'nat-sidecar-in-rr',
  'nat-service-stream',
  'nat-service-rr',
];
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

/** An rr run through a sidecar as it should be: one connection, two hops, both paired, every byte redirected. */
const RR_THROUGH_PROXY: PairedExpectation = { minSockets: 4, payloadBytes: 2 * 2 * 64 * 10_000, minPairs: 2 };

function pairedOn(delta: Partial<Counters> = {}): OnObservation {
  return {
    loaded: true,
    attachedCgroup: CGROUP,
    benchCgroup: CGROUP,
    delta: counters({
      socketsInserted: 4,
      pairsJoined: 2,
      messagesRedirected: 2 * 2 * 10_500,
      bytesRedirected: 2 * 2 * 64 * 10_500,
      ...delta,
    }),
  };
}

// ------------------------------------------------------------------ selection and plan

test('--only: the group "nat", a pattern name, a row prefix or a wildcard pick the nat rows, in catalogue order', () => {
  assert.deepEqual(
    NAT_WORKLOADS.map((w) => w.id),
    NAT_IDS,
  );
  assert.ok(NAT_WORKLOADS.every((w) => w.group === 'nat'));
  assert.deepEqual(
    selectWorkloads(['nat']).map((w) => w.id),
    NAT_IDS,
  );
  assert.deepEqual(
    selectWorkloads(['sidecar-outbound']).map((w) => w.id),
    ['nat-sidecar-out-stream', 'nat-sidecar-out-rr'],
  );
  assert.deepEqual(
    selectWorkloads(['SERVICE', 'nat-sidecar-in']).map((w) => w.id),
    ['nat-sidecar-in-stream', 'nat-sidecar-in-rr', 'nat-service-stream', 'nat-service-rr'],
  );
  assert.deepEqual(
    selectWorkloads(['nat-*-rr']).map((w) => w.id),
    ['nat-sidecar-out-rr', 'nat-sidecar-in-rr', 'nat-service-rr'],
  );
  assert.deepEqual(
    selectWorkloads(['nat-service-rr', 'crr']).map((w) => w.id),
    ['crr', 'nat-service-rr'],
  );
  assert.throws(
    () => selectWorkloads(['sidecar']),
    /unknown workload "sidecar".*or: sidecar-outbound, nat-sidecar-out/,
  );
});

test('the plan: nat rows close the full bench, are not in --quick, have no reference, and are skipped without haproxy or iptables', () => {
  const full = planBench({}, ALL_TOOLS);
  assert.deepEqual(full.workloads.map((w) => w.id).slice(-6), NAT_IDS);
  assert.equal(full.workloads.length, WORKLOADS.length);
  assert.equal(
    planBench({ quick: true }, ALL_TOOLS).workloads.some((w) => w.group === 'nat'),
    false,
  );
  for (const w of NAT_WORKLOADS) {
    assert.equal(w.reference, undefined, w.id);
    assert.deepEqual([...w.needs].sort(), ['haproxy', 'ip', 'iptables', 'nsenter', 'sbload'], w.id);
  }
  // Two runs per pair and nothing else: 6 rows x 3 pairs x 2.
  assert.equal(planBench({ only: ['nat'], pairs: 3 }, ALL_TOOLS).totalSteps, 36);
  const noHaproxy = planBench({ only: ['nat', 'crr'] }, { ...ALL_TOOLS, haproxy: undefined });
  assert.deepEqual(
    noHaproxy.workloads.map((w) => w.id),
    ['crr'],
  );
  assert.deepEqual(
    noHaproxy.skipped,
    NAT_IDS.map((workload) => ({ workload, reason: 'haproxy not installed' })),
  );
  const noIptablesNoIp = planBench({ only: ['nat-service-rr'] }, { ...ALL_TOOLS, iptables: undefined, ip: undefined });
  assert.deepEqual(noIptablesNoIp.skipped, [{ workload: 'nat-service-rr', reason: 'iptables, ip not installed' }]);
});

// ------------------------------------------------------------------ verification

test('paired: an ON run whose every hop paired, with nothing left alone, is kept', () => {
  assert.deepEqual(verifyOnRun(pairedOn(), RR_THROUGH_PROXY), []);
  // Flow control sending the app→proxy hop by TCP is the bypass working: kept, as for same-host rows.
  assert.deepEqual(
    verifyOnRun(
      pairedOn({ bytesRedirected: 2 * 64 * 10_500, flowBytes: 2 * 64 * 10_500, flowToTcp: 1 }),
      RR_THROUGH_PROXY,
    ),
    [],
  );
  // Service: one hop.
  assert.deepEqual(
    verifyOnRun(pairedOn({ socketsInserted: 2, pairsJoined: 1, bytesRedirected: 2 * 64 * 10_500 }), {
      minSockets: 2,
      payloadBytes: 2 * 64 * 10_000,
      minPairs: 1,
    }),
    [],
  );
});

test('paired: a hop that did not pair, or an end left alone, refuses the run', () => {
  // Only the proxy→server hop paired: the app→proxy hop through the REDIRECT stayed on TCP.
  const oneHop = verifyOnRun(
    pairedOn({ socketsInserted: 2, pairsJoined: 1, leftNoPeer: 2, bytesRedirected: 2 * 64 * 10_500 }),
    RR_THROUGH_PROXY,
  );
  assert.match(oneHop.join(' | '), /only 2 sockets were accelerated; the workload's connections need at least 4/);
  assert.match(oneHop.join(' | '), /only 1 connections paired; the workload's connection hops need at least 2/);
  assert.match(
    oneHop.join(' | '),
    /2 ends were left alone \(no peer here 2, peer declined 0, unjoined 0\): some hop did not pair through the NAT/,
  );
  // Pairs all there, but some end was declined or unjoined: still refused.
  assert.match(
    verifyOnRun(pairedOn({ leftPeerDeclined: 1 }), RR_THROUGH_PROXY).join(),
    /1 ends were left alone \(no peer here 0, peer declined 1, unjoined 0\)/,
  );
  assert.match(verifyOnRun(pairedOn({ pairUnjoined: 1 }), RR_THROUGH_PROXY).join(), /unjoined 1/);
  // minPairs 0 (a workload that reports nothing) still needs one pair.
  assert.match(
    verifyOnRun(pairedOn({ pairsJoined: 0 }), { ...RR_THROUGH_PROXY, minPairs: 0 }).join(),
    /only 0 connections paired; .* at least 1/,
  );
});

test('paired: the accelerated checks and the load checks still apply', () => {
  assert.match(
    verifyOnRun(pairedOn({ bytesRedirected: 1000 }), RR_THROUGH_PROXY).join(),
    /bytes went through the bypass .* less than 90%/,
  );
  assert.match(
    verifyOnRun(pairedOn({ redirectMisses: 500, bytesPassed: 32_000 }), RR_THROUGH_PROXY).join(),
    /missed their peer/,
  );
  assert.deepEqual(verifyOnRun({ ...pairedOn(), loaded: false }, RR_THROUGH_PROXY), [
    'bypass on claimed, but sockbypass was not loaded when the run started',
  ]);
  // OFF runs of nat rows are verified like every other row's: nothing loaded, nothing attached.
  assert.deepEqual(verifyOffRun({ loadedBefore: false, loadedAfter: false, effectivePrograms: [] }), []);
  assert.match(
    verifyOffRun({ loadedBefore: false, loadedAfter: false, effectivePrograms: ['id 7 sockbypass_sockops'] }).join(),
    /effective on the bench cgroup/,
  );
});

// ------------------------------------------------------------------ parsers

test("requestRate: round trips over the client's own timed window; a run with no window or no round trips is refused", () => {
  const out =
    '{"mode":"rr","role":"client","family":"tcp4","size":64,"seconds":2.000150,"warmup":500,"roundTrips":24000,"p50Us":70.1,"p90Us":90,"p99Us":120.5,"p999Us":300,"meanUs":80,"minUs":40,"maxUs":900}\n';
  const r = requestRate(out);
  assert.equal(r.roundTrips, 24000);
  assert.ok(Math.abs(r.requestsPerSecond - 24000 / 2.00015) < 1e-6);
  assert.equal(r.p50Us, 70.1);
  assert.throws(() => requestRate(out.replace('"seconds":2.000150', '"seconds":0')), ToolFailure);
  assert.throws(() => requestRate(out.replace('"roundTrips":24000', '"roundTrips":0')), /0 round trips/);
});

test('streamClientProblem: exit 0 is fine; the known EAGAIN after the timed window is recorded; any other failure fails the run', () => {
  const ok = { code: 0, signal: null, stdout: '{}', stderr: '' };
  assert.equal(streamClientProblem(ok), undefined);
  const eagain = 'sbload: stream: waiting for the receiver to finish: Resource temporarily unavailable';
  assert.match(eagain, TOLERATED_STREAM_CLIENT_FAILURE);
  assert.equal(
    streamClientProblem({ code: 2, signal: null, stdout: '{"error":"..."}', stderr: `${eagain}\n` }),
    eagain,
  );
  assert.throws(
    () =>
      streamClientProblem({
        code: 2,
        signal: null,
        stdout: '',
        stderr: 'sbload: connect 198.18.10.10:80: Connection refused\n',
      }),
    /sbload stream client exited 2: .*Connection refused/,
  );
  // The same words with another errno are not the known case.
  assert.throws(() =>
    streamClientProblem({
      code: 2,
      signal: null,
      stdout: '',
      stderr: 'sbload: stream: waiting for the receiver to finish: Connection reset by peer\n',
    }),
  );
});

test('listeningPorts: LISTEN sockets (st 0A) of a /proc/net/tcp table, none of the others', () => {
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 00000000:3A99 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
    '   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1',
    '   2: 0A0412C6:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0',
    '',
  ].join('\n');
  assert.deepEqual(listeningPorts(table), [15001, 5201]);
  assert.deepEqual(listeningPorts(''), []);
});

test('haproxyConfig: TCP mode, one thread, bind and upstream as given', () => {
  const cfg = haproxyConfig({ listen: '0.0.0.0:15001', upstream: '198.18.3.1:5201' });
  assert.match(cfg, /^ {2}mode tcp$/m);
  assert.match(cfg, /^ {2}nbthread 1$/m);
  assert.match(cfg, /^ {2}bind 0\.0\.0\.0:15001$/m);
  assert.match(cfg, /^ {2}server upstream 198\.18\.3\.1:5201$/m);
});

test('iptablesTables: the tables a rule set touches, filter when a rule names none', () => {
  assert.deepEqual(
    iptablesTables([
      ['-t', 'nat', '-N', 'X'],
      ['-t', 'raw', '-A', 'PREROUTING', '-j', 'CT', '--notrack'],
      ['-A', 'INPUT', '-j', 'SYNPROXY'],
      ['-t', 'nat', '-A', 'OUTPUT', '-j', 'X'],
    ]),
    ['nat', 'raw', 'filter'],
  );
});

test('req/s: shown as kreq/s from 1000 on', () => {
  assert.equal(formatWithUnit(12_345, 'req/s'), '12.35 kreq/s');
  assert.equal(formatWithUnit(950, 'req/s'), '950.0 req/s');
  assert.equal(displayUnitFor('req/s', 40_000).label, 'kreq/s');
});

// ------------------------------------------------------------------ a pattern over a recording host

/** A NatHost that records what a builder asks for and runs nothing. */
function recordingHost(): { host: NatHost; calls: string[]; cleanups: string[] } {
  const calls: string[] = [];
  const cleanups: string[] = [];
  let veths = 0;
  const host: NatHost = {
    addNamespace: (tag) => {
      calls.push(`netns ${tag}`);
      return `ns-${tag}`;
    },
    addVeth: (a, b, cidrA, cidrB) => {
      calls.push(`veth ${a} ${cidrA} - ${b} ${cidrB}`);
      const n = veths++;
      return { a: `va${n}`, b: `vb${n}` };
    },
    inNs: (ns, command, args) => {
      calls.push(`${ns}: ${command} ${args.join(' ')}`);
      return '';
    },
    startInNs: (): HostedProcess => {
      throw new Error('no process in this pattern');
    },
    addCleanup: (what) => cleanups.push(what),
    dir: '/nowhere',
    commands: { ip: 'IP', iptables: 'IPT', nft: 'NFT', haproxy: 'HAPROXY' },
  };
  return { host, calls, cleanups };
}

test('service (iptables): three namespaces routed through a node that forwards and DNATs the VIP with kube-proxy chains; the rules get a flush', async () => {
  const { host, calls, cleanups } = recordingHost();
  const setup = await buildPattern(host, 'service', 'iptables');
  assert.deepEqual(calls.slice(0, 7), [
    'netns pod-c',
    'netns node',
    'netns pod-s',
    'veth ns-pod-c 198.18.5.2/24 - ns-node 198.18.5.1/24',
    'veth ns-pod-s 198.18.6.2/24 - ns-node 198.18.6.1/24',
    'ns-pod-c: IP route add default via 198.18.5.1',
    'ns-pod-s: IP route add default via 198.18.6.1',
  ]);
  assert.equal(calls[7], 'ns-node: /bin/sh -c echo "$1" > "$0" /proc/sys/net/ipv4/ip_forward 1');
  const rules = calls.slice(8);
  assert.ok(
    rules.every((c) => c.startsWith('ns-node: IPT -w -t nat ')),
    rules.join('\n'),
  );
  assert.ok(rules.includes('ns-node: IPT -w -t nat -A PREROUTING -j KUBE-SERVICES'));
  assert.ok(rules.includes('ns-node: IPT -w -t nat -A KUBE-SEP-SBNAT -p tcp -j DNAT --to-destination 198.18.6.2:8080'));
  assert.deepEqual(cleanups, ['flushing iptables nat in ns-node']);
  assert.deepEqual(
    { ...setup, taps: setup.taps.map((t) => t.dev) },
    {
      pattern: 'service',
      firewall: 'iptables',
      clientNs: 'ns-pod-c',
      connect: '198.18.20.10:80',
      serverNs: 'ns-pod-s',
      listen: '198.18.6.2:8080',
      taps: ['va0', 'va1'],
      hops: 1,
      views: { clientRemote: '198.18.20.10:80', peerLocal: '198.18.6.2:8080' },
    },
  );
});

// ------------------------------------------------------------------ privileged

/** The host namespace's own nat and filter rules (the rows must never add any there). */
function hostRules(iptables: string): string {
  return ['nat', 'filter']
    .map((table) => execFileSync(iptables, ['-w', '-t', table, '-S'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString())
    .join('');
}

/** The command line of a running PID, or undefined when it is gone. */
function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return undefined;
  }
}

function needTools(t: TestContext): boolean {
  const tools = findTools();
  const missing = (['sbload', 'ip', 'nsenter', 'iptables', 'haproxy'] as const).filter((n) => tools[n] === undefined);
  return requireTools(t, missing, 'make builds sbload; scripts/setup.sh installs haproxy and iptables');
}

test('bench CLI smoke: nat-sidecar-out-rr, one pair of 1 s: ON paired both hops through the REDIRECT and haproxy, OFF had nothing attached, nothing left behind', async (t) => {
  if (!requirePrivileged(t) || !needTools(t)) return;
  const iptables = findTools().iptables as string;
  const rulesBefore = hostRules(iptables);
  const child = spawn(
    process.execPath,
    [
      join(PACKAGE_ROOT, 'bin', 'sockbypass.js'),
      'bench',
      '--only',
      'nat-sidecar-out-rr',
      '--pairs',
      '1',
      '--seconds',
      '1',
      '--json',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  const pid = child.pid as number;
  t.diagnostic(stderr.trim());
  assert.equal(code, 0, stderr);
  const report = JSON.parse(stdout) as BenchReport;
  assert.deepEqual(
    report.runs.map((r) => [r.mode, r.kept, r.discardReason]),
    [
      ['on', true, undefined],
      ['off', true, undefined],
    ],
  );
  const on = report.runs[0] as RunRecord;
  const off = report.runs[1] as RunRecord;
  assert.ok(on.counters, 'ON run has counters');
  assert.equal(on.counters.pairsJoined, 2, 'app→proxy and proxy→server each paired once');
  assert.equal(on.counters.leftNoPeer + on.counters.leftPeerDeclined + on.counters.pairUnjoined, 0);
  assert.ok((on.values.requestsPerSecond ?? 0) > 0 && (off.values.requestsPerSecond ?? 0) > 0);
  assert.deepEqual(off.offCheck, { loadedBefore: false, loadedAfter: false, effectivePrograms: [] });

  // haproxy, the servers and the clients ran inside the bench cgroup, in the bench's namespaces.
  const haproxy = report.processes.filter((p) => /haproxy -db -f /.test(p.command));
  assert.equal(haproxy.length, 1, 'one haproxy for the whole bench');
  const sbloads = report.processes.filter((p) => / rr --size 64 /.test(p.command));
  assert.equal(sbloads.length, 4, 'a server and a client per run');
  for (const p of [...haproxy, ...sbloads]) {
    assert.ok(p.inCgroup, p.command);
    assert.match(p.command, new RegExp(`--net=/run/netns/sockbypass-bench-${pid}-nat-(app|srv) `));
  }

  assert.deepEqual(report.cleanupProblems, []);
  assert.equal(existsSync(report.settings.cgroup), false, 'bench cgroup removed');
  assert.equal(existsSync(report.settings.pinDir), false, 'bench pin folder removed');
  assert.deepEqual(benchLeftovers(pid), [], 'no cgroup, pin folder or namespace left');
  for (const p of report.processes) {
    // nsenter and the shell exec the command: a PID still running it would show exactly its argv.
    const command = p.command.split(' -- ').pop() ?? p.command;
    assert.notEqual(cmdline(p.pid)?.trim(), command, `process ${p.pid} (${command}) is gone`);
  }

  assert.equal(hostRules(iptables), rulesBefore, "the host namespace's rules are untouched");
});

test('bench CLI on a nat row interrupted by SIGINT mid-run exits 130 and leaves no namespace, haproxy, cgroup or pin behind', async (t) => {
  if (!requirePrivileged(t) || !needTools(t)) return;
  const iptables = findTools().iptables as string;
  const rulesBefore = hostRules(iptables);
  const bench = startBenchCli(['--only', 'nat-sidecar-in-stream', '--pairs', '1', '--seconds', '5']);
  const { child, exited } = bench;
  const pid = bench.pid;
  try {
    await waitFor(() => /\[1\/2\] NAT sidecar inbound sbload stream on/.test(bench.stderr()), 20_000);
    // Mid-run: the pattern's namespaces exist and its haproxy runs in the pod.
    await waitFor(() => netnsNames().includes(`sockbypass-bench-${pid}-nat-pod`), 15_000);
    await new Promise((r) => setTimeout(r, 1500));
    process.kill(-pid, 'SIGINT');
    const code = await exited;
    assert.equal(code, 130, bench.stderr());
    assert.match(bench.stderr(), /interrupted by SIGINT/);
    assert.deepEqual(benchLeftovers(pid), []);
    assert.equal(hostRules(iptables), rulesBefore, "the host namespace's rules are untouched");
  } finally {
    if (child.exitCode === null && child.signalCode === null) process.kill(-pid, 'SIGKILL');
  }
});
