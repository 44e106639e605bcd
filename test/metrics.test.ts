/**
 * `sockbypass run` as a real process outside the sandbox cgroup: it loads
 * into the sandbox, serves Prometheus metrics that follow the kernel counters
 * exactly (only the sandbox cgroup is attached, so every count is ours),
 * answers /healthz, and on SIGTERM exits 0 and unloads — or keeps the load
 * with --keep, or when it only adopted a load.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { freePort, withSandbox, type Sandbox, type Started } from './support/sandbox.js';
import { connectClients, startServer } from './support/traffic.js';
import { DEFAULT_MAX_ENTRIES, load } from '../src/core/load.js';
import { unload } from '../src/core/unload.js';
import { pinState } from '../src/core/pins.js';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'sockbypass.js');

async function startRun(sb: Sandbox, extra: string[] = []): Promise<{ proc: Started; base: string }> {
  const port = await freePort();
  const args = [
    CLI,
    'run',
    '--cgroup',
    sb.cgroup,
    '--pin-dir',
    sb.pinDir,
    '--metrics-addr',
    `127.0.0.1:${port}`,
    ...extra,
  ];
  const proc = sb.start(process.execPath, args, { cgroup: null });
  const base = `http://127.0.0.1:${port}`;
  let healthy = false;
  const deadline = Date.now() + 15_000;
  while (!healthy && Date.now() < deadline && proc.child.exitCode === null) {
    try {
      healthy = (await fetch(`${base}/healthz`)).status === 200;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  assert.ok(healthy, `run never became healthy: ${proc.stderr()}`);
  return { proc, base };
}

/** Scrape /metrics and parse the sample lines into name{labels} → value. */
async function scrape(base: string): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+) (\S+)$/.exec(line);
    assert.ok(m, `bad sample line ${JSON.stringify(line)}`);
    samples.set(m[1] as string, Number(m[2]));
  }
  assert.match(text, /# TYPE sockbypass_redirected_bytes_total counter/);
  assert.match(text, /# TYPE sockbypass_map_entries gauge/);
  return samples;
}

function value(samples: Map<string, number>, name: string): number {
  const v = samples.get(name);
  assert.ok(v !== undefined, `metric ${name} missing; have ${[...samples.keys()].join(', ')}`);
  return v;
}

async function stop(proc: Started, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  proc.child.kill(signal);
  const exit = await proc.done;
  assert.equal(exit.code, 0, `run exited ${exit.code} (${exit.signal}): ${exit.stderr}`);
}

test('run: metrics follow the kernel counters exactly, /healthz, SIGTERM unloads and exits 0', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('metrics', async (sb) => {
    const { proc, base } = await startRun(sb);
    assert.equal(pinState(sb.pinDir), 'complete');
    const health = await fetch(`${base}/healthz`);
    assert.equal(await health.text(), 'ok\n');
    assert.equal((await fetch(`${base}/nope`)).status, 404);

    const before = await scrape(base);
    assert.equal(value(before, 'sockbypass_loaded'), 1);
    assert.equal(value(before, 'sockbypass_map_capacity'), DEFAULT_MAX_ENTRIES);

    // Known traffic: 4 connections, each sending one 50 007-byte message. Small enough
    // that no receiver queue goes over its limit (which would send bytes over TCP instead).
    const conns = 4;
    const bytesEach = 50_007;
    const server = await startServer(sb);
    const clients = await connectClients(sb, server.port, { count: conns, bytes: bytesEach, hold: true });
    // Open now: both ends of each connection are in the map.
    const open = await scrape(base);
    assert.equal(value(open, 'sockbypass_accelerated_connections'), conns);
    assert.equal(value(open, 'sockbypass_map_entries'), 2 * conns);
    assert.equal(value(open, 'sockbypass_map_fill_ratio'), (2 * conns) / DEFAULT_MAX_ENTRIES);
    await clients.close();
    const served = await server.finish();
    assert.equal(served.bytes, conns * bytesEach, 'the server received everything');

    // Counted only once the transfer is complete.
    const after = await scrape(base);
    const delta = (name: string) => value(after, name) - value(before, name);
    assert.equal(delta('sockbypass_redirected_bytes_total'), conns * bytesEach);
    assert.equal(delta('sockbypass_passed_bytes_total'), 0);
    assert.equal(delta('sockbypass_redirect_misses_total'), 0);
    assert.equal(delta('sockbypass_flow_control_bytes_total'), 0);
    assert.equal(delta('sockbypass_sticky_tcp_sockets_total'), 0);
    assert.equal(delta('sockbypass_flow_switches_total'), 0);
    assert.ok(delta('sockbypass_redirected_messages_total') >= conns);
    assert.equal(delta('sockbypass_sockets_accelerated_total'), 2 * conns);
    assert.equal(delta('sockbypass_sockets_closed_total'), 2 * conns);
    for (const reason of ['map_full', 'exists', 'other']) {
      assert.equal(value(after, `sockbypass_insert_failures_total{reason="${reason}"}`), 0);
    }
    assert.equal(value(after, 'sockbypass_events_lost_total'), 0);
    assert.equal(value(after, 'sockbypass_accelerated_connections'), 0);
    assert.equal(value(after, 'sockbypass_map_entries'), 0);

    await stop(proc);
    assert.equal(pinState(sb.pinDir), 'none', 'nothing left pinned');
    assert.equal(existsSync(sb.pinDir), false);
  });
});

test('run --keep: SIGINT exits 0 and leaves the load pinned', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('metrics-keep', async (sb) => {
    const { proc } = await startRun(sb, ['--keep']);
    await stop(proc, 'SIGINT');
    assert.match(proc.stderr(), /left loaded/);
    assert.equal(pinState(sb.pinDir), 'complete');
    assert.equal(unload({ pinDir: sb.pinDir }).outcome, 'unloaded');
  });
});

test('run adopts an existing load, serves it, and leaves it loaded on SIGTERM', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('metrics-adopt', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const { proc, base } = await startRun(sb);
    assert.match(proc.stderr(), /adopted/);
    assert.equal(value(await scrape(base), 'sockbypass_loaded'), 1);
    await stop(proc);
    assert.equal(pinState(sb.pinDir), 'complete');
    assert.equal(unload({ pinDir: sb.pinDir }).outcome, 'unloaded');
  });
});

test('run refuses a busy metrics address before loading anything, exit 1', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('metrics-busy', async (sb) => {
    const { proc, base } = await startRun(sb);
    const port = new URL(base).port;
    sb.onCleanup(() => {
      if (pinState(`${sb.pinDir}-2`) !== 'none') unload({ pinDir: `${sb.pinDir}-2`, force: true });
    });
    const other = sb.start(
      process.execPath,
      [CLI, 'run', '--cgroup', sb.cgroup, '--pin-dir', `${sb.pinDir}-2`, '--metrics-addr', `127.0.0.1:${port}`],
      { cgroup: null },
    );
    const exit = await other.done;
    assert.equal(exit.code, 1, exit.stderr);
    assert.match(exit.stderr, /cannot serve metrics/);
    assert.equal(pinState(`${sb.pinDir}-2`), 'none');
    await stop(proc);
  });
});

test('--metrics-addr parsing', async () => {
  const { parseHostPort } = await import('../src/observe/run.js');
  assert.deepEqual(parseHostPort('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(parseHostPort('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseHostPort('localhost:80'), { host: 'localhost', port: 80 });
  for (const bad of ['9464', '::1:9464', '127.0.0.1:', '127.0.0.1:70000', '[::1]']) {
    assert.throws(() => parseHostPort(bad), /--metrics-addr wants HOST:PORT/, bad);
  }
});

test('every row of the counter table is a metric series carrying its counter', async () => {
  const { createMetrics } = await import('../src/observe/run.js');
  const { COUNTERS, zeroCounters } = await import('../src/core/counters.js');
  const counters = zeroCounters();
  COUNTERS.forEach((row, i) => {
    counters[row.name] = 1000 + i;
  });
  const registry = createMetrics(() => ({ loaded: true, counters, mapEntries: 4, mapCapacity: 8, connections: 2 }));
  const text = await registry.metrics();
  for (const [i, row] of COUNTERS.entries()) {
    const labels = Object.entries((row.metric as { labels?: Record<string, string> }).labels ?? {});
    const series = labels.length
      ? `${row.metric.name}{${labels.map(([k, v]) => `${k}="${v}"`).join(',')}}`
      : row.metric.name;
    assert.ok(text.split('\n').includes(`${series} ${1000 + i}`), `${series} ${1000 + i} in:\n${text}`);
    assert.match(text, new RegExp(`^# TYPE ${row.metric.name} ${row.kind}$`, 'm'));
  }
  assert.ok(text.split('\n').includes('sockbypass_map_fill_ratio 0.5'));
});
