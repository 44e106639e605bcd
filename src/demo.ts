/**
 * `sockbypass demo`: the two-minute proof for a newcomer. It builds nothing
 * (scripts/demo.sh runs setup first), then, in a cgroup and pin folder of its
 * own (sockbypass-demo-<pid>):
 *
 *   1. counts the TCP packets on lo during an iperf3 bulk transfer with the
 *      bypass off and on: the packets vanish when the data skips TCP/IP;
 *   2. measures throughput (iperf3, 128 KB and 64 B writes) and latency
 *      (sockperf ping-pong, 64 B) with the bypass on and off, interleaved;
 *   3. unloads, removes everything, and prints a short table.
 *
 * It is the bench runner with a small plan and a friendlier report.
 */
import { formatRatio, formatScaled, displayUnitFor } from './bench/format.js';
import type { BenchReport, RunRecord } from './bench/report.js';
import { runBench } from './bench/runner.js';
import type { WorkloadSummary } from './bench/stats.js';
import { renderTextTable } from './text-table.js';
import { WORKLOADS, type Workload } from './bench/workloads.js';

export const DEMO_WORKLOAD_IDS = ['packets', 'iperf3-128K', 'iperf3-64', 'pingpong-64'] as const;
export const DEMO_PAIRS = 2;
export const DEMO_SECONDS = 2;
/**
 * Packets on lo that two accelerated connections (iperf3's control and data)
 * still cause: SYN, SYN-ACK, ACK and FIN/ACK or RST teardown each, a few
 * window updates. More than this means data went by TCP.
 */
const HANDSHAKE_PACKETS = 40;

export interface DemoOptions {
  readonly pairs?: number;
  readonly seconds?: number;
  /** Where the story goes; default stdout. */
  readonly write?: (text: string) => void;
  /** Per-run progress; default stderr. */
  readonly progress?: (text: string) => void;
}

export interface DemoResult {
  readonly report: BenchReport;
  /** The closing table and explanation, as printed. */
  readonly text: string;
}

function demoCatalogue(): Workload[] {
  return DEMO_WORKLOAD_IDS.map((id) => {
    const w = WORKLOADS.find((x) => x.id === id);
    if (!w) throw new Error(`demo workload ${id} is not in the catalogue`);
    return w;
  });
}

function find(report: BenchReport, workloadId: string, metric: string): WorkloadSummary | undefined {
  const title = report.settings.workloads.find((w) => w.id === workloadId)?.title;
  return report.summaries.find((s) => s.workload === title && s.metric === metric);
}

function valueText(value: number | undefined, summary: WorkloadSummary): string {
  if (value === undefined) return 'n/a';
  const display = displayUnitFor(summary.unit, value);
  return display.label === 'packets' ? `${Math.round(value)}` : `${formatScaled(value, display)} ${display.label}`;
}

/** "<r>x faster", "<r>x slower", "about the same (<r>x)", "<p>% fewer": words a newcomer reads at once. */
export function changeText(summary: WorkloadSummary): string {
  const ratio = summary.ratioMedian;
  if (ratio === null) return 'not measured (runs discarded, see above)';
  if (summary.unit === 'packets') {
    return ratio < 1 ? `${((1 - ratio) * 100).toFixed(2)}% fewer` : `${formatRatio(ratio)} as many`;
  }
  const better = summary.verdict === 'win';
  if (summary.verdict === 'even') return `about the same (${formatRatio(ratio)})`;
  if (summary.direction === 'higher-is-better') {
    return better ? `${formatRatio(ratio)} faster` : `${formatRatio(1 / ratio)} slower`;
  }
  // Latency: how many times lower or higher.
  return better ? `${formatRatio(1 / ratio)} lower (better)` : `${formatRatio(ratio)} higher (worse)`;
}

/** One accelerated run's counters, as evidence the data really skipped TCP. */
function evidenceLine(runs: readonly RunRecord[], workloadId: string): string | undefined {
  const on = runs.find((r) => r.workload === workloadId && r.mode === 'on' && r.kept && r.counters);
  const c = on?.counters;
  if (!c) return undefined;
  const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;
  const flow = c.flowBytes > 0 ? `, ${gb(c.flowBytes)} by TCP under flow control (receiver behind)` : '';
  return `counters of one accelerated run: ${c.socketsInserted} sockets accelerated, ${gb(c.bytesRedirected)} handed socket to socket${flow}, ${c.redirectMisses} sends missed their peer`;
}

export function renderDemoSummary(report: BenchReport): string {
  const rows: Array<{ label: string; id: string; metric: string }> = [
    { label: 'TCP packets on lo to move 2 GiB', id: 'packets', metric: 'packets on lo' },
    { label: 'throughput, iperf3 128 KB writes', id: 'iperf3-128K', metric: 'throughput' },
    { label: 'throughput, iperf3 64 B writes', id: 'iperf3-64', metric: 'throughput' },
    { label: 'latency p50, 64 B ping-pong (one-way)', id: 'pingpong-64', metric: 'p50 latency' },
    { label: 'latency p99, 64 B ping-pong (one-way)', id: 'pingpong-64', metric: 'p99 latency' },
  ];
  const cells = rows.flatMap((row) => {
    const s = find(report, row.id, row.metric);
    if (!s) return [];
    return [[row.label, valueText(s.off?.median, s), valueText(s.on?.median, s), changeText(s)]];
  });
  const table = renderTextTable(
    [
      { header: 'What (median of the runs)', align: 'left' },
      { header: 'bypass off', align: 'right' },
      { header: 'bypass on', align: 'right' },
      { header: 'with the bypass', align: 'left' },
    ],
    cells,
  );
  const lines: string[] = [];
  const packets = find(report, 'packets', 'packets on lo');
  if (packets?.on && packets.off) {
    const onPackets = Math.round(packets.on.median);
    lines.push(
      `The proof: while iperf3 moved 2 GiB over 127.0.0.1, tcpdump saw ${Math.round(packets.off.median)} TCP packets on lo`,
    );
    if (onPackets <= HANDSHAKE_PACKETS) {
      lines.push(
        `with the bypass off and ${onPackets} with it on: only the handshakes and teardowns of iperf3's two connections.`,
        "With the bypass on, each send went straight into the peer socket's receive queue: no TCP/IP, no lo.",
      );
    } else {
      lines.push(
        `with the bypass off and ${onPackets} with it on (${changeText(packets)}): more than the ${HANDSHAKE_PACKETS} or so that the`,
        'handshakes and teardowns of two connections take, so part of the data went by TCP: flow control, which',
        "sends by TCP while the receiver's redirected queue is full (see the counters below).",
      );
    }
    const evidence = evidenceLine(report.runs, 'packets');
    if (evidence) lines.push(`(${evidence}.)`);
    lines.push('');
  } else if (packets) {
    lines.push('The packet count could not be shown: its runs were discarded (see below).', '');
  }
  lines.push(table.trimEnd());
  const tiny = find(report, 'iperf3-64', 'throughput');
  if (tiny?.verdict === 'lose') {
    lines.push(
      '',
      'Streams of tiny writes were slower with the bypass here: each redirected 64-byte send takes the',
      "receiving socket's lock and wakes its reader, where TCP coalesces the writes into few segments. The",
      'small-write rule (`--small-write`, on by default) hands such a stream to plain TCP once a backlog',
      'builds, and pays until then (docs/benchmarks.md, "Where the time goes").',
    );
  }
  lines.push(
    '',
    `Each figure is the median of ${report.settings.pairs} runs (${report.settings.seconds} s each; 2 GiB each for the packet count), on and off interleaved,`,
    `on this ${report.machine.nproc}-CPU machine (Linux ${report.machine.kernel}). A shared or busy machine moves these numbers.`,
  );
  if (report.discarded.length > 0) {
    lines.push('', 'Runs discarded because they were not what they claimed (not used above):');
    for (const d of report.discarded) lines.push(`  ${d.title}, bypass ${d.mode}: ${d.reason}`);
  }
  if (report.cleanupProblems.length > 0) {
    lines.push('', 'Cleanup problems:', ...report.cleanupProblems.map((p) => `  ${p}`));
  } else {
    lines.push(
      '',
      `sockbypass is unloaded again and its cgroup (${report.settings.cgroup}) removed; nothing else on this machine was touched.`,
    );
  }
  lines.push(
    'The whole picture (message sizes, tail latency, connection rate, AF_UNIX for reference): sockbypass bench, docs/benchmarks.md.',
  );
  return lines.join('\n') + '\n';
}

export function demoIntro(pairs: number, seconds: number): string {
  return [
    'sockbypass demo',
    '',
    "sockbypass makes TCP between two processes on the same host skip the kernel's TCP/IP stack:",
    'an eBPF program hands each send straight to the peer socket. This demo loads it into a cgroup',
    'of its own (nothing else on this machine is affected), runs iperf3 and sockperf inside it over',
    `127.0.0.1 with the bypass on and off (${pairs} runs each, ${seconds} s per run), counts the packets on the`,
    'loopback interface, then unloads and removes everything.',
    '',
  ].join('\n');
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const write = options.write ?? ((t: string) => process.stdout.write(t));
  const pairs = options.pairs ?? DEMO_PAIRS;
  const seconds = options.seconds ?? DEMO_SECONDS;
  write(demoIntro(pairs, seconds));
  const report = await runBench({
    catalogue: demoCatalogue(),
    pairs,
    seconds,
    references: false,
    env: { prefix: 'sockbypass-demo' },
    commandLine: ['sockbypass', 'demo', ...process.argv.slice(3)].join(' '),
    ...(options.progress ? { progress: options.progress } : {}),
  });
  const text = renderDemoSummary(report);
  write('\n' + text);
  return { report, text };
}
