/**
 * The bench's own world: a fresh cgroup under the cgroup2 mount, a fresh pin
 * folder, and every process the bench starts, tracked by PID. `cleanup()`
 * stops those processes (by PID only), undoes what else was built for it
 * (addCleanup: the outside-veth rows' namespaces), unloads whatever is pinned
 * in the pin folder and removes the cgroup; it is safe to call more than once and after
 * any failure.
 *
 * Workload processes run inside the cgroup from their first instruction: a
 * shell writes its own PID into cgroup.procs, then execs the command. The
 * bench's own Node process stays outside.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { cgroup2Mount, cgroupProcs, createCgroup, removeCgroup } from '../os/cgroup.js';
import { ensureBpffs } from '../os/bpffs.js';
import { pinState } from '../core/pins.js';
import { unload } from '../core/unload.js';

export interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface BenchProcess {
  readonly pid: number;
  readonly command: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited, with everything it printed. */
  readonly done: Promise<Finished>;
  stdout(): string;
  stderr(): string;
  exited(): boolean;
}

/** Thrown out of waits when the bench was interrupted (SIGINT/SIGTERM or an AbortSignal). */
export class BenchAborted extends Error {
  constructor(readonly reason: string) {
    super(`bench interrupted: ${reason}`);
    this.name = 'BenchAborted';
  }
}

/** A failure of one workload tool run; the run is discarded with this message. */
export class ToolFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ToolFailure';
  }
}

export interface BenchEnvOptions {
  /** Name prefix of the cgroup and the pin folder. Default "sockbypass-bench". */
  readonly prefix?: string;
  /** Parent cgroup directory. Default: the cgroup2 mount (never the attach target itself). */
  readonly parentCgroup?: string;
  /** Folder under which the pin folder is made. Default /sys/fs/bpf. */
  readonly bpffsRoot?: string;
}

function tail(text: string, max = 400): string {
  const trimmed = text.trim();
  return trimmed.length <= max ? trimmed : `...${trimmed.slice(-max)}`;
}

export class BenchEnv {
  readonly cgroup: string;
  readonly pinDir: string;
  readonly name: string;
  private readonly processes = new Set<BenchProcess>();
  /** Every process started, in order, for the report. */
  readonly started: Array<{ readonly pid: number; readonly command: string; readonly inCgroup: boolean }> = [];
  private abortReason: string | undefined;
  private readonly abortListeners = new Set<(reason: string) => void>();
  private cleaned = false;
  /** What else the bench built (e.g. network namespaces), undone at cleanup, last built first. */
  private readonly cleanupSteps: Array<{ readonly what: string; readonly undo: () => void }> = [];

  private constructor(name: string, cgroup: string, pinDir: string) {
    this.name = name;
    this.cgroup = cgroup;
    this.pinDir = pinDir;
  }

  /**
   * Creates `<prefix>-<pid>` (or `<prefix>-<pid>-<n>` if that name is taken,
   * e.g. by a crashed run with a reused PID) as a cgroup and as a pin folder name.
   */
  static create(options: BenchEnvOptions = {}): BenchEnv {
    const prefix = options.prefix ?? 'sockbypass-bench';
    const parent = options.parentCgroup ?? cgroup2Mount();
    const bpffsRoot = options.bpffsRoot ?? '/sys/fs/bpf';
    for (let n = 0; n < 100; n++) {
      const name = n === 0 ? `${prefix}-${process.pid}` : `${prefix}-${process.pid}-${n}`;
      const cgroupDir = join(parent, name);
      const pinDir = join(bpffsRoot, name);
      if (existsSync(cgroupDir) || existsSync(pinDir)) continue;
      ensureBpffs(pinDir);
      const cgroup = createCgroup(name, parent);
      return new BenchEnv(name, cgroup, pinDir);
    }
    throw new Error(`could not find a free name for the bench cgroup under ${parent}`);
  }

  /** Whether the bench was interrupted. */
  get aborted(): boolean {
    return this.abortReason !== undefined;
  }

  /** Marks the bench interrupted and kills every running process it started. */
  abort(reason: string): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.killAll();
    for (const listener of this.abortListeners) listener(reason);
  }

  throwIfAborted(): void {
    if (this.abortReason !== undefined) throw new BenchAborted(this.abortReason);
  }

  /** Start a process inside the bench cgroup (or outside it with inCgroup: false, e.g. tcpdump). */
  start(command: string, args: readonly string[], options: { inCgroup?: boolean } = {}): BenchProcess {
    this.throwIfAborted();
    const inCgroup = options.inCgroup ?? true;
    const argv = inCgroup
      ? ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', join(this.cgroup, 'cgroup.procs'), command, ...args]
      : [command, ...args];
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    let exited = false;
    const done = new Promise<Finished>((resolve) => {
      child.on('close', (code, signal) => {
        exited = true;
        resolve({ code, signal, stdout: out, stderr: err });
      });
      child.on('error', (e) => {
        exited = true;
        resolve({ code: -1, signal: null, stdout: out, stderr: `${err}${String(e)}` });
      });
    });
    const proc: BenchProcess = {
      pid: child.pid ?? -1,
      command: [command, ...args].join(' '),
      child,
      done,
      stdout: () => out,
      stderr: () => err,
      exited: () => exited,
    };
    this.processes.add(proc);
    this.started.push({ pid: proc.pid, command: proc.command, inCgroup });
    void done.then(() => this.processes.delete(proc));
    return proc;
  }

  /**
   * Run to completion. Throws ToolFailure when it runs past `timeoutMs` (it is
   * killed first), BenchAborted when the bench is interrupted meanwhile.
   */
  async run(
    command: string,
    args: readonly string[],
    options: { timeoutMs: number; inCgroup?: boolean },
  ): Promise<Finished> {
    const proc = this.start(command, args, options);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.kill(proc);
    }, options.timeoutMs);
    try {
      const result = await proc.done;
      this.throwIfAborted();
      if (timedOut) throw new ToolFailure(`${proc.command} did not finish within ${options.timeoutMs} ms (killed)`);
      return result;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits until `proc` printed a line matching `re` (stdout or stderr). */
  async waitForOutput(proc: BenchProcess, re: RegExp, timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      this.throwIfAborted();
      if (re.test(proc.stdout()) || re.test(proc.stderr())) return;
      if (proc.exited()) {
        const f = await proc.done;
        throw new ToolFailure(
          `${proc.command} exited (code ${f.code}, signal ${f.signal}) before it was ready: ${tail(f.stderr || f.stdout)}`,
        );
      }
      if (Date.now() > end) {
        throw new ToolFailure(
          `${proc.command} was not ready within ${timeoutMs} ms: ${tail(proc.stderr() || proc.stdout())}`,
        );
      }
      await sleep(20);
    }
  }

  /** Send a signal to one process we started, by its PID. */
  kill(proc: BenchProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
    if (proc.exited() || proc.pid <= 0) return;
    try {
      process.kill(proc.pid, signal);
    } catch {
      // Exited meanwhile.
    }
  }

  /** Stop a process we started: `signal`, then SIGKILL after `graceMs`; resolves once it is gone. */
  async stop(proc: BenchProcess, signal: NodeJS.Signals = 'SIGKILL', graceMs = 2000): Promise<Finished> {
    this.kill(proc, signal);
    if (signal !== 'SIGKILL') {
      const timer = setTimeout(() => this.kill(proc, 'SIGKILL'), graceMs);
      try {
        return await proc.done;
      } finally {
        clearTimeout(timer);
      }
    }
    return proc.done;
  }

  private killAll(): void {
    for (const proc of this.processes) this.kill(proc);
  }

  /**
   * Register the undoing of something the bench built; cleanup() runs it once
   * every process is gone (last registered first) and reports a throw as a problem.
   */
  addCleanup(what: string, undo: () => void): void {
    this.cleanupSteps.push({ what, undo });
  }

  /** PIDs of running processes the bench started. */
  runningPids(): number[] {
    return [...this.processes].filter((p) => !p.exited()).map((p) => p.pid);
  }

  /**
   * Stop everything, unload, remove the pin folder and the cgroup. Returns the
   * problems it met (empty when all went); never throws.
   */
  async cleanup(): Promise<string[]> {
    const problems: string[] = [];
    this.killAll();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.processes].map((p) => p.done)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000))),
    ]);
    clearTimeout(timer);
    for (const proc of this.processes) {
      if (!proc.exited()) problems.push(`process ${proc.pid} (${proc.command}) did not exit after SIGKILL`);
    }
    for (const step of this.cleanupSteps.splice(0).reverse()) {
      try {
        step.undo();
      } catch (e) {
        problems.push(`${step.what}: ${(e as Error).message}`);
      }
    }
    try {
      if (pinState(this.pinDir) !== 'none') unload({ pinDir: this.pinDir, force: true });
      if (existsSync(this.pinDir)) {
        if (readdirSync(this.pinDir).length > 0) problems.push(`pins were left in ${this.pinDir}; removed`);
        rmSync(this.pinDir, { recursive: true, force: true });
      }
    } catch (e) {
      problems.push(`unloading ${this.pinDir}: ${(e as Error).message}`);
    }
    try {
      if (existsSync(this.cgroup)) {
        // Only processes this bench started can be in its fresh cgroup (their children included).
        for (const pid of cgroupProcs(this.cgroup)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        const end = Date.now() + 5000;
        while (existsSync(this.cgroup) && cgroupProcs(this.cgroup).length > 0 && Date.now() < end) await sleep(20);
        removeCgroup(this.cgroup);
      }
    } catch (e) {
      problems.push(`removing cgroup ${this.cgroup}: ${(e as Error).message}`);
    }
    this.cleaned = true;
    return problems;
  }

  get isCleaned(): boolean {
    return this.cleaned;
  }

  /** Register a callback for when the bench is aborted. */
  onAbort(listener: (reason: string) => void): () => void {
    this.abortListeners.add(listener);
    return () => this.abortListeners.delete(listener);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A TCP port free on 127.0.0.1 right now (bound to port 0, read back, closed). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
