import { displayUnitFor, formatPercent, formatRatio, formatScaled, type DisplayUnit } from './format.js';
import type { ValueStats, Verdict, WorkloadSummary } from './stats.js';
import { renderTextTable, type TextColumn } from '../text-table.js';

const COLUMNS: readonly TextColumn[] = [
  { header: 'Workload', align: 'left' },
  { header: 'Metric', align: 'left' },
  { header: 'On median', align: 'right' },
  { header: 'On min-max', align: 'right' },
  { header: 'Off median', align: 'right' },
  { header: 'Off min-max', align: 'right' },
  { header: 'On/off', align: 'right' },
  { header: 'Ratio min-max', align: 'right' },
  { header: 'Verdict', align: 'left' },
  { header: 'Pairs', align: 'right' },
  { header: 'AF_UNIX (vs off)', align: 'right' },
];

const MISSING = '-';

const VERDICT_TEXT: Readonly<Record<Verdict, string>> = {
  win: 'win',
  lose: 'lose',
  even: 'even',
  'no-data': 'n/a',
};

/** The unit a row is shown in, picked from its largest median so all its cells share it. */
function rowDisplayUnit(summary: WorkloadSummary): DisplayUnit {
  const medians = [summary.on?.median, summary.off?.median, summary.reference?.median].filter(
    (value): value is number => value !== undefined,
  );
  return displayUnitFor(summary.unit, medians.length === 0 ? 0 : Math.max(...medians));
}

function medianCell(stats: ValueStats | null, display: DisplayUnit): string {
  return stats === null ? MISSING : formatScaled(stats.median, display);
}

function rangeCell(stats: ValueStats | null, display: DisplayUnit): string {
  return stats === null ? MISSING : `${formatScaled(stats.min, display)}-${formatScaled(stats.max, display)}`;
}

function referenceCell(summary: WorkloadSummary, display: DisplayUnit): string {
  const reference = summary.reference;
  if (reference === null) {
    return MISSING;
  }
  const ratio = reference.ratioToOff === null ? '' : ` (${formatRatio(reference.ratioToOff)})`;
  return `${formatScaled(reference.median, display)}${ratio}`;
}

function tableRow(summary: WorkloadSummary): string[] {
  const display = rowDisplayUnit(summary);
  const ratioRange =
    summary.ratioMin === null || summary.ratioMax === null
      ? MISSING
      : `${summary.ratioMin.toFixed(2)}-${summary.ratioMax.toFixed(2)}`;
  return [
    summary.workload,
    summary.metric === display.label ? summary.metric : `${summary.metric} (${display.label})`,
    medianCell(summary.on, display),
    rangeCell(summary.on, display),
    medianCell(summary.off, display),
    rangeCell(summary.off, display),
    summary.ratioMedian === null ? MISSING : formatRatio(summary.ratioMedian),
    ratioRange,
    VERDICT_TEXT[summary.verdict],
    `${summary.pairsUsed}/${summary.pairsTotal}`,
    referenceCell(summary, display),
  ];
}

function legend(summaries: readonly WorkloadSummary[]): string[] {
  const tolerances = [...new Set(summaries.map((summary) => summary.evenTolerance))];
  const evenText =
    tolerances.length === 1 && tolerances[0] !== undefined
      ? `within ${formatPercent(tolerances[0])} of 1.00x`
      : "within each row's tolerance of 1.00x";
  return [
    'On/off = median over pairs of (bypass on / bypass off) of the raw metric.',
    'Throughput and connection rate: >1 is a win. Latency and packets: <1 is a win.',
    `Verdict "even" = on/off ${evenText}. Pairs = pairs with both runs kept / pairs run.`,
    'AF_UNIX (vs off) = AF_UNIX median, and AF_UNIX / bypass-off in the same orientation.',
    'Latencies from sockperf are one-way (half the round trip), as sockperf reports them.',
  ];
}

function discardedLines(summaries: readonly WorkloadSummary[]): string[] {
  const lines: string[] = [];
  for (const summary of summaries) {
    for (const run of summary.discarded) {
      lines.push(
        `  ${summary.workload} / ${summary.metric}, pair ${run.pairIndex + 1}, bypass ${run.mode}: ${run.reason}`,
      );
    }
  }
  return lines.length === 0 ? [] : ['', 'Discarded runs (not used in any statistic):', ...lines];
}

/**
 * Renders summarized workloads as a plain-text table with aligned columns,
 * followed by a legend and the list of discarded runs with their reasons.
 */
export function renderBenchTable(summaries: readonly WorkloadSummary[]): string {
  const table = renderTextTable(COLUMNS, summaries.map(tableRow));
  return table + ['', ...legend(summaries), ...discardedLines(summaries)].join('\n') + '\n';
}
