/**
 * `sockbypass bench`: every workload with the bypass ON and OFF, interleaved
 * in pairs (pair 1 on-off, pair 2 off-on, pair 3 on-off, ... so that slow
 * drift of a noisy machine cancels), every process inside the bench's own
 * cgroup, every run verified (see verify.ts) and either kept or discarded
 * with its reason.
 *
 * ON means freshly loaded into the bench cgroup for that run alone (sockets
 * must be established while loaded to be accelerated); OFF means unloaded.
 * The bench always cleans up: processes it started (by PID), its pins, its
 * cgroup, on success, failure, SIGINT and SIGTERM alike.
 */
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { objectMissing } from "../errors.js";
import { DEFAULT_OBJECT } from "../core/paths.js";
import { checkKernel, checkPrivileges } from "../os/preflight.js";
import type { Counters } from "../core/layout.js";
import { ALLOW_ALL, formatPolicy, type Policy } from "../core/policy.js";
import { formatScaled, displayUnitFor, formatRatio } from "./format.js";
import { summarize, median, type BenchRun, type BypassMode, type MetricUnit, type WorkloadSummary } from "./stats.js";
import { renderBenchTable } from "./table.js";
import { renderRatioChartSvg } from "./svg.js";
import { renderTextTable } from "../text-table.js";
import { BenchAborted, BenchEnv, ToolFailure, type BenchEnvOptions } from "./env.js";
import { bypassOff, bypassOn, isLoaded, observeOff, readBenchCounters } from "./bypass-toggle.js";
import { bytesShares, countersDelta, DEFAULT_THRESHOLDS, verifyOffRun, verifyOnRun, type VerifyThresholds } from "./verify.js";
import { machineFacts, type MachineFacts } from "./machine.js";
import {
  findTools,
  QUICK_WORKLOADS,
  selectWorkloads,
  WORKLOADS,
  type Measurement,
  type ReferenceMeasurement,
  type RunContext,
  type ToolPaths,
  type Workload,
} from "./workloads.js";

export const DEFAULT_PAIRS = 3;
export const DEFAULT_SECONDS = 3;
export const QUICK_PAIRS = 2;
export const QUICK_SECONDS = 1;

export interface BenchOptions {
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
  readonly maxEntries?: number;
  /** The policy every ON run loads with (the rules' settings, e.g. smallWrite); default: load's defaults. */
  readonly policy?: Policy;
  /** Progress text (without newlines handled for you); default: stderr. */
  readonly progress?: (text: string) => void;
  /** Install SIGINT/SIGTERM handlers that stop the bench and clean up; default true. */
  readonly handleSignals?: boolean;
  readonly signal?: AbortSignal;
  readonly env?: BenchEnvOptions;
  /** For the report; default process.argv. */
  readonly commandLine?: string;
  /** Tool locations; default findTools(). */
  readonly tools?: ToolPaths;
  /** Workload catalogue; default WORKLOADS. */
  readonly catalogue?: readonly Workload[];
  readonly thresholds?: VerifyThresholds;
}

export interface BenchPlan {
  readonly workloads: readonly Workload[];
  readonly skipped: ReadonlyArray<{ readonly workload: string; readonly reason: string }>;
  /** Workloads whose reference cannot run (missing tool). */
  readonly referencesSkipped: ReadonlyArray<{ readonly workload: string; readonly reason: string }>;
  readonly pairs: number;
  readonly seconds: number;
  readonly quick: boolean;
  readonly references: boolean;
  /** Runs plus reference runs, for the progress counter. */
  readonly totalSteps: number;
}

export interface RunRecord {
  /** 1-based position in run order among all runs of the bench. */
  readonly index: number;
  readonly workload: string;
  readonly title: string;
  /** 0-based pair of this workload. */
  readonly pair: number;
  readonly mode: BypassMode;
  /** Whether it ran first or second in its pair. */
  readonly positionInPair: 1 | 2;
  readonly startedAt: string;
  readonly elapsedSeconds: number;
  /** Raw metric values (empty when the tool failed). */
  readonly values: Readonly<Record<string, number>>;
  readonly kept: boolean;
  readonly discardReason?: string;
  /** ON runs: counters over the run (a fresh load's counters). */
  readonly counters?: Counters;
  readonly programIds?: { readonly sockOps: number; readonly skMsg: number };
  /** OFF runs: what showed nothing was loaded. */
  readonly offCheck?: { readonly loadedBefore: boolean; readonly loadedAfter: boolean; readonly effectivePrograms: readonly string[] | null };
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** AF_UNIX; the same tool over TCP with the bypass off; and with it on (the like-for-like comparison with AF_UNIX). */
export type ReferenceKind = "af_unix" | "tcp_same_tool" | "tcp_same_tool_on";

export interface ReferenceRecord {
  readonly workload: string;
  readonly pair: number;
  readonly kind: ReferenceKind;
  readonly command: string;
  readonly values: Readonly<Record<string, number>>;
  readonly error?: string;
  readonly detail?: Readonly<Record<string, unknown>>;
  /** tcp_same_tool_on: the counter deltas of its own load. */
  readonly counters?: Counters;
}

/** The AF_UNIX reference next to the same tool over TCP (bypass off and on), per metric. */
export interface ReferenceCheck {
  readonly workload: string;
  readonly title: string;
  readonly metric: string;
  readonly unit: MetricUnit;
  readonly afUnixMedian: number | null;
  readonly tcpSameToolMedian: number | null;
  /** The same sbload command over TCP with the bypass on. */
  readonly tcpSameToolOnMedian: number | null;
  /** The workload's own tool over TCP with the bypass off. */
  readonly offMedian: number | null;
  readonly onMedian: number | null;
}

export interface OnRunBytes {
  readonly workload: string;
  readonly title: string;
  /** Kept ON runs the figures come from. */
  readonly runs: number;
  /** Share of the bytes sk_msg saw that went socket to socket: median, min, max over the runs. */
  readonly redirectedShare: { readonly median: number; readonly min: number; readonly max: number } | null;
  /** Median switches to TCP by flow control per run. */
  readonly flowToTcpMedian: number | null;
  /** Median share of the sockets the short-connection rule left on TCP, per run. */
  readonly shortSkippedShare: number | null;
}

export interface DiscardedEntry {
  readonly index: number;
  readonly workload: string;
  readonly title: string;
  readonly pair: number;
  readonly mode: BypassMode;
  readonly reason: string;
  readonly values: Readonly<Record<string, number>>;
}

export interface BenchReport {
  readonly schema: "sockbypass-bench/1";
  readonly commandLine: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationSeconds: number;
  readonly machine: MachineFacts;
  readonly loadAverageAtEnd: readonly number[];
  readonly settings: {
    readonly pairs: number;
    readonly seconds: number;
    readonly quick: boolean;
    readonly references: boolean;
    /** The policy of every ON run, as `formatPolicy` words it. */
    readonly policy: string;
    readonly thresholds: VerifyThresholds;
    readonly cgroup: string;
    readonly pinDir: string;
    readonly workloads: ReadonlyArray<{
      readonly id: string;
      readonly title: string;
      readonly command: string;
      readonly metrics: readonly string[];
      readonly reference: { readonly command: string; readonly checkCommand: string } | null;
    }>;
    readonly skipped: BenchPlan["skipped"];
    readonly referencesSkipped: BenchPlan["referencesSkipped"];
  };
  readonly runs: readonly RunRecord[];
  readonly references: readonly ReferenceRecord[];
  readonly summaries: readonly WorkloadSummary[];
  readonly referenceChecks: readonly ReferenceCheck[];
  readonly discarded: readonly DiscardedEntry[];
  /** Per workload: how the bytes of its kept ON runs went (socket to socket, or TCP under flow control). */
  readonly onRunBytes: readonly OnRunBytes[];
  readonly cleanupProblems: readonly string[];
  /** Every process the bench started (all stopped by the end), by PID. */
  readonly processes: ReadonlyArray<{ readonly pid: number; readonly command: string; readonly inCgroup: boolean }>;
}

function resolvedSettings(options: BenchOptions): { pairs: number; seconds: number; quick: boolean } {
  const quick = options.quick === true;
  const pairs = options.pairs ?? (quick ? QUICK_PAIRS : DEFAULT_PAIRS);
  const seconds = options.seconds ?? (quick ? QUICK_SECONDS : DEFAULT_SECONDS);
  if (!Number.isInteger(pairs) || pairs < 1) throw new RangeError(`pairs must be a whole number >= 1, got ${pairs}`);
  if (!Number.isInteger(seconds) || seconds < 1) throw new RangeError(`seconds must be a whole number >= 1, got ${seconds}`);
  return { pairs, seconds, quick };
}

/** Which workloads run, which are skipped (missing tools), and how many steps that is. */
export function planBench(options: BenchOptions = {}, tools: ToolPaths = options.tools ?? findTools()): BenchPlan {
  const { pairs, seconds, quick } = resolvedSettings(options);
  const catalogue = options.catalogue ?? WORKLOADS;
  const chosen =
    options.only !== undefined && options.only.length > 0
      ? selectWorkloads(options.only, catalogue)
      : quick
        ? selectWorkloads(QUICK_WORKLOADS.filter((id) => catalogue.some((w) => w.id === id)), catalogue)
        : [...catalogue];
  if (chosen.length === 0) throw new RangeError("no workload selected");
  const references = options.references ?? true;
  const skipped: Array<{ workload: string; reason: string }> = [];
  const referencesSkipped: Array<{ workload: string; reason: string }> = [];
  const workloads: Workload[] = [];
  for (const w of chosen) {
    const missing = w.needs.filter((t) => tools[t] === undefined);
    if (missing.length > 0) {
      skipped.push({ workload: w.id, reason: `${missing.join(", ")} not installed` });
      continue;
    }
    workloads.push(w);
    if (references && w.reference) {
      const refMissing = w.reference.needs.filter((t) => tools[t] === undefined);
      if (refMissing.length > 0) referencesSkipped.push({ workload: w.id, reason: `${refMissing.join(", ")} not installed` });
    }
  }
  const withReference = (w: Workload) => references && w.reference !== undefined && !referencesSkipped.some((s) => s.workload === w.id);
  const totalSteps = workloads.reduce((n, w) => n + pairs * (2 + (withReference(w) ? REFERENCE_KINDS.length : 0)), 0);
  return { workloads, skipped, referencesSkipped, pairs, seconds, quick, references, totalSteps };
}

const REFERENCE_KINDS: readonly ReferenceKind[] = ["af_unix", "tcp_same_tool", "tcp_same_tool_on"];
const REFERENCE_LABELS: Record<ReferenceKind, string> = {
  af_unix: "reference: AF_UNIX",
  tcp_same_tool: "same-tool check: TCP, bypass off",
  tcp_same_tool_on: "same-tool check: TCP, bypass on",
};

/** Whether a workload's reference runs in this plan. */
function referenceRuns(plan: BenchPlan, w: Workload): boolean {
  return plan.references && w.reference !== undefined && !plan.referencesSkipped.some((s) => s.workload === w.id);
}

function describeError(e: unknown): string {
  if (e instanceof ToolFailure) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

/** A kept value must be a finite measurement above zero (an on/off ratio of zero or infinity means nothing was measured). */
function valueProblems(values: Readonly<Record<string, number>>, w: Workload): string[] {
  const problems: string[] = [];
  for (const m of w.metrics) {
    const v = values[m.key];
    if (v === undefined) problems.push(`no ${m.name} value`);
    else if (!Number.isFinite(v) || v <= 0) problems.push(`${m.name} is ${v}: nothing was measured`);
  }
  return problems;
}

function formatValue(value: number | undefined, unit: MetricUnit): string {
  if (value === undefined) return "-";
  const display = displayUnitFor(unit, value);
  return `${formatScaled(value, display)} ${display.label}`;
}

/** Drives one bench; exported for the demo and the tests. */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const tools = options.tools ?? findTools();
  const plan = planBench(options, tools);
  // Fail before creating anything when the bypass cannot be loaded at all.
  checkPrivileges("run the bench");
  if (!existsSync(DEFAULT_OBJECT)) throw objectMissing(DEFAULT_OBJECT);
  checkKernel();
  const thresholds = options.thresholds ?? DEFAULT_THRESHOLDS;
  const progress = options.progress ?? ((text: string) => process.stderr.write(text));
  const startedAt = new Date();
  const machine = machineFacts(tools);
  const env = BenchEnv.create(options.env);

  const onSignal = (signal: NodeJS.Signals) => env.abort(signal);
  const handleSignals = options.handleSignals ?? true;
  if (handleSignals) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  const onAbortSignal = () => env.abort(String(options.signal?.reason ?? "aborted"));
  if (options.signal?.aborted) env.abort(String(options.signal.reason ?? "aborted"));
  options.signal?.addEventListener("abort", onAbortSignal);

  const runs: RunRecord[] = [];
  const references: ReferenceRecord[] = [];
  let step = 0;
  let cleanupProblems: string[] = [];
  const ctx: RunContext = { env, seconds: plan.seconds, tools };

  const runOne = async (w: Workload, pair: number, mode: BypassMode, positionInPair: 1 | 2): Promise<RunRecord> => {
    env.throwIfAborted();
    step++;
    progress(`[${step}/${plan.totalSteps}] ${w.title} ${mode}, pair ${pair + 1}/${plan.pairs} ... `);
    const started = new Date();
    const t0 = process.hrtime.bigint();
    let measurement: Measurement | undefined;
    let failure: string | undefined;
    let reasons: string[] = [];
    let counters: Counters | undefined;
    let programIds: RunRecord["programIds"];
    let offCheck: RunRecord["offCheck"];
    if (mode === "on") {
      const on = bypassOn(env, options.maxEntries, options.policy);
      programIds = on.programIds;
      try {
        try {
          measurement = await w.run(ctx);
        } catch (e) {
          if (e instanceof BenchAborted) throw e;
          env.throwIfAborted();
          failure = describeError(e);
        }
        counters = countersDelta(on.before, readBenchCounters(env));
      } finally {
        bypassOff(env);
      }
      if (measurement) {
        reasons = verifyOnRun(
          { loaded: on.loaded, attachedCgroup: on.attachedCgroup, benchCgroup: env.cgroup, delta: counters },
          measurement.expect,
          thresholds,
        );
      }
    } else {
      const before = observeOff(env);
      try {
        measurement = await w.run(ctx);
      } catch (e) {
        if (e instanceof BenchAborted) throw e;
        env.throwIfAborted();
        failure = describeError(e);
      }
      offCheck = { loadedBefore: before.loadedBefore, loadedAfter: isLoaded(env), effectivePrograms: before.effectivePrograms };
      reasons = verifyOffRun(offCheck);
    }
    const values = measurement?.values ?? {};
    if (failure !== undefined) reasons.unshift(failure);
    else reasons.push(...valueProblems(values, w));
    const elapsedSeconds = Number((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3));
    const record: RunRecord = {
      index: runs.length + 1,
      workload: w.id,
      title: w.title,
      pair,
      mode,
      positionInPair,
      startedAt: started.toISOString(),
      elapsedSeconds,
      values,
      kept: reasons.length === 0,
      ...(reasons.length > 0 ? { discardReason: reasons.join("; ") } : {}),
      ...(counters ? { counters } : {}),
      ...(programIds ? { programIds } : {}),
      ...(offCheck ? { offCheck } : {}),
      ...(measurement ? { detail: measurement.detail } : {}),
    };
    const first = w.metrics[0];
    const shown = first ? formatValue(values[first.key], first.unit) : "";
    // A discarded run's value is printed too (it is in the JSON), so the record shows what it measured.
    progress(record.kept ? `${shown}\n` : `${values[first?.key ?? ""] === undefined ? "" : `${shown}, `}DISCARDED (${record.discardReason})\n`);
    return record;
  };

  const runReference = async (w: Workload, pair: number, kind: ReferenceKind): Promise<ReferenceRecord> => {
    env.throwIfAborted();
    const ref = w.reference;
    if (!ref) throw new Error(`workload ${w.id} has no reference`);
    step++;
    const command = kind === "af_unix" ? ref.command : ref.checkCommand;
    progress(`[${step}/${plan.totalSteps}] ${w.title} ${REFERENCE_LABELS[kind]} (${command}) ... `);
    let measured: ReferenceMeasurement | undefined;
    let error: string | undefined;
    let counters: Counters | undefined;
    try {
      if (isLoaded(env)) throw new Error("sockbypass is loaded; reference runs need it off");
      if (kind === "tcp_same_tool_on") {
        const on = bypassOn(env, options.maxEntries, options.policy);
        try {
          measured = await ref.runTcpCheck(ctx);
          counters = countersDelta(on.before, readBenchCounters(env));
        } finally {
          bypassOff(env);
        }
        // Not the full ON verification (the reference has no payload figure), but it must have been accelerated.
        if (counters.socketsInserted < 2 || counters.bytesRedirected === 0) {
          throw new Error(`the bypass did not carry it: ${counters.socketsInserted} sockets accelerated, ${counters.bytesRedirected} bytes redirected`);
        }
      } else {
        measured = kind === "af_unix" ? await ref.run(ctx) : await ref.runTcpCheck(ctx);
      }
    } catch (e) {
      if (e instanceof BenchAborted) throw e;
      env.throwIfAborted();
      error = describeError(e);
    }
    const values = measured?.values ?? {};
    const first = w.metrics[0];
    progress(error === undefined ? `${first ? formatValue(values[first.key], first.unit) : ""}\n` : `FAILED (${error})\n`);
    return {
      workload: w.id,
      pair,
      kind,
      command,
      values,
      ...(error !== undefined ? { error } : {}),
      ...(measured ? { detail: measured.detail } : {}),
      ...(counters ? { counters } : {}),
    };
  };

  try {
    for (const w of plan.workloads) {
      for (let pair = 0; pair < plan.pairs; pair++) {
        // Alternate which mode goes first, so drift over a pair cancels across pairs.
        const order: BypassMode[] = pair % 2 === 0 ? ["on", "off"] : ["off", "on"];
        runs.push(await runOne(w, pair, order[0] as BypassMode, 1));
        runs.push(await runOne(w, pair, order[1] as BypassMode, 2));
        if (referenceRuns(plan, w)) {
          // Alternate the TCP on/off order too, as for the workload's own pairs.
          const kinds: ReferenceKind[] = pair % 2 === 0 ? ["af_unix", "tcp_same_tool_on", "tcp_same_tool"] : ["af_unix", "tcp_same_tool", "tcp_same_tool_on"];
          for (const kind of kinds) references.push(await runReference(w, pair, kind));
        }
      }
    }
  } catch (e) {
    if (e instanceof BenchAborted) progress(`\ninterrupted (${e.reason}): cleaning up\n`);
    throw e;
  } finally {
    if (handleSignals) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
    options.signal?.removeEventListener("abort", onAbortSignal);
    cleanupProblems = await env.cleanup();
    for (const problem of cleanupProblems) progress(`cleanup: ${problem}\n`);
  }

  const finishedAt = new Date();
  const summaries = summarizeRuns(plan.workloads, runs, references);
  return {
    schema: "sockbypass-bench/1",
    commandLine: options.commandLine ?? process.argv.join(" "),
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationSeconds: Number(((finishedAt.getTime() - startedAt.getTime()) / 1000).toFixed(1)),
    machine,
    loadAverageAtEnd: loadavg().map((l) => Number(l.toFixed(2))),
    settings: {
      pairs: plan.pairs,
      seconds: plan.seconds,
      quick: plan.quick,
      references: plan.references,
      policy: formatPolicy(options.policy ?? ALLOW_ALL),
      thresholds,
      cgroup: env.cgroup,
      pinDir: env.pinDir,
      workloads: plan.workloads.map((w) => ({
        id: w.id,
        title: w.title,
        command: w.command,
        metrics: w.metrics.map((m) => m.name),
        reference: w.reference && referenceRuns(plan, w) ? { command: w.reference.command, checkCommand: w.reference.checkCommand } : null,
      })),
      skipped: plan.skipped,
      referencesSkipped: plan.referencesSkipped,
    },
    runs,
    references,
    summaries,
    referenceChecks: referenceChecks(plan.workloads, summaries, references),
    discarded: runs
      .filter((r) => !r.kept)
      .map((r) => ({
        index: r.index,
        workload: r.workload,
        title: r.title,
        pair: r.pair,
        mode: r.mode,
        reason: r.discardReason ?? "",
        values: r.values,
      })),
    onRunBytes: onRunBytes(plan.workloads, runs),
    cleanupProblems,
    processes: env.started,
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
    const unix = references.filter((r) => r.workload === w.id && r.kind === "af_unix" && r.error === undefined);
    for (const m of w.metrics) {
      const benchRuns: BenchRun[] = mine.map((r) => {
        const value = r.values[m.key];
        if (r.kept && value !== undefined) return { mode: r.mode, value };
        const reason = r.discardReason ?? `no ${m.name} value`;
        return value !== undefined && Number.isFinite(value)
          ? { mode: r.mode, value, discardReason: reason }
          : { mode: r.mode, discardReason: reason };
      });
      const refValues = unix.map((r) => r.values[m.key]).filter((v): v is number => v !== undefined && Number.isFinite(v) && v >= 0);
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

function onRunBytes(workloads: readonly Workload[], runs: readonly RunRecord[]): OnRunBytes[] {
  return workloads.map((w) => {
    const kept = runs.filter((r) => r.workload === w.id && r.mode === "on" && r.kept && r.counters);
    const shares = kept.map((r) => bytesShares(r.counters as Counters)?.redirected).filter((v): v is number => v !== undefined);
    return {
      workload: w.id,
      title: w.title,
      runs: kept.length,
      redirectedShare: shares.length === 0 ? null : { median: median(shares), min: Math.min(...shares), max: Math.max(...shares) },
      flowToTcpMedian: medianOrNull(kept.map((r) => (r.counters as Counters).flowToTcp)),
      shortSkippedShare: medianOrNull(
        kept.map((r) => {
          const c = r.counters as Counters;
          const decided = c.socketsInserted + c.shortSkipped;
          return decided > 0 ? c.shortSkipped / decided : 0;
        }),
      ),
    };
  });
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
      const pick = (kind: ReferenceKind) =>
        mine.filter((r) => r.kind === kind).map((r) => r.values[m.key]).filter((v): v is number => v !== undefined);
      const summary = summaries.find((s) => s.workload === w.title && s.metric === m.name);
      checks.push({
        workload: w.id,
        title: w.title,
        metric: m.name,
        unit: m.unit,
        afUnixMedian: medianOrNull(pick("af_unix")),
        tcpSameToolMedian: medianOrNull(pick("tcp_same_tool")),
        tcpSameToolOnMedian: medianOrNull(pick("tcp_same_tool_on")),
        offMedian: summary?.off?.median ?? null,
        onMedian: summary?.on?.median ?? null,
      });
    }
  }
  return checks;
}

// ------------------------------------------------------------------ rendering

function ratioText(a: number | null, b: number | null): string {
  return a === null || b === null || b === 0 ? "-" : formatRatio(a / b);
}

/** The AF_UNIX reference next to the same tool over TCP, so tool overhead can be told from socket-family overhead. */
export function renderReferenceChecks(checks: readonly ReferenceCheck[]): string {
  if (checks.length === 0) return "";
  const rows = checks.map((c) => {
    const magnitude = Math.max(...[c.afUnixMedian, c.tcpSameToolMedian, c.tcpSameToolOnMedian, c.offMedian, c.onMedian].filter((v): v is number => v !== null), 0);
    const display = displayUnitFor(c.unit, magnitude);
    const cell = (v: number | null) => (v === null ? "-" : formatScaled(v, display));
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
  });
  return (
    renderTextTable(
      [
        { header: "Workload", align: "left" },
        { header: "Metric", align: "left" },
        { header: "sbload AF_UNIX", align: "right" },
        { header: "sbload TCP off", align: "right" },
        { header: "UNIX/TCP", align: "right" },
        { header: "sbload TCP on", align: "right" },
        { header: "on/UNIX", align: "right" },
        { header: "Tool TCP off", align: "right" },
        { header: "Tool TCP on", align: "right" },
      ],
      rows,
    ) +
    [
      "",
      "The AF_UNIX column of the main table is sbload's AF_UNIX median over the workload tool's bypass-off median:",
      "two different programs. This table puts sbload's AF_UNIX next to sbload over TCP with the bypass off",
      "(UNIX/TCP = same-tool ratio) and over TCP with the bypass on (on/UNIX = the bypass against AF_UNIX, same tool),",
      "and the workload tool's own off and on medians (Tool TCP off/on).",
      "sbload rr latencies are round trips halved, to match sockperf's one-way figures.",
    ].join("\n") +
    "\n"
  );
}

function pct(f: number): string {
  return `${(f * 100).toFixed(1)}%`;
}

/** Where the bytes of the kept ON runs went: socket to socket, or TCP under flow control. */
export function renderOnRunBytes(rows: readonly OnRunBytes[]): string {
  const lines = rows
    .filter((r) => r.redirectedShare !== null)
    .map((r) => {
      const s = r.redirectedShare as NonNullable<OnRunBytes["redirectedShare"]>;
      const range = s.min === s.max ? "" : ` (${pct(s.min)}-${pct(s.max)})`;
      const flow = r.flowToTcpMedian ? `, ${r.flowToTcpMedian} switches to TCP per run (median)` : "";
      const short = r.shortSkippedShare ? `; ${pct(r.shortSkippedShare)} of its sockets left on TCP as short connections (median)` : "";
      return `  ${r.title.padEnd(Math.max(...rows.map((x) => x.title.length)))}  ${pct(s.median)}${range}${flow}${short}`;
    });
  if (lines.length === 0) return "";
  return ["Bytes of kept ON runs that went socket to socket (the rest went by TCP under flow control):", ...lines].join("\n") + "\n";
}

/** The whole terminal report: settings, the main table, the reference check, skips and cleanup problems. */
export function renderBenchReport(report: BenchReport): string {
  const m = report.machine;
  const lines: string[] = [
    `sockbypass bench: ${report.settings.pairs} on/off pairs per workload, ${report.settings.seconds} s per run, ${report.durationSeconds} s in all`,
    `machine: Linux ${m.kernel}, ${m.nproc} CPUs (${m.cpuModel}), load average ${m.loadAverageAtStart.join(" ")} at start, ${report.loadAverageAtEnd.join(" ")} at end`,
    `policy of the ON runs: ${report.settings.policy}`,
    "",
  ];
  let text = lines.join("\n") + renderBenchTable(report.summaries);
  text += "\n" + renderOnRunBytes(report.onRunBytes);
  const checks = renderReferenceChecks(report.referenceChecks);
  if (checks) text += "\n" + checks;
  const failedRefs = report.references.filter((r) => r.error !== undefined);
  if (failedRefs.length > 0) {
    text += "\nReference runs that failed (not used):\n" + failedRefs.map((r) => `  ${r.workload}, pair ${r.pair + 1}, ${r.kind}: ${r.error}`).join("\n") + "\n";
  }
  const skipped = [...report.settings.skipped, ...report.settings.referencesSkipped.map((s) => ({ ...s, workload: `${s.workload} (AF_UNIX reference)` }))];
  if (skipped.length > 0) {
    text += "\nSkipped:\n" + skipped.map((s) => `  ${s.workload}: ${s.reason}`).join("\n") + "\n";
  }
  if (report.cleanupProblems.length > 0) {
    text += "\nCleanup problems:\n" + report.cleanupProblems.map((p) => `  ${p}`).join("\n") + "\n";
  }
  return text;
}

export function renderBenchSvg(report: BenchReport): string {
  const m = report.machine;
  return renderRatioChartSvg(report.summaries, {
    title: `sockbypass on/off (Linux ${m.kernel}, ${m.nproc} CPUs, ${report.settings.pairs} pairs x ${report.settings.seconds} s)`,
  });
}

/** bench.json, bench.svg and bench.txt in `dir` (created if needed); returns their paths. */
export async function writeBenchOutputs(report: BenchReport, dir: string): Promise<{ json: string; svg: string; text: string }> {
  const { mkdir, writeFile } = await import("node:fs/promises");
  const { join } = await import("node:path");
  await mkdir(dir, { recursive: true });
  const paths = { json: join(dir, "bench.json"), svg: join(dir, "bench.svg"), text: join(dir, "bench.txt") };
  await writeFile(paths.json, JSON.stringify(report, null, 2) + "\n");
  await writeFile(paths.svg, renderBenchSvg(report));
  await writeFile(paths.text, renderBenchReport(report));
  return paths;
}
