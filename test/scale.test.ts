/**
 * Scale: many pairs held at once are all paired, and a full sockhash falls
 * back to TCP cleanly and counts it.
 *
 * Pairs are held by build/pairhold in a fresh network namespace (its sockets
 * and ports are the test's own; pairhold splits the pairs over processes, so
 * RLIMIT_NOFILE needs no raising and each worker's listener has the whole
 * ephemeral port range). The normal suite holds 5,000 pairs; with
 * SOCKBYPASS_LONG=1 it holds 50,000. The connection-rate and memory
 * measurements are in test/scale-measure.test.ts (SOCKBYPASS_LONG=1 only).
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, waitFor, type Sandbox } from './support/sandbox.js';
import { createNetns, netnsNames } from './support/netns.js';
import { holdPairs } from './support/pairhold.js';
import { LONG, assertIntact, counters, delta, integrity } from './support/trust.js';
import { load } from '../src/core/load.js';
import { withPinnedState } from '../src/core/state.js';
import { listSockets, pairSockets } from '../src/core/sockhash.js';

const PAIRS = LONG ? 50_000 : 5_000;

/** The sockhash as pairs: how many sockets, whole pairs, and sockets without their peer. */
function mapPairs(sb: Sandbox): { sockets: number; paired: number; alone: number } {
  const sockets = withPinnedState(sb.pinDir, (s) => listSockets(s.maps.sock_hash));
  const pairs = pairSockets(sockets);
  const paired = pairs.filter((p) => p.b !== undefined).length;
  return { sockets: sockets.length, paired, alone: pairs.length - paired };
}

test(`${PAIRS} pairs held at once: every one paired, none left out`, {
  timeout: LONG ? 600_000 : 120_000,
}, async (t: TestContext) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('scale', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const ns = createNetns(sb, 'scale');
    const before = counters(sb);
    const held = await holdPairs(sb, PAIRS, { netns: ns, ping: true, timeoutMs: LONG ? 300_000 : 60_000 });
    const d = delta(before, counters(sb));
    const t0 = Date.now();
    const map = mapPairs(sb);
    t.diagnostic(
      `${PAIRS} pairs established in ${held.ready.establishSeconds.toFixed(2)} s by ${held.ready.workers} process(es); ` +
        `map: ${map.sockets} sockets, ${map.paired} pairs, ${map.alone} alone (listed in ${Date.now() - t0} ms); ` +
        `counters: inserted ${d.socketsInserted}, pairs joined ${d.pairsJoined}, map full ${d.insertMapFull}, unjoined ${d.pairUnjoined}, ` +
        `no peer ${d.leftNoPeer}, peer declined ${d.leftPeerDeclined}, redirected ${d.messagesRedirected} messages, misses ${d.redirectMisses}`,
    );
    assert.equal(d.pairsJoined, PAIRS, 'pairs joined');
    assert.equal(d.socketsInserted, 2 * PAIRS, 'sockets inserted');
    for (const k of [
      'insertMapFull',
      'insertExists',
      'insertOther',
      'pairUnjoined',
      'leftNoPeer',
      'leftPeerDeclined',
      'shortSkipped',
      'stickyTcp',
    ] as const) {
      assert.equal(d[k], 0, k);
    }
    assert.deepEqual(
      map,
      { sockets: 2 * PAIRS, paired: PAIRS, alone: 0 },
      'the sockhash holds every pair, each with its peer',
    );
    // The ping: one message each way per pair, every one redirected.
    assert.equal(d.messagesRedirected, 2 * PAIRS, 'messages redirected');
    assert.equal(d.redirectMisses, 0, 'messages that missed their peer');

    const end = await held.release();
    assert.equal(end.code, 0, `pairhold exit: ${end.stderr}`);
    assert.equal(end.json.pingFailures, 0, 'pings that came back wrong');
    await waitFor(() => withPinnedState(sb.pinDir, (s) => s.maps.sock_hash.count()) === 0, 30_000, 100);
    assert.equal(delta(before, counters(sb)).socketsClosed, 2 * PAIRS, 'every joined socket seen closing');
  });
  assert.ok(!netnsNames().some((n) => n.startsWith('sbt-scale-')), 'namespace removed');
});

/**
 * A sockhash of `capacity` sockets and more pairs than fit, made one after
 * another: the first capacity / 2 join; each later one falls back to TCP and
 * is counted. With an odd capacity the client of each later pair still fits
 * and its server does not (the client is taken out again: pair_unjoined);
 * with an even one the client is the one refused (its server then stays out:
 * left_peer_declined).
 */
for (const capacity of [7, 8]) {
  test(`a full sockhash (--max-entries ${capacity}) falls back to TCP, counted, and holds no socket without its peer`, async (t: TestContext) => {
    if (!requirePrivileged(t)) return;
    const pairs = 24;
    const joined = Math.floor(capacity / 2);
    const refused = pairs - joined;
    await withSandbox('scale-full', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir, maxEntries: capacity });
      const ns = createNetns(sb, 'scale-full');
      const before = counters(sb);
      const held = await holdPairs(sb, pairs, { netns: ns, ping: true });
      const d = delta(before, counters(sb));
      const map = mapPairs(sb);
      t.diagnostic(
        `capacity ${capacity}, ${pairs} pairs: joined ${d.pairsJoined}, map full ${d.insertMapFull}, unjoined ${d.pairUnjoined}, ` +
          `peer declined ${d.leftPeerDeclined}; map ${map.sockets} sockets, ${map.paired} pairs, ${map.alone} alone; ` +
          `redirected ${d.messagesRedirected}, passed to TCP ${d.redirectMisses}`,
      );
      assert.equal(d.pairsJoined, joined, 'pairs joined');
      assert.equal(d.insertMapFull, refused, 'inserts refused: map full');
      assert.equal(
        d.pairUnjoined,
        capacity % 2 === 1 ? refused : 0,
        'clients taken out again (their server did not fit)',
      );
      assert.equal(d.leftPeerDeclined, capacity % 2 === 1 ? 0 : refused, 'servers left out (their client did not fit)');
      assert.equal(d.leftNoPeer, 0, 'left: no peer');
      assert.deepEqual(
        map,
        { sockets: 2 * joined, paired: joined, alone: 0 },
        'every socket in the map has its peer there',
      );
      // Pings of the joined pairs are redirected; those of the others go by TCP, without sk_msg on the joined-then-unjoined clients.
      assert.equal(d.messagesRedirected, 2 * joined, 'messages redirected');
      assert.equal(d.stickyTcp, 0, 'no socket missed a peer it believed in');
      const end = await held.release();
      assert.equal(end.code, 0, `pairhold exit: ${end.stderr}`);
      assert.equal(end.json.pingFailures, 0, 'every ping came back intact, by redirect or by TCP');
    });
  });
}

test('a full sockhash under concurrent connections: every byte intact, every refusal counted', async (t: TestContext) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('scale-full-integrity', async (sb) => {
    const connections = 40;
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir, maxEntries: 8 });
    const before = counters(sb);
    const run = await integrity(sb, [
      '--connections',
      String(connections),
      '--bytes',
      '256K',
      '--seconds',
      '60',
      '--seed',
      '4',
    ]);
    const d = delta(before, counters(sb));
    t.diagnostic(
      `capacity 8, ${connections} concurrent connections: joined ${d.pairsJoined}, map full ${d.insertMapFull}, unjoined ${d.pairUnjoined}, ` +
        `peer declined ${d.leftPeerDeclined}, no peer ${d.leftNoPeer}; ${run.json.bytesVerified} bytes verified`,
    );
    assertIntact(run, 'integrity over a full sockhash');
    assert.ok(d.insertMapFull > 0, 'the map filled up');
    // Each connection: joined, or refused exactly once (its client, or its server and then the client taken out).
    assert.equal(d.pairsJoined + d.pairUnjoined + d.leftPeerDeclined, connections, 'every connection accounted for');
    assert.equal(d.insertMapFull, d.pairUnjoined + d.leftPeerDeclined, 'one map-full refusal per connection left out');
    assert.equal(d.leftNoPeer, 0, 'left: no peer');
    await waitFor(() => withPinnedState(sb.pinDir, (s) => s.maps.sock_hash.count()) === 0, 10_000, 50);
  });
});
