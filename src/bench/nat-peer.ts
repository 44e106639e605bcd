/**
 * The nat rows' topologies (issue 12): each NAT pattern (nat-topology.ts,
 * iptables rules) built in network namespaces of the bench's own, once per
 * bench, on the first run of a row that needs it. haproxy runs inside the
 * bench cgroup (its sockets are the proxy's ends of both hops), as do the
 * sbload servers and clients. Everything goes at the bench's cleanup
 * (env.addCleanup, env's processes) on success, failure and interrupt alike:
 * rule flushes first, then the namespaces, whose deletion takes their veths.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ToolFailure, type BenchEnv } from './env.js';
import { netnsPath, nsenterArgv, requireBenchmarkingRange, type NatHost, type Veth } from './nat-host.js';
import { buildPattern, type NatSetup, type PatternName } from './nat-topology.js';
import { tool } from './tool-runs.js';
import type { RunContext } from './workloads.js';

function describeFailure(e: unknown): string {
  const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
  return stderr || (e as Error).message;
}

function exec(command: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 10_000,
      ...(input === undefined ? {} : { input }),
    }).toString();
  } catch (e) {
    throw new ToolFailure(`${command} ${args.join(' ')}: ${describeFailure(e)}`);
  }
}

/** `<env name>-<tag>`, or with a `-<n>` suffix when taken (a failed build of this bench, or a crashed run). */
function freeNamespaceName(env: BenchEnv, tag: string): string {
  for (let n = 0; n < 100; n++) {
    const name = `${env.name}-${tag}${n === 0 ? '' : `-${n}`}`;
    if (!existsSync(netnsPath(name))) return name;
  }
  throw new ToolFailure(`no free network namespace name for ${env.name}-${tag}`);
}

/** A NatHost over the bench's env: namespaces named after the bench, processes inside its cgroup. */
export function benchNatHost(env: BenchEnv, ctx: RunContext): NatHost {
  const ip = tool(ctx, 'ip');
  const nsenter = tool(ctx, 'nsenter');
  const dir = mkdtempSync(join(tmpdir(), `${env.name}-nat-`));
  env.addCleanup(`removing ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  let veths = 0;
  return {
    addNamespace(tag) {
      const name = freeNamespaceName(env, `nat-${tag}`);
      env.addCleanup(`deleting network namespace ${name}`, () => {
        if (existsSync(netnsPath(name))) exec(ip, ['netns', 'delete', name]);
      });
      exec(ip, ['netns', 'add', name]);
      exec(ip, ['-n', name, 'link', 'set', 'lo', 'up']);
      return name;
    },
    addVeth(nsA, nsB, cidrA, cidrB): Veth {
      requireBenchmarkingRange(cidrA);
      requireBenchmarkingRange(cidrB);
      // Created straight into the bench's namespaces (names need only be unique there): the host never holds an end.
      const veth = { a: `sbn${veths}a`, b: `sbn${veths}b` };
      veths++;
      exec(ip, ['link', 'add', veth.a, 'netns', nsA, 'type', 'veth', 'peer', 'name', veth.b, 'netns', nsB]);
      exec(ip, ['-n', nsA, 'addr', 'add', cidrA, 'dev', veth.a]);
      exec(ip, ['-n', nsB, 'addr', 'add', cidrB, 'dev', veth.b]);
      exec(ip, ['-n', nsA, 'link', 'set', veth.a, 'up']);
      exec(ip, ['-n', nsB, 'link', 'set', veth.b, 'up']);
      return veth;
    },
    inNs(ns, command, args, input) {
      const [cmd, argv] = nsenterArgv(nsenter, ns, command, args);
      return exec(cmd, argv, input);
    },
    startInNs(ns, command, args) {
      const [cmd, argv] = nsenterArgv(nsenter, ns, command, args);
      const proc = env.start(cmd, argv, { inCgroup: true });
      return { pid: proc.pid, exited: () => proc.exited(), output: () => `${proc.stderr()}${proc.stdout()}`.trim() };
    },
    addCleanup: (what, undo) => env.addCleanup(what, undo),
    dir,
    // The bench builds the iptables variant only; nft is never called.
    commands: { ip, iptables: tool(ctx, 'iptables'), nft: 'nft', haproxy: tool(ctx, 'haproxy') },
  };
}

interface Built {
  readonly host: NatHost;
  readonly setups: Map<PatternName, Promise<NatSetup>>;
}

const built = new WeakMap<BenchEnv, Built>();

/** The bench's NatHost, made on first use. */
export function natHost(ctx: RunContext): NatHost {
  return natState(ctx).host;
}

function natState(ctx: RunContext): Built {
  let state = built.get(ctx.env);
  if (!state) {
    state = { host: benchNatHost(ctx.env, ctx), setups: new Map() };
    built.set(ctx.env, state);
  }
  return state;
}

/**
 * Pattern `pattern` (iptables rules), built on first use. A failure to build
 * it fails the run; the next run tries again in fresh namespaces (the failed
 * ones go at cleanup).
 */
export function natSetup(ctx: RunContext, pattern: PatternName): Promise<NatSetup> {
  const state = natState(ctx);
  const existing = state.setups.get(pattern);
  if (existing) return existing;
  const setup = buildPattern(state.host, pattern, 'iptables');
  state.setups.set(pattern, setup);
  setup.catch(() => state.setups.delete(pattern));
  return setup;
}
