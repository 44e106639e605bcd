/**
 * Trust: do no harm. A connection whose peer cannot be accelerated (a server
 * or client outside the loaded cgroup, over loopback or over a veth between
 * two namespaces) must never enter the sockhash: no proto switch, no sk_msg
 * program on its sends, data intact, and it is counted as left alone. And
 * data written the moment a connection exists (before the other end joined)
 * keeps its order, in both directions.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { test, type TestContext } from 'node:test';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, type Sandbox } from './support/sandbox.js';
import { createNetns, createVeth, netnsNames, strayVeths } from './support/netns.js';
import { load } from '../src/core/load.js';
import { withPinnedState } from '../src/core/state.js';
import { Tally, assertIntact, counters, delta, fmtBytes, readyPort, startIntegrity } from './support/trust.js';

const tally = new Tally('trust-harm');
const CONNECTIONS = 40;

function tmp(sb: Sandbox): string {
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-harm-'));
  sb.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Where {
  /** Where the server listens and the client connects. */
  address: string;
  serverNetns?: string;
  clientNetns?: string;
  serverInside: boolean;
  clientInside: boolean;
}

/** One split integrity run; returns the counter delta and the most sockets seen in the map while it ran. */
async function run(t: TestContext, sb: Sandbox, where: Where, label: string, bytes = '1M', connections = CONNECTIONS) {
  const dir = tmp(sb);
  const ready = join(dir, 'ready');
  const common = ['--connections', String(connections), '--bytes', bytes, '--seconds', '60', '--seed', '11'];
  const before = counters(sb);
  const server = startIntegrity(
    sb,
    ['--role', 'server', '--listen', `${where.address}:0`, '--ready-file', ready, ...common],
    {
      timeoutMs: 90_000,
      ...(where.serverNetns ? { netns: where.serverNetns } : {}),
      ...(where.serverInside ? {} : { cgroup: null }),
    },
  );
  const port = await readyPort(ready, server.proc);
  const client = startIntegrity(sb, ['--role', 'client', '--connect', `${where.address}:${port}`, ...common], {
    timeoutMs: 90_000,
    ...(where.clientNetns ? { netns: where.clientNetns } : {}),
    ...(where.clientInside ? {} : { cgroup: null }),
  });
  let maxInMap = 0;
  let done = false;
  void Promise.allSettled([server.result, client.result]).then(() => (done = true));
  while (!done) {
    maxInMap = Math.max(
      maxInMap,
      withPinnedState(sb.pinDir, (s) => s.maps.sock_hash.count()),
    );
    await new Promise((r) => setTimeout(r, 5));
  }
  const [srv, cli] = [await server.result, await client.result];
  const d = delta(before, counters(sb));
  tally.run(cli);
  tally.bytesVerified += srv.json.bytesVerified;
  tally.failures += srv.json.failures;
  assertIntact(cli, `${label} client`, 1);
  assertIntact(srv, `${label} server`, 1);
  t.diagnostic(
    `${label}: ${connections} × ${bytes} each way, ${fmtBytes(cli.json.bytesVerified + srv.json.bytesVerified)} verified; most sockets in the map at once ${maxInMap}; ` +
      `inserted ${d.socketsInserted}, pairs ${d.pairsJoined}, left alone (no local peer) ${d.leftNoPeer}, (peer declined) ${d.leftPeerDeclined}, ` +
      `redirected ${fmtBytes(d.bytesRedirected)}, sk_msg passes ${d.redirectMisses}, sticky ${d.stickyTcp}`,
  );
  return { d, maxInMap };
}

async function assertLeftAlone(t: TestContext, sb: Sandbox, where: Where, label: string): Promise<void> {
  const { d, maxInMap } = await run(t, sb, where, label);
  assert.equal(maxInMap, 0, `${label}: no socket ever entered the sockhash`);
  assert.equal(d.socketsInserted, 0, `${label}: nothing inserted`);
  assert.equal(
    d.redirectMisses + d.messagesRedirected + d.flowMessages,
    0,
    `${label}: sk_msg never ran on these sends`,
  );
  assert.equal(d.leftNoPeer, CONNECTIONS, `${label}: the end inside the cgroup counted each connection as left alone`);
}

test('loopback: a client in the cgroup talking to a server outside it, and the reverse, never join the sockhash', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-harm-lo', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      await assertLeftAlone(
        t,
        sb,
        { address: '127.0.0.1', serverInside: false, clientInside: true },
        'loopback, client inside',
      );
      await assertLeftAlone(
        t,
        sb,
        { address: '127.0.0.1', serverInside: true, clientInside: false },
        'loopback, server inside',
      );
      await assertLeftAlone(
        t,
        sb,
        { address: '[::1]', serverInside: false, clientInside: true },
        'loopback ::1, client inside',
      );
    });
  });
});

test('veth: a peer in another namespace outside the cgroup (another host, as far as the bypass can tell) is left alone, both directions', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-harm-veth', async (sb) => {
      const a = createNetns(sb, 'harm-a');
      const b = createNetns(sb, 'harm-b');
      createVeth(sb, a, b, '198.18.1.1/24', '198.18.1.2/24');
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      await assertLeftAlone(
        t,
        sb,
        { address: '198.18.1.1', serverNetns: a, clientNetns: b, serverInside: false, clientInside: true },
        'veth, client inside',
      );
      await assertLeftAlone(
        t,
        sb,
        { address: '198.18.1.1', serverNetns: a, clientNetns: b, serverInside: true, clientInside: false },
        'veth, server inside',
      );
    });
    assert.deepEqual(strayVeths(), [], 'no veth left behind');
    assert.deepEqual(
      netnsNames().filter((n) => n.startsWith('sbt-') && n.includes(`-${process.pid}-`)),
      [],
      'no namespace left behind',
    );
  });
});

test('early data: both ends write the moment the connection exists; every byte arrives in order, over loopback and a veth', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-harm-early', async (sb) => {
      const a = createNetns(sb, 'early-a');
      const b = createNetns(sb, 'early-b');
      createVeth(sb, a, b, '198.18.2.1/24', '198.18.2.2/24');
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      // sbload integrity: each end starts writing as soon as connect()/accept() returns.
      for (const [label, where] of [
        ['early data, loopback', { address: '127.0.0.1', serverInside: true, clientInside: true }],
        [
          'early data, veth',
          { address: '198.18.2.1', serverNetns: a, clientNetns: b, serverInside: true, clientInside: true },
        ],
      ] as const) {
        const { d } = await run(t, sb, where, label, '256K', 200);
        assert.equal(d.pairsJoined, 200, `${label}: every connection paired`);
        assert.equal(d.leftNoPeer + d.leftPeerDeclined, 0, `${label}: none left alone`);
      }
    });
  });
});

test('trust-harm summary', (t) => {
  t.diagnostic(tally.line());
});
