/**
 * Standalone measurement for docs/nat.md (not part of the test suite):
 * each NAT pattern of test/support/nat-patterns.ts (iptables rules), with the
 * bypass off (A) and on (B), interleaved A B A B for PAIRS pairs: throughput
 * (sbload stream, one connection, 2 s), request rate (sbload rr, 64-byte
 * round trips over one connection, 2 s) and the packets the stream run put
 * on each lo/veth the pattern crosses. Prints one line per run and a
 * Markdown table of medians and on/off ratios.
 *
 *   node dist/test/nat-measure.js [pairs]      (as root)
 *
 * The bench measures the same patterns (without the packet counts) as its
 * nat rows: `sockbypass bench --only nat` (src/bench/nat-workloads.ts).
 */
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { withSandbox, type Sandbox } from './support/sandbox.js';
import { startInNetns } from './support/netns.js';
import { capture } from './support/capture.js';
import { buildPattern, PATTERNS, type NatSetup, type PatternName } from './support/nat-patterns.js';
import { readyPort, SBLOAD } from './support/trust.js';
import { load } from '../src/core/load.js';
import { unload } from '../src/core/unload.js';
import { counters, delta } from './support/trust.js';
import type { Counters } from '../src/core/layout.js';
import { pinState } from '../src/core/pins.js';

const PAIRS = Number(process.argv[2] ?? 3);
const SECONDS = '2';

interface Sample {
  counters?: Counters;
  gbps: number;
  requestsPerSecond: number;
  packets: number[];
}

async function sbloadPair(
  sb: Sandbox,
  setup: NatSetup,
  dir: string,
  mode: 'stream' | 'rr',
  extra: string[],
): Promise<Record<string, number>> {
  const ready = join(dir, `ready-${mode}-${Date.now()}`);
  const server = startInNetns(sb, setup.serverNs, SBLOAD, [
    mode,
    '--role',
    'server',
    '--listen',
    setup.listen,
    '--ready-file',
    ready,
    '--seconds',
    '30',
  ]);
  await readyPort(ready, server);
  const client = startInNetns(sb, setup.clientNs, SBLOAD, [
    mode,
    '--role',
    'client',
    '--connect',
    setup.connect,
    '--seconds',
    SECONDS,
    ...extra,
  ]);
  const done = await client.done;
  // The server prints its figures once the client is gone; give it a moment before stopping it.
  const timer = setTimeout(() => server.child.kill('SIGTERM'), 5000);
  const srv = await server.done;
  clearTimeout(timer);
  const parse = (s: string): Record<string, number> =>
    JSON.parse(s.trim().split('\n').pop() ?? '{}') as Record<string, number>;
  const out = parse(done.stdout);
  if (done.code !== 0) console.log(`  sbload ${mode} client failed: ${done.stdout.trim()}`);
  // stream: the receiver's (server's) figure counts delivered bytes; rr: the client's.
  return mode === 'stream' ? parse(srv.stdout || '{}') : out;
}

async function sample(sb: Sandbox, setup: NatSetup, dir: string): Promise<Sample> {
  const loaded = pinState(sb.pinDir) === 'complete';
  const before = loaded ? counters(sb) : undefined;
  const caps = await Promise.all(setup.taps.map((tap) => capture(sb, tap.ns, tap.dev)));
  const stream = await sbloadPair(sb, setup, dir, 'stream', []);
  const packets = await Promise.all(caps.map((c) => c.stop()));
  const streamCounters = before && loaded ? delta(before, counters(sb)) : undefined;
  const rr = await sbloadPair(sb, setup, dir, 'rr', ['--warmup', '200']);
  return {
    ...(streamCounters ? { counters: streamCounters } : {}),
    gbps: (stream.bitsPerSecond ?? 0) / 1e9,
    requestsPerSecond: (rr.roundTrips ?? 0) / (rr.seconds ?? 1),
    packets,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function measure(pattern: PatternName): Promise<string> {
  return withSandbox(`nat-measure-${pattern}`, async (sb) => {
    const dir = mkdtempSync(join(tmpdir(), 'sockbypass-nat-measure-'));
    sb.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const setup = await buildPattern(sb, pattern, 'iptables', dir);
    const off: Sample[] = [];
    const on: Sample[] = [];
    for (let i = 0; i < PAIRS; i++) {
      for (const state of ['off', 'on'] as const) {
        if (state === 'on') load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
        const s = await sample(sb, setup, dir);
        if (state === 'on') unload({ pinDir: sb.pinDir });
        (state === 'on' ? on : off).push(s);
        console.log(
          `${pattern} pair ${i + 1} ${state}: ${s.gbps.toFixed(2)} Gbit/s, ${Math.round(s.requestsPerSecond)} req/s, packets ${setup.taps.map((t, j) => `${t.label} ${s.packets[j]}`).join(', ')}` +
            (s.counters
              ? `; stream run: pairs ${s.counters.pairsJoined}, redirected ${s.counters.bytesRedirected} B, flow-control switches ${s.counters.flowToTcp} (${s.counters.flowBytes} B), sticky ${s.counters.stickyTcp}, passed ${s.counters.bytesPassed} B`
              : ''),
        );
      }
    }
    const row = (xs: Sample[]) => ({
      gbps: median(xs.map((s) => s.gbps)),
      rps: median(xs.map((s) => s.requestsPerSecond)),
      packets: setup.taps.map((_, j) => median(xs.map((s) => s.packets[j] as number))),
    });
    const [a, b] = [row(off), row(on)];
    return (
      `| ${pattern} | ${a.gbps.toFixed(2)} | ${b.gbps.toFixed(2)} | ${(b.gbps / a.gbps).toFixed(2)}× | ` +
      `${Math.round(a.rps)} | ${Math.round(b.rps)} | ${(b.rps / a.rps).toFixed(2)}× | ` +
      setup.taps.map((t, j) => `${t.label}: ${a.packets[j]} → ${b.packets[j]}`).join('; ') +
      ' |'
    );
  });
}

const rows: string[] = [];
for (const pattern of PATTERNS) rows.push(await measure(pattern));
console.log(`\nmedians of ${PAIRS} interleaved off/on pairs, ${SECONDS} s per run, iptables rules\n`);
console.log(
  '| pattern | stream off Gbit/s | on | on/off | rr off req/s | on | on/off | packets in the stream run, off → on |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
