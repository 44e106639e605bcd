/**
 * tcpdump on an interface of a namespace, outside the sandbox's cgroup:
 * counts packets, or lists the SYNs' source ports.
 */
import type { Sandbox, Started } from './sandbox.js';
import { waitFor } from './sandbox.js';
import { startInNetns } from './netns.js';

export interface Capture {
  /** Stop and return the number of packets seen. */
  stop(): Promise<number>;
  log(): string;
}

export async function capture(sb: Sandbox, ns: string, dev: string, filter = 'tcp'): Promise<Capture> {
  // --immediate-mode: packets still in tcpdump's ring at SIGINT are otherwise not counted as
  // captured; the kernel's "received by filter" count is used as well, whichever is larger.
  const proc: Started = startInNetns(
    sb,
    ns,
    'tcpdump',
    ['--immediate-mode', '-i', dev, '-nn', '-p', '-q', '-w', '/dev/null', filter],
    {
      cgroup: null,
    },
  );
  await waitFor(() => /listening on/.test(proc.stderr()) || proc.child.exitCode !== null, 10_000);
  if (proc.child.exitCode !== null) throw new Error(`tcpdump on ${ns}/${dev}: ${proc.stderr()}`);
  return {
    log: () => proc.stderr().trim().replace(/\n/g, '; '),
    async stop() {
      await new Promise((r) => setTimeout(r, 300));
      proc.child.kill('SIGINT');
      const done = await proc.done;
      const m = /(\d+) packets? captured/.exec(done.stderr);
      const f = /(\d+) packets? received by filter/.exec(done.stderr);
      if (!m?.[1]) throw new Error(`tcpdump printed no count: ${done.stderr}`);
      // On lo the filter sees each packet twice (going out and coming in); libpcap keeps one.
      const filtered = Number(f?.[1] ?? 0) / (dev === 'lo' ? 2 : 1);
      return Math.max(Number(m[1]), Math.ceil(filtered));
    },
  };
}

/** The source ports of the SYNs (no ACK) seen on `dev` while it runs. */
export async function synPorts(sb: Sandbox, ns: string, dev: string): Promise<{ stop(): Promise<number[]> }> {
  const proc: Started = startInNetns(
    sb,
    ns,
    'tcpdump',
    ['--immediate-mode', '-l', '-i', dev, '-nn', '-p', '-q', 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn'],
    {
      cgroup: null,
    },
  );
  await waitFor(() => /listening on/.test(proc.stderr()) || proc.child.exitCode !== null, 10_000);
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300));
      proc.child.kill('SIGINT');
      const done = await proc.done;
      // "12:00:00.000000 IP 198.18.1.1.20005 > 198.18.2.2.5201: tcp 0"
      return [...done.stdout.matchAll(/ IP \d+\.\d+\.\d+\.\d+\.(\d+) > /g)].map((m) => Number(m[1]));
    },
  };
}
