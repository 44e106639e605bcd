/**
 * The bench's workloads: what each one runs (inside the bench cgroup, on
 * loopback, except the outside rows' servers), what it measures, and what its
 * ON run must show in the counters.
 *
 *   throughput   iperf3, one stream at -l 64 / 1K / 16K / 128K, and -P 4 -l 128K
 *   latency      sockperf ping-pong --tcp at -m 64 / 1K / 16K: p50, p99, p99.9 (one-way)
 *   connections  sbload crr: connect + 64 B request + 64 B response + close, per second
 *   packets      TCP packets tcpdump sees on lo while iperf3 -l 128K moves 2 GiB
 *   outside      the outside-veth rows (outside-workloads.ts): a server OUTSIDE the
 *                cgroup in a namespace of its own over a veth, which the bypass must
 *                leave alone at no cost (issue 11)
 *   nat          the nat rows (nat-workloads.ts): through a sidecar's REDIRECT and
 *                haproxy, or a Service's DNAT, in namespaces of the bench's own; every
 *                hop must pair (issue 12)
 *
 * Throughput and latency workloads carry an AF_UNIX reference measured with
 * sbload at matching sizes, plus a "same-tool check": sbload over TCP with the
 * bypass off, so a reader can see how much of the AF_UNIX-vs-TCP gap comes from
 * the two tools rather than the two socket families.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { BUILD_DIR } from '../core/paths.js';
import type { Direction, MetricUnit } from './stats.js';
import type { RunExpectation } from './verify.js';
import type { Iperf3Result } from './iperf3.js';
import { parseSbloadOutput } from './sbload.js';
import { freePort, sleep, ToolFailure, type BenchEnv } from './env.js';
import { CONNECTION_RATE, LATENCY, THROUGHPUT } from './metrics.js';
import { NAT_WORKLOADS } from './nat-workloads.js';
import { OUTSIDE_VETH_WORKLOADS } from './outside-workloads.js';
import {
  clientTimeoutMs,
  CRR_SIZE,
  iperf3Run,
  loopbackPlacement,
  parsed,
  requireExit0,
  requireFewCrrFailures,
  sockperfPingPong,
  tool,
  type Iperf3Options,
} from './tool-runs.js';

/**
 * ip and nsenter build and enter the outside-veth and nat rows' network
 * namespaces; iptables writes the nat rows' rules and haproxy is their sidecar.
 */
export type Tool = 'iperf3' | 'sockperf' | 'sbload' | 'tcpdump' | 'ip' | 'nsenter' | 'iptables' | 'haproxy';
export type WorkloadGroup = 'throughput' | 'latency' | 'connections' | 'packets' | 'outside' | 'nat';

export interface MetricDef {
  /** Key into a measurement's `values`. */
  readonly key: string;
  /** Shown in the table's Metric column. */
  readonly name: string;
  readonly unit: MetricUnit;
  readonly direction: Direction;
}

export interface RunContext {
  readonly env: BenchEnv;
  /** Length of one run, whole seconds (iperf3 and sockperf take whole seconds). */
  readonly seconds: number;
  readonly tools: ToolPaths;
}

export interface Measurement {
  /** One value per metric key. */
  readonly values: Readonly<Record<string, number>>;
  /** What the counters of its ON run must show: accelerated, or (outside rows) left alone. */
  readonly expect: RunExpectation;
  /** The parsed tool output, for the JSON report. */
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface ReferenceMeasurement {
  readonly values: Readonly<Record<string, number>>;
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface ReferenceDef {
  /** Label of the reference column. */
  readonly label: string;
  /** The AF_UNIX command, for the report. */
  readonly command: string;
  /** The same tool over TCP (bypass off), for the report. */
  readonly checkCommand: string;
  readonly needs: readonly Tool[];
  /** AF_UNIX at the workload's sizes. */
  run(ctx: RunContext): Promise<ReferenceMeasurement>;
  /** The same tool and sizes over TCP on loopback. */
  runTcpCheck(ctx: RunContext): Promise<ReferenceMeasurement>;
}

export interface Workload {
  /** Name for --only. */
  readonly id: string;
  readonly group: WorkloadGroup;
  /** Shown in the table's Workload column and in progress lines. */
  readonly title: string;
  /** The command it runs, for the report. */
  readonly command: string;
  readonly metrics: readonly MetricDef[];
  readonly needs: readonly Tool[];
  /** More names --only picks it by, besides its id and group (the nat rows: their pattern). */
  readonly selectors?: readonly string[];
  run(ctx: RunContext): Promise<Measurement>;
  readonly reference?: ReferenceDef;
}

// ------------------------------------------------------------------ tools

export type ToolPaths = Readonly<Record<Tool, string | undefined>>;

/** The sbin folders too: iptables and haproxy live there, and a root shell's PATH may lack them. */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function onPath(name: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  for (const dir of [...pathEnv.split(delimiter), ...SBIN]) {
    if (!dir) continue;
    const full = join(dir, name);
    try {
      accessSync(full, constants.X_OK);
      return full;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** Where each tool is; undefined for a missing one. sbload is the one built by `make` (build/sbload). */
export function findTools(buildDir = BUILD_DIR): ToolPaths {
  const sbload = resolve(buildDir, 'sbload');
  return {
    iperf3: onPath('iperf3'),
    sockperf: onPath('sockperf'),
    tcpdump: onPath('tcpdump'),
    sbload: existsSync(sbload) ? sbload : undefined,
    ip: onPath('ip'),
    nsenter: onPath('nsenter'),
    iptables: onPath('iptables'),
    haproxy: onPath('haproxy'),
  };
}

export function sizeLabel(bytes: number): string {
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024}K`;
  return String(bytes);
}

// ------------------------------------------------------------------ iperf3

function iperf3Expectation(r: Iperf3Result): RunExpectation {
  // A control connection plus one per stream, two sockets each.
  return { minSockets: 2 * (r.streams + 1), payloadBytes: r.bytes };
}

function iperf3Detail(r: Iperf3Result): Record<string, unknown> {
  return { ...r };
}

function sbloadStreamArgs(family: 'unix' | 'tcp4', o: Iperf3Options, seconds: number): string[] {
  return [
    'stream',
    '--family',
    family,
    '--size',
    String(o.length),
    '--read-size',
    String(o.length),
    '--streams',
    String(o.streams),
    '--seconds',
    String(seconds),
  ];
}

async function sbloadStream(ctx: RunContext, family: 'unix' | 'tcp4', o: Iperf3Options): Promise<ReferenceMeasurement> {
  const f = await ctx.env.run(tool(ctx, 'sbload'), sbloadStreamArgs(family, o, ctx.seconds), {
    timeoutMs: clientTimeoutMs(ctx),
  });
  const r = parsed(() => parseSbloadOutput(f.stdout, 'stream'), f, 'sbload stream');
  requireExit0(f, 'sbload stream');
  return { values: { [THROUGHPUT.key]: r.bitsPerSecond }, detail: { family, ...r } };
}

function throughputWorkload(o: Iperf3Options): Workload {
  const flags = `${o.streams > 1 ? `-P ${o.streams} ` : ''}-l ${sizeLabel(o.length)}`;
  const streamFlags = (family: string) =>
    `sbload stream --family ${family} --size ${o.length} --read-size ${o.length} --streams ${o.streams}`;
  return {
    id: `iperf3${o.streams > 1 ? `-P${o.streams}` : ''}-${sizeLabel(o.length)}`,
    group: 'throughput',
    title: `iperf3 ${flags}`,
    command: `iperf3 -c 127.0.0.1 -t SECONDS ${flags} --json (server: iperf3 -s -1 --forceflush -B 127.0.0.1)`,
    metrics: [THROUGHPUT],
    needs: ['iperf3'],
    async run(ctx) {
      const r = await iperf3Run(ctx, loopbackPlacement(ctx.env), o);
      return { values: { [THROUGHPUT.key]: r.bitsPerSecond }, expect: iperf3Expectation(r), detail: iperf3Detail(r) };
    },
    reference: {
      label: 'AF_UNIX',
      command: streamFlags('unix'),
      checkCommand: streamFlags('tcp4'),
      needs: ['sbload'],
      run: (ctx) => sbloadStream(ctx, 'unix', o),
      runTcpCheck: (ctx) => sbloadStream(ctx, 'tcp4', o),
    },
  };
}

// ------------------------------------------------------------------ sockperf

/**
 * sbload rr reports round-trip times; sockperf reports one-way latency (half
 * the round trip). The reference is halved to sockperf's convention.
 */
async function sbloadRr(ctx: RunContext, family: 'unix' | 'tcp4', size: number): Promise<ReferenceMeasurement> {
  const f = await ctx.env.run(
    tool(ctx, 'sbload'),
    ['rr', '--family', family, '--size', String(size), '--seconds', String(ctx.seconds)],
    { timeoutMs: clientTimeoutMs(ctx) },
  );
  const r = parsed(() => parseSbloadOutput(f.stdout, 'rr'), f, 'sbload rr');
  requireExit0(f, 'sbload rr');
  return {
    values: { p50Us: r.p50Us / 2, p99Us: r.p99Us / 2, p999Us: r.p999Us / 2 },
    detail: {
      family,
      roundTripUs: { p50: r.p50Us, p99: r.p99Us, p999: r.p999Us },
      roundTrips: r.roundTrips,
      halved: true,
    },
  };
}

function pingPongWorkload(size: number): Workload {
  return {
    id: `pingpong-${sizeLabel(size)}`,
    group: 'latency',
    title: `sockperf pp -m ${sizeLabel(size)}`,
    command: `sockperf ping-pong --tcp -i 127.0.0.1 -m ${size} -t SECONDS (server: sockperf server --tcp -i 127.0.0.1)`,
    metrics: LATENCY,
    needs: ['sockperf'],
    async run(ctx) {
      const r = await sockperfPingPong(ctx, loopbackPlacement(ctx.env), size);
      return {
        values: { p50Us: r.p50Us, p99Us: r.p99Us, p999Us: r.p999Us },
        // Every observation is one message each way, in the measured window alone.
        expect: { minSockets: 2, payloadBytes: 2 * size * r.observations },
        detail: { ...r, messageSize: size },
      };
    },
    reference: {
      label: 'AF_UNIX',
      command: `sbload rr --family unix --size ${size} (round trip / 2)`,
      checkCommand: `sbload rr --family tcp4 --size ${size} (round trip / 2)`,
      needs: ['sbload'],
      run: (ctx) => sbloadRr(ctx, 'unix', size),
      runTcpCheck: (ctx) => sbloadRr(ctx, 'tcp4', size),
    },
  };
}

// ------------------------------------------------------------------ sbload crr

/**
 * Connection setup rate. sbload closes each connection with SO_LINGER {1, 0}
 * (an RST instead of FIN/TIME_WAIT): a run's connections (docs/benchmarks.md
 * counts them) would otherwise leave TIME_WAIT sockets behind that slow the next runs
 * (ephemeral-port search, hash chains), skewing later runs of the interleaved
 * sequence against earlier ones.
 */
const crrWorkload: Workload = {
  id: 'crr',
  group: 'connections',
  title: `sbload crr ${CRR_SIZE} B`,
  command: `sbload crr --family tcp4 --size ${CRR_SIZE} --seconds SECONDS (SO_LINGER 0)`,
  metrics: [CONNECTION_RATE],
  needs: ['sbload'],
  async run(ctx) {
    const f = await ctx.env.run(
      tool(ctx, 'sbload'),
      ['crr', '--family', 'tcp4', '--size', String(CRR_SIZE), '--seconds', String(ctx.seconds)],
      { timeoutMs: clientTimeoutMs(ctx) },
    );
    const r = parsed(() => parseSbloadOutput(f.stdout, 'crr'), f, 'sbload crr');
    requireExit0(f, 'sbload crr');
    requireFewCrrFailures(r);
    return {
      values: { connectionsPerSecond: r.connectionsPerSecond },
      expect: { minSockets: 2 * r.connections, payloadBytes: 2 * CRR_SIZE * r.connections },
      detail: { ...r },
    };
  },
};

// ------------------------------------------------------------------ packets

export interface TcpdumpCounts {
  readonly captured: number;
  readonly receivedByFilter: number;
  readonly droppedByKernel: number;
}

/** The three counts tcpdump prints on exit (stderr). */
export function parseTcpdumpCounts(stderr: string): TcpdumpCounts {
  const count = (what: string): number => {
    const m = new RegExp(String.raw`(\d+) packets? ${what}`).exec(stderr);
    if (!m?.[1]) throw new ToolFailure(`tcpdump printed no "${what}" count: ${stderr.trim().slice(-200)}`);
    return Number(m[1]);
  };
  return {
    captured: count('captured'),
    receivedByFilter: count('received by filter'),
    droppedByKernel: count('dropped by kernel'),
  };
}

const PACKETS_LENGTH = 128 * 1024;
/**
 * A fixed amount of data, not a fixed time: with the bypass on iperf3 moves
 * more bytes per second (docs/benchmarks.md has by how much), so a timed run
 * would compare packets for different amounts of work.
 */
const PACKETS_BYTES = 2 * 1024 ** 3;

/**
 * The proof: how many TCP packets cross lo to move the same 2 GiB. With the
 * bypass on and nothing diverted by flow control, only the handshakes and
 * teardowns of iperf3's two connections are left; bytes that flow control
 * sends by TCP show up as packets.
 *
 * The value is tcpdump's "captured" count. Not "received by filter": on lo
 * the packet socket sees every packet twice (its outgoing and its incoming
 * copy) and libpcap drops the outgoing copy in user space, so that count is
 * about twice the packets on the wire. tcpdump keeps only 96 bytes of each
 * packet (headers) so that it keeps up; a run in which the kernel still
 * dropped packets from the capture is discarded, its count being incomplete.
 * --immediate-mode: otherwise libpcap hands packets over in blocks retired on
 * a 1 s timeout, and the last, partly filled block is never "captured" when
 * tcpdump stops (an accelerated run's handshake packets read as 0).
 */
export function packetCount(counts: TcpdumpCounts): number {
  if (counts.droppedByKernel > 0) {
    throw new ToolFailure(
      `tcpdump dropped ${counts.droppedByKernel} packets (captured ${counts.captured}): the packet count is incomplete`,
    );
  }
  return counts.captured;
}

const packetsWorkload: Workload = {
  id: 'packets',
  group: 'packets',
  title: `lo packets, iperf3 -n 2G -l ${sizeLabel(PACKETS_LENGTH)}`,
  command: `tcpdump -i lo -p -s 96 --immediate-mode 'tcp port PORT' ("captured") during iperf3 -c 127.0.0.1 -p PORT -n ${PACKETS_BYTES} -l ${PACKETS_LENGTH}`,
  metrics: [{ key: 'packets', name: 'packets on lo', unit: 'packets', direction: 'lower-is-better' }],
  needs: ['iperf3', 'tcpdump'],
  async run(ctx) {
    const port = await freePort();
    // tcpdump itself makes no TCP connection: it runs outside the cgroup.
    const capture = ctx.env.start(
      tool(ctx, 'tcpdump'),
      [
        '-i',
        'lo',
        '-nn',
        '-p',
        '-q',
        '-s',
        '96',
        '-B',
        '8192',
        '--immediate-mode',
        '-w',
        '/dev/null',
        `tcp port ${port}`,
      ],
      { inCgroup: false },
    );
    let result: Iperf3Result;
    try {
      await ctx.env.waitForOutput(capture, /listening on/, 10_000);
      result = await iperf3Run(
        ctx,
        loopbackPlacement(ctx.env),
        { length: PACKETS_LENGTH, streams: 1, bytes: PACKETS_BYTES },
        port,
      );
      // Let the last teardown packets reach the capture.
      await sleep(300);
    } finally {
      await ctx.env.stop(capture, 'SIGINT', 3000);
    }
    const counts = parseTcpdumpCounts((await capture.done).stderr);
    return {
      values: { packets: packetCount(counts) },
      expect: iperf3Expectation(result),
      detail: { tcpdump: counts, iperf3: iperf3Detail(result), port },
    };
  },
};

// ------------------------------------------------------------------ the catalogue

/** Every workload, in the order a full bench runs them. */
export const WORKLOADS: readonly Workload[] = [
  throughputWorkload({ length: 64, streams: 1 }),
  throughputWorkload({ length: 1024, streams: 1 }),
  throughputWorkload({ length: 16 * 1024, streams: 1 }),
  throughputWorkload({ length: 128 * 1024, streams: 1 }),
  throughputWorkload({ length: 128 * 1024, streams: 4 }),
  pingPongWorkload(64),
  pingPongWorkload(1024),
  pingPongWorkload(16 * 1024),
  crrWorkload,
  packetsWorkload,
  ...OUTSIDE_VETH_WORKLOADS,
  ...NAT_WORKLOADS,
];

/** What --quick runs: the smallest and largest single-stream writes, 64 B ping-pong, and the packet count. */
export const QUICK_WORKLOADS: readonly string[] = ['iperf3-64', 'iperf3-128K', 'pingpong-64', 'packets'];

const GROUP_ALIASES: Readonly<Record<string, WorkloadGroup>> = {
  throughput: 'throughput',
  bulk: 'throughput',
  latency: 'latency',
  pingpong: 'latency',
  connections: 'connections',
  crr: 'connections',
  packets: 'packets',
  outside: 'outside',
  nat: 'nat',
};

/** `outside-veth-*`: `*` stands for any run of characters. */
function globMatcher(pattern: string): RegExp {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`, 'i');
}

/**
 * Workloads named by --only: workload ids (iperf3-64, iperf3-P4-128K,
 * pingpong-1K, crr, packets, outside-veth-crr, nat-service-rr, ...), ids with
 * `*` wildcards (outside-veth-*, nat-*-rr), groups (throughput, latency,
 * connections, packets, outside, nat) or a workload's selectors (the nat
 * rows' patterns: sidecar-outbound, nat-sidecar-out, ...), case-insensitive,
 * in catalogue order. Throws on a name that matches nothing.
 */
export function selectWorkloads(names: readonly string[], catalogue: readonly Workload[] = WORKLOADS): Workload[] {
  const wanted = new Set<Workload>();
  for (const raw of names) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    const byId = catalogue.find((w) => w.id.toLowerCase() === name);
    if (byId) {
      wanted.add(byId);
      continue;
    }
    const group = GROUP_ALIASES[name];
    const pattern = name.includes('*') ? globMatcher(name) : undefined;
    const inGroup = pattern
      ? catalogue.filter((w) => pattern.test(w.id))
      : group === undefined
        ? catalogue.filter((w) => w.selectors?.some((s) => s.toLowerCase() === name))
        : catalogue.filter((w) => w.group === group);
    if (inGroup.length === 0) {
      const selectors = [...new Set(catalogue.flatMap((w) => w.selectors ?? []))];
      throw new RangeError(
        `unknown workload ${JSON.stringify(raw)}; known: ${catalogue.map((w) => w.id).join(', ')}, or a group: ${Object.keys(GROUP_ALIASES).join(', ')}${selectors.length > 0 ? `, or: ${selectors.join(', ')}` : ''}`,
      );
    }
    for (const w of inGroup) wanted.add(w);
  }
  return catalogue.filter((w) => wanted.has(w));
}
