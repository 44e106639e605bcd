/**
 * Network namespaces and veth pairs for privileged tests, created with `ip`
 * and always deleted by the sandbox's cleanup (even when the test fails).
 * Processes run inside a namespace AND the sandbox's cgroup: the sandbox's
 * shell moves itself into the cgroup, then execs `nsenter --net=…`, which
 * execs the command in place (no fork for a network namespace alone), so the
 * PID the sandbox kills is the command's own.
 *
 * Veth addresses stay in 198.18.0.0/15 (benchmarking range) and exist only
 * inside namespaces the test made.
 */
import { execFileSync, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Sandbox, Started, Finished } from './sandbox.js';

let counter = 0;

function ip(args: string[]): string {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** Namespaces that still exist, by name (from `ip netns list`). */
export function netnsNames(): string[] {
  return ip(['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** Create a namespace with its own lo up; deleted at the sandbox's cleanup. */
export function createNetns(sb: Sandbox, tag: string): string {
  const name = `sbt-${tag}-${process.pid}-${counter++}`;
  ip(['netns', 'add', name]);
  sb.onCleanup(() => {
    if (existsSync(`/run/netns/${name}`)) ip(['netns', 'delete', name]);
  });
  ip(['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

export interface Veth {
  a: string;
  b: string;
}

/**
 * A veth pair with one end in each namespace, addressed and up. Deleting
 * either namespace deletes the pair; the cleanup also deletes it explicitly
 * in case a namespace survived.
 */
export function createVeth(sb: Sandbox, nsA: string, nsB: string, addrA: string, addrB: string): Veth {
  for (const addr of [addrA, addrB]) {
    if (!/^198\.1[89]\.\d+\.\d+\/\d+$/.test(addr)) throw new Error(`veth address ${addr} is outside 198.18.0.0/15`);
  }
  const id = `${process.pid % 100000}${counter++}`;
  const veth = { a: `sbva${id}`.slice(0, 15), b: `sbvb${id}`.slice(0, 15) };
  ip(['link', 'add', veth.a, 'netns', nsA, 'type', 'veth', 'peer', 'name', veth.b, 'netns', nsB]);
  sb.onCleanup(() => {
    try {
      if (existsSync(`/run/netns/${nsA}`)) ip(['-n', nsA, 'link', 'delete', veth.a]);
    } catch {
      // already gone with its namespace or its peer
    }
  });
  ip(['-n', nsA, 'addr', 'add', addrA, 'dev', veth.a]);
  ip(['-n', nsB, 'addr', 'add', addrB, 'dev', veth.b]);
  ip(['-n', nsA, 'link', 'set', veth.a, 'up']);
  ip(['-n', nsB, 'link', 'set', veth.b, 'up']);
  return veth;
}

/** argv that runs `command` inside namespace `ns`. */
export function inNetns(ns: string, command: string, args: readonly string[]): [string, string[]] {
  return ['nsenter', [`--net=/run/netns/${ns}`, '--', command, ...args]];
}

/** Start a command inside `ns` and the sandbox's cgroup (or `cgroup`: null = outside any). */
export function startInNetns(
  sb: Sandbox,
  ns: string,
  command: string,
  args: readonly string[],
  options: SpawnOptions & { cgroup?: string | null } = {},
): Started {
  const [cmd, argv] = inNetns(ns, command, args);
  return sb.start(cmd, argv, options);
}

export async function runInNetns(
  sb: Sandbox,
  ns: string,
  command: string,
  args: readonly string[],
  options: SpawnOptions & { cgroup?: string | null; timeoutMs?: number } = {},
): Promise<Finished> {
  const [cmd, argv] = inNetns(ns, command, args);
  return sb.run(cmd, argv, options);
}

/** Interfaces named like ours anywhere in the root namespace (should be none). */
export function strayVeths(): string[] {
  return ip(['-o', 'link', 'show'])
    .split('\n')
    .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? '')
    .filter((n) => n.startsWith('sbva') || n.startsWith('sbvb'));
}
