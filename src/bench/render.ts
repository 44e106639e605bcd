/**
 * The bench report for people: the terminal text (settings, the main table of
 * table.ts, where the ON runs' bytes went, the reference check), the chart of
 * svg.ts, and the files `--out` writes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderTextTable } from '../text-table.js';
import { displayUnitFor, formatRatio, formatScaled } from './format.js';
import type { BenchReport, LeftAloneSummary, OnRunBytes, ReferenceCheck } from './report.js';
import { renderRatioChartSvg } from './svg.js';
import { renderBenchTable } from './table.js';

function ratioText(a: number | null, b: number | null): string {
  return a === null || b === null || b === 0 ? '-' : formatRatio(a / b);
}

const REFERENCE_COLUMNS = [
  { header: 'Workload', align: 'left' },
  { header: 'Metric', align: 'left' },
  { header: 'sbload AF_UNIX', align: 'right' },
  { header: 'sbload TCP off', align: 'right' },
  { header: 'UNIX/TCP', align: 'right' },
  { header: 'sbload TCP on', align: 'right' },
  { header: 'on/UNIX', align: 'right' },
  { header: 'Tool TCP off', align: 'right' },
  { header: 'Tool TCP on', align: 'right' },
] as const;

const REFERENCE_LEGEND = [
  '',
  "The AF_UNIX column of the main table is sbload's AF_UNIX median over the workload tool's bypass-off median:",
  "two different programs. This table puts sbload's AF_UNIX next to sbload over TCP with the bypass off",
  '(UNIX/TCP = same-tool ratio) and over TCP with the bypass on (on/UNIX = the bypass against AF_UNIX, same tool),',
  "and the workload tool's own off and on medians (Tool TCP off/on).",
  "sbload rr latencies are round trips halved, to match sockperf's one-way figures.",
];

function referenceCheckRow(c: ReferenceCheck): string[] {
  const magnitude = Math.max(
    ...[c.afUnixMedian, c.tcpSameToolMedian, c.tcpSameToolOnMedian, c.offMedian, c.onMedian].filter(
      (v): v is number => v !== null,
    ),
    0,
  );
  const display = displayUnitFor(c.unit, magnitude);
  const cell = (v: number | null) => (v === null ? '-' : formatScaled(v, display));
  return [
    c.title,
    c.metric === display.label ? c.metric : `${c.metric} (${display.label})`,
    cell(c.afUnixMedian),
    cell(c.tcpSameToolMedian),
    ratioText(c.afUnixMedian, c.tcpSameToolMedian),
    cell(c.tcpSameToolOnMedian),
    ratioText(c.tcpSameToolOnMedian, c.afUnixMedian),
    cell(c.offMedian),
    cell(c.onMedian),
  ];
}

/** The AF_UNIX reference next to the same tool over TCP, so tool overhead can be told from socket-family overhead. */
export function renderReferenceChecks(checks: readonly ReferenceCheck[]): string {
  if (checks.length === 0) return '';
  return renderTextTable(REFERENCE_COLUMNS, checks.map(referenceCheckRow)) + REFERENCE_LEGEND.join('\n') + '\n';
}

function pct(f: number): string {
  return `${(f * 100).toFixed(1)}%`;
}

/** Where the bytes of the kept ON runs went: socket to socket, or TCP under flow control. */
export function renderOnRunBytes(rows: readonly OnRunBytes[]): string {
  const titleWidth = Math.max(...rows.map((x) => x.title.length));
  const lines = rows.flatMap((r) => {
    const s = r.redirectedShare;
    if (s === null) return [];
    const range = s.min === s.max ? '' : ` (${pct(s.min)}-${pct(s.max)})`;
    const flow = r.flowToTcpMedian ? `, ${r.flowToTcpMedian} switches to TCP per run (median)` : '';
    const short = r.shortSkippedShare
      ? `; ${pct(r.shortSkippedShare)} of its sockets left on TCP as short connections (median)`
      : '';
    const left = r.socketsLeftMedian
      ? `; ${r.socketsLeftMedian} socket(s) per run left the sockhash (a small-write sender, then its receiver), their later bytes by plain TCP (not in the share)`
      : '';
    return [`  ${r.title.padEnd(titleWidth)}  ${pct(s.median)}${range}${flow}${short}${left}`];
  });
  if (lines.length === 0) return '';
  return (
    ['Bytes of kept ON runs that went socket to socket (the rest went by TCP under flow control):', ...lines].join(
      '\n',
    ) + '\n'
  );
}

/** The outside-veth rows' ON runs: nothing joined the sockhash, every connection was left alone. */
export function renderLeftAlone(rows: readonly LeftAloneSummary[]): string {
  if (rows.length === 0) return '';
  const titleWidth = Math.max(...rows.map((x) => x.title.length));
  const lines = rows.map((r) => {
    const l = r.leftNoPeer;
    const left =
      l === null
        ? 'no kept ON run'
        : `${l.median} per kept ON run (median${l.min === l.max ? '' : `, ${l.min}-${l.max}`})`;
    return `  ${r.title.padEnd(titleWidth)}  ${r.socketsInserted} sockets joined in ${r.onRuns} ON runs; left alone for having no peer here: ${left}`;
  });
  return (
    [
      'ON runs to a server outside the cgroup (nothing may join the sockhash; a run that inserted anything is discarded):',
      ...lines,
    ].join('\n') + '\n'
  );
}

/** A titled list of indented lines after a blank line; empty when there are none. */
function section(title: string, lines: readonly string[]): string {
  return lines.length === 0 ? '' : `\n${title}\n` + lines.map((l) => `  ${l}`).join('\n') + '\n';
}

function header(report: BenchReport): string {
  const m = report.machine;
  return [
    `sockbypass bench: ${report.settings.pairs} on/off pairs per workload, ${report.settings.seconds} s per run, ${report.durationSeconds} s in all`,
    `machine: Linux ${m.kernel}, ${m.nproc} CPUs (${m.cpuModel}), load average ${m.loadAverageAtStart.join(' ')} at start, ${report.loadAverageAtEnd.join(' ')} at end`,
    `policy of the ON runs: ${report.settings.policy}`,
    '',
  ].join('\n');
}

/** The whole terminal report: settings, the main table, the reference check, skips and cleanup problems. */
export function renderBenchReport(report: BenchReport): string {
  const checks = renderReferenceChecks(report.referenceChecks);
  const failedRefs = report.references.filter((r) => r.error !== undefined);
  const skipped = [
    ...report.settings.skipped,
    ...report.settings.referencesSkipped.map((s) => ({ ...s, workload: `${s.workload} (AF_UNIX reference)` })),
  ];
  return (
    header(report) +
    renderBenchTable(report.summaries) +
    '\n' +
    renderOnRunBytes(report.onRunBytes) +
    // bench.json files written before the outside-veth rows have no leftAlone.
    (report.leftAlone?.length ? '\n' + renderLeftAlone(report.leftAlone) : '') +
    (checks ? '\n' + checks : '') +
    section(
      'Reference runs that failed (not used):',
      failedRefs.map((r) => `${r.workload}, pair ${r.pair + 1}, ${r.kind}: ${r.error}`),
    ) +
    section(
      'Skipped:',
      skipped.map((s) => `${s.workload}: ${s.reason}`),
    ) +
    section('Cleanup problems:', report.cleanupProblems)
  );
}

export function renderBenchSvg(report: BenchReport): string {
  const m = report.machine;
  return renderRatioChartSvg(report.summaries, {
    title: `sockbypass on/off (Linux ${m.kernel}, ${m.nproc} CPUs, ${report.settings.pairs} pairs x ${report.settings.seconds} s)`,
  });
}

/** bench.json, bench.svg and bench.txt in `dir` (created if needed); returns their paths. */
export async function writeBenchOutputs(
  report: BenchReport,
  dir: string,
): Promise<{ json: string; svg: string; text: string }> {
  await mkdir(dir, { recursive: true });
  const paths = { json: join(dir, 'bench.json'), svg: join(dir, 'bench.svg'), text: join(dir, 'bench.txt') };
  await writeFile(paths.json, JSON.stringify(report, null, 2) + '\n');
  await writeFile(paths.svg, renderBenchSvg(report));
  await writeFile(paths.text, renderBenchReport(report));
  return paths;
}
