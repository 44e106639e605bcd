/**
 * A privileged test's own world: a fresh cgroup, a fresh pin folder, and
 * every process it starts, all removed at the end even when the test fails.
 * Processes run inside the cgroup from their first instruction (a shell
 * moves itself in, then execs the command).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createCgroup, cgroupProcs, removeCgroup } from '../../src/os/cgroup.js';
import { unload } from '../../src/core/unload.js';
import { pinState } from '../../src/core/pins.js';
import { ensureBpffs } from '../../src/os/bpffs.js';

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Started {
  child: ChildProcess;
  pid: number;
  /** Resolves when the process exits, with everything it printed. */
  done: Promise<Finished>;
  stdout(): string;
  stderr(): string;
}

let counter = 0;

export class Sandbox {
  readonly cgroup: string;
  readonly pinDir: string;
  private readonly children = new Set<ChildProcess>();
  private readonly cleanups: Array<() => void | Promise<void>> = [];

  constructor(readonly name: string) {
    const id = `sockbypass-test-${name}-${process.pid}-${counter++}`;
    this.cgroup = createCgroup(id);
    this.pinDir = `/sys/fs/bpf/${id}`;
    ensureBpffs(this.pinDir);
  }

  /** Register extra cleanup (namespaces, files), run before the cgroup goes. */
  onCleanup(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** Start a command inside this sandbox's cgroup (or `cgroup` if given). */
  start(command: string, args: readonly string[], options: SpawnOptions & { cgroup?: string | null } = {}): Started {
    const { cgroup = this.cgroup, ...spawnOptions } = options;
    const argv =
      cgroup === null
        ? [command, ...args]
        : ['/bin/sh', '-c', `echo $$ > '${cgroup}/cgroup.procs' && exec "$@"`, 'sh', command, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOptions });
    this.children.add(child);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const done = new Promise<Finished>((resolve) => {
      child.on('close', (code, signal) => {
        this.children.delete(child);
        resolve({ code, signal, stdout: out, stderr: err });
      });
      child.on('error', (e) => {
        this.children.delete(child);
        resolve({ code: -1, signal: null, stdout: out, stderr: err + String(e) });
      });
    });
    return { child, pid: child.pid ?? -1, done, stdout: () => out, stderr: () => err };
  }

  /** Run to completion with a deadline; rejects on timeout (after killing it). */
  async run(
    command: string,
    args: readonly string[],
    options: SpawnOptions & { cgroup?: string | null; timeoutMs?: number } = {},
  ): Promise<Finished> {
    const { timeoutMs = 60_000, ...rest } = options;
    const started = this.start(command, args, rest);
    const timer = setTimeout(() => started.child.kill('SIGKILL'), timeoutMs);
    try {
      const result = await started.done;
      if (result.signal === 'SIGKILL') throw new Error(`${command} ${args.join(' ')} timed out after ${timeoutMs} ms`);
      return result;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stop our processes (by PID), unload, remove pins and the cgroup. */
  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await Promise.all(
      [...this.children].map(
        (c) =>
          new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('close', () => r()))),
      ),
    );
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (e) {
        errors.push(e);
      }
    }
    try {
      if (pinState(this.pinDir) !== 'none') unload({ pinDir: this.pinDir, force: true });
      if (existsSync(this.pinDir)) {
        if (readdirSync(this.pinDir).length > 0) errors.push(new Error(`pins left in ${this.pinDir}`));
        rmSync(this.pinDir, { recursive: true, force: true });
      }
    } catch (e) {
      errors.push(e);
    }
    try {
      // Processes we did not start directly (daemons) may still sit in the cgroup: kill by PID.
      for (const pid of existsSync(this.cgroup) ? cgroupProcs(this.cgroup) : []) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await waitFor(() => !existsSync(this.cgroup) || cgroupProcs(this.cgroup).length === 0, 5000);
      removeCgroup(this.cgroup);
    } catch (e) {
      errors.push(e);
    }
    if (errors.length > 0) throw new AggregateError(errors, `sandbox ${this.name}: cleanup failed`);
  }
}

/** Run `body` in a fresh sandbox, always cleaning up. */
export async function withSandbox<T>(name: string, body: (sb: Sandbox) => Promise<T>): Promise<T> {
  const sb = new Sandbox(name);
  try {
    return await body(sb);
  } finally {
    await sb.cleanup();
  }
}

export async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** A TCP port free on 127.0.0.1 and ::1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '::', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}
