/**
 * The three same-host NAT patterns of test/nat.test.ts, built by the bench's
 * own builders (src/bench/nat-topology.ts, which documents them) over a
 * test's Sandbox: namespaces and veths from support/netns.ts, haproxy inside
 * the sandbox's cgroup, everything removed by the sandbox's cleanup.
 */
import type { Sandbox } from './sandbox.js';
import { createNetns, createVeth, startInNetns } from './netns.js';
import { COMMANDS, inNs, type Firewall } from './netfilter.js';
import type { NatHost } from '../../src/bench/nat-host.js';
import {
  buildPattern as buildOn,
  routed as routedOn,
  type NatSetup,
  type PatternName,
  type Routed,
} from '../../src/bench/nat-topology.js';

export { PATTERNS, SERVER_PORT, type NatSetup, type PatternName, type Routed } from '../../src/bench/nat-topology.js';

export const HAPROXY = COMMANDS.haproxy;

/** A NatHost over a sandbox; `dir` holds generated files (the sandbox's cleanup removes it). */
export function sandboxNatHost(sb: Sandbox, dir: string): NatHost {
  return {
    addNamespace: (tag) => createNetns(sb, tag),
    addVeth: (nsA, nsB, cidrA, cidrB) => createVeth(sb, nsA, nsB, cidrA, cidrB),
    inNs,
    startInNs(ns, command, args) {
      const proc = startInNetns(sb, ns, command, args);
      return {
        pid: proc.pid,
        exited: () => proc.child.exitCode !== null || proc.child.signalCode !== null,
        output: () => `${proc.stderr()}${proc.stdout()}`.trim(),
      };
    },
    addCleanup: (_what, undo) => sb.onCleanup(undo),
    dir,
    commands: COMMANDS,
  };
}

/** client ↔ node ↔ server namespaces (nat-topology.ts, routed). */
export function routed(sb: Sandbox, n: number, m: number): Routed {
  return routedOn(sandboxNatHost(sb, ''), n, m);
}

export function buildPattern(sb: Sandbox, pattern: PatternName, fw: Firewall, dir: string): Promise<NatSetup> {
  return buildOn(sandboxNatHost(sb, dir), pattern, fw);
}
