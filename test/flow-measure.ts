/**
 * Standalone measurement for docs/benchmarks.md, "Flow control that comes
 * back" (not part of the test suite): one iperf3 stream per run, three modes
 * interleaved round by round (tcp, default, unlimited):
 *   tcp        client and server outside the loaded cgroup: plain TCP;
 *   default    inside, the default policy (flow control on, its bound autotuned up to tcp_rmem[2]);
 *   unlimited  inside, flow control off (the queue limit out of the way).
 * Prints one line per run (Gbit/s, the share of bytes redirected, switches
 * to TCP and back, the receiver's queue) and the medians and ratios.
 *
 *   node dist/test/flow-measure.js [rounds] [seconds] [write size ...]    (as root)
 */
import { freePort, withSandbox, type Sandbox } from './support/sandbox.js';
import { counters, delta } from './support/trust.js';
import { load } from '../src/core/load.js';
import { writePolicy } from '../src/core/policy.js';
import { withPinnedState } from '../src/core/state.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const SECONDS = process.argv[3] ?? '30';
const SIZES = process.argv.length > 4 ? process.argv.slice(4) : ['128K'];
const MODES = ['tcp', 'default', 'unlimited'] as const;
type Mode = (typeof MODES)[number];

interface Run {
  gbps: number;
  redirectedShare: number;
  switches: number;
  returns: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function run(sb: Sandbox, mode: Mode, size: string): Promise<Run> {
  withPinnedState(sb.pinDir, (s) =>
    writePolicy(s.maps, { ports: null, ranges: null, ...(mode === 'unlimited' ? { flowControl: false } : {}) }),
  );
  const inside = mode === 'tcp' ? { cgroup: null } : {};
  const port = await freePort();
  const server = sb.start('iperf3', ['-s', '-1', '-p', String(port)], inside);
  await new Promise((r) => setTimeout(r, 300));
  const before = counters(sb);
  const client = sb.start(
    'iperf3',
    ['-c', '127.0.0.1', '-p', String(port), '-t', SECONDS, '-l', size, '--json'],
    inside,
  );
  const done = await client.done;
  await server.done;
  const d = delta(before, counters(sb));
  if (done.code !== 0) throw new Error(`iperf3 ${mode}: ${done.stderr} ${done.stdout.slice(0, 300)}`);
  const json = JSON.parse(done.stdout) as {
    error?: string;
    end: { sum_received?: { bits_per_second: number; bytes: number } };
  };
  if (!json.end.sum_received) {
    console.log(`${size} ${mode}: iperf3 failed: ${json.error ?? 'no result'}`);
    return { gbps: 0, redirectedShare: 0, switches: d.flowToTcp, returns: d.flowReturns };
  }
  const bytes = json.end.sum_received.bytes;
  return {
    gbps: json.end.sum_received.bits_per_second / 1e9,
    redirectedShare: d.bytesRedirected / Math.max(1, bytes),
    switches: d.flowToTcp,
    returns: d.flowReturns,
  };
}

await withSandbox('flow-measure', async (sb) => {
  load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
  for (const size of SIZES) {
    const runs: Record<Mode, Run[]> = { tcp: [], default: [], unlimited: [] };
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate the order each round so no mode always runs first.
      const order = MODES.map((_, i) => MODES[(i + round) % MODES.length] as Mode);
      for (const mode of order) {
        const r = await run(sb, mode, size);
        runs[mode].push(r);
        console.log(
          `${size} round ${round + 1} ${mode.padEnd(9)} ${r.gbps.toFixed(2).padStart(6)} Gbit/s` +
            (mode === 'tcp'
              ? ''
              : `  redirected ${(100 * r.redirectedShare).toFixed(1)}%  switches ${r.switches}, back ${r.returns}`),
        );
      }
    }
    const m = (mode: Mode) => median(runs[mode].map((r) => r.gbps));
    const ratios = (a: Mode, b: Mode) => runs[a].map((r, i) => r.gbps / (runs[b][i] as Run).gbps);
    console.log(
      `${size}: medians tcp ${m('tcp').toFixed(2)}, default ${m('default').toFixed(2)}, unlimited ${m('unlimited').toFixed(2)} Gbit/s; ` +
        `default/unlimited ${median(ratios('default', 'unlimited')).toFixed(2)}x (per round ${ratios(
          'default',
          'unlimited',
        )
          .map((x) => x.toFixed(2))
          .join(', ')}), ` +
        `default/tcp ${median(ratios('default', 'tcp')).toFixed(2)}x (${ratios('default', 'tcp')
          .map((x) => x.toFixed(2))
          .join(', ')}); ` +
        `default redirected ${runs.default.map((r) => `${(100 * r.redirectedShare).toFixed(1)}%`).join(', ')}`,
    );
  }
});
