/**
 * Trust, part 2: early and late data. A client that writes the moment connect
 * returns while its server accepts and reads late (--early-data: the server
 * sleeps before accepting, so the client's bytes wait in not-yet-accepted
 * sockets), a server that speaks first (--server-first), both at once, and the
 * same across two processes. Every byte intact, in order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, type Sandbox } from './support/sandbox.js';
import { load } from '../src/core/load.js';
import {
  LONG,
  Tally,
  assertIntact,
  counters,
  delta,
  fmtBytes,
  integrity,
  readyPort,
  startIntegrity,
  type SbloadRun,
} from './support/trust.js';
import type { Counters } from '../src/core/layout.js';

const tally = new Tally('trust-ordering');
const N = LONG ? 1000 : 200;

function describe(name: string, run: SbloadRun, d: Counters): string {
  return (
    `${name}: ${run.json.connections} connections, ${fmtBytes(run.json.bytesVerified)} verified, ${run.json.failures} failures, ` +
    `${fmtBytes(run.json.bytesQueuedAtAccept)} queued before accept, ${run.json.seconds.toFixed(2)} s; inserted ${d.socketsInserted}, ` +
    `redirected ${fmtBytes(d.bytesRedirected)}, passed to TCP ${fmtBytes(d.bytesPassed)} (${d.redirectMisses} messages), sticky TCP ${d.stickyTcp ?? 'n/a'}`
  );
}

async function variant(
  t: import('node:test').TestContext,
  sb: Sandbox,
  name: string,
  args: string[],
): Promise<SbloadRun> {
  const before = counters(sb);
  const run = await integrity(sb, [...args, '--seconds', '60', '--seed', '21'], { timeoutMs: 90_000 });
  tally.run(run);
  const d = delta(before, counters(sb));
  t.diagnostic(describe(name, run, d));
  assertIntact(run, name);
  assert.ok(d.socketsInserted > 0, `${name}: nothing was accelerated`);
  return run;
}

test('early data: the client writes at once, the server accepts and reads late (tcp4, tcp6, tcp4mapped)', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-early', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      for (const family of ['tcp4', 'tcp6', 'tcp4mapped']) {
        const run = await variant(t, sb, `early data ${family}`, [
          '--early-data',
          '--family',
          family,
          '--connections',
          String(N),
          '--bytes',
          '256K',
        ]);
        // The ordering really happened: bytes were waiting in sockets nobody had accepted yet.
        assert.ok(run.json.bytesQueuedAtAccept > 0, 'client bytes were queued before accept()');
      }
    });
  });
});

test('server first, and server first with early data: intact both ways', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-srvfirst', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      await variant(t, sb, 'server first tcp4', ['--server-first', '--connections', String(N), '--bytes', '256K']);
      await variant(t, sb, 'server first tcp6', [
        '--server-first',
        '--family',
        'tcp6',
        '--connections',
        String(N),
        '--bytes',
        '256K',
      ]);
      await variant(t, sb, 'server first + early data', [
        '--server-first',
        '--early-data',
        '--connections',
        String(N),
        '--bytes',
        '256K',
      ]);
    });
  });
});

test('early data across two processes: a server process that starts accepting late', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-early-split', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      const dir = mkdtempSync(join(tmpdir(), 'sockbypass-trust-'));
      sb.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
      for (const mode of [['--early-data'], ['--server-first'], ['--early-data', '--server-first']]) {
        const ready = join(dir, `port-${mode.join('')}`);
        const before = counters(sb);
        const common = ['--connections', String(N / 2), '--bytes', '512K', '--seconds', '60', '--seed', '22', ...mode];
        const server = startIntegrity(
          sb,
          ['--role', 'server', '--listen', '127.0.0.1:0', '--ready-file', ready, ...common],
          { timeoutMs: 90_000 },
        );
        const port = await readyPort(ready, server.proc);
        const client = await integrity(sb, ['--role', 'client', '--connect', `127.0.0.1:${port}`, ...common], {
          timeoutMs: 90_000,
        });
        const srv = await server.result;
        const d = delta(before, counters(sb));
        tally.run(client);
        tally.run(srv);
        const name = `split ${mode.join(' ')}`;
        t.diagnostic(describe(`${name} (client view)`, client, d));
        assertIntact(client, `${name} client`, 1);
        assertIntact(srv, `${name} server`, 1);
        assert.equal(client.json.c2sSha256, srv.json.c2sSha256, 'both processes agree on c2s');
        assert.equal(client.json.s2cSha256, srv.json.s2cSha256, 'both processes agree on s2c');
      }
    });
  });
});

test('trust-ordering summary', (t) => {
  t.diagnostic(tally.line());
});
