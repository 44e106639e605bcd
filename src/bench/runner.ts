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
 *
 * This file is the order of things; plan.ts decides what runs, measure.ts
 * runs one step, assemble.ts turns the records into the report (report.ts),
 * render.ts shows it.
 */
import { existsSync } from 'node:fs';
import { objectMissing } from '../errors.js';
import { DEFAULT_OBJECT } from '../core/paths.js';
import { checkKernel, checkPrivileges } from '../os/preflight.js';
import { ALLOW_ALL, formatPolicy, type Policy } from '../core/policy.js';
import { assembleReport } from './assemble.js';
import { BenchAborted, BenchEnv, type BenchEnvOptions } from './env.js';
import { machineFacts } from './machine.js';
import { measureReference, measureRun, type RunSlot, type StepSetup } from './measure.js';
import { pairOrder, planBench, referenceOrder, referenceRuns, type BenchPlan, type PlanOptions } from './plan.js';
import type { BenchReport, ReferenceRecord, RunRecord } from './report.js';
import type { BypassMode } from './stats.js';
import { DEFAULT_THRESHOLDS, type VerifyThresholds } from './verify.js';
import { findTools, type Workload } from './workloads.js';

export interface BenchOptions extends PlanOptions {
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
  readonly thresholds?: VerifyThresholds;
}

/** What the bench has recorded so far, in run order. */
interface Recorded {
  readonly runs: RunRecord[];
  readonly references: ReferenceRecord[];
}

/** Fail before creating anything when the bypass cannot be loaded at all. */
function preflight(): void {
  checkPrivileges('run the bench');
  if (!existsSync(DEFAULT_OBJECT)) throw objectMissing(DEFAULT_OBJECT);
  checkKernel();
}

/** Let SIGINT/SIGTERM (when asked) and `options.signal` abort the bench; returns the undo. */
function listenForAborts(env: BenchEnv, options: BenchOptions): () => void {
  const onSignal = (signal: NodeJS.Signals) => env.abort(signal);
  const handleSignals = options.handleSignals ?? true;
  if (handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  const onAbortSignal = () => env.abort(String(options.signal?.reason ?? 'aborted'));
  if (options.signal?.aborted) onAbortSignal();
  options.signal?.addEventListener('abort', onAbortSignal);
  return () => {
    if (handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    options.signal?.removeEventListener('abort', onAbortSignal);
  };
}

/** Steps are counted over runs and reference runs alike, in the order they ran. */
function nextStep(recorded: Recorded): number {
  return recorded.runs.length + recorded.references.length + 1;
}

function nextSlot(recorded: Recorded, pair: number, mode: BypassMode, positionInPair: 1 | 2): RunSlot {
  return { step: nextStep(recorded), index: recorded.runs.length + 1, pair, mode, positionInPair };
}

/** One on/off pair of `w`, then its reference runs when the plan has them. */
async function runPair(
  setup: StepSetup,
  plan: BenchPlan,
  w: Workload,
  pair: number,
  recorded: Recorded,
): Promise<void> {
  const [first, second] = pairOrder(pair);
  recorded.runs.push(await measureRun(setup, w, nextSlot(recorded, pair, first, 1)));
  recorded.runs.push(await measureRun(setup, w, nextSlot(recorded, pair, second, 2)));
  if (!referenceRuns(plan, w)) return;
  for (const kind of referenceOrder(pair)) {
    recorded.references.push(await measureReference(setup, w, pair, kind, nextStep(recorded)));
  }
}

async function runPlan(setup: StepSetup, plan: BenchPlan, recorded: Recorded): Promise<void> {
  for (const w of plan.workloads) {
    for (let pair = 0; pair < plan.pairs; pair++) await runPair(setup, plan, w, pair, recorded);
  }
}

/** Removes what the bench created; returns (and reports) what could not be removed. */
async function cleanUp(env: BenchEnv, progress: (text: string) => void): Promise<string[]> {
  const problems = await env.cleanup();
  for (const problem of problems) progress(`cleanup: ${problem}\n`);
  return problems;
}

/** Drives one bench; exported for the demo and the tests. */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const tools = options.tools ?? findTools();
  const plan = planBench(options, tools);
  preflight();
  const thresholds = options.thresholds ?? DEFAULT_THRESHOLDS;
  const progress = options.progress ?? ((text: string) => process.stderr.write(text));
  const startedAt = new Date();
  const machine = machineFacts(tools);
  const env = BenchEnv.create(options.env);
  const stopListening = listenForAborts(env, options);
  const setup: StepSetup = {
    env,
    ctx: { env, seconds: plan.seconds, tools },
    pairs: plan.pairs,
    totalSteps: plan.totalSteps,
    maxEntries: options.maxEntries,
    policy: options.policy,
    thresholds,
    progress,
  };
  const recorded: Recorded = { runs: [], references: [] };
  let cleanupProblems: string[];
  try {
    await runPlan(setup, plan, recorded);
  } catch (e) {
    if (e instanceof BenchAborted) progress(`\ninterrupted (${e.reason}): cleaning up\n`);
    throw e;
  } finally {
    stopListening();
    cleanupProblems = await cleanUp(env, progress);
  }
  return assembleReport({
    plan,
    commandLine: options.commandLine ?? process.argv.join(' '),
    startedAt,
    finishedAt: new Date(),
    machine,
    policy: formatPolicy(options.policy ?? ALLOW_ALL),
    thresholds,
    cgroup: env.cgroup,
    pinDir: env.pinDir,
    ...recorded,
    cleanupProblems,
    processes: env.started,
  });
}
