/**
 * Trust, part 4: faults while data flows, and a full map. A verified
 * workload runs inside the sandbox's cgroup -- one long sbload integrity run
 * (many connections, megabytes each, all open from the start) plus a churn of
 * short runs whose connections are born before, during and after every fault --
 * while the test toggles `load`/`unload`, swaps programs with `load --replace`,
 * or SIGKILLs the `run` agent and starts another that adopts the pinned load.
 * Not one byte may be lost or corrupted. Then: a sockhash of 8 entries with
 * 20 connections -- the extra ones fall back to TCP and still work.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { requirePrivileged } from './support/privileged.js';
import { freePort, withSandbox, type Sandbox, type Finished } from './support/sandbox.js';
import { load } from '../src/core/load.js';
import { status } from '../src/core/status.js';
import { pinState } from '../src/core/pins.js';
import {
  CLI,
  LONG,
  Tally,
  assertIntact,
  counters,
  delta,
  fmtBytes,
  integrity,
  startIntegrity,
  type SbloadRun,
} from './support/trust.js';
import { assertInsideTcpMem, describeTcpMemory, type TcpMemoryReport, watchTcpMemory } from './support/tcpmem.js';

const tally = new Tally('trust-faults');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The long run: all connections open from the start and carry megabytes each. LONG: 300 x 8 MiB,
 * what plain TCP alone completes on this VM within the deadline (1,000 x 16 MiB it cannot: the host
 * hits tcp_mem[2], docs/benchmarks.md, "The long suite and tcp_mem").
 */
const LONG_CONNS = LONG ? 300 : 200;
const LONG_BYTES = '8M';
const LONG_SECONDS = LONG ? 280 : 150;

interface Workload {
  /** Resolves when the long run ended and the churn stopped. */
  finish(): Promise<{ long: SbloadRun; churn: SbloadRun[]; memory: TcpMemoryReport }>;
  longDone(): boolean;
}

function startWorkload(sb: Sandbox, seed: number): Workload {
  const long = startIntegrity(
    sb,
    [
      '--connections',
      String(LONG_CONNS),
      '--bytes',
      LONG_BYTES,
      '--seconds',
      String(LONG_SECONDS),
      '--seed',
      String(seed),
    ],
    {
      timeoutMs: (LONG_SECONDS + 30) * 1000,
    },
  );
  let done = false;
  const memory = watchTcpMemory();
  const longResult = long.result.finally(() => (done = true));
  const churn = (async () => {
    const runs: SbloadRun[] = [];
    for (let i = 0; !done; i++) {
      const early = i % 3 === 1 ? ['--early-data'] : i % 3 === 2 ? ['--server-first'] : [];
      runs.push(
        await integrity(
          sb,
          ['--connections', '30', '--bytes', '1M', '--seconds', '60', '--seed', String(seed * 1000 + i), ...early],
          { timeoutMs: 90_000 },
        ),
      );
    }
    return runs;
  })();
  return {
    longDone: () => done,
    async finish() {
      const [l, c] = await Promise.all([longResult, churn]);
      return { long: l, churn: c, memory: memory.stop() };
    },
  };
}

function checkWorkload(
  t: TestContext,
  name: string,
  w: { long: SbloadRun; churn: SbloadRun[]; memory: TcpMemoryReport },
): void {
  tally.run(w.long);
  for (const r of w.churn) tally.run(r);
  const churnFailures = w.churn.reduce((n, r) => n + r.json.failures, 0);
  // An sbload that died (its watchdog, a signal) prints only {"error": ...}: say so, then assertIntact fails on it.
  const took =
    typeof w.long.json.seconds === 'number'
      ? `${w.long.json.seconds.toFixed(1)} s`
      : `? s (sbload: ${w.long.json.error ?? `exit ${w.long.code}`})`;
  t.diagnostic(
    `${name}: long run ${w.long.json.connections} connections × ${LONG_BYTES} each way, ${fmtBytes(w.long.json.bytesVerified)} verified in ${took}, ` +
      `${w.long.json.failures} failures; churn ${w.churn.length} runs × 30 connections, ${fmtBytes(w.churn.reduce((n, r) => n + r.json.bytesVerified, 0))} verified, ${churnFailures} failures; ` +
      describeTcpMemory(w.memory),
  );
  assertIntact(w.long, `${name}: long run`);
  assertInsideTcpMem(w.memory, name);
  for (const [i, r] of w.churn.entries()) assertIntact(r, `${name}: churn run ${i}`);
}

async function cli(sb: Sandbox, args: string[]): Promise<Finished> {
  return sb.run(process.execPath, [CLI, ...args], { cgroup: null, timeoutMs: 30_000 });
}

async function cliOk(sb: Sandbox, args: string[]): Promise<string> {
  const r = await cli(sb, args);
  assert.equal(r.code, 0, `sockbypass ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

test('load and unload toggled mid-stream (CLI): no byte lost', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-toggle', async (sb) => {
      const where = ['--cgroup', sb.cgroup, '--pin-dir', sb.pinDir];
      await cliOk(sb, ['load', ...where]);
      const w = startWorkload(sb, 41);
      await sleep(500);
      const mid = counters(sb);
      let toggles = 0;
      let loaded = true;
      const redirectedBefore: number[] = [];
      while (!w.longDone() && toggles < (LONG ? 40 : 10)) {
        if (loaded) {
          redirectedBefore.push(counters(sb).bytesRedirected);
          assert.match(await cliOk(sb, ['unload', '--pin-dir', sb.pinDir]), /unloaded from/);
        } else {
          assert.match(await cliOk(sb, ['load', ...where]), /sockbypass loaded/);
        }
        loaded = !loaded;
        toggles++;
        tally.faults++;
        await sleep(400);
      }
      const result = await w.finish();
      t.diagnostic(
        `${toggles} load/unload toggles while the workload ran; redirected before the first toggle: ${fmtBytes(mid.bytesRedirected)}; at each unload: ${redirectedBefore.map(fmtBytes).join(', ')}`,
      );
      assert.ok(toggles >= 4, `only ${toggles} toggles happened before the workload ended`);
      assert.ok(mid.bytesRedirected > 0, 'the workload was being redirected before the faults');
      checkWorkload(t, 'load/unload toggles', result);
    });
  });
});

test('load --replace mid-stream (CLI), three times: programs swapped, maps and connections kept, no byte lost', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-replace', async (sb) => {
      const where = ['--cgroup', sb.cgroup, '--pin-dir', sb.pinDir];
      await cliOk(sb, ['load', ...where]);
      const ids = [status({ pinDir: sb.pinDir }).programs];
      const w = startWorkload(sb, 42);
      await sleep(500);
      const before = counters(sb);
      let replaced = 0;
      while (!w.longDone() && replaced < 3) {
        assert.match(await cliOk(sb, ['load', '--replace', ...where]), /replaced in place/);
        ids.push(status({ pinDir: sb.pinDir }).programs);
        replaced++;
        tally.faults++;
        await sleep(700);
      }
      const result = await w.finish();
      const d = delta(before, counters(sb));
      t.diagnostic(
        `${replaced} replacements; program ids (sock_ops/sk_msg): ${ids.map((p) => `${p?.sockOps.id}/${p?.skMsg.id}`).join(' → ')}; ` +
          `counters kept across them: ${d.socketsInserted} sockets inserted, ${fmtBytes(d.bytesRedirected)} redirected after the first swap began`,
      );
      assert.equal(replaced, 3, 'three replacements happened while data flowed');
      assert.equal(new Set(ids.map((p) => p?.sockOps.id)).size, 4, 'each replace loaded new programs');
      assert.ok(d.bytesRedirected > 0, 'redirection went on across the swaps (counters are the kept map)');
      checkWorkload(t, 'load --replace', result);
    });
  });
});

test('SIGKILL of the run agent mid-stream: the load survives, a new agent adopts it (same programs), no byte lost', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-agent', async (sb) => {
      const metricsPort = await freePort();
      const agentArgs = [
        CLI,
        'run',
        '--cgroup',
        sb.cgroup,
        '--pin-dir',
        sb.pinDir,
        '--metrics-addr',
        `127.0.0.1:${metricsPort}`,
      ];
      const first = sb.start(process.execPath, agentArgs, { cgroup: null });
      await waitFor(() => /serving http/.test(first.stderr()), first, 20_000);
      assert.match(first.stderr(), /sockbypass run: loaded: cgroup/);
      const loadedIds = status({ pinDir: sb.pinDir }).programs;
      const w = startWorkload(sb, 43);
      await sleep(1000);
      first.child.kill('SIGKILL');
      const killed = await first.done;
      tally.faults++;
      assert.equal(killed.signal, 'SIGKILL');
      assert.equal(pinState(sb.pinDir), 'complete', 'the pinned load outlives its agent');
      await sleep(500);
      const second = sb.start(process.execPath, agentArgs, { cgroup: null });
      await waitFor(() => /serving http/.test(second.stderr()), second, 20_000);
      assert.match(second.stderr(), /adopted the load already pinned in/, 'the new agent says it adopted the load');
      const adoptedIds = status({ pinDir: sb.pinDir }).programs;
      assert.deepEqual(
        { sockOps: adoptedIds?.sockOps.id, skMsg: adoptedIds?.skMsg.id },
        { sockOps: loadedIds?.sockOps.id, skMsg: loadedIds?.skMsg.id },
        'status shows the same program ids after adoption',
      );
      const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
      assert.equal(health.status, 200);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, /^sockbypass_loaded 1$/m);
      const result = await w.finish();
      second.child.kill('SIGTERM');
      const stopped = await second.done;
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.match(stopped.stderr, /left loaded/, 'an adopted load is left in place on SIGTERM');
      assert.equal(pinState(sb.pinDir), 'complete');
      const m = /sockbypass_redirected_bytes_total (\d+)/.exec(metrics);
      t.diagnostic(
        `agent ${first.pid} SIGKILLed mid-stream; agent ${second.pid} adopted programs ${adoptedIds?.sockOps.id}/${adoptedIds?.skMsg.id}; ` +
          `its /metrics showed ${m?.[1] ?? '?'} bytes redirected`,
      );
      checkWorkload(t, 'agent SIGKILL', result);
    });
  });
});

async function waitFor(
  cond: () => boolean,
  p: { child: { exitCode: number | null }; stderr(): string },
  timeoutMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (p.child.exitCode !== null) throw new Error(`agent exited ${p.child.exitCode}: ${p.stderr()}`);
    if (Date.now() > end) throw new Error(`agent not ready within ${timeoutMs} ms: ${p.stderr()}`);
    await sleep(50);
  }
}

test('map full: 8 entries, 20 connections -- the extra ones fall back to TCP and every byte is intact', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-mapfull', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir, maxEntries: 8 });
      assert.equal(status({ pinDir: sb.pinDir }).map?.maxEntries, 8);
      const before = counters(sb);
      const runs = await Promise.all([
        integrity(sb, ['--connections', '20', '--bytes', '1M', '--seconds', '60', '--seed', '51']),
        integrity(sb, ['--connections', '20', '--bytes', '1M', '--seconds', '60', '--seed', '52', '--early-data']),
      ]);
      const d = delta(before, counters(sb));
      for (const r of runs) tally.run(r);
      tally.faults++;
      t.diagnostic(
        `map of 8, 2 × 20 concurrent connections: inserted ${d.socketsInserted}, map full ${d.insertMapFull}, exists ${d.insertExists}, other ${d.insertOther}; ` +
          `redirected ${fmtBytes(d.bytesRedirected)}, passed to TCP ${fmtBytes(d.bytesPassed)}; failures ${runs.map((r) => r.json.failures).join(', ')}`,
      );
      for (const [i, r] of runs.entries()) assertIntact(r, `map full run ${i}`);
      assert.ok(d.insertMapFull > 0, 'some sockets found the map full');
      assert.ok(d.socketsInserted > 0, 'the map did fill');
      assert.ok(d.socketsInserted < 80, 'not every socket was accelerated: the extra ones went by TCP');
      assert.ok((status({ pinDir: sb.pinDir }).map?.entries ?? 0) <= 8);
    });
  });
});

test('trust-faults summary', (t) => {
  t.diagnostic(tally.line());
});
