/**
 * Shared pieces of the trust suite (test/trust-*.test.ts): the native tools,
 * integrity runs of build/sbload inside a sandbox (optionally inside a network
 * namespace), counter deltas, and a per-file tally printed as the file's last
 * diagnostic: connections, bytes verified, faults injected, failures.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { TestContext } from 'node:test';
import { PACKAGE_ROOT } from '../../src/core/paths.js';
import { status } from '../../src/core/status.js';
import { pinState } from '../../src/core/pins.js';
import type { Counters } from '../../src/core/layout.js';
import type { Sandbox, Started } from './sandbox.js';
import { waitFor } from './sandbox.js';
import { inNetns } from './netns.js';

export const BUILD_DIR = join(PACKAGE_ROOT, 'build');
export const SBLOAD = join(BUILD_DIR, 'sbload');
export const ENDINGS = join(BUILD_DIR, 'endings');
export const SLOWREADER = join(BUILD_DIR, 'slowreader');
export const MULTIREAD = join(BUILD_DIR, 'multiread');
export const NETNS_BLIND_OBJECT = join(BUILD_DIR, 'sockbypass-netns-blind.bpf.o');
export const CLI = join(PACKAGE_ROOT, 'bin', 'sockbypass.js');

/** The bigger versions of the trust tests run with SOCKBYPASS_LONG=1. */
export const LONG = process.env.SOCKBYPASS_LONG === '1';

export function requireTool(path: string): void {
  assert.ok(existsSync(path), `${path} is missing: run make`);
}

export interface IntegrityResult {
  mode: string;
  role?: string;
  family: string;
  connections: number;
  bytes: number;
  seed: number;
  seconds: number;
  bytesVerified: number;
  failures: number;
  firstFailure: string | null;
  failureSamples: string[];
  bytesQueuedAtAccept: number;
  c2sSha256: string | null;
  s2cSha256: string | null;
  /** How often each call ran: write, writev, sendfile, splice, read, readv, peek, waitall, ... */
  calls?: Record<string, number>;
  error?: string;
}

export interface SbloadRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  json: IntegrityResult;
  stderr: string;
  ms: number;
}

function parseJson(stdout: string, stderr: string, what: string): IntegrityResult {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as IntegrityResult;
  } catch {
    throw new Error(
      `${what}: no JSON on stdout (${JSON.stringify(stdout.slice(0, 300))}); stderr: ${stderr.slice(0, 500)}`,
    );
  }
}

export interface SbloadOptions {
  /** Run inside this network namespace. */
  netns?: string;
  /** cgroup: default the sandbox's; null = outside. */
  cgroup?: string | null;
  /** Kill after this long (the run's own --seconds should be shorter). */
  timeoutMs?: number;
}

/** Start `sbload integrity ARGS` in the sandbox; resolves with its parsed JSON. */
export function startIntegrity(
  sb: Sandbox,
  args: string[],
  options: SbloadOptions = {},
): { proc: Started; result: Promise<SbloadRun> } {
  requireTool(SBLOAD);
  const argv = ['integrity', ...args];
  const [cmd, cmdArgs] = options.netns ? inNetns(options.netns, SBLOAD, argv) : [SBLOAD, argv];
  const t0 = Date.now();
  const proc = sb.start(cmd, cmdArgs, options.cgroup === undefined ? {} : { cgroup: options.cgroup });
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), options.timeoutMs ?? 180_000);
  const result = proc.done.then((done) => {
    clearTimeout(timer);
    if (done.signal === 'SIGKILL')
      throw new Error(`sbload ${argv.join(' ')} was killed after ${options.timeoutMs ?? 180_000} ms`);
    return {
      code: done.code,
      signal: done.signal,
      json: parseJson(done.stdout, done.stderr, `sbload ${argv.join(' ')}`),
      stderr: done.stderr,
      ms: Date.now() - t0,
    };
  });
  return { proc, result };
}

export async function integrity(sb: Sandbox, args: string[], options: SbloadOptions = {}): Promise<SbloadRun> {
  return startIntegrity(sb, args, options).result;
}

/** A run must have verified every byte of every connection, both ways. */
export function assertIntact(run: SbloadRun, what: string, directions = 2): void {
  const j = run.json;
  assert.equal(j.error, undefined, `${what}: sbload error ${j.error}; stderr ${run.stderr}`);
  assert.equal(
    j.failures,
    0,
    `${what}: ${j.failures} failed connection(s); first: ${j.firstFailure}; samples: ${JSON.stringify(j.failureSamples)}`,
  );
  assert.equal(run.code, 0, `${what}: sbload exited ${run.code}; stderr ${run.stderr}`);
  assert.equal(j.bytesVerified, j.connections * j.bytes * directions, `${what}: bytes verified`);
}

/** Wait for a --ready-file and return the port in it. */
export async function readyPort(path: string, proc: Started, timeoutMs = 15_000): Promise<number> {
  try {
    await waitFor(() => existsSync(path) || proc.child.exitCode !== null, timeoutMs);
  } catch {
    throw new Error(`no ${path} within ${timeoutMs} ms; stderr: ${proc.stderr()}`);
  }
  if (!existsSync(path))
    throw new Error(`server exited (${proc.child.exitCode}) before listening: ${proc.stderr()} ${proc.stdout()}`);
  return Number(readFileSync(path, 'utf8').trim());
}

export function counters(sb: Sandbox): Counters {
  return status({ pinDir: sb.pinDir }).counters;
}

/** after − before, field by field (fields missing on one side count as 0). */
export function delta(before: Counters, after: Counters): Counters {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]) as Set<keyof Counters>;
  return Object.fromEntries([...keys].map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)])) as unknown as Counters;
}

/** Counters of a load that may be gone by now (then zeros). */
export function countersIfLoaded(sb: Sandbox): Counters | undefined {
  return pinState(sb.pinDir) === 'complete' ? counters(sb) : undefined;
}

export function fmtBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/**
 * The `node --test` process of this run: it runs each test file as its child.
 * Its start time (field 22 of /proc/PID/stat) names the run together with the
 * pid, so a later run that gets the same pid never reads this run's tallies.
 */
function runner(): { pid: number; start: string; argv: string[] } {
  const pid = process.ppid;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '0';
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    .split('\0')
    .filter((a) => a !== '');
  return { pid, start, argv };
}

/** Where this test run's files leave their tallies: one folder per `node --test` process. */
export function tallyDir(): string {
  const { pid, start } = runner();
  return join(tmpdir(), `sockbypass-trust-tally-${pid}-${start}`);
}

const TRUST_FILE = /^trust-(?!summary\.).+\.test\.js$/;

/**
 * The trust files (trust-*.test.js but the summary) this `node --test` run was
 * given, by name; when it was given no file and found them itself, all of those
 * in `dir` (the summary's own folder).
 */
export function trustFilesOfRun(dir: string): string[] {
  const files = runner()
    .argv.slice(1)
    .filter((a) => !a.startsWith('-') && /\.[cm]?js$/.test(a));
  const names = files.length > 0 ? files.map((f) => basename(f)) : readdirSync(dir);
  return [...new Set(names.filter((n) => TRUST_FILE.test(n)))].sort();
}

/** The per-file figures: every test adds what it did, the file's last test prints them. */

export class Tally {
  connections = 0;
  bytesVerified = 0;
  faults = 0;
  failures = 0;
  /** Checks that ran; failures of the tests themselves are counted by `failed`. */
  checks = 0;
  failedTests: string[] = [];

  constructor(readonly file: string) {}

  /** Count an sbload run (its connections, verified bytes and failed connections). */
  run(run: SbloadRun): void {
    this.connections += run.json.connections ?? 0;
    this.bytesVerified += run.json.bytesVerified ?? 0;
    this.failures += run.json.failures ?? 0;
  }

  /** Wrap a test body so a thrown assertion is counted as a failure of the file. */
  async track(t: TestContext, body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (err) {
      this.failedTests.push(t.name);
      throw err;
    }
  }

  /**
   * The summary line of this file; also saved where test/trust-summary.test.ts,
   * run last by the same `node --test` (files are child processes of it), adds
   * every file's totals into the suite's closing line.
   */
  line(): string {
    mkdirSync(tallyDir(), { recursive: true });
    writeFileSync(
      join(tallyDir(), `${this.file}.json`),
      JSON.stringify({
        file: this.file,
        connections: this.connections,
        bytesVerified: this.bytesVerified,
        faults: this.faults,
        failures: this.failures,
        failedTests: this.failedTests,
      }),
    );
    return (
      `${this.file} summary: connections ${this.connections}, bytes verified ${this.bytesVerified} (${fmtBytes(this.bytesVerified)}), ` +
      `faults injected ${this.faults}, failures ${this.failures}` +
      (this.failedTests.length
        ? `, failed tests ${this.failedTests.length} (${this.failedTests.join('; ')})`
        : ', failed tests 0')
    );
  }
}
