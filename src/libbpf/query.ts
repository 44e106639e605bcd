/** Which programs are attached to a target (a cgroup fd) for one attach type. */
import { BPF, fn } from './ffi.js';
import { check } from './errors.js';

/** Program ids attached directly to `targetFd` for `attachType` (not inherited ones). */
export function attachedProgramIds(targetFd: number, attachType: number, what: string): number[] {
  const max = 64;
  const ids = new Uint32Array(max);
  const count = [max];
  const flags = [0];
  check(fn.bpf_prog_query(targetFd, attachType, 0, flags, ids, count), `query programs attached to ${what}`);
  return Array.from(ids.subarray(0, count[0] ?? 0));
}

/** Program ids of the sock_ops programs attached directly to a cgroup (fd). */
export function sockOpsProgramIds(cgroupFd: number, what: string): number[] {
  return attachedProgramIds(cgroupFd, BPF.CGROUP_SOCK_OPS, what);
}
