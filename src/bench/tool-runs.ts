/**
 * Running the workload tools (iperf3, sockperf, sbload) for one measurement,
 * wherever the two ends are placed: both inside the bench cgroup on loopback
 * (the same-host rows), or a server outside the cgroup in a network namespace
 * of its own and the client inside it (the outside-veth rows, outside-peer.ts).
 * Shared by workloads.ts and outside-workloads.ts.
 */
import { existsSync } from 'node:fs';
import { BenchParseError } from './errors.js';
import { freePort, sleep, ToolFailure, type BenchEnv, type BenchProcess, type Finished } from './env.js';
import { parseIperf3Json, type Iperf3Result } from './iperf3.js';
import type { SbloadCrrResult } from './sbload.js';
import { parseSockperfPingPong, type SockperfPingPongResult } from './sockperf.js';
import type { RunContext, Tool } from './workloads.js';

/** Where a workload's server and client run, and the address between them. */
export interface Placement {
  /** The address the server listens on and the client connects to. */
  readonly host: string;
  /** A port free for the server right now. */
  port(): Promise<number>;
  /** Starts the server (it outlives this call; stop or reap it). */
  startServer(command: string, args: readonly string[]): BenchProcess;
  /** Runs the client to completion. */
  runClient(command: string, args: readonly string[], timeoutMs: number): Promise<Finished>;
}

/** Both ends inside the bench cgroup, on 127.0.0.1 in the host's namespace. */
export function loopbackPlacement(env: BenchEnv): Placement {
  return {
    host: '127.0.0.1',
    port: () => freePort(),
    startServer: (command, args) => env.start(command, args),
    runClient: (command, args, timeoutMs) => env.run(command, args, { timeoutMs }),
  };
}

export function tool(ctx: RunContext, name: Tool): string {
  const path = ctx.tools[name];
  if (path === undefined) throw new ToolFailure(`${name} is not installed`);
  return path;
}

function outputTail(f: Finished, max = 300): string {
  const text = (f.stderr.trim() || f.stdout.trim()).replace(/\s+/g, ' ');
  return text.length <= max ? text : `...${text.slice(-max)}`;
}

/** Turn a parser's complaint into a run failure. */
export function parsed<T>(parse: () => T, f: Finished, what: string): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof BenchParseError) {
      const exit = f.code === 0 ? '' : ` (exit ${f.code ?? f.signal})`;
      throw new ToolFailure(`${what}: ${e.reason}${exit}`);
    }
    throw e;
  }
}

export function requireExit0(f: Finished, what: string): void {
  if (f.code !== 0) throw new ToolFailure(`${what} exited ${f.code ?? f.signal}: ${outputTail(f)}`);
}

/** Give a server that should exit by itself `ms`, then kill it by PID. */
export async function reap(ctx: RunContext, proc: BenchProcess, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    proc.done.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]);
  clearTimeout(timer);
  if (!exited) await ctx.env.stop(proc, 'SIGKILL');
}

/** Waits until the server wrote its --ready-file (it is listening), or fails when it exited first. */
export async function waitForReadyFile(
  env: BenchEnv,
  proc: BenchProcess,
  path: string,
  timeoutMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    env.throwIfAborted();
    if (proc.exited()) {
      const f = await proc.done;
      throw new ToolFailure(
        `${proc.command} exited (code ${f.code}) before listening: ${(f.stderr || f.stdout).trim().slice(-300)}`,
      );
    }
    if (Date.now() > end) throw new ToolFailure(`${proc.command} was not listening within ${timeoutMs} ms`);
    await sleep(20);
  }
}

export function clientTimeoutMs(ctx: RunContext): number {
  return ctx.seconds * 1000 + 30_000;
}

// ------------------------------------------------------------------ iperf3

export interface Iperf3Options {
  readonly length: number;
  readonly streams: number;
  /** Move this many bytes (`-n`) instead of running for the run's seconds (`-t`). */
  readonly bytes?: number;
}

function iperf3ClientArgs(host: string, port: number, seconds: number, o: Iperf3Options): string[] {
  const amount = o.bytes === undefined ? ['-t', String(seconds)] : ['-n', String(o.bytes)];
  return [
    '-c',
    host,
    '-p',
    String(port),
    ...amount,
    '-l',
    String(o.length),
    ...(o.streams > 1 ? ['-P', String(o.streams)] : []),
    '--json',
  ];
}

/** One iperf3 run: server `-s -1` bound to the placement's address (a fresh free port), then the client. */
export async function iperf3Run(
  ctx: RunContext,
  where: Placement,
  o: Iperf3Options,
  port?: number,
): Promise<Iperf3Result> {
  const iperf3 = tool(ctx, 'iperf3');
  const p = port ?? (await where.port());
  const server = where.startServer(iperf3, ['-s', '-1', '--forceflush', '-p', String(p), '-B', where.host]);
  try {
    await ctx.env.waitForOutput(server, /Server listening/, 10_000);
    const client = await where.runClient(iperf3, iperf3ClientArgs(where.host, p, ctx.seconds, o), clientTimeoutMs(ctx));
    const result = parsed(() => parseIperf3Json(client.stdout), client, 'iperf3');
    requireExit0(client, 'iperf3 client');
    return result;
  } finally {
    // -1: the server exits after its one test.
    await reap(ctx, server, 3000);
  }
}

// ------------------------------------------------------------------ sockperf

/** One sockperf TCP ping-pong run of `size`-byte messages against a server at the placement's address. */
export async function sockperfPingPong(
  ctx: RunContext,
  where: Placement,
  size: number,
): Promise<SockperfPingPongResult> {
  const sockperf = tool(ctx, 'sockperf');
  const port = String(await where.port());
  const server = where.startServer(sockperf, ['server', '--tcp', '-i', where.host, '-p', port]);
  try {
    await ctx.env.waitForOutput(server, /to block on socket/, 10_000);
    const client = await where.runClient(
      sockperf,
      ['ping-pong', '--tcp', '-i', where.host, '-p', port, '-m', String(size), '-t', String(ctx.seconds)],
      clientTimeoutMs(ctx),
    );
    // sockperf exits 0 even when it measured nothing: the parser is the judge.
    const r = parsed(() => parseSockperfPingPong(`${client.stdout}\n${client.stderr}`), client, 'sockperf');
    if (r.protocol !== 'TCP') throw new ToolFailure(`sockperf measured ${r.protocol}, not TCP`);
    requireExit0(client, 'sockperf ping-pong');
    return r;
  } finally {
    // sockperf server never exits by itself: kill it by PID.
    await ctx.env.stop(server, 'SIGKILL');
  }
}

// ------------------------------------------------------------------ sbload crr

/** Request and response size of the connection-rate workloads. */
export const CRR_SIZE = 64;
/** A run in which more than this share of connections failed measured something else. */
const CRR_MAX_FAILURE_FRACTION = 0.01;

export function requireFewCrrFailures(r: SbloadCrrResult): void {
  if (r.failures > CRR_MAX_FAILURE_FRACTION * r.connections) {
    throw new ToolFailure(`sbload crr: ${r.failures} of ${r.connections + r.failures} connections failed`);
  }
}
