/**
 * `sockbypass status --watch`: refreshes the kernel counters with per-second
 * rates until Ctrl-C (exit 0), and stops by itself when the load goes away.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { waitFor, withSandbox } from './support/sandbox.js';
import { connectClients, startServer } from './support/traffic.js';
import { DEFAULT_MAX_ENTRIES, load } from '../src/core/load.js';
import { unload } from '../src/core/unload.js';
import type { Counters } from '../src/core/layout.js';

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'sockbypass.js');

interface WatchLine {
  time: string;
  loaded: boolean;
  map?: { entries: number; maxEntries: number };
  counters?: Counters;
  rates?: Record<keyof Counters, number> | null;
}

const parse = (text: string) =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as WatchLine);

test('status --watch --json: counters and rates follow traffic; SIGINT exits 0', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('status-watch', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const watch = sb.start(
      process.execPath,
      [CLI, 'status', '--watch', '--json', '--interval', '0.2', '--pin-dir', sb.pinDir],
      { cgroup: null },
    );
    await waitFor(() => parse(watch.stdout()).length >= 1, 5000);
    const first = parse(watch.stdout())[0];
    assert.equal(first?.rates, null, 'no rate before the second sample');
    assert.equal(first?.counters?.bytesRedirected, 0);

    const server = await startServer(sb);
    const clients = await connectClients(sb, server.port, { count: 2, bytes: 10_000 });
    await clients.close();
    await server.finish();
    await waitFor(() => parse(watch.stdout()).some((l) => l.counters?.bytesRedirected === 20_000), 5000);
    const lines = parse(watch.stdout());
    assert.ok(
      lines.some((l) => (l.rates?.bytesRedirected ?? 0) > 0),
      'a positive byte rate while traffic ran',
    );
    assert.ok(lines.every((l) => l.loaded && l.map?.maxEntries === DEFAULT_MAX_ENTRIES));

    watch.child.kill('SIGINT');
    const exit = await watch.done;
    assert.equal(exit.code, 0, exit.stderr);
  });
});

test('status --watch (text) stops with exit 0 when the load goes away; --interval alone is a usage error', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('status-watch-text', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const watch = sb.start(process.execPath, [CLI, 'status', '--watch', '--interval', '0.1', '--pin-dir', sb.pinDir], {
      cgroup: null,
    });
    await waitFor(() => /bytes redirected\s+0\s+-/.test(watch.stdout()), 5000);
    await waitFor(() => /bytes redirected\s+0\s+0\.0/.test(watch.stdout()), 5000);
    unload({ pinDir: sb.pinDir });
    const exit = await watch.done;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stdout, /sockbypass was unloaded from /);

    const bad = await sb.run(process.execPath, [CLI, 'status', '--interval', '1', '--pin-dir', sb.pinDir], {
      cgroup: null,
    });
    assert.equal(bad.code, 2);
  });
});
