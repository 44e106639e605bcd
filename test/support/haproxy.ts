/**
 * Debian's haproxy in TCP mode, standing in for a sidecar (Envoy): run in the
 * foreground (-db, no daemon, no master process) from a generated config,
 * inside a namespace and the sandbox's cgroup, stopped by PID with the
 * sandbox. The package's own service is never used.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sandbox, Started } from './sandbox.js';
import { waitFor } from './sandbox.js';
import { startInNetns } from './netns.js';
import { inNs } from './netfilter.js';

export const HAPROXY = '/usr/sbin/haproxy';

export interface HaproxyOptions {
  ns: string;
  /** "addr:port" it listens on. */
  listen: string;
  /** "addr:port" it forwards every connection to. */
  upstream: string;
  /** Folder for the config. */
  dir: string;
  name: string;
}

export function haproxyConfig(o: Pick<HaproxyOptions, 'listen' | 'upstream'>): string {
  return [
    'global',
    '  maxconn 4096',
    // One thread: the proxy's CPU cost stays comparable between runs on 2 shared CPUs.
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

/** Start haproxy and wait until its port listens in the namespace. */
export async function startHaproxy(sb: Sandbox, o: HaproxyOptions): Promise<Started> {
  const config = join(o.dir, `${o.name}.cfg`);
  writeFileSync(config, haproxyConfig(o));
  const proc = startInNetns(sb, o.ns, HAPROXY, ['-db', '-f', config]);
  const port = o.listen.split(':').pop() as string;
  try {
    await waitFor(
      () => proc.child.exitCode !== null || inNs(o.ns, 'ss', ['-Hltn', `sport = :${port}`]).trim() !== '',
      10_000,
      50,
    );
  } catch {
    throw new Error(`haproxy ${o.name} did not listen on ${o.listen}: ${proc.stderr()}`);
  }
  if (proc.child.exitCode !== null)
    throw new Error(`haproxy ${o.name} exited ${proc.child.exitCode}: ${proc.stderr()}`);
  return proc;
}
