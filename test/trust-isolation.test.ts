/**
 * Trust, part 5: network namespaces.
 *
 * Isolation: two namespaces made by the test, each with its own lo, each with
 * a server on the same 127.0.0.1 port and clients bound to the same source
 * ports, talking at the same time, all inside the sandbox's cgroup with the
 * bypass loaded. Identical 4-tuples in two namespaces: each side must get only
 * its own namespace's bytes (each namespace uses another --seed, so a
 * cross-wired byte is a corrupted byte). The same scenario with the test-only
 * netns-blind object (its loopback key ignores the namespace) must fail,
 * which shows the test has teeth.
 *
 * Same host, two namespaces joined by a veth pair (198.18.0.1/24 and
 * 198.18.0.2/24): connections between them are accelerated (both ends in the
 * map, a capture on the veth sees only handshakes and teardowns) and intact.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, type Sandbox } from './support/sandbox.js';
import { createNetns, createVeth, netnsNames, strayVeths } from './support/netns.js';
import { capture } from './support/capture.js';
import { load } from '../src/core/load.js';
import { withPinnedState } from '../src/core/state.js';
import { listSockets, pairSockets } from '../src/core/sockhash.js';
import {
  LONG,
  NETNS_BLIND_OBJECT,
  Tally,
  assertIntact,
  counters,
  delta,
  fmtBytes,
  readyPort,
  requireTool,
  startIntegrity,
  type SbloadRun,
} from './support/trust.js';
import type { Counters } from '../src/core/layout.js';

const tally = new Tally('trust-isolation');
const SERVER_PORT = 5201;
const CLIENT_PORT_BASE = 41000;

function tmp(sb: Sandbox): string {
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-trust-'));
  sb.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Side {
  ns: string;
  server: SbloadRun | Error;
  client: SbloadRun | Error;
}

/**
 * In each namespace: a server on 127.0.0.1:SERVER_PORT and N clients bound to
 * 127.0.0.1:CLIENT_PORT_BASE+i, each namespace with its own seed, all at once.
 * `firstServerOutside`: the first namespace's server runs outside the cgroup.
 */
async function twoNamespaces(
  sb: Sandbox,
  opts: { connections: number; bytes: string; seconds: number; firstServerOutside?: boolean },
): Promise<{ sides: Side[]; ms: number }> {
  const dir = tmp(sb);
  const namespaces = [createNetns(sb, 'iso-a'), createNetns(sb, 'iso-b')];
  const common = (seed: number) => [
    '--connections',
    String(opts.connections),
    '--bytes',
    opts.bytes,
    '--seconds',
    String(opts.seconds),
    '--seed',
    String(seed),
  ];
  const timeoutMs = (opts.seconds + 20) * 1000;
  const servers = namespaces.map((ns, i) => {
    const ready = join(dir, `ready-${i}`);
    const s = startIntegrity(
      sb,
      ['--role', 'server', '--listen', `127.0.0.1:${SERVER_PORT}`, '--ready-file', ready, ...common(100 + i)],
      {
        netns: ns,
        timeoutMs,
        ...(opts.firstServerOutside && i === 0 ? { cgroup: null } : {}),
      },
    );
    return { ...s, ready };
  });
  for (const s of servers) assert.equal(await readyPort(s.ready, s.proc), SERVER_PORT);
  const t0 = Date.now();
  const startClient = (ns: string, i: number) =>
    startIntegrity(
      sb,
      [
        '--role',
        'client',
        '--connect',
        `127.0.0.1:${SERVER_PORT}`,
        '--bind',
        `127.0.0.1:${CLIENT_PORT_BASE}`,
        ...common(100 + i),
      ],
      { netns: ns, timeoutMs },
    );
  // With the first server outside, the second namespace connects first: a pairing table that
  // forgot namespaces then holds its entries, for the same tuples, when the first one's clients come.
  const order = opts.firstServerOutside ? [1, 0] : [0, 1];
  const started: Array<ReturnType<typeof startIntegrity>> = [];
  for (const i of order) {
    started[i] = startClient(namespaces[i] as string, i);
    if (opts.firstServerOutside && i === 1) await new Promise((r) => setTimeout(r, 300));
  }
  const clients = started;
  const settle = (p: Promise<SbloadRun>) =>
    p.then(
      (r) => r,
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
  const sides: Side[] = [];
  for (let i = 0; i < namespaces.length; i++) {
    sides.push({
      ns: namespaces[i] as string,
      server: await settle((servers[i] as { result: Promise<SbloadRun> }).result),
      client: await settle((clients[i] as { result: Promise<SbloadRun> }).result),
    });
  }
  return { sides, ms: Date.now() - t0 };
}

function sideText(s: Side): string {
  const one = (r: SbloadRun | Error) =>
    r instanceof Error
      ? `error ${r.message.slice(0, 200)}`
      : `exit ${r.code}, ${fmtBytes(r.json.bytesVerified)} verified, ${r.json.failures} failures${r.json.firstFailure ? ` (first: ${r.json.firstFailure})` : ''}`;
  return `${s.ns}: server ${one(s.server)}; client ${one(s.client)}`;
}

function countSides(sides: Side[]): void {
  for (const s of sides) {
    for (const r of [s.server, s.client]) {
      if (r instanceof Error) tally.failures++;
      else {
        // Split runs: each process verifies one direction; count connections once (client side).
        if (r === s.client) tally.connections += r.json.connections;
        tally.bytesVerified += r.json.bytesVerified;
        tally.failures += r.json.failures;
      }
    }
  }
}

const ISO_CONNS = LONG ? 200 : 50;

test('isolation: the same 127.0.0.1 tuples in two namespaces at once, bypass loaded -- each side gets only its own bytes', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-iso', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      const before = counters(sb);
      const { sides, ms } = await twoNamespaces(sb, { connections: ISO_CONNS, bytes: '1M', seconds: 30 });
      const d = delta(before, counters(sb));
      countSides(sides);
      for (const s of sides) t.diagnostic(sideText(s));
      t.diagnostic(
        `both namespaces done in ${ms} ms; inserted ${d.socketsInserted} of ${4 * ISO_CONNS} sockets, exists ${d.insertExists}, redirected ${fmtBytes(d.bytesRedirected)}`,
      );
      for (const s of sides) {
        for (const [role, r] of [
          ['server', s.server],
          ['client', s.client],
        ] as const) {
          assert.ok(!(r instanceof Error), `${s.ns} ${role}: ${String(r instanceof Error ? r.message : '')}`);
          assertIntact(r as SbloadRun, `${s.ns} ${role}`, 1);
        }
        assert.equal(
          (s.client as SbloadRun).json.c2sSha256,
          (s.server as SbloadRun).json.c2sSha256,
          `${s.ns}: client and server agree on c2s`,
        );
        assert.equal(
          (s.client as SbloadRun).json.s2cSha256,
          (s.server as SbloadRun).json.s2cSha256,
          `${s.ns}: client and server agree on s2c`,
        );
      }
      assert.equal(d.insertExists, 0, 'identical tuples in two namespaces never collide in the map');
      assert.equal(d.socketsInserted, 4 * ISO_CONNS, 'every socket in both namespaces was accelerated');
    });
  });
});

test('teeth: a namespace-blind pairing object is caught (its clients join a server in another namespace), and the shipped object is not', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    requireTool(NETNS_BLIND_OBJECT);
    // Namespace B connects first, then namespace A, whose server is outside the cgroup: A's clients
    // have no peer that can be accelerated. A namespace-blind pairing (the test object's table, keyed
    // by the client port alone) lets them join B's servers: caught by the bytes (cross-wired, corrupted
    // or stuck) or by the map (a client of A inserted). The shipped object must pass the same checks.
    const caught = (d: Counters, failed: boolean) =>
      failed || d.socketsInserted > 2 * ISO_CONNS || d.leftNoPeer < ISO_CONNS;
    for (const [name, objectPath, mustCatch] of [
      ['netns-blind', NETNS_BLIND_OBJECT, true],
      ['shipped', undefined, false],
    ] as const) {
      await withSandbox('trust-blind', async (sb) => {
        load({ cgroup: sb.cgroup, pinDir: sb.pinDir, ...(objectPath ? { objectPath } : {}) });
        const before = counters(sb);
        const t0 = Date.now();
        const run = await twoNamespaces(sb, {
          connections: ISO_CONNS,
          bytes: '1M',
          seconds: 15,
          firstServerOutside: true,
        });
        const d = delta(before, counters(sb));
        const failed = run.sides.some((s) =>
          [s.server, s.client].some((r) => r instanceof Error || r.code !== 0 || r.json.failures > 0),
        );
        t.diagnostic(
          `${name} object, namespace A's server outside the cgroup: bytes ${failed ? 'FAILED' : 'intact'} in ${Date.now() - t0} ms; ` +
            `inserted ${d.socketsInserted} (B's pairs alone: ${2 * ISO_CONNS}), pairs ${d.pairsJoined}, left alone ${d.leftNoPeer}, ` +
            `redirected ${d.bytesRedirected} B, misses ${d.redirectMisses}, sticky ${d.stickyTcp}; ${run.sides.map(sideText).join(' | ')}`,
        );
        assert.ok(Date.now() - t0 < 60_000, 'bounded time');
        assert.equal(
          caught(d, failed),
          mustCatch,
          `${name} object: ${mustCatch ? 'the isolation checks must catch it' : 'must pass the isolation checks'}`,
        );
      });
      tally.faults += mustCatch ? 1 : 0;
    }
  });
});

test('same host, two namespaces joined by a veth pair: connections between them are accelerated, intact, and the veth sees only handshakes and teardowns', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-veth', async (sb) => {
      const a = createNetns(sb, 'veth-a');
      const b = createNetns(sb, 'veth-b');
      const veth = createVeth(sb, a, b, '198.18.0.1/24', '198.18.0.2/24');
      const dir = tmp(sb);
      // Flow control off: this test proves that every byte between the namespaces takes the redirect
      // (one sbload process reads and writes both ways; on a busy machine its reader may fall
      // tcp_rmem[2] behind, and flow control would rightly send by TCP). Flow control has its own tests.
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir, policy: { ports: null, ranges: null, flowControl: false } });

      // One big connection first: the capture must show only its handshake and teardown.
      const big = await vethRun(t, sb, {
        a,
        b,
        vethA: veth.a,
        dir,
        connections: 1,
        bytes: LONG ? '256M' : '64M',
        tag: 'big',
        watchMap: true,
      });
      assert.ok(big.packets <= 16, `the veth carried ${big.packets} packets for one accelerated connection`);
      assert.ok(big.pairsSeen >= 1, 'both ends of the connection were seen in the map, keyed as mirror images');

      const many = await vethRun(t, sb, {
        a,
        b,
        vethA: veth.a,
        dir,
        connections: LONG ? 200 : 50,
        bytes: '1M',
        tag: 'many',
        watchMap: false,
      });
      assert.ok(
        many.packets <= 12 * many.connections,
        `the veth carried ${many.packets} packets for ${many.connections} connections`,
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

async function vethRun(
  t: TestContext,
  sb: Sandbox,
  o: {
    a: string;
    b: string;
    vethA: string;
    dir: string;
    connections: number;
    bytes: string;
    tag: string;
    watchMap: boolean;
  },
): Promise<{ packets: number; pairsSeen: number; connections: number }> {
  const ready = join(o.dir, `ready-${o.tag}`);
  const common = ['--connections', String(o.connections), '--bytes', o.bytes, '--seconds', '60', '--seed', '77'];
  const cap = await capture(sb, o.a, o.vethA, `tcp port ${SERVER_PORT}`);
  const before = counters(sb);
  const server = startIntegrity(
    sb,
    ['--role', 'server', '--listen', `198.18.0.1:${SERVER_PORT}`, '--ready-file', ready, ...common],
    { netns: o.a, timeoutMs: 90_000 },
  );
  await readyPort(ready, server.proc);
  const client = startIntegrity(sb, ['--role', 'client', '--connect', `198.18.0.1:${SERVER_PORT}`, ...common], {
    netns: o.b,
    timeoutMs: 90_000,
  });
  let pairsSeen = 0;
  let clientDone = false;
  void client.result.finally(() => (clientDone = true)).catch(() => undefined);
  while (o.watchMap && !clientDone) {
    const sockets = withPinnedState(sb.pinDir, (s) => listSockets(s.maps.sock_hash)).filter((s) =>
      s.key.localAddress.startsWith('198.18.0.'),
    );
    pairsSeen = Math.max(pairsSeen, pairSockets(sockets).filter((p) => p.b).length);
    await new Promise((r) => setTimeout(r, 10));
  }
  const [srv, cli] = [await server.result, await client.result];
  const packets = await cap.stop();
  const d = delta(before, counters(sb));
  tally.run(cli);
  tally.bytesVerified += srv.json.bytesVerified;
  tally.failures += srv.json.failures;
  t.diagnostic(
    `veth ${o.tag}: ${o.connections} connection(s) × ${o.bytes} each way from ${o.b} to ${o.a}: client ${fmtBytes(cli.json.bytesVerified)} verified, server ${fmtBytes(srv.json.bytesVerified)}, ` +
      `failures ${cli.json.failures}/${srv.json.failures}${cli.json.firstFailure ? ` (client: ${cli.json.firstFailure})` : ''}${srv.json.firstFailure ? ` (server: ${srv.json.firstFailure})` : ''}; sockets inserted ${d.socketsInserted} of ${2 * o.connections} (exists ${d.insertExists}, other ${d.insertOther}); ` +
      `redirected ${fmtBytes(d.bytesRedirected)}, passed to TCP ${fmtBytes(d.bytesPassed)} in ${d.redirectMisses} messages; ${packets} packets on the veth` +
      (o.watchMap ? `; connection pairs seen in the map: ${pairsSeen}` : '') +
      ` (tcpdump: ${cap.log()})`,
  );
  assertIntact(cli, `veth ${o.tag} client`, 1);
  assertIntact(srv, `veth ${o.tag} server`, 1);
  assert.equal(d.socketsInserted, 2 * o.connections, `veth ${o.tag}: both ends of every connection were accelerated`);
  const payload = o.connections * Number(o.bytes.replace(/M$/, '')) * 1024 * 1024 * 2;
  assert.ok(
    d.bytesRedirected >= payload * 0.9,
    `veth ${o.tag}: ${fmtBytes(d.bytesRedirected)} of ${fmtBytes(payload)} redirected`,
  );
  return { packets, pairsSeen, connections: o.connections };
}

test('trust-isolation summary', (t) => {
  t.diagnostic(tally.line());
});
