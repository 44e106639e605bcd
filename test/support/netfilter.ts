/**
 * NAT and filter rules inside a network namespace the test created, over the
 * bench's own rule helpers (src/bench/netfilter.ts): iptables (the nf_tables
 * backend Debian ships) or native nftables. The rules go with their
 * namespace; the sandbox's cleanup also flushes them first, so none outlives
 * a namespace that somehow survived.
 */
import { execFileSync } from 'node:child_process';
import type { Sandbox } from './sandbox.js';
import {
  applyIptables,
  applyNft,
  iptablesPackets as countIptablesPackets,
  setSysctl,
  type IptablesRule,
  type NetfilterHost,
} from '../../src/bench/netfilter.js';
import { nsenterArgv } from '../../src/bench/nat-host.js';

export { FIREWALLS, type Firewall } from '../../src/bench/netfilter.js';

/** The commands, from PATH (a root shell's PATH has the sbin folders). */
export const COMMANDS = { ip: 'ip', iptables: 'iptables', nft: 'nft', haproxy: '/usr/sbin/haproxy' } as const;

/** Run a command in `ns` (network namespace only) and return its stdout. */
export function inNs(ns: string, command: string, args: readonly string[], input?: string): string {
  const [cmd, argv] = nsenterArgv('nsenter', ns, command, args);
  return execFileSync(cmd, argv, {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(input === undefined ? {} : { input }),
  }).toString();
}

function rulesHost(sb: Sandbox): NetfilterHost {
  return { inNs, addCleanup: (_what, undo) => sb.onCleanup(undo), commands: COMMANDS };
}

/** Apply iptables rules (each an argv, e.g. ['-t', 'nat', '-A', 'OUTPUT', ...]) in `ns`. */
export function iptables(sb: Sandbox, ns: string, rules: readonly IptablesRule[]): void {
  applyIptables(rulesHost(sb), ns, rules);
}

/** Load an nft script (`nft -f -`) in `ns`. */
export function nft(sb: Sandbox, ns: string, script: string): void {
  applyNft(rulesHost(sb), ns, script);
}

/** A sysctl of the namespace (net.* sysctls are per namespace). */
export function sysctl(ns: string, name: string, value: string): void {
  setSysctl({ inNs }, ns, name, value);
}

/** Packets counted by the iptables rules of `table`/`chain` whose target is `target`. */
export function iptablesPackets(ns: string, table: string, chain: string, target: string): number {
  return countIptablesPackets({ inNs, commands: COMMANDS }, ns, table, chain, target);
}
