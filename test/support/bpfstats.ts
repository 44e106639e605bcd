/**
 * In-kernel run time of BPF programs (run_time_ns / run_cnt), for the scale
 * measurement: less moved by other work on a shared host than a wall-clock
 * rate, since it counts only the programs' own time. Stats are on while the
 * fd of BPF_ENABLE_STATS is open (host-wide, for every program) and off again
 * when it closes; nothing is left changed.
 */
import { execFileSync } from 'node:child_process';
import { closeSync } from 'node:fs';
import { koffi } from '../../src/libbpf/ffi.js';

const BPF_STATS_RUN_TIME = 0;
const enableStats = koffi.load('libbpf.so.1').func('int bpf_enable_stats(int type)') as (type: number) => number;

/** Turn run-time stats on; call the returned function to turn them off. */
export function bpfStatsOn(): () => void {
  const fd = enableStats(BPF_STATS_RUN_TIME);
  if (fd < 0) throw new Error(`bpf_enable_stats: error ${fd}`);
  return () => closeSync(fd);
}

export interface ProgRun {
  ns: number;
  count: number;
}

export function progRun(id: number): ProgRun {
  const info = JSON.parse(execFileSync('bpftool', ['prog', 'show', 'id', String(id), '--json']).toString()) as {
    run_time_ns?: number;
    run_cnt?: number;
  };
  return { ns: info.run_time_ns ?? 0, count: info.run_cnt ?? 0 };
}

/** Mean ns per run between two readings. */
export function nsPerRun(before: ProgRun, after: ProgRun): number {
  const runs = after.count - before.count;
  return runs > 0 ? (after.ns - before.ns) / runs : NaN;
}
