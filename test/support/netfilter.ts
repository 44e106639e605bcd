/**
 * NAT and filter rules inside a network namespace the test created, with
 * iptables (the nf_tables backend Debian ships) or native nftables. The rules
 * go with their namespace; the sandbox's cleanup also flushes them first, so
 * none outlives a namespace that somehow survived.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Sandbox } from './sandbox.js';

export type Firewall = 'iptables' | 'nft';
export const FIREWALLS: readonly Firewall[] = ['iptables', 'nft'];

/** Run a command in `ns` (network namespace only) and return its stdout. */
export function inNs(ns: string, command: string, args: readonly string[], input?: string): string {
  return execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', command, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(input === undefined ? {} : { input }),
  }).toString();
}

function flushOnCleanup(sb: Sandbox, ns: string): void {
  sb.onCleanup(() => {
    if (!existsSync(`/run/netns/${ns}`)) return;
    inNs(ns, 'nft', ['flush', 'ruleset']);
  });
}

/** Apply iptables rules (each an argv, e.g. ['-t', 'nat', '-A', 'OUTPUT', ...]) in `ns`. */
export function iptables(sb: Sandbox, ns: string, rules: readonly (readonly string[])[]): void {
  flushOnCleanup(sb, ns);
  for (const rule of rules) inNs(ns, 'iptables', ['-w', ...rule]);
}

/** Load an nft script (`nft -f -`) in `ns`. */
export function nft(sb: Sandbox, ns: string, script: string): void {
  flushOnCleanup(sb, ns);
  inNs(ns, 'nft', ['-f', '-'], script);
}

/** A sysctl of the namespace (net.* sysctls are per namespace). */
export function sysctl(ns: string, name: string, value: string): void {
  inNs(ns, 'sysctl', ['-q', '-w', `${name}=${value}`]);
}

/** Packets counted by the iptables rules of `table`/`chain` whose target is `target`. */
export function iptablesPackets(ns: string, table: string, chain: string, target: string): number {
  const out = inNs(ns, 'iptables', ['-w', '-t', table, '-L', chain, '-v', '-n', '-x']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[2] === target)
    .reduce((n, f) => n + Number(f[0]), 0);
}
