/**
 * The outside-veth rows' topology (issue 11, "do no harm"): two network
 * namespaces of the bench's own, joined by a veth pair addressed in
 * 198.18.0.0/15. The server runs in one namespace OUTSIDE the bench cgroup;
 * the client runs in the other INSIDE it, where sockbypass is loaded for ON
 * runs. To the client the server is just another host: nothing the bypass
 * can accelerate.
 *
 * Built once per bench, on the first outside run, and torn down by the
 * bench's cleanup (env.addCleanup) on success, failure and interrupt alike:
 * deleting a namespace deletes its veth end and with it the pair.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolFailure, type BenchEnv } from './env.js';
import type { Placement } from './tool-runs.js';
import type { RunContext } from './workloads.js';

/** Inside 198.18.0.0/15, the range reserved for benchmarks; a /30 of two hosts. */
export const OUTSIDE_SERVER_ADDRESS = '198.19.94.1';
export const OUTSIDE_CLIENT_ADDRESS = '198.19.94.2';
const PREFIX_LENGTH = 30;
/** Names inside the bench's own namespaces, so they cannot clash with anything. */
const SERVER_VETH = 'sbb-srv';
const CLIENT_VETH = 'sbb-cli';
/** First port handed out; every run gets a new one, so no run meets a previous run's leftovers. */
const FIRST_PORT = 20000;

export interface OutsidePeer {
  readonly serverNs: string;
  readonly clientNs: string;
  readonly serverAddress: string;
  readonly clientAddress: string;
  /** A folder for sbload's --ready-file, removed at cleanup. */
  readonly scratchDir: string;
  nextPort(): number;
}

const built = new WeakMap<BenchEnv, OutsidePeer>();

function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** `<env name>-srv` and `-cli`, or with a `-<n>` suffix if a crashed run left such a namespace. */
function freeNamespaceNames(env: BenchEnv): { server: string; client: string } {
  for (let n = 0; n < 100; n++) {
    const suffix = n === 0 ? '' : `-${n}`;
    const names = { server: `${env.name}-srv${suffix}`, client: `${env.name}-cli${suffix}` };
    if (!existsSync(netnsPath(names.server)) && !existsSync(netnsPath(names.client))) return names;
  }
  throw new ToolFailure(`no free network namespace name for ${env.name}`);
}

function runIp(ip: string, args: readonly string[]): void {
  try {
    execFileSync(ip, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new ToolFailure(`ip ${args.join(' ')}: ${stderr || (e as Error).message}`);
  }
}

/** Adds namespace `name`, registering its deletion first, and brings its lo up. */
function addNamespace(env: BenchEnv, ip: string, name: string): void {
  env.addCleanup(`deleting network namespace ${name}`, () => {
    if (existsSync(netnsPath(name))) runIp(ip, ['netns', 'delete', name]);
  });
  runIp(ip, ['netns', 'add', name]);
  runIp(ip, ['-n', name, 'link', 'set', 'lo', 'up']);
}

function build(env: BenchEnv, ip: string): OutsidePeer {
  const names = freeNamespaceNames(env);
  addNamespace(env, ip, names.server);
  addNamespace(env, ip, names.client);
  // Created straight into the two namespaces: the host's namespace never holds either end.
  runIp(ip, [
    'link',
    'add',
    SERVER_VETH,
    'netns',
    names.server,
    'type',
    'veth',
    'peer',
    'name',
    CLIENT_VETH,
    'netns',
    names.client,
  ]);
  runIp(ip, ['-n', names.server, 'addr', 'add', `${OUTSIDE_SERVER_ADDRESS}/${PREFIX_LENGTH}`, 'dev', SERVER_VETH]);
  runIp(ip, ['-n', names.client, 'addr', 'add', `${OUTSIDE_CLIENT_ADDRESS}/${PREFIX_LENGTH}`, 'dev', CLIENT_VETH]);
  runIp(ip, ['-n', names.server, 'link', 'set', SERVER_VETH, 'up']);
  runIp(ip, ['-n', names.client, 'link', 'set', CLIENT_VETH, 'up']);
  const scratchDir = mkdtempSync(join(tmpdir(), `${env.name}-outside-`));
  env.addCleanup(`removing ${scratchDir}`, () => rmSync(scratchDir, { recursive: true, force: true }));
  let port = FIRST_PORT;
  return {
    serverNs: names.server,
    clientNs: names.client,
    serverAddress: OUTSIDE_SERVER_ADDRESS,
    clientAddress: OUTSIDE_CLIENT_ADDRESS,
    scratchDir,
    nextPort: () => port++,
  };
}

/** The bench's outside topology, built on first use. A failure to build it fails the run (and the next one tries again). */
export function outsidePeer(ctx: RunContext): OutsidePeer {
  const existing = built.get(ctx.env);
  if (existing) return existing;
  const ip = ctx.tools.ip;
  if (ip === undefined) throw new ToolFailure('ip is not installed');
  const peer = build(ctx.env, ip);
  built.set(ctx.env, peer);
  return peer;
}

/** argv that runs `command` in network namespace `ns` (nsenter execs it: the PID stays the command's). */
export function inNamespace(nsenter: string, ns: string, command: string, args: readonly string[]): [string, string[]] {
  return [nsenter, [`--net=${netnsPath(ns)}`, '--', command, ...args]];
}

/** Server in the outside namespace and outside the bench cgroup; client in the other namespace, inside it. */
export function outsidePlacement(ctx: RunContext): Placement {
  const peer = outsidePeer(ctx);
  const nsenter = ctx.tools.nsenter;
  if (nsenter === undefined) throw new ToolFailure('nsenter is not installed');
  return {
    host: peer.serverAddress,
    port: () => Promise.resolve(peer.nextPort()),
    startServer: (command, args) => {
      const [cmd, argv] = inNamespace(nsenter, peer.serverNs, command, args);
      return ctx.env.start(cmd, argv, { inCgroup: false });
    },
    runClient: (command, args, timeoutMs) => {
      const [cmd, argv] = inNamespace(nsenter, peer.clientNs, command, args);
      return ctx.env.run(cmd, argv, { timeoutMs, inCgroup: true });
    },
  };
}
