/**
 * What building a NAT pattern (nat-topology.ts) needs from whoever owns it:
 * namespaces, veths, commands run inside a namespace, long-running processes
 * in the workload cgroup, and undo steps. The bench implements it over its
 * BenchEnv (nat-peer.ts), the tests over their Sandbox
 * (test/support/nat-patterns.ts), so each pattern is written once.
 */

/** A veth pair: `a` in the first namespace, `b` in the second. */
export interface Veth {
  readonly a: string;
  readonly b: string;
}

/** A process started by the host, known by PID. */
export interface HostedProcess {
  readonly pid: number;
  exited(): boolean;
  /** What it printed so far (stderr first), for an error message. */
  output(): string;
}

export interface NatHost {
  /** A new network namespace with lo up, deleted at cleanup; returns its name. */
  addNamespace(tag: string): string;
  /** A veth pair from nsA to nsB, each end addressed (CIDR inside 198.18.0.0/15) and up. */
  addVeth(nsA: string, nsB: string, cidrA: string, cidrB: string): Veth;
  /** Runs `command` in network namespace `ns` to completion; its stdout. Throws on failure. */
  inNs(ns: string, command: string, args: readonly string[], input?: string): string;
  /** Starts a long-running `command` in `ns`, inside the workload cgroup; stopped at cleanup. */
  startInNs(ns: string, command: string, args: readonly string[]): HostedProcess;
  /** Registers an undo step, run at cleanup, last registered first. */
  addCleanup(what: string, undo: () => void): void;
  /** A folder for generated files (haproxy configs), removed at cleanup. */
  readonly dir: string;
  /** Where the commands run inside the namespaces are. */
  readonly commands: {
    readonly ip: string;
    readonly iptables: string;
    readonly nft: string;
    readonly haproxy: string;
  };
}

/** The file `ip netns` keeps for namespace `name`. */
export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** argv that runs `command` in network namespace `ns` (nsenter execs it: the PID stays the command's). */
export function nsenterArgv(nsenter: string, ns: string, command: string, args: readonly string[]): [string, string[]] {
  return [nsenter, [`--net=${netnsPath(ns)}`, '--', command, ...args]];
}

/** Addresses of the NAT patterns stay in the benchmarking range. */
export function requireBenchmarkingRange(cidr: string): void {
  if (!/^198\.1[89]\.\d+\.\d+\/\d+$/.test(cidr)) throw new Error(`veth address ${cidr} is outside 198.18.0.0/15`);
}
