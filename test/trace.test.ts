/**
 * `sockbypass trace`, run as its own process outside the sandbox cgroup
 * against a real load: --json lines parse and carry the expected events with
 * their owners, the text form has one line per event, and SIGTERM/SIGINT end
 * it with exit code 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, waitFor, type Sandbox, type Started } from './support/sandbox.js';
import { connectClients, startServer } from './support/traffic.js';
import { load } from '../src/core/load.js';
import { unload } from '../src/core/unload.js';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'sockbypass.js');
const N = 3;

async function startTrace(sb: Sandbox, extra: string[]): Promise<Started> {
  const trace = sb.start(process.execPath, [CLI, 'trace', '--pin-dir', sb.pinDir, ...extra], { cgroup: null });
  await waitFor(() => /tracing sockbypass events/.test(trace.stderr()) || trace.child.exitCode !== null, 10_000);
  assert.equal(trace.child.exitCode, null, `trace exited early: ${trace.stderr()}`);
  return trace;
}

const lines = (text: string) => text.split('\n').filter((l) => l.length > 0);

interface TraceJson {
  time: string;
  timestampNs: string;
  event: string;
  family: string;
  source: string;
  destination: string;
  localPort: number;
  remotePort: number;
  netnsCookie: string;
  socketCookie: string;
  error: number;
  pid: number | null;
  command: string | null;
}

test('trace --json: one parseable object per event, with owners; SIGTERM exits 0', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('trace-json', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const trace = await startTrace(sb, ['--json']);
    const server = await startServer(sb);
    const clients = await connectClients(sb, server.port, { count: N, hold: true });
    // While the connections are open, trace can name their owners.
    await waitFor(() => lines(trace.stdout()).length >= 2 * N, 5000);
    await clients.close();
    await server.finish();
    await waitFor(() => lines(trace.stdout()).length >= 4 * N, 5000);
    await new Promise((r) => setTimeout(r, 150));
    trace.child.kill('SIGTERM');
    const exit = await trace.done;
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(exit.signal, null);

    const events = lines(exit.stdout).map((l) => JSON.parse(l) as TraceJson);
    assert.equal(events.length, 4 * N, exit.stdout);
    const active = events.filter((e) => e.event === 'accelerated_active');
    const passive = events.filter((e) => e.event === 'accelerated_passive');
    const closed = events.filter((e) => e.event === 'closed');
    assert.equal(active.length, N);
    assert.equal(passive.length, N);
    assert.equal(closed.length, 2 * N);
    const ports = new Set(clients.clientPorts);
    for (const e of active) {
      assert.ok(ports.has(e.localPort));
      assert.equal(e.source, `127.0.0.1:${e.localPort}`);
      assert.equal(e.destination, `127.0.0.1:${server.port}`);
      assert.equal(e.pid, clients.pid, 'client socket owned by the client process');
      assert.equal(e.command, 'node');
    }
    for (const e of passive) {
      assert.equal(e.localPort, server.port);
      assert.equal(e.pid, server.pid, 'server socket owned by the server process');
    }
    for (const e of events) {
      assert.match(e.socketCookie, /^\d+$/, 'bigints as strings');
      assert.match(e.netnsCookie, /^\d+$/);
      assert.match(e.timestampNs, /^\d+$/);
      assert.ok(Math.abs(Date.parse(e.time) - Date.now()) < 60_000, `wall-clock time ${e.time}`);
    }
    // Closed events reuse the owner learnt when the socket was accelerated.
    for (const e of closed) assert.ok(e.pid === clients.pid || e.pid === server.pid);
  });
});

test('trace (text): one line per event; SIGINT exits 0', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('trace-text', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const trace = await startTrace(sb, []);
    const server = await startServer(sb);
    const clients = await connectClients(sb, server.port, { count: 1, hold: true });
    await waitFor(() => lines(trace.stdout()).length >= 2, 5000);
    await clients.close();
    await server.finish();
    await waitFor(() => lines(trace.stdout()).length >= 4, 5000);
    trace.child.kill('SIGINT');
    const exit = await trace.done;
    assert.equal(exit.code, 0, exit.stderr);
    const out = lines(exit.stdout);
    assert.equal(out.length, 4, exit.stdout);
    const port = clients.clientPorts[0];
    assert.match(
      out.find((l) => l.includes('accelerated_active')) ?? '',
      new RegExp(
        `^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  accelerated_active\\s+node/${clients.pid}\\s+127\\.0\\.0\\.1:${port} → 127\\.0\\.0\\.1:${server.port}  inet  netns \\d+ \\(current\\)  cookie \\d+$`,
      ),
    );
    assert.equal(out.filter((l) => /  closed  /.test(l)).length, 2);
  });
});

test('trace when nothing is loaded: exit code 9 and the fix', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('trace-none', async (sb) => {
    const r = await sb.run(process.execPath, [CLI, 'trace', '--pin-dir', sb.pinDir], { cgroup: null });
    assert.equal(r.code, 9);
    assert.match(r.stderr, /not loaded/);
  });
});

test('trace stops by itself (exit 0) when sockbypass is unloaded under it', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('trace-unload', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const trace = await startTrace(sb, ['--json']);
    unload({ pinDir: sb.pinDir });
    const exit = await trace.done;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stderr, /was unloaded/);
    assert.equal(exit.stdout, '');
  });
});
