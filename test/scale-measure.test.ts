/**
 * Scale measurements (SOCKBYPASS_LONG=1 only; figures in docs/benchmarks.md, "Scale"):
 *
 * - the connection rate (sbload crr) with 50,000 idle pairs in the sockhash
 *   against an empty one: rounds of one run each, the order alternating
 *   (A B, B A, ...) so a drift in the host's load hits both alike; medians,
 *   and the median of each round's own ratio (the two runs of a round are
 *   seconds apart, so other work on the host moves them together);
 * - the kernel memory an accelerated pair adds: 50,000 pairs held inside the
 *   loaded cgroup against the same 50,000 held outside it (plain TCP), as
 *   slab object bytes (/proc/slabinfo) and the maps' own figure (fdinfo memlock).
 *
 * Everything runs in a fresh network namespace of the test's own.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, type Sandbox } from './support/sandbox.js';
import { createNetns, inNetns } from './support/netns.js';
import { holdPairs } from './support/pairhold.js';
import { kmemDelta, kmemSnapshot, mapMemlock, median, type KmemDelta } from './support/kmem.js';
import { LONG, SBLOAD, counters, delta, requireTool } from './support/trust.js';
import { load } from '../src/core/load.js';
import { ALLOW_ALL } from '../src/core/policy.js';
import { PinnedState, withPinnedState } from '../src/core/state.js';
import { parseSbloadOutput } from '../src/bench/sbload.js';

const HELD = 50_000;
const CRR_ROUNDS = 8;
const CRR_SECONDS = 3;
const MEMORY_ROUNDS = 3;
const skip = LONG ? false : 'SOCKBYPASS_LONG=1 only';

function mapSockets(sb: Sandbox): number {
  return withPinnedState(sb.pinDir, (s) => s.maps.sock_hash.count());
}

async function crr(sb: Sandbox, ns: string): Promise<{ rate: number; connections: number; failures: number }> {
  requireTool(SBLOAD);
  const [cmd, argv] = inNetns(ns, SBLOAD, ['crr', '--family', 'tcp4', '--size', '64', '--seconds', String(CRR_SECONDS)]);
  const f = await sb.run(cmd, argv, { timeoutMs: (CRR_SECONDS + 30) * 1000 });
  assert.equal(f.code, 0, `sbload crr: ${f.stderr}`);
  const r = parseSbloadOutput(f.stdout, 'crr');
  return { rate: r.connectionsPerSecond, connections: r.connections, failures: r.failures };
}

function spread(values: readonly number[]): string {
  return `${Math.round(Math.min(...values))}..${Math.round(Math.max(...values))}`;
}

test(`connection rate with ${HELD} pairs in the sockhash is within 5% of an empty one`, { skip, timeout: 900_000 }, async (t: TestContext) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('scale-crr', async (sb) => {
    // Short-connection rule off: every crr connection joins the map and leaves it, the case the map's size could slow.
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir, policy: { ...ALLOW_ALL, shortMessages: 0 } });
    const ns = createNetns(sb, 'scale-crr');
    const rates = { empty: [] as number[], held: [] as number[] };
    const roundRatios: number[] = [];
    for (let round = 0; round < CRR_ROUNDS; round++) {
      const order = round % 2 === 0 ? (['empty', 'held'] as const) : (['held', 'empty'] as const);
      const rate: Partial<Record<'empty' | 'held', number>> = {};
      for (const mode of order) {
        const pairs = mode === 'held' ? await holdPairs(sb, HELD, { netns: ns, timeoutMs: 300_000 }) : undefined;
        const inMap = mapSockets(sb);
        assert.equal(inMap, mode === 'held' ? 2 * HELD : 0, `${mode}: sockets in the map before crr`);
        const before = counters(sb);
        const r = await crr(sb, ns);
        const d = delta(before, counters(sb));
        t.diagnostic(
          `round ${round + 1} ${mode}: ${Math.round(r.rate)} connections/s (${r.connections} connections, ${r.failures} failed; ` +
            `pairs joined ${d.pairsJoined}, map full ${d.insertMapFull}, no peer ${d.leftNoPeer})` +
            (pairs ? `; ${HELD} pairs held, established in ${pairs.ready.establishSeconds.toFixed(2)} s` : ''),
        );
        assert.equal(r.failures, 0, 'crr connections failed');
        assert.ok(d.pairsJoined >= r.connections, `every crr connection joined the map (${d.pairsJoined} of ${r.connections})`);
        assert.equal(d.leftNoPeer + d.insertMapFull + d.pairUnjoined, 0, 'no crr connection left out');
        rates[mode].push(r.rate);
        rate[mode] = r.rate;
        if (pairs) {
          const end = await pairs.release();
          assert.equal(end.code, 0, `pairhold: ${end.stderr}`);
        }
      }
      roundRatios.push((rate.held as number) / (rate.empty as number));
    }
    const ratioOfMedians = median(rates.held) / median(rates.empty);
    const ratio = median(roundRatios);
    t.diagnostic(
      `crr, ${CRR_ROUNDS} rounds of ${CRR_SECONDS} s runs: empty map median ${Math.round(median(rates.empty))}/s (${spread(rates.empty)}), ` +
        `${HELD} pairs held median ${Math.round(median(rates.held))}/s (${spread(rates.held)}); ratio of medians ${ratioOfMedians.toFixed(3)}; ` +
        `per-round ratios ${roundRatios.map((r) => r.toFixed(3)).join(', ')}: median ${ratio.toFixed(3)}`,
    );
    assert.ok(ratio >= 0.95, `connection rate with ${HELD} pairs held is ${ratio.toFixed(3)} of an empty map's`);
  });
});

const MEMLOCK_MAPS = ['sock_hash', 'sock_states', 'pairs'] as const;

test(`kernel memory of ${HELD} accelerated pairs against ${HELD} plain TCP pairs`, { skip, timeout: 900_000 }, async (t: TestContext) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('scale-kmem', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const ns = createNetns(sb, 'scale-kmem');
    const state = PinnedState.open(sb.pinDir);
    try {
      const memlocks = () => Object.fromEntries(MEMLOCK_MAPS.map((m) => [m, mapMemlock(state.maps[m].fd)])) as Record<(typeof MEMLOCK_MAPS)[number], number>;
      const deltas = { plain: [] as KmemDelta[], bypass: [] as KmemDelta[] };
      const memlockGrowth: Record<string, number[]> = Object.fromEntries(MEMLOCK_MAPS.map((m) => [m, []]));
      for (let round = 0; round < MEMORY_ROUNDS; round++) {
        for (const mode of ['plain', 'bypass'] as const) {
          // Let the previous round's sockets be freed (RCU) before the baseline.
          await sleep(3000);
          const c0 = counters(sb);
          const m0 = memlocks();
          const s0 = kmemSnapshot();
          const pairs = await holdPairs(sb, HELD, { netns: ns, timeoutMs: 300_000, ...(mode === 'plain' ? { cgroup: null } : {}) });
          await sleep(1000);
          const s1 = kmemSnapshot();
          const m1 = memlocks();
          const d = delta(c0, counters(sb));
          const end = await pairs.release();
          assert.equal(end.code, 0, `pairhold: ${end.stderr}`);
          assert.equal(d.pairsJoined, mode === 'bypass' ? HELD : 0, `${mode}: pairs joined`);
          const k = kmemDelta(s0, s1);
          deltas[mode].push(k);
          if (mode === 'bypass') for (const m of MEMLOCK_MAPS) memlockGrowth[m]?.push(m1[m] - m0[m]);
          t.diagnostic(
            `round ${round + 1} ${mode}: established in ${pairs.ready.establishSeconds.toFixed(2)} s; slab objects +${(k.slabObjects / HELD).toFixed(0)} B/pair, meminfo Slab +${(k.slabTotal / HELD).toFixed(0)} B/pair, ` +
              `Percpu +${(k.percpu / HELD).toFixed(0)} B/pair`,
          );
        }
      }
      const perPair = (xs: number[]) => median(xs) / HELD;
      const added = deltas.bypass.map((b, i) => b.slabObjects - (deltas.plain[i] as KmemDelta).slabObjects);
      const addedSlabTotal = deltas.bypass.map((b, i) => b.slabTotal - (deltas.plain[i] as KmemDelta).slabTotal);
      // Per cache: the median over rounds of (bypass − plain) growth, the caches that moved by at least 8 B a pair.
      const caches = [...(deltas.bypass[0]?.bySlab.keys() ?? [])]
        .map((name) => {
          const bytes = median(deltas.bypass.map((b, i) => (b.bySlab.get(name) ?? 0) - ((deltas.plain[i] as KmemDelta).bySlab.get(name) ?? 0))) / HELD;
          const objects = median(deltas.bypass.map((b, i) => (b.objectsBySlab.get(name) ?? 0) - ((deltas.plain[i] as KmemDelta).objectsBySlab.get(name) ?? 0))) / HELD;
          return { name, bytes, objects };
        })
        .filter((c) => Math.abs(c.bytes) >= 8)
        .sort((a, b) => b.bytes - a.bytes);
      t.diagnostic(`plain TCP: slab objects ${perPair(deltas.plain.map((k) => k.slabObjects)).toFixed(0)} B/pair (median of ${MEMORY_ROUNDS})`);
      t.diagnostic(`accelerated: slab objects ${perPair(deltas.bypass.map((k) => k.slabObjects)).toFixed(0)} B/pair`);
      t.diagnostic(
        `added by the bypass: slab objects ${perPair(added).toFixed(0)} B/pair (rounds: ${added.map((a) => (a / HELD).toFixed(0)).join(', ')}), ` +
          `meminfo Slab ${perPair(addedSlabTotal).toFixed(0)} B/pair (rounds: ${addedSlabTotal.map((a) => (a / HELD).toFixed(0)).join(', ')})`,
      );
      // The bypass's own objects come whole, one or more per socket; the rest is other work on the host.
      const whole = caches.filter((c) => c.objects >= 0.9);
      t.diagnostic(
        `caches that grew by at least one object per pair: ${whole.map((c) => c.name).join(', ')}: ` +
          `${whole.reduce((sum, c) => sum + c.bytes, 0).toFixed(0)} B/pair`,
      );
      t.diagnostic(`by cache (bypass − plain, per pair): ${caches.map((c) => `${c.name} ${c.bytes.toFixed(0)} B (${c.objects.toFixed(2)} objects)`).join('; ')}`);
      t.diagnostic(
        `map memlock growth with ${HELD} pairs (fdinfo): ${MEMLOCK_MAPS.map((m) => `${m} ${perPair(memlockGrowth[m] ?? []).toFixed(1)} B/pair`).join(', ')}; ` +
          `sock_hash total ${mapMemlock(state.maps.sock_hash.fd)} B now (empty), max_entries ${state.maps.sock_hash.info.maxEntries}; ` +
          `pairs ${mapMemlock(state.maps.pairs.fd)} B (max_entries ${state.maps.pairs.info.maxEntries})`,
      );
      assert.ok(perPair(added) > 0, 'an accelerated pair costs more kernel memory than a plain one');
    } finally {
      state.close();
    }
  });
});
