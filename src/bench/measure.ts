/**
 * One step of the bench: a workload run with the bypass ON (freshly loaded for
 * this run alone) or OFF (nothing loaded), verified and recorded as kept or
 * discarded; or one reference run (AF_UNIX, or the same tool over TCP).
 * A tool's failure discards the run; an abort (signal) stops the bench.
 */
import type { Counters } from '../core/layout.js';
import type { Policy } from '../core/policy.js';
import { bypassOff, bypassOn, isLoaded, observeOff, readBenchCounters } from './bypass-toggle.js';
import { BenchAborted, ToolFailure, type BenchEnv } from './env.js';
import { formatWithUnit } from './format.js';
import type { ReferenceKind, ReferenceRecord, RunRecord } from './report.js';
import type { BypassMode } from './stats.js';
import { countersDelta, verifyOffRun, verifyOnRun, type VerifyThresholds } from './verify.js';
import type { Measurement, ReferenceDef, ReferenceMeasurement, RunContext, Workload } from './workloads.js';

/** What every step of one bench shares. */
export interface StepSetup {
  readonly env: BenchEnv;
  readonly ctx: RunContext;
  readonly pairs: number;
  readonly totalSteps: number;
  readonly maxEntries: number | undefined;
  readonly policy: Policy | undefined;
  readonly thresholds: VerifyThresholds;
  readonly progress: (text: string) => void;
}

/** Where a run stands: its step among all steps, its index among all runs, its pair and its place in the pair. */
export interface RunSlot {
  readonly step: number;
  readonly index: number;
  readonly pair: number;
  readonly mode: BypassMode;
  readonly positionInPair: 1 | 2;
}

const REFERENCE_LABELS: Record<ReferenceKind, string> = {
  af_unix: 'reference: AF_UNIX',
  tcp_same_tool: 'same-tool check: TCP, bypass off',
  tcp_same_tool_on: 'same-tool check: TCP, bypass on',
};

function describeError(e: unknown): string {
  if (e instanceof ToolFailure) return e.message;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

interface Attempt<T> {
  readonly measurement?: T;
  readonly failure?: string;
}

/** Runs `measure`; its failure becomes the step's failure, while an abort stops the bench. */
async function attempt<T>(env: BenchEnv, measure: () => Promise<T>): Promise<Attempt<T>> {
  try {
    return { measurement: await measure() };
  } catch (e) {
    if (e instanceof BenchAborted) throw e;
    env.throwIfAborted();
    return { failure: describeError(e) };
  }
}

/** What one ON or OFF run showed, before it is judged. */
interface RunOutcome extends Attempt<Measurement> {
  /** Why the run is not what it claims (from the verification). */
  readonly reasons: readonly string[];
  readonly counters?: Counters;
  readonly programIds?: RunRecord['programIds'];
  readonly offCheck?: RunRecord['offCheck'];
}

async function onRun(setup: StepSetup, w: Workload): Promise<RunOutcome> {
  const { env } = setup;
  const on = bypassOn(env, setup.maxEntries, setup.policy);
  let tried: Attempt<Measurement>;
  let counters: Counters;
  try {
    tried = await attempt(env, () => w.run(setup.ctx));
    counters = countersDelta(on.before, readBenchCounters(env));
  } finally {
    bypassOff(env);
  }
  const observed = { loaded: on.loaded, attachedCgroup: on.attachedCgroup, benchCgroup: env.cgroup, delta: counters };
  const reasons = tried.measurement ? verifyOnRun(observed, tried.measurement.expect, setup.thresholds) : [];
  return { ...tried, reasons, counters, programIds: on.programIds };
}

async function offRun(setup: StepSetup, w: Workload): Promise<RunOutcome> {
  const before = observeOff(setup.env);
  const tried = await attempt(setup.env, () => w.run(setup.ctx));
  const offCheck = {
    loadedBefore: before.loadedBefore,
    loadedAfter: isLoaded(setup.env),
    effectivePrograms: before.effectivePrograms,
  };
  return { ...tried, reasons: verifyOffRun(offCheck), offCheck };
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

/** The run's first metric, and the reason when discarded: a discarded run's value is printed too (it is in the JSON). */
function runResultText(record: RunRecord, w: Workload): string {
  const first = w.metrics[0];
  const value = first === undefined ? undefined : record.values[first.key];
  const shown = first ? formatWithUnit(value, first.unit) : '';
  if (record.kept) return `${shown}\n`;
  return `${value === undefined ? '' : `${shown}, `}DISCARDED (${record.discardReason})\n`;
}

/** One run of `w`, ON or OFF, verified: kept, or discarded with its reasons. */
export async function measureRun(setup: StepSetup, w: Workload, slot: RunSlot): Promise<RunRecord> {
  setup.env.throwIfAborted();
  setup.progress(
    `[${slot.step}/${setup.totalSteps}] ${w.title} ${slot.mode}, pair ${slot.pair + 1}/${setup.pairs} ... `,
  );
  const started = new Date();
  const t0 = process.hrtime.bigint();
  const outcome = slot.mode === 'on' ? await onRun(setup, w) : await offRun(setup, w);
  const values = outcome.measurement?.values ?? {};
  const reasons =
    outcome.failure !== undefined
      ? [outcome.failure, ...outcome.reasons]
      : [...outcome.reasons, ...valueProblems(values, w)];
  const elapsedSeconds = Number((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3));
  const record: RunRecord = {
    index: slot.index,
    workload: w.id,
    title: w.title,
    pair: slot.pair,
    mode: slot.mode,
    positionInPair: slot.positionInPair,
    startedAt: started.toISOString(),
    elapsedSeconds,
    values,
    kept: reasons.length === 0,
    ...(reasons.length > 0 ? { discardReason: reasons.join('; ') } : {}),
    ...(outcome.counters ? { counters: outcome.counters } : {}),
    ...(outcome.programIds ? { programIds: outcome.programIds } : {}),
    ...(outcome.offCheck ? { offCheck: outcome.offCheck } : {}),
    ...(outcome.measurement ? { detail: outcome.measurement.detail } : {}),
  };
  setup.progress(runResultText(record, w));
  return record;
}

interface ReferenceOutcome {
  readonly measured: ReferenceMeasurement;
  /** tcp_same_tool_on: the counter deltas of its own load. */
  readonly counters?: Counters;
  /** tcp_same_tool_on: why the bypass did not carry it. */
  readonly failure?: string;
}

/** The same tool over TCP with the bypass on: not the full ON verification (no payload figure), but it must have been accelerated. */
async function referenceOn(setup: StepSetup, ref: ReferenceDef): Promise<ReferenceOutcome> {
  const on = bypassOn(setup.env, setup.maxEntries, setup.policy);
  let measured: ReferenceMeasurement;
  let counters: Counters;
  try {
    measured = await ref.runTcpCheck(setup.ctx);
    counters = countersDelta(on.before, readBenchCounters(setup.env));
  } finally {
    bypassOff(setup.env);
  }
  if (counters.socketsInserted < 2 || counters.bytesRedirected === 0) {
    const problem = `the bypass did not carry it: ${counters.socketsInserted} sockets accelerated, ${counters.bytesRedirected} bytes redirected`;
    return { measured, counters, failure: describeError(new Error(problem)) };
  }
  return { measured, counters };
}

async function referenceOutcome(setup: StepSetup, ref: ReferenceDef, kind: ReferenceKind): Promise<ReferenceOutcome> {
  if (isLoaded(setup.env)) throw new Error('sockbypass is loaded; reference runs need it off');
  if (kind === 'tcp_same_tool_on') return referenceOn(setup, ref);
  return { measured: kind === 'af_unix' ? await ref.run(setup.ctx) : await ref.runTcpCheck(setup.ctx) };
}

/** One reference run of `w`'s pair `pair`; a failed one is recorded with its error and left out of the figures. */
export async function measureReference(
  setup: StepSetup,
  w: Workload,
  pair: number,
  kind: ReferenceKind,
  step: number,
): Promise<ReferenceRecord> {
  setup.env.throwIfAborted();
  const ref = w.reference;
  if (!ref) throw new Error(`workload ${w.id} has no reference`);
  const command = kind === 'af_unix' ? ref.command : ref.checkCommand;
  setup.progress(`[${step}/${setup.totalSteps}] ${w.title} ${REFERENCE_LABELS[kind]} (${command}) ... `);
  const tried = await attempt(setup.env, () => referenceOutcome(setup, ref, kind));
  const outcome = tried.measurement;
  const error = tried.failure ?? outcome?.failure;
  const values = outcome?.measured.values ?? {};
  const first = w.metrics[0];
  setup.progress(
    error === undefined ? `${first ? formatWithUnit(values[first.key], first.unit) : ''}\n` : `FAILED (${error})\n`,
  );
  return {
    workload: w.id,
    pair,
    kind,
    command,
    values,
    ...(error !== undefined ? { error } : {}),
    ...(outcome ? { detail: outcome.measured.detail } : {}),
    ...(outcome?.counters ? { counters: outcome.counters } : {}),
  };
}
