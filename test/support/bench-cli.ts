/**
 * `sockbypass bench` run as its own process group, as a terminal's Ctrl-C
 * would hit it (and nothing else here): for the tests that interrupt it
 * mid-run and check that it leaves nothing behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/core/paths.js';
import { cgroup2Mount } from '../../src/os/cgroup.js';
import { netnsNames } from './netns.js';

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

/** What a bench of this PID may have left: its cgroups, pin folders and namespaces (sockbypass-bench-<pid>...). */
export function benchLeftovers(pid: number): string[] {
  const mount = cgroup2Mount();
  const prefix = `sockbypass-bench-${pid}`;
  return [
    ...readdirSync(mount)
      .filter((n) => n.startsWith(prefix))
      .map((n) => join(mount, n)),
    ...readdirSync('/sys/fs/bpf')
      .filter((n) => n.startsWith(prefix))
      .map((n) => join('/sys/fs/bpf', n)),
    ...netnsNames()
      .filter((n) => n.startsWith(prefix))
      .map((n) => `netns ${n}`),
  ];
}
