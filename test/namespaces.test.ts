/**
 * The namespace model, end to end: every socket key carries the namespace its
 * socket lives in, so `connections --json` and `trace --json` name the right
 * namespace for every kind of connection, never 0: loopback, non-loopback
 * inside one namespace, and between two namespaces over a veth (where the two
 * ends live in different namespaces and both are shown).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, waitFor, type Sandbox, type Started } from './support/sandbox.js';
import { createNetns, createVeth } from './support/netns.js';
import { connectClients, startServer } from './support/traffic.js';
import { load } from '../src/core/load.js';
import { listNetns } from '../src/os/sockdiag.js';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'sockbypass.js');

interface EndJson {
  local: string;
  remote: string;
  role?: string;
  netns: { cookie: string; name?: string };
  key: { netnsCookie: string; handshake: string };
}
interface ConnectionJson {
  handshake: string;
  crossNamespace: boolean;
  natted: boolean;
  netns?: { cookie: string; name?: string };
  a: EndJson;
  b?: EndJson;
}
interface EventJson {
  event: string;
  source: string;
  destination: string;
  netnsCookie: string;
  netns: string | null;
  handshake: string;
}

function connectionsJson(sb: Sandbox): ConnectionJson[] {
  const out = execFileSync(process.execPath, [CLI, 'connections', '--json', '--pin-dir', sb.pinDir]).toString();
  return (JSON.parse(out) as { connections: ConnectionJson[] }).connections;
}

function cookieOf(name: string): string {
  const ns = listNetns().find((n) => n.name === name);
  assert.ok(ns, `namespace ${name} is listed`);
  return String(ns.cookie);
}

async function startTrace(sb: Sandbox): Promise<Started> {
  const trace = sb.start(process.execPath, [CLI, 'trace', '--json', '--pin-dir', sb.pinDir], { cgroup: null });
  await waitFor(() => /tracing sockbypass events/.test(trace.stderr()) || trace.child.exitCode !== null, 10_000);
  assert.equal(trace.child.exitCode, null, `trace exited early: ${trace.stderr()}`);
  return trace;
}

async function stopTrace(trace: Started): Promise<EventJson[]> {
  await new Promise((r) => setTimeout(r, 200));
  trace.child.kill('SIGTERM');
  const exit = await trace.done;
  assert.equal(exit.code, 0, exit.stderr);
  return exit.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as EventJson);
}

test('between two namespaces over a veth: connections and trace show each end in its own namespace, none 0', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('netns-veth', async (sb) => {
    const a = createNetns(sb, 'model-a');
    const b = createNetns(sb, 'model-b');
    createVeth(sb, a, b, '198.18.60.1/24', '198.18.60.2/24');
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const trace = await startTrace(sb);
    const server = await startServer(sb, { listen: '198.18.60.1', netns: a });
    const clients = await connectClients(sb, server.port, { host: '198.18.60.1', count: 2, hold: true, netns: b });
    let list: ConnectionJson[] = [];
    await waitFor(() => {
      list = connectionsJson(sb).filter((c) => c.b);
      return list.length === 2;
    }, 5000);
    await clients.close();
    await server.finish();
    const events = await stopTrace(trace);

    const [cookieA, cookieB] = [cookieOf(a), cookieOf(b)];
    t.diagnostic(
      `namespaces ${a} = ${cookieA}, ${b} = ${cookieB}; ${JSON.stringify(list.map((c) => [c.a.local, c.a.netns, c.b?.local, c.b?.netns]))}`,
    );
    for (const c of list) {
      assert.equal(c.crossNamespace, true, 'the two ends live in two namespaces');
      assert.equal(c.netns, undefined, 'no single namespace is claimed for the connection');
      assert.equal(c.natted, false, 'no NAT between them');
      assert.equal(c.a.role, 'client');
      assert.deepEqual(
        [c.a.netns.cookie, c.a.netns.name, c.a.key.netnsCookie],
        [cookieB, b, cookieB],
        'the client end is in namespace b',
      );
      assert.deepEqual(
        [c.b?.netns.cookie, c.b?.netns.name, c.b?.key.netnsCookie],
        [cookieA, a, cookieA],
        'the server end is in namespace a',
      );
      assert.equal(c.a.key.handshake, c.b?.key.handshake, 'both ends carry one handshake tag');
    }
    const accelerated = events.filter((e) => e.event.startsWith('accelerated_'));
    assert.equal(accelerated.length, 4, `two accelerated events per connection: ${JSON.stringify(events)}`);
    for (const e of accelerated) {
      const client = e.event === 'accelerated_active';
      assert.equal(e.netnsCookie, client ? cookieB : cookieA, `${e.event} ${e.source}: its own namespace`);
      assert.equal(e.netns, client ? b : a, `${e.event} ${e.source}: named`);
    }
    for (const e of events) assert.notEqual(e.netnsCookie, '0', `${e.event}: no namespace reads 0`);
  });
});

test('loopback and a non-loopback address inside one namespace: one namespace for both ends, named', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('netns-one', async (sb) => {
    const ns = createNetns(sb, 'model-one');
    execFileSync('ip', ['-n', ns, 'addr', 'add', '198.18.61.1/32', 'dev', 'lo']);
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const cookie = cookieOf(ns);
    for (const host of ['127.0.0.1', '198.18.61.1']) {
      const server = await startServer(sb, { listen: host, netns: ns });
      const clients = await connectClients(sb, server.port, { host, count: 1, hold: true, netns: ns });
      let list: ConnectionJson[] = [];
      await waitFor(() => {
        list = connectionsJson(sb).filter((c) => c.b && c.a.remote.startsWith(host));
        return list.length === 1;
      }, 5000);
      await clients.close();
      await server.finish();
      const [c] = list as [ConnectionJson];
      t.diagnostic(`${host}: ${JSON.stringify(c.netns)}`);
      assert.equal(c.crossNamespace, false, host);
      assert.deepEqual([c.netns?.cookie, c.netns?.name], [cookie, ns], `${host}: the connection's namespace`);
      assert.deepEqual([c.a.netns.cookie, c.b?.netns.cookie], [cookie, cookie], `${host}: both ends`);
    }
  });
});
