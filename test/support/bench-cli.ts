/**
 * `sockbypass bench` run as its own process group, as a terminal's Ctrl-C
 * would hit it (and nothing else here): for the tests that interrupt it
 * mid-run and check that it leaves nothing behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/core/paths.js';

export interface BenchCli {
  child: ChildProcess;
  pid: number;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Ctrl-C the whole group. */
  interrupt(): void;
}

export function startBenchCli(args: readonly string[]): BenchCli {
  const child = spawn(process.execPath, [join(PACKAGE_ROOT, 'bin', 'sockbypass.js'), 'bench', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const pid = child.pid as number;
  return { child, pid, stderr: () => stderr, exited, interrupt: () => process.kill(-pid, 'SIGINT') };
}
