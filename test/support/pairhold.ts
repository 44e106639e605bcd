/**
 * build/pairhold inside a sandbox: hold N idle loopback pairs (optionally in
 * a network namespace, inside or outside the sandbox's cgroup) until
 * released. The sandbox kills it by PID on cleanup; its workers die with it
 * (PR_SET_PDEATHSIG).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sandbox, Started } from './sandbox.js';
import { waitFor } from './sandbox.js';
import { inNetns } from './netns.js';
import { BUILD_DIR, requireTool } from './trust.js';

export const PAIRHOLD = join(BUILD_DIR, 'pairhold');

export interface PairholdReady {
  pairs: number;
  workers: number;
  establishSeconds: number;
  pid: number;
}

export interface PairholdResult {
  pairs: number;
  workers: number;
  establishSeconds: number;
  heldSeconds: number;
  closeSeconds: number;
  pinged: boolean;
  pingFailures: number;
  error?: string;
}

export interface HeldPairs {
  ready: PairholdReady;
  proc: Started;
  /** SIGTERM, then its JSON once every pair is closed. */
  release(): Promise<{ code: number | null; json: PairholdResult; stderr: string }>;
}

export interface HoldOptions {
  netns?: string;
  /** default the sandbox's cgroup; null: outside any loaded cgroup (plain TCP). */
  cgroup?: string | null;
  ping?: boolean;
  timeoutMs?: number;
}

/** Start pairhold and wait until every pair is established. */
export async function holdPairs(sb: Sandbox, pairs: number, options: HoldOptions = {}): Promise<HeldPairs> {
  requireTool(PAIRHOLD);
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-pairhold-'));
  sb.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const readyFile = join(dir, 'ready');
  const timeoutMs = options.timeoutMs ?? 120_000;
  const args = [
    '--pairs',
    String(pairs),
    '--ready-file',
    readyFile,
    '--timeout',
    String(timeoutMs / 1000),
    ...(options.ping ? ['--ping'] : []),
  ];
  const [cmd, argv] = options.netns ? inNetns(options.netns, PAIRHOLD, args) : [PAIRHOLD, args];
  const proc = sb.start(cmd, argv, options.cgroup === undefined ? {} : { cgroup: options.cgroup });
  try {
    await waitFor(
      () => existsSync(readyFile) || proc.child.exitCode !== null || proc.child.signalCode !== null,
      timeoutMs,
      50,
    );
  } catch {
    throw new Error(`pairhold --pairs ${pairs}: not ready within ${timeoutMs} ms; stderr: ${proc.stderr()}`);
  }
  if (!existsSync(readyFile))
    throw new Error(`pairhold --pairs ${pairs} exited (${proc.child.exitCode}): ${proc.stdout()} ${proc.stderr()}`);
  const ready = JSON.parse(readFileSync(readyFile, 'utf8')) as PairholdReady;
  return {
    ready,
    proc,
    async release() {
      proc.child.kill('SIGTERM');
      const done = await proc.done;
      const line = done.stdout.trim().split('\n').pop() ?? '';
      let json: PairholdResult;
      try {
        json = JSON.parse(line) as PairholdResult;
      } catch {
        throw new Error(
          `pairhold: no JSON on stdout (${JSON.stringify(done.stdout.slice(0, 300))}); stderr: ${done.stderr.slice(0, 500)}`,
        );
      }
      return { code: done.code, json, stderr: done.stderr };
    },
  };
}
