/**
 * Independent witnesses for privileged tests: tcpdump counts packets on lo,
 * bpftool reads the pinned map and lists programs and cgroup attachments.
 */
import { execFileSync } from 'node:child_process';
import type { Sandbox, Started } from './sandbox.js';
import { waitFor } from './sandbox.js';

export interface Capture {
  /** Stop tcpdump and return how many packets it captured. */
  stop(): Promise<number>;
}

/** Count TCP packets on lo for `port` (both directions). */
export async function captureLo(sb: Sandbox, port: number): Promise<Capture> {
  // --immediate-mode: no packet waits in tcpdump's buffer at SIGINT, uncounted.
  const proc: Started = sb.start(
    'tcpdump',
    ['-i', 'lo', '-nn', '-p', '-q', '--immediate-mode', '-w', '/dev/null', `tcp port ${port}`],
    {
      cgroup: null,
    },
  );
  await waitFor(() => /listening on/.test(proc.stderr()), 10_000);
  return {
    async stop() {
      // Give the kernel a moment to deliver the last teardown packets to the capture.
      await new Promise((r) => setTimeout(r, 300));
      proc.child.kill('SIGINT');
      const done = await proc.done;
      // With --immediate-mode nothing waits uncounted in tcpdump's buffer. ("received by
      // filter" is no witness on lo: it counts each packet twice, once per direction.)
      const captured = /(\d+) packets? captured/.exec(done.stderr);
      if (!captured?.[1]) throw new Error(`tcpdump printed no count: ${done.stderr}`);
      return Number(captured[1]);
    },
  };
}

/** Wait until a started process printed a line matching `re`; returns the match. */
export async function waitForLine(p: Started, re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  let m: RegExpExecArray | null = null;
  try {
    await waitFor(() => (m = re.exec(p.stdout())) !== null || p.child.exitCode !== null, timeoutMs);
  } catch {
    throw new Error(`no line matching ${re} within ${timeoutMs} ms; stdout: ${p.stdout()} stderr: ${p.stderr()}`);
  }
  if (!m) throw new Error(`process exited (${p.child.exitCode}) before printing ${re}; stderr: ${p.stderr()}`);
  return m;
}

/** Keys (as hex) in a pinned sockhash, read by bpftool. */
export function bpftoolMapKeys(pinnedMap: string): string[] {
  const out = execFileSync('bpftool', ['-j', 'map', 'dump', 'pinned', pinnedMap]).toString();
  const entries = JSON.parse(out) as Array<{ key: string[] }>;
  return entries.map((e) => e.key.map((b) => b.replace(/^0x/, '')).join(''));
}

/** Names of loaded sock_ops / sk_msg programs, per bpftool. */
export function bpftoolPrograms(): Array<{ id: number; type: string; name: string }> {
  const out = execFileSync('bpftool', ['-j', 'prog', 'show']).toString();
  return (JSON.parse(out) as Array<{ id: number; type: string; name?: string }>)
    .filter((p) => p.type === 'sock_ops' || p.type === 'sk_msg')
    .map((p) => ({ id: p.id, type: p.type, name: p.name ?? '' }));
}

/** `bpftool cgroup tree` lines that mention a cgroup path fragment. */
export function bpftoolCgroupAttachments(fragment: string): string[] {
  const out = execFileSync('bpftool', ['cgroup', 'tree']).toString();
  const lines = out.split('\n');
  const hits: string[] = [];
  let current = '';
  for (const line of lines) {
    if (line.startsWith('/')) current = line.trim();
    if (current.includes(fragment) && /sock_ops|sk_msg/.test(line)) hits.push(`${current}: ${line.trim()}`);
  }
  return hits;
}
