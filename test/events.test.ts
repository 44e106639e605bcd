/**
 * The event stream and the connections listing, against a real load in a
 * sandbox cgroup: every accelerated connection shows up as exactly one
 * accelerated_active, one accelerated_passive and two closed events, and
 * while open, `connections` (library and CLI) lists both ends with the
 * processes that own them. A ring buffer overflow is reported as lost events.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, waitFor } from './support/sandbox.js';
import { connectClients, startServer } from './support/traffic.js';
import { load } from '../src/core/load.js';
import { execFileSync } from 'node:child_process';
import { EventResolver, watchEvents } from '../src/observe/events.js';
import { connections, type ConnectionDetails } from '../src/observe/connections.js';
import type { SockEvent } from '../src/core/layout.js';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'sockbypass.js');
const N = 20;

function count(events: readonly SockEvent[], type: SockEvent['type']): number {
  return events.filter((e) => e.type === type).length;
}

/** Check a listing against the processes that made the connections. */
function checkListing(
  list: ReadonlyArray<Pick<ConnectionDetails, 'a' | 'b'> & { netns?: { cookie: bigint | string; current?: boolean } }>,
  server: { port: number; pid: number },
  clients: { pid: number; clientPorts: number[] },
): void {
  const ours = list.filter((c) => c.a.key.remotePort === server.port || c.a.key.localPort === server.port);
  assert.equal(ours.length, N, 'one entry per connection');
  const seenPorts = new Set<number>();
  for (const conn of ours) {
    assert.ok(conn.b, 'both ends are in the map');
    const { a: client, b: srv } = conn as Required<typeof conn>;
    assert.equal(client.role, 'client');
    assert.equal(srv.role, 'server');
    assert.equal(srv.key.localPort, server.port);
    assert.equal(client.key.remotePort, server.port);
    seenPorts.add(client.key.localPort);
    assert.deepEqual(
      client.processes.map((p) => p.pid),
      [clients.pid],
      'client end owned by the client process',
    );
    assert.deepEqual(
      srv.processes.map((p) => p.pid),
      [server.pid],
      'server end owned by the server process',
    );
    assert.equal(client.processes[0]?.command, 'node');
    assert.equal(client.local, `127.0.0.1:${client.key.localPort}`);
    // The client is AF_INET; the server listens on :: so its end is AF_INET6 with mapped addresses.
    assert.equal(client.family, 'inet');
    assert.equal(client.mapped, false);
    assert.equal(srv.family, 'inet6');
    assert.equal(srv.mapped, true);
    assert.equal(client.state, 'ESTABLISHED');
    assert.equal(conn.netns?.current, true);
    assert.equal(client.netns?.current, true);
  }
  assert.deepEqual([...seenPorts].sort(), [...clients.clientPorts].sort());
}

test(`${N} connections: exactly ${N} active, ${N} passive and ${2 * N} closed events; connections lists them with owners`, async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('events', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const events: SockEvent[] = [];
    const lost: number[] = [];
    const watch = watchEvents(sb.pinDir, (e) => events.push(e), { onLost: (n) => lost.push(n) });
    try {
      const server = await startServer(sb);
      const clients = await connectClients(sb, server.port, { count: N, hold: true });

      // While open: the library listing and the CLI's --json, run from outside the cgroup.
      checkListing(connections({ pinDir: sb.pinDir }), server, clients);
      const cli = await sb.run(process.execPath, [CLI, 'connections', '--pin-dir', sb.pinDir, '--json'], {
        cgroup: null,
      });
      assert.equal(cli.code, 0, cli.stderr);
      const parsed = JSON.parse(cli.stdout) as { connections: ConnectionDetails[] };
      checkListing(parsed.connections, server, clients);
      const text = await sb.run(process.execPath, [CLI, 'connections', '--pin-dir', sb.pinDir], { cgroup: null });
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`^${N} accelerated connection\\(s\\) \\(`));
      assert.match(
        text.stdout,
        new RegExp(
          `client\\s+127\\.0\\.0\\.1:${clients.clientPorts[0]}\\s+127\\.0\\.0\\.1:${server.port}\\s+inet\\s+ESTABLISHED\\s+\\d+\\s+node/${clients.pid} fd \\d+`,
        ),
      );
      assert.match(
        text.stdout,
        new RegExp(
          `server\\s+127\\.0\\.0\\.1:${server.port}\\s+127\\.0\\.0\\.1:${clients.clientPorts[0]}\\s+inet6 \\(v4-mapped\\)`,
        ),
      );

      await clients.close();
      await server.finish();
      await waitFor(() => count(events, 'closed') >= 2 * N, 5000);
      await new Promise((r) => setTimeout(r, 200)); // anything extra would arrive now
      watch.drain();

      const clientPorts = new Set(clients.clientPorts);
      const active = events.filter((e) => e.type === 'accelerated_active');
      const passive = events.filter((e) => e.type === 'accelerated_passive');
      const closed = events.filter((e) => e.type === 'closed');
      assert.equal(active.length, N);
      assert.equal(passive.length, N);
      assert.equal(closed.length, 2 * N);
      assert.equal(events.length, 4 * N, `no other events: ${events.map((e) => e.type).join(',')}`);
      for (const e of active) {
        assert.ok(clientPorts.has(e.key.localPort));
        assert.equal(e.key.remotePort, server.port);
        assert.equal(e.key.localAddress, '127.0.0.1');
        assert.equal(e.family, 'inet');
      }
      for (const e of passive) {
        assert.equal(e.key.localPort, server.port);
        assert.ok(clientPorts.has(e.key.remotePort));
        assert.equal(e.family, 'inet6');
      }
      assert.deepEqual(new Set(active.map((e) => e.key.localPort)), clientPorts);
      assert.deepEqual(new Set(passive.map((e) => e.key.remotePort)), clientPorts);
      // Each accelerated socket closes exactly once, under the same cookie.
      const opened = [...active, ...passive].map((e) => e.socketCookie).sort();
      assert.deepEqual(closed.map((e) => e.socketCookie).sort(), opened);
      assert.equal(new Set(opened).size, 2 * N);
      assert.deepEqual(lost, []);
    } finally {
      watch.close();
    }
  });
});

test('a ring buffer overflow is reported as lost events, and delivered + lost adds up', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('events-lost', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    let delivered = 0;
    let lostReported = 0;
    // A long interval: nothing drains while the connections come and go, so the 256 KiB ring overflows.
    const watch = watchEvents(sb.pinDir, () => delivered++, {
      intervalMs: 600_000,
      onLost: (n) => (lostReported += n),
    });
    try {
      const connectionsMade = 800; // 4 events each, ~100 bytes per record: more than 256 KiB
      const server = await startServer(sb, { expect: connectionsMade });
      const clients = await connectClients(sb, server.port, { count: connectionsMade });
      await clients.close();
      await server.finish();
      watch.drain();
      assert.ok(lostReported > 0, 'some events were lost');
      assert.ok(delivered > 0, 'the ring buffer still delivered what fit');
      assert.equal(delivered + lostReported, 4 * connectionsMade, `delivered ${delivered}, lost ${lostReported}`);
    } finally {
      watch.close();
    }
  });
});

test('a connection inside a named network namespace: connections and events name the namespace and the owners', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('events-netns', async (sb) => {
    const name = `sbtest-${process.pid}`;
    execFileSync('ip', ['netns', 'add', name]);
    sb.onCleanup(() => {
      execFileSync('ip', ['netns', 'del', name]);
    });
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const events: SockEvent[] = [];
    const watch = watchEvents(sb.pinDir, (e) => events.push(e));
    try {
      const server = await startServer(sb, { netns: name });
      const clients = await connectClients(sb, server.port, { netns: name, count: 2, hold: true });

      const list = connections({ pinDir: sb.pinDir }).filter((c) => c.a.key.remotePort === server.port);
      assert.equal(list.length, 2);
      for (const conn of list) {
        assert.equal(conn.netns?.name, name);
        assert.equal(conn.netns?.current, false);
        assert.notEqual(conn.netns?.cookie, undefined);
        assert.deepEqual(
          conn.a.processes.map((p) => p.pid),
          [clients.pid],
        );
        assert.deepEqual(
          conn.b?.processes.map((p) => p.pid),
          [server.pid],
        );
        assert.equal(conn.a.netns?.name, name);
      }
      const text = await sb.run(process.execPath, [CLI, 'connections', '--pin-dir', sb.pinDir], { cgroup: null });
      assert.match(text.stdout, new RegExp(`\\d+ \\(${name}\\)\\s+client`));

      // Events resolved while the sockets are open carry the namespace's name and the owners.
      await waitFor(() => events.length >= 4, 5000);
      const resolver = new EventResolver();
      for (const e of events) {
        const ctx = resolver.resolve(e);
        assert.equal(ctx.netnsName, name);
        assert.equal(ctx.currentNetns, false);
        const want = e.type === 'accelerated_active' ? clients.pid : server.pid;
        assert.deepEqual(
          ctx.processes?.map((p) => p.pid),
          [want],
        );
      }
      await clients.close();
      await server.finish();
    } finally {
      watch.close();
    }
  });
});
