/**
 * NAT and filter rules inside a network namespace of a NatHost, with
 * iptables (Debian's iptables is the nf_tables backend) or native nftables.
 * The rules go with their namespace; each apply also registers a flush of
 * what it touched, run before the namespace is deleted, so no rule outlives
 * a namespace that somehow survived.
 */
import { existsSync } from 'node:fs';
import { netnsPath, type NatHost } from './nat-host.js';

/** The part of a NatHost that rules need. */
export type NetfilterHost = Pick<NatHost, 'inNs' | 'addCleanup' | 'commands'>;

export type Firewall = 'iptables' | 'nft';
export const FIREWALLS: readonly Firewall[] = ['iptables', 'nft'];

/** One iptables invocation's arguments, e.g. ['-t', 'nat', '-A', 'OUTPUT', ...]. */
export type IptablesRule = readonly string[];

/** The tables a set of rules touches ('filter' when a rule names none). */
export function iptablesTables(rules: readonly IptablesRule[]): string[] {
  const tables = new Set<string>();
  for (const rule of rules) {
    const at = rule.indexOf('-t');
    tables.add(at >= 0 ? (rule[at + 1] ?? 'filter') : 'filter');
  }
  return [...tables];
}

/** Apply iptables rules in `ns`, in order. */
export function applyIptables(host: NetfilterHost, ns: string, rules: readonly IptablesRule[]): void {
  const tables = iptablesTables(rules);
  host.addCleanup(`flushing iptables ${tables.join(', ')} in ${ns}`, () => {
    if (!existsSync(netnsPath(ns))) return;
    for (const table of tables) {
      host.inNs(ns, host.commands.iptables, ['-w', '-t', table, '-F']);
      host.inNs(ns, host.commands.iptables, ['-w', '-t', table, '-X']);
    }
  });
  for (const rule of rules) host.inNs(ns, host.commands.iptables, ['-w', ...rule]);
}

/** Load an nft script (`nft -f -`) in `ns`. */
export function applyNft(host: NetfilterHost, ns: string, script: string): void {
  host.addCleanup(`flushing the nft ruleset in ${ns}`, () => {
    if (existsSync(netnsPath(ns))) host.inNs(ns, host.commands.nft, ['flush', 'ruleset']);
  });
  host.inNs(ns, host.commands.nft, ['-f', '-'], script);
}

/**
 * Set a sysctl of namespace `ns` (net.* sysctls are per namespace): a shell
 * inside it writes /proc/sys, which answers for the writer's namespace.
 */
export function setSysctl(host: Pick<NatHost, 'inNs'>, ns: string, name: string, value: string): void {
  const file = `/proc/sys/${name.replaceAll('.', '/')}`;
  host.inNs(ns, '/bin/sh', ['-c', 'echo "$1" > "$0"', file, value]);
}

/** Packets counted by the iptables rules of `table`/`chain` whose target is `target`. */
export function iptablesPackets(
  host: Pick<NatHost, 'inNs' | 'commands'>,
  ns: string,
  table: string,
  chain: string,
  target: string,
): number {
  const out = host.inNs(ns, host.commands.iptables, ['-w', '-t', table, '-L', chain, '-v', '-n', '-x']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[2] === target)
    .reduce((n, f) => n + Number(f[0]), 0);
}
