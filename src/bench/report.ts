/**
 * The bench report (bench.json, schema sockbypass-bench/1): every run, every
 * reference run, and the figures derived from them. Types only; assemble.ts
 * builds it, render.ts shows it.
 */
import type { Counters } from '../core/layout.js';
import type { MachineFacts } from './machine.js';
import type { BypassMode, MetricUnit, WorkloadSummary } from './stats.js';
import type { VerifyThresholds } from './verify.js';
import type { Workload } from './workloads.js';

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
  readonly offCheck?: {
    readonly loadedBefore: boolean;
    readonly loadedAfter: boolean;
    readonly effectivePrograms: readonly string[] | null;
  };
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** AF_UNIX; the same tool over TCP with the bypass off; and with it on (the like-for-like comparison with AF_UNIX). */
export type ReferenceKind = 'af_unix' | 'tcp_same_tool' | 'tcp_same_tool_on';

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
  /**
   * Median sockets per run that left the sockhash (small-write senders and their receivers): their later bytes went by
   * plain TCP, unseen by sk_msg. Absent when none left (and in reports older than the exit).
   */
  readonly socketsLeftMedian?: number;
}

/** Per outside-veth workload: what its ON runs' counters show (nothing may join the sockhash). */
export interface LeftAloneSummary {
  readonly workload: string;
  readonly title: string;
  /** ON runs with counters, kept or refused. */
  readonly onRuns: number;
  /** Sockets inserted, summed over those runs (any at all refuses the run). */
  readonly socketsInserted: number;
  /** Sockets left alone for having no peer here, per kept ON run: median, min, max. */
  readonly leftNoPeer: { readonly median: number; readonly min: number; readonly max: number } | null;
}

/** A run that was not kept, with why. */
export interface DiscardedEntry extends Pick<RunRecord, 'index' | 'workload' | 'title' | 'pair' | 'mode' | 'values'> {
  readonly reason: string;
}

/** A workload (or its reference) left out of the plan, e.g. for a missing tool. */
export interface SkippedWorkload {
  readonly workload: string;
  readonly reason: string;
}

/** What the plan decided, as the report records it. */
export interface PlanSettings {
  readonly pairs: number;
  readonly seconds: number;
  readonly quick: boolean;
  readonly references: boolean;
  readonly skipped: readonly SkippedWorkload[];
  /** Workloads whose reference cannot run (missing tool). */
  readonly referencesSkipped: readonly SkippedWorkload[];
}

/** A workload of the plan, as the report records it. */
export interface WorkloadSettings extends Pick<Workload, 'id' | 'title' | 'command'> {
  /** The metrics' names. */
  readonly metrics: readonly string[];
  readonly reference: { readonly command: string; readonly checkCommand: string } | null;
}

export interface BenchReport {
  readonly schema: 'sockbypass-bench/1';
  readonly commandLine: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationSeconds: number;
  readonly machine: MachineFacts;
  readonly loadAverageAtEnd: readonly number[];
  readonly settings: PlanSettings & {
    /** The policy of every ON run, as `formatPolicy` words it. */
    readonly policy: string;
    readonly thresholds: VerifyThresholds;
    readonly cgroup: string;
    readonly pinDir: string;
    readonly workloads: readonly WorkloadSettings[];
  };
  readonly runs: readonly RunRecord[];
  readonly references: readonly ReferenceRecord[];
  readonly summaries: readonly WorkloadSummary[];
  readonly referenceChecks: readonly ReferenceCheck[];
  readonly discarded: readonly DiscardedEntry[];
  /** Per workload: how the bytes of its kept ON runs went (socket to socket, or TCP under flow control). */
  readonly onRunBytes: readonly OnRunBytes[];
  /** Outside-veth workloads: their ON runs left every socket alone. */
  readonly leftAlone: readonly LeftAloneSummary[];
  readonly cleanupProblems: readonly string[];
  /** Every process the bench started (all stopped by the end), by PID. */
  readonly processes: ReadonlyArray<{ readonly pid: number; readonly command: string; readonly inCgroup: boolean }>;
}
