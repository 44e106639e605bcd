/**
 * build/sbload on plain loopback (no BPF): every mode runs briefly and reports
 * sane JSON; the integrity checker passes on every family and ordering variant,
 * across split processes too, and provably fails when one byte is corrupted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const SBLOAD = resolve(import.meta.dirname, '..', '..', 'build', 'sbload');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  json: Record<string, unknown>;
}

/** Start sbload; resolves when it exits. The child is killed if it outlives `timeoutMs`. */
function start(args: string[], timeoutMs = 20_000): Promise<Run> {
  assert.ok(existsSync(SBLOAD), `${SBLOAD} is missing: run \`make\` (or \`make build/sbload\`) first`);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(SBLOAD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = stdout.trim().split('\n');
      let json: Record<string, unknown>;
      try {
        assert.equal(lines.length, 1, 'sbload must print exactly one line of JSON');
        json = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
      } catch (e) {
        reject(
          new Error(`sbload ${args.join(' ')}: bad stdout ${JSON.stringify(stdout)} (${String(e)}); stderr: ${stderr}`),
        );
        return;
      }
      resolvePromise({ code, stdout, stderr, json });
    });
  });
}

/** Run and require success. */
async function ok(args: string[]): Promise<Record<string, unknown>> {
  const r = await start(args);
  assert.equal(r.code, 0, `sbload ${args.join(' ')} exited ${r.code}: ${r.stderr} ${r.stdout}`);
  assert.equal(r.json.error, undefined);
  return r.json;
}

function num(j: Record<string, unknown>, key: string): number {
  const v = j[key];
  assert.equal(typeof v, 'number', `${key} should be a number in ${JSON.stringify(j)}`);
  assert.ok(Number.isFinite(v), `${key} should be finite`);
  return v as number;
}

function checkIntegrity(j: Record<string, unknown>, connections: number, bytes: number, directions = 2): void {
  assert.equal(j.mode, 'integrity');
  assert.equal(j.failures, 0, `failures: ${String(j.firstFailure)}`);
  assert.equal(j.firstFailure, null);
  assert.equal(num(j, 'connections'), connections);
  assert.equal(num(j, 'bytesVerified'), connections * bytes * directions);
  assert.match(String(j.c2sSha256), /^[0-9a-f]{64}$/);
  assert.match(String(j.s2cSha256), /^[0-9a-f]{64}$/);
  const calls = j.calls as Record<string, number>;
  // The point of the mode is the mix of calls: every kind must have been used.
  for (const k of ['write', 'writev', 'sendfile', 'splice', 'read', 'readv', 'peek', 'waitall']) {
    assert.ok((calls[k] ?? 0) > 0, `no ${k} calls in ${JSON.stringify(calls)}`);
  }
}

/** Wait for a --ready-file to appear and return its content. */
async function readyFile(path: string, server: Promise<Run>): Promise<string> {
  let exited = false;
  void server.finally(() => (exited = true));
  for (let i = 0; i < 200; i++) {
    if (existsSync(path)) return readFileSync(path, 'utf8').trim();
    if (exited) break;
    await sleep(25);
  }
  const r = await Promise.race([server, sleep(10).then(() => undefined)]);
  throw new Error(`server never wrote ${path}${r ? `; it exited ${r.code}: ${r.stderr}` : ''}`);
}

async function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'sbload-test-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('stream: 64 B and 128 KiB writes, tcp4/tcp6/unix, parallel streams', async () => {
  for (const [family, size, streams] of [
    ['tcp4', '64', '1'],
    ['tcp4', '128K', '1'],
    ['tcp6', '128K', '2'],
    ['unix', '64K', '1'],
    ['tcp4mapped', '4096', '1'],
  ] as const) {
    const j = await ok(['stream', '--family', family, '--size', size, '--streams', streams, '--seconds', '0.3']);
    assert.equal(j.mode, 'stream');
    assert.equal(j.family, family);
    assert.equal(num(j, 'streams'), Number(streams));
    assert.ok(num(j, 'bytes') > 0);
    const secs = num(j, 'seconds');
    assert.ok(secs >= 0.29 && secs < 5, `seconds ${secs}`);
    assert.ok(Math.abs(num(j, 'bitsPerSecond') - (num(j, 'bytes') * 8) / secs) < 1e-3 * num(j, 'bitsPerSecond') + 1);
  }
});

test('rr: ordered percentiles for tcp4/tcp6/unix, --count is exact', async () => {
  for (const family of ['tcp4', 'tcp6', 'unix']) {
    const j = await ok(['rr', '--family', family, '--seconds', '0.3', '--size', '64']);
    assert.ok(num(j, 'roundTrips') > 100, `roundTrips ${String(j.roundTrips)}`);
    const [min, p50, p99, p999, max, mean] = ['minUs', 'p50Us', 'p99Us', 'p999Us', 'maxUs', 'meanUs'].map((k) =>
      num(j, k),
    ) as [number, number, number, number, number, number];
    assert.ok(min > 0 && min <= p50 && p50 <= p99 && p99 <= p999 && p999 <= max, JSON.stringify(j));
    assert.ok(mean >= min && mean <= max);
  }
  const j = await ok(['rr', '--count', '2000', '--warmup', '100', '--size', '1000']);
  assert.equal(j.roundTrips, 2000);
  assert.equal(j.size, 1000);
});

test('crr: connections with SO_LINGER{1,0}, tcp4 and tcp6', async () => {
  for (const family of ['tcp4', 'tcp6']) {
    const j = await ok(['crr', '--family', family, '--seconds', '0.3']);
    assert.equal(j.linger0, true);
    assert.ok(num(j, 'connections') > 0);
    assert.equal(j.failures, 0, String(j.firstError));
    assert.ok(num(j, 'connectionsPerSecond') > 0);
  }
});

test('integrity: 50 connections, tcp4, tcp6, tcp4mapped, unix', async () => {
  for (const family of ['tcp4', 'tcp6', 'tcp4mapped', 'unix']) {
    const j = await ok(['integrity', '--family', family, '--connections', '50', '--bytes', '256K', '--seconds', '15']);
    assert.equal(j.family, family);
    checkIntegrity(j, 50, 256 * 1024);
  }
});

test('integrity: early data and server-first orderings', async () => {
  const early = await ok(['integrity', '--connections', '50', '--early-data', '--seconds', '15']);
  checkIntegrity(early, 50, 256 * 1024);
  // On plain loopback the clients' bytes must really have been queued before accept().
  assert.ok(num(early, 'bytesQueuedAtAccept') > 0);
  checkIntegrity(
    await ok(['integrity', '--connections', '50', '--server-first', '--family', 'tcp6', '--seconds', '15']),
    50,
    256 * 1024,
  );
  checkIntegrity(
    await ok(['integrity', '--connections', '20', '--server-first', '--early-data', '--seconds', '15']),
    20,
    256 * 1024,
  );
});

test('integrity: 1000 connections (raises RLIMIT_NOFILE as needed)', async () => {
  const j = await ok(['integrity', '--connections', '1000', '--bytes', '32K', '--seconds', '20']);
  checkIntegrity(j, 1000, 32 * 1024);
});

test('integrity: the same seed gives the same streams, another seed does not', async () => {
  const a = await ok(['integrity', '--connections', '10', '--bytes', '10000', '--seed', '7']);
  const b = await ok(['integrity', '--connections', '10', '--bytes', '10000', '--seed', '7', '--family', 'tcp6']);
  const c = await ok(['integrity', '--connections', '10', '--bytes', '10000', '--seed', '8']);
  assert.equal(a.c2sSha256, b.c2sSha256);
  assert.equal(a.s2cSha256, b.s2cSha256);
  assert.notEqual(a.c2sSha256, c.c2sSha256);
});

test('integrity: one corrupted byte is caught, with its offset, and exits 1', async () => {
  const r = await start(['integrity', '--connections', '20', '--corrupt-test-byte', '12345', '--seconds', '15']);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(num(r.json, 'failures') > 0);
  assert.equal(r.json.failures, 1, 'only the corrupted connection fails');
  assert.match(String(r.json.firstFailure), /^conn 0: server received byte 12345 differs/);
  assert.equal(num(r.json, 'bytesVerified'), 20 * 256 * 1024 * 2 - (256 * 1024 - 12345));
});

test('integrity: split server and client processes agree (--role, --ready-file, --bind)', async () => {
  await withTmp(async (dir) => {
    const ready = join(dir, 'port');
    const server = start([
      'integrity',
      '--role',
      'server',
      '--listen',
      '127.0.0.1:0',
      '--ready-file',
      ready,
      '--connections',
      '30',
      '--seconds',
      '15',
    ]);
    const port = await readyFile(ready, server);
    assert.match(port, /^\d+$/);
    const client = await start([
      'integrity',
      '--role',
      'client',
      '--connect',
      `127.0.0.1:${port}`,
      '--bind',
      '127.0.0.2:0',
      '--connections',
      '30',
      '--seconds',
      '15',
    ]);
    const srv = await server;
    assert.equal(client.code, 0, client.stderr);
    assert.equal(srv.code, 0, srv.stderr);
    checkIntegrity(client.json, 30, 256 * 1024, 1);
    checkIntegrity(srv.json, 30, 256 * 1024, 1);
    // Each side hashed what it sent and what it received; both views must match.
    assert.equal(client.json.c2sSha256, srv.json.c2sSha256);
    assert.equal(client.json.s2cSha256, srv.json.s2cSha256);
  });
});

test('integrity: split tcp4mapped server with server-first', async () => {
  await withTmp(async (dir) => {
    const ready = join(dir, 'port');
    const server = start([
      'integrity',
      '--role',
      'server',
      '--family',
      'tcp4mapped',
      '--server-first',
      '--ready-file',
      ready,
      '--connections',
      '10',
      '--seconds',
      '15',
    ]);
    const port = await readyFile(ready, server);
    const client = await start([
      'integrity',
      '--role',
      'client',
      '--server-first',
      '--connect',
      `127.0.0.1:${port}`,
      '--connections',
      '10',
      '--seconds',
      '15',
    ]);
    const srv = await server;
    assert.equal(client.code, 0, client.stderr);
    assert.equal(srv.code, 0, srv.stderr);
    assert.equal(srv.json.family, 'tcp4mapped');
    assert.equal(client.json.c2sSha256, srv.json.c2sSha256);
    assert.equal(client.json.s2cSha256, srv.json.s2cSha256);
  });
});

test('stream and rr: split server and client processes', async () => {
  await withTmp(async (dir) => {
    for (const mode of ['stream', 'rr']) {
      const ready = join(dir, `${mode}.port`);
      const server = start([mode, '--role', 'server', '--family', 'tcp6', '--ready-file', ready, '--seconds', '0.3']);
      const port = await readyFile(ready, server);
      const client = await start([mode, '--role', 'client', '--connect', `[::1]:${port}`, '--seconds', '0.3']);
      const srv = await server;
      assert.equal(client.code, 0, client.stderr);
      assert.equal(srv.code, 0, srv.stderr);
      assert.equal(client.json.role, 'client');
      assert.equal(srv.json.role, 'server');
      if (mode === 'stream') {
        // The client waits for the server's close, so both count the same delivered bytes.
        assert.ok(num(client.json, 'bytes') > 0);
        assert.equal(client.json.bytes, srv.json.bytes);
      } else {
        // The server's count includes the client's warm-up round trips.
        assert.equal(num(srv.json, 'roundTrips'), num(client.json, 'roundTrips') + num(client.json, 'warmup'));
      }
    }
  });
});

test('errors: JSON error on stdout, message on stderr, non-zero exit; watchdog fires', async () => {
  const bad = await start(['rr', '--no-such-option']);
  assert.equal(bad.code, 2);
  assert.match(String(bad.json.error), /no-such-option/);
  assert.match(bad.stderr, /usage: sbload/);

  const refused = await start(['rr', '--role', 'client', '--connect', '127.0.0.1:1']);
  assert.equal(refused.code, 2);
  assert.match(String(refused.json.error), /Connection refused/);

  // A server whose client never comes must not hang: the watchdog ends it.
  const t0 = Date.now();
  const hung = await start(['stream', '--role', 'server', '--seconds', '0.2', '--timeout', '0.5']);
  assert.equal(hung.code, 3);
  assert.match(String(hung.json.error), /watchdog/);
  assert.ok(Date.now() - t0 < 5000);
});
