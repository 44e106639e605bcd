/**
 * The host's TCP memory while a trust run goes on: its peak (pages, /proc/net/sockstat) against
 * net.ipv4.tcp_mem, and the connections the kernel aborted for lack of it (TcpExt
 * TCPAbortOnMemory, the "TCP: out of memory" resets). Issue 14, goal 1: the host stays inside tcp_mem.
 */
import { readFileSync } from 'node:fs';

export interface TcpMemoryReport {
  /** Highest `TCP: ... mem N` seen, in pages. */
  peakPages: number;
  /** net.ipv4.tcp_mem: [low, pressure, high] in pages. */
  limits: [number, number, number];
  /** Connections aborted for memory (TCPAbortOnMemory) during the watch. */
  abortsOnMemory: number;
}

function tcpPages(): number {
  const m = /^TCP:.* mem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  return m ? Number(m[1]) : 0;
}

function tcpMemLimits(): [number, number, number] {
  const [low = 0, pressure = 0, high = 0] = readFileSync('/proc/sys/net/ipv4/tcp_mem', 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number);
  return [low, pressure, high];
}

/** TcpExt TCPAbortOnMemory from /proc/net/netstat (a header line, then a value line). */
function abortsOnMemory(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  for (let i = 0; i + 1 < lines.length; i++) {
    const names = (lines[i] as string).split(/\s+/);
    if (names[0] !== 'TcpExt:') continue;
    const values = (lines[i + 1] as string).split(/\s+/);
    const at = names.indexOf('TCPAbortOnMemory');
    return at < 0 ? 0 : Number(values[at]);
  }
  return 0;
}

/** Sample the host's TCP memory every `everyMs` until stop(). */
export function watchTcpMemory(everyMs = 200): { stop(): TcpMemoryReport } {
  const abortsBefore = abortsOnMemory();
  let peakPages = tcpPages();
  const timer = setInterval(() => {
    peakPages = Math.max(peakPages, tcpPages());
  }, everyMs);
  timer.unref(); // a run that throws before stop() must not hold the test process open
  return {
    stop() {
      clearInterval(timer);
      peakPages = Math.max(peakPages, tcpPages());
      return { peakPages, limits: tcpMemLimits(), abortsOnMemory: abortsOnMemory() - abortsBefore };
    },
  };
}

export function describeTcpMemory(r: TcpMemoryReport): string {
  const [low, pressure, high] = r.limits;
  return `host TCP memory peak ${r.peakPages} pages (tcp_mem ${low} ${pressure} ${high}), ${r.abortsOnMemory} connections aborted for memory`;
}

/** The host stayed inside tcp_mem: no connection aborted for memory, and the peak under tcp_mem[2]. */
export function assertInsideTcpMem(r: TcpMemoryReport, what: string): void {
  if (r.abortsOnMemory !== 0 || r.peakPages >= r.limits[2]) {
    throw new Error(`${what}: the host left tcp_mem: ${describeTcpMemory(r)}`);
  }
}
