/**
 * Running build/conform: one case a process, inside a sandbox's cgroup, and
 * comparing what two runs of a case observed, field by field.
 */
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { BUILD_DIR } from './trust.js';
import type { Sandbox } from './sandbox.js';

export const CONFORM = join(BUILD_DIR, 'conform');

export type Value = number | string;
export type Observations = Record<string, Value>;

/** One field where the two runs differ; `undefined` where a run did not record the field. */
export interface FieldDifference {
  field: string;
  plain: Value | undefined;
  bypass: Value | undefined;
}

export function listCases(): string[] {
  return execFileSync(CONFORM, ['--list']).toString().trim().split('\n');
}

/** Run one case inside the sandbox's cgroup; rejects unless it printed its observations. */
export async function runCase(sb: Sandbox, name: string): Promise<Observations> {
  const done = await sb.run(CONFORM, [name], { timeoutMs: 30_000 });
  const line = done.stdout.trim().split('\n').pop() ?? '';
  let parsed: { case?: string; obs?: Observations; error?: string };
  try {
    parsed = JSON.parse(line) as typeof parsed;
  } catch {
    throw new Error(
      `conform ${name}: no JSON on stdout (exit ${done.code}): ${done.stdout.slice(0, 300)} ${done.stderr.slice(0, 300)}`,
    );
  }
  if (parsed.error !== undefined || !parsed.obs || done.code !== 0) {
    throw new Error(
      `conform ${name}: ${parsed.error ?? 'no observations'} (exit ${done.code}) ${done.stderr.slice(0, 300)}`,
    );
  }
  return parsed.obs;
}

/** Every field whose value differs, in the plain run's field order, then fields only the bypass run has. */
export function differences(plain: Observations, bypass: Observations): FieldDifference[] {
  const fields = [...Object.keys(plain), ...Object.keys(bypass).filter((k) => !(k in plain))];
  return fields.filter((f) => plain[f] !== bypass[f]).map((f) => ({ field: f, plain: plain[f], bypass: bypass[f] }));
}

export function formatDifferences(diffs: readonly FieldDifference[]): string {
  return diffs
    .map((d) => `${d.field}: plain ${JSON.stringify(d.plain)}, bypass ${JSON.stringify(d.bypass)}`)
    .join('; ');
}
