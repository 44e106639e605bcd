/**
 * Turning the bypass on and off between bench runs, and observing which state
 * the bench cgroup is really in. ON = freshly loaded into the bench cgroup
 * (connections must be established while loaded to be accelerated, so every
 * ON run gets its own load and its own zeroed counters); OFF = unloaded.
 */
import { execFileSync } from 'node:child_process';
import type { Counters } from '../core/layout.js';
import { load } from '../core/load.js';
import type { Policy } from '../core/policy.js';
import { status } from '../core/status.js';
import { unload } from '../core/unload.js';
import type { BenchEnv } from './env.js';
import type { OffObservation } from './verify.js';

export interface OnState {
  readonly loaded: boolean;
  readonly attachedCgroup: string | undefined;
  readonly programIds: { readonly sockOps: number; readonly skMsg: number };
  readonly before: Counters;
}

/** Load into the bench cgroup and pin folder (with `policy`, else the defaults); returns what status() then says. */
export function bypassOn(env: BenchEnv, maxEntries?: number, policy?: Policy): OnState {
  const result = load({
    cgroup: env.cgroup,
    pinDir: env.pinDir,
    ...(maxEntries === undefined ? {} : { maxEntries }),
    ...(policy === undefined ? {} : { policy }),
  });
  if (result.outcome !== 'loaded') {
    throw new Error(`expected a fresh load into ${env.pinDir}, got "${result.outcome}"`);
  }
  const s = status({ pinDir: env.pinDir });
  return { loaded: s.loaded, attachedCgroup: s.cgroup, programIds: result.programIds, before: s.counters };
}

/** Counters now (zeros when not loaded). */
export function readBenchCounters(env: BenchEnv): Counters {
  return status({ pinDir: env.pinDir }).counters;
}

export function bypassOff(env: BenchEnv): void {
  unload({ pinDir: env.pinDir });
}

/**
 * sockbypass sock_ops programs effective on `cgroup` (attached to it or to an
 * ancestor), as listed by bpftool; null when bpftool is unavailable or fails.
 */
export function effectiveSockbypassPrograms(cgroup: string): string[] | null {
  let text: string;
  try {
    text = execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup, 'effective'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 10_000,
    }).toString();
  } catch {
    return null;
  }
  if (text.trim() === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(parsed)) return null;
  return parsed
    .filter((p): p is { id: number; attach_type: string; name?: string } => typeof p === 'object' && p !== null)
    .filter((p) => p.attach_type === 'cgroup_sock_ops' && (p.name ?? '').startsWith('sockbypass'))
    .map((p) => `id ${p.id} ${p.name ?? ''}`.trim());
}

/** Is the bench cgroup really without the bypass? */
export function observeOff(env: BenchEnv): Pick<OffObservation, 'loadedBefore' | 'effectivePrograms'> {
  return {
    loadedBefore: status({ pinDir: env.pinDir }).loaded,
    effectivePrograms: effectiveSockbypassPrograms(env.cgroup),
  };
}

export function isLoaded(env: BenchEnv): boolean {
  return status({ pinDir: env.pinDir }).loaded;
}
