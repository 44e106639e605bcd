/** From what a bench recorded (its runs and reference runs) to the report's figures and the report itself. */
import { loadavg } from 'node:os';
import type { Counters } from '../core/layout.js';
import { referenceRuns, type BenchPlan } from './plan.js';
import type {
  BenchReport,
  DiscardedEntry,
  LeftAloneSummary,
  OnRunBytes,
  ReferenceCheck,
  ReferenceKind,
  ReferenceRecord,
  RunRecord,
  WorkloadSettings,
} from './report.js';
import { median, summarize, type BenchRun, type WorkloadSummary } from './stats.js';
import { bytesShares } from './verify.js';
import type { Workload } from './workloads.js';

/** Everything a finished bench hands over for its report: the report's own records, and what the rest is derived from. */
export interface BenchRecord
  extends Pick<BenchReport, 'commandLine' | 'machine' | 'runs' | 'references' | 'cleanupProblems' | 'processes'>,
    Pick<BenchReport['settings'], 'policy' | 'thresholds' | 'cgroup' | 'pinDir'> {
  readonly plan: BenchPlan;
  readonly startedAt: Date;
  readonly finishedAt: Date;
}

export function assembleReport(record: BenchRecord): BenchReport {
  const { plan, runs, references, startedAt, finishedAt } = record;
  const summaries = summarizeRuns(plan.workloads, runs, references);
  return {
    schema: 'sockbypass-bench/1',
    commandLine: record.commandLine,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationSeconds: Number(((finishedAt.getTime() - startedAt.getTime()) / 1000).toFixed(1)),
    machine: record.machine,
    loadAverageAtEnd: loadavg().map((l) => Number(l.toFixed(2))),
    settings: {
      pairs: plan.pairs,
      seconds: plan.seconds,
      quick: plan.quick,
      references: plan.references,
      policy: record.policy,
      thresholds: record.thresholds,
      cgroup: record.cgroup,
      pinDir: record.pinDir,
      workloads: plan.workloads.map((w) => workloadSettings(plan, w)),
      skipped: plan.skipped,
      referencesSkipped: plan.referencesSkipped,
    },
    runs,
    references,
    summaries,
    referenceChecks: referenceChecks(plan.workloads, summaries, references),
    discarded: discardedEntries(runs),
    onRunBytes: onRunBytes(plan.workloads, runs),
    leftAlone: leftAloneSummaries(plan.workloads, runs),
    cleanupProblems: record.cleanupProblems,
    processes: record.processes,
  };
}

function workloadSettings(plan: BenchPlan, w: Workload): WorkloadSettings {
  return {
    id: w.id,
    title: w.title,
    command: w.command,
    metrics: w.metrics.map((m) => m.name),
    reference:
      w.reference && referenceRuns(plan, w)
        ? { command: w.reference.command, checkCommand: w.reference.checkCommand }
        : null,
  };
}

/** One WorkloadSummary per workload metric, from the runs in the order they ran. */
export function summarizeRuns(
  workloads: readonly Workload[],
  runs: readonly RunRecord[],
  references: readonly ReferenceRecord[] = [],
): WorkloadSummary[] {
  const summaries: WorkloadSummary[] = [];
  for (const w of workloads) {
    const mine = runs.filter((r) => r.workload === w.id);
    const unix = references.filter((r) => r.workload === w.id && r.kind === 'af_unix' && r.error === undefined);
    for (const m of w.metrics) {
      const benchRuns: BenchRun[] = mine.map((r) => {
        const value = r.values[m.key];
        if (r.kept && value !== undefined) return { mode: r.mode, value };
        const reason = r.discardReason ?? `no ${m.name} value`;
        return value !== undefined && Number.isFinite(value)
          ? { mode: r.mode, value, discardReason: reason }
          : { mode: r.mode, discardReason: reason };
      });
      const refValues = unix
        .map((r) => r.values[m.key])
        .filter((v): v is number => v !== undefined && Number.isFinite(v) && v >= 0);
      summaries.push(
        summarize({
          workload: w.title,
          metric: m.name,
          unit: m.unit,
          direction: m.direction,
          runs: benchRuns,
          ...(w.reference && unix.length > 0 ? { reference: { label: w.reference.label, values: refValues } } : {}),
        }),
      );
    }
  }
  return summaries;
}

function discardedEntries(runs: readonly RunRecord[]): DiscardedEntry[] {
  return runs
    .filter((r) => !r.kept)
    .map((r) => ({
      index: r.index,
      workload: r.workload,
      title: r.title,
      pair: r.pair,
      mode: r.mode,
      reason: r.discardReason ?? '',
      values: r.values,
    }));
}

function onRunBytes(workloads: readonly Workload[], runs: readonly RunRecord[]): OnRunBytes[] {
  return workloads.map((w) => {
    const kept = runs.filter((r) => r.workload === w.id && r.mode === 'on' && r.kept && r.counters);
    const counters = kept.map((r) => r.counters as Counters);
    const shares = counters.map((c) => bytesShares(c)?.redirected).filter((v): v is number => v !== undefined);
    const left = medianOrNull(counters.map((c) => c.socketsLeft ?? 0));
    return {
      workload: w.id,
      title: w.title,
      runs: kept.length,
      redirectedShare:
        shares.length === 0 ? null : { median: median(shares), min: Math.min(...shares), max: Math.max(...shares) },
      flowToTcpMedian: medianOrNull(counters.map((c) => c.flowToTcp)),
      shortSkippedShare: medianOrNull(counters.map(shortSkippedShare)),
      ...(left ? { socketsLeftMedian: left } : {}),
    };
  });
}

/** The outside-veth workloads' ON runs: how many sockets joined (must be none) and how many were left alone. */
export function leftAloneSummaries(workloads: readonly Workload[], runs: readonly RunRecord[]): LeftAloneSummary[] {
  return workloads
    .filter((w) => w.group === 'outside')
    .map((w) => {
      const on = runs.filter((r) => r.workload === w.id && r.mode === 'on' && r.counters);
      const counters = on.map((r) => r.counters as Counters);
      const left = on.filter((r) => r.kept).map((r) => (r.counters as Counters).leftNoPeer);
      return {
        workload: w.id,
        title: w.title,
        onRuns: on.length,
        socketsInserted: counters.reduce((n, c) => n + c.socketsInserted, 0),
        leftNoPeer: left.length === 0 ? null : { median: median(left), min: Math.min(...left), max: Math.max(...left) },
      };
    });
}

/** Share of the sockets the bypass decided on that the short-connection rule left on TCP. */
function shortSkippedShare(c: Counters): number {
  const decided = c.socketsInserted + c.shortSkipped;
  return decided > 0 ? c.shortSkipped / decided : 0;
}

function medianOrNull(values: readonly number[]): number | null {
  return values.length === 0 ? null : median(values);
}

function referenceChecks(
  workloads: readonly Workload[],
  summaries: readonly WorkloadSummary[],
  references: readonly ReferenceRecord[],
): ReferenceCheck[] {
  const checks: ReferenceCheck[] = [];
  for (const w of workloads) {
    const mine = references.filter((r) => r.workload === w.id && r.error === undefined);
    if (mine.length === 0) continue;
    for (const m of w.metrics) {
      const medianOf = (kind: ReferenceKind) =>
        medianOrNull(
          mine
            .filter((r) => r.kind === kind)
            .map((r) => r.values[m.key])
            .filter((v): v is number => v !== undefined),
        );
      const summary = summaries.find((s) => s.workload === w.title && s.metric === m.name);
      checks.push({
        workload: w.id,
        title: w.title,
        metric: m.name,
        unit: m.unit,
        afUnixMedian: medianOf('af_unix'),
        tcpSameToolMedian: medianOf('tcp_same_tool'),
        tcpSameToolOnMedian: medianOf('tcp_same_tool_on'),
        offMedian: summary?.off?.median ?? null,
        onMedian: summary?.on?.median ?? null,
      });
    }
  }
  return checks;
}
