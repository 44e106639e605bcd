/**
 * Debian's haproxy in TCP mode, standing in for a sidecar (Envoy) in the NAT
 * patterns: run in the foreground (-db, no daemon, no master process) from a
 * generated config, inside a namespace and the workload cgroup, stopped by
 * PID by its host. The package's own service is never used.
 */
import { readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsPath, type HostedProcess, type NatHost } from './nat-host.js';

export interface HaproxyOptions {
  readonly ns: string;
  /** "addr:port" it listens on. */
  readonly listen: string;
  /** "addr:port" it forwards every connection to. */
  readonly upstream: string;
  /** Config file name (without .cfg) in the host's folder. */
  readonly name: string;
}

export function haproxyConfig(o: Pick<HaproxyOptions, 'listen' | 'upstream'>): string {
  return [
    'global',
    '  maxconn 4096',
    // One thread: the proxy's CPU cost stays comparable between runs on a few shared CPUs.
    '  nbthread 1',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 120s',
    '  timeout server 120s',
    'frontend sidecar',
    `  bind ${o.listen}`,
    '  default_backend upstream',
    'backend upstream',
    `  server upstream ${o.upstream}`,
    '',
  ].join('\n');
}

/** Ports in LISTEN state (st 0A) in a /proc/net/tcp table. */
export function listeningPorts(procNetTcp: string): number[] {
  const ports: number[] = [];
  for (const line of procNetTcp.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (fields[3] !== '0A' || local === undefined) continue;
    const port = Number.parseInt(local.split(':')[1] ?? '', 16);
    if (Number.isInteger(port)) ports.push(port);
  }
  return ports;
}

/**
 * Whether `pid` listens on `port` inside namespace `ns`. The process must be
 * in that namespace already (its launcher's shell and nsenter briefly hold the
 * same PID in another one): /proc/PID/net is the table of its own namespace.
 */
export function listensIn(pid: number, ns: string, port: number): boolean {
  try {
    if (readlinkSync(`/proc/${pid}/ns/net`) !== `net:[${statSync(netnsPath(ns)).ino}]`) return false;
    return listeningPorts(readFileSync(`/proc/${pid}/net/tcp`, 'utf8')).includes(port);
  } catch {
    return false;
  }
}

/** Start haproxy and wait until it listens in its namespace. */
export async function startHaproxy(host: NatHost, o: HaproxyOptions, timeoutMs = 10_000): Promise<HostedProcess> {
  const config = join(host.dir, `${o.name}.cfg`);
  writeFileSync(config, haproxyConfig(o));
  const proc = host.startInNs(o.ns, host.commands.haproxy, ['-db', '-f', config]);
  const port = Number(o.listen.split(':').pop());
  const end = Date.now() + timeoutMs;
  while (!listensIn(proc.pid, o.ns, port)) {
    if (proc.exited()) throw new Error(`haproxy ${o.name} exited before listening on ${o.listen}: ${proc.output()}`);
    if (Date.now() > end) throw new Error(`haproxy ${o.name} did not listen on ${o.listen}: ${proc.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return proc;
}
