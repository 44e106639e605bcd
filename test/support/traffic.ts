/** Drive test/support/conns.js from a test: a server process and a client process in the sandbox. */
import { join } from 'node:path';
import type { Sandbox, Started } from './sandbox.js';
import { waitForLine } from './witness.js';

const CONNS = join(import.meta.dirname, 'conns.js');

export interface Server {
  proc: Started;
  port: number;
  pid: number;
  /** Stop it (SIGUSR2) and return what it received. */
  finish(): Promise<{ connections: number; bytes: number }>;
}

/** node, or node inside a named network namespace (ip netns exec execs, so the pid stays node's). */
function nodeIn(netns: string | undefined, args: string[]): [string, string[]] {
  return netns ? ['ip', ['netns', 'exec', netns, process.execPath, ...args]] : [process.execPath, args];
}

export async function startServer(
  sb: Sandbox,
  options: { listen?: string; port?: number; expect?: number; netns?: string } = {},
): Promise<Server> {
  const args = [CONNS, 'serve', '--listen', options.listen ?? '::'];
  if (options.port) args.push('--port', String(options.port));
  if (options.expect) args.push('--expect', String(options.expect));
  const proc = sb.start(...nodeIn(options.netns, args));
  const m = await waitForLine(proc, /^LISTENING (.*)$/m, 10_000);
  const { port, pid } = JSON.parse(m[1] as string) as { port: number; pid: number };
  return {
    proc,
    port,
    pid,
    async finish() {
      if (proc.child.exitCode === null) proc.child.kill('SIGUSR2');
      const served = await waitForLine(proc, /^SERVED (.*)$/m, 10_000);
      await proc.done;
      return JSON.parse(served[1] as string) as { connections: number; bytes: number };
    },
  };
}

export interface Clients {
  proc: Started;
  pid: number;
  clientPorts: number[];
  /** Close every connection (SIGUSR2 when holding) and wait for the process to exit 0. */
  close(): Promise<void>;
}

export async function connectClients(
  sb: Sandbox,
  port: number,
  options: { host?: string; count?: number; bytes?: number; hold?: boolean; netns?: string } = {},
): Promise<Clients> {
  const args = [CONNS, 'connect', '--port', String(port), '--host', options.host ?? '127.0.0.1'];
  args.push('--count', String(options.count ?? 1), '--bytes', String(options.bytes ?? 0));
  if (options.hold) args.push('--hold');
  const proc = sb.start(...nodeIn(options.netns, args));
  const m = await waitForLine(proc, /^READY (.*)$/m, 20_000);
  const { pid, clientPorts } = JSON.parse(m[1] as string) as { pid: number; clientPorts: number[] };
  return {
    proc,
    pid,
    clientPorts,
    async close() {
      if (options.hold) proc.child.kill('SIGUSR2');
      const exit = await proc.done;
      if (exit.code !== 0 || !/^CLOSED$/m.test(exit.stdout)) {
        throw new Error(`clients exited ${exit.code}: ${exit.stdout} ${exit.stderr}`);
      }
    },
  };
}
