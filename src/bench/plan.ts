/** Which workloads a bench runs, how often and how long, and which it skips (missing tools). */
import type { PlanSettings, ReferenceKind, SkippedWorkload } from './report.js';
import type { BypassMode } from './stats.js';
import {
  findTools,
  QUICK_WORKLOADS,
  selectWorkloads,
  WORKLOADS,
  type Tool,
  type ToolPaths,
  type Workload,
} from './workloads.js';

export const DEFAULT_PAIRS = 3;
export const DEFAULT_SECONDS = 3;
export const QUICK_PAIRS = 2;
export const QUICK_SECONDS = 1;

/** The runs of pair `pair`: which mode goes first alternates, so drift over a pair cancels across pairs. */
export function pairOrder(pair: number): readonly [BypassMode, BypassMode] {
  return pair % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
}

/** The reference runs of pair `pair`; the TCP on/off order alternates too, as for the workload's own pairs. */
export function referenceOrder(pair: number): readonly ReferenceKind[] {
  return pair % 2 === 0
    ? ['af_unix', 'tcp_same_tool_on', 'tcp_same_tool']
    : ['af_unix', 'tcp_same_tool', 'tcp_same_tool_on'];
}

export interface PlanOptions {
  /** on/off pairs per workload; default 3 (--quick: 2). */
  readonly pairs?: number;
  /** Seconds per run, whole; default 3 (--quick: 1). */
  readonly seconds?: number;
  /** Fewer workloads, 1 s runs, 2 pairs: under a minute. Explicit pairs/seconds/only win. */
  readonly quick?: boolean;
  /** Workload ids or groups (see selectWorkloads). */
  readonly only?: readonly string[];
  /** Measure the AF_UNIX reference (and its same-tool TCP check); default true. */
  readonly references?: boolean;
  /** Tool locations; default findTools(). */
  readonly tools?: ToolPaths;
  /** Workload catalogue; default WORKLOADS. */
  readonly catalogue?: readonly Workload[];
}

export interface BenchPlan extends PlanSettings {
  readonly workloads: readonly Workload[];
  /** Runs plus reference runs, for the progress counter. */
  readonly totalSteps: number;
}

function resolvedSettings(options: PlanOptions): { pairs: number; seconds: number; quick: boolean } {
  const quick = options.quick === true;
  const pairs = options.pairs ?? (quick ? QUICK_PAIRS : DEFAULT_PAIRS);
  const seconds = options.seconds ?? (quick ? QUICK_SECONDS : DEFAULT_SECONDS);
  if (!Number.isInteger(pairs) || pairs < 1) throw new RangeError(`pairs must be a whole number >= 1, got ${pairs}`);
  if (!Number.isInteger(seconds) || seconds < 1)
    throw new RangeError(`seconds must be a whole number >= 1, got ${seconds}`);
  return { pairs, seconds, quick };
}

function chosenWorkloads(options: PlanOptions, quick: boolean): Workload[] {
  const catalogue = options.catalogue ?? WORKLOADS;
  if (options.only !== undefined && options.only.length > 0) return selectWorkloads(options.only, catalogue);
  if (quick)
    return selectWorkloads(
      QUICK_WORKLOADS.filter((id) => catalogue.some((w) => w.id === id)),
      catalogue,
    );
  return [...catalogue];
}

function notInstalled(needs: readonly Tool[], tools: ToolPaths): string | undefined {
  const missing = needs.filter((t) => tools[t] === undefined);
  return missing.length === 0 ? undefined : `${missing.join(', ')} not installed`;
}

/** Which workloads run, which are skipped (missing tools), and how many steps that is. */
export function planBench(options: PlanOptions = {}, tools: ToolPaths = options.tools ?? findTools()): BenchPlan {
  const { pairs, seconds, quick } = resolvedSettings(options);
  const chosen = chosenWorkloads(options, quick);
  if (chosen.length === 0) throw new RangeError('no workload selected');
  const references = options.references ?? true;
  const skipped: SkippedWorkload[] = [];
  const referencesSkipped: SkippedWorkload[] = [];
  const workloads: Workload[] = [];
  for (const w of chosen) {
    const missing = notInstalled(w.needs, tools);
    if (missing !== undefined) {
      skipped.push({ workload: w.id, reason: missing });
      continue;
    }
    workloads.push(w);
    const refMissing = references && w.reference ? notInstalled(w.reference.needs, tools) : undefined;
    if (refMissing !== undefined) referencesSkipped.push({ workload: w.id, reason: refMissing });
  }
  const stepsPerPair = (w: Workload) =>
    2 + (referenceRuns({ references, referencesSkipped }, w) ? referenceOrder(0).length : 0);
  const totalSteps = workloads.reduce((n, w) => n + pairs * stepsPerPair(w), 0);
  return { workloads, skipped, referencesSkipped, pairs, seconds, quick, references, totalSteps };
}

/** Whether a workload's reference runs in this plan. */
export function referenceRuns(plan: Pick<BenchPlan, 'references' | 'referencesSkipped'>, w: Workload): boolean {
  return plan.references && w.reference !== undefined && !plan.referencesSkipped.some((s) => s.workload === w.id);
}
