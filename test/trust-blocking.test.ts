/**
 * Trust: blocking readers and writers. build/blockpair (tools/blockpair.c) runs
 * 1,000 loopback connections, 8 at a time, with blocking sockets on both ends:
 * both ends write 2 MiB in large writes (half to all of 1 MiB, so a stream on
 * TCP fills its send buffer) while the other end reads with read() and
 * MSG_WAITALL, then shut down their write side and read until EOF; half the
 * connections are request/response (the client writes, shuts down, then waits
 * for the answer). Every byte is checked and every failed read or write is
 * counted by errno. A blocking socket never fails with EAGAIN, so any EAGAIN
 * is spurious (issue 14, goal 3: 0 EAGAIN in >= 1,000 connections).
 *
 * Runs: plain TCP (the reference: 0 EAGAIN, a real assertion), the bypass with
 * a 64 KiB queue limit (senders switch to TCP and back; readers pause now and
 * then, which is when a sender may come back), and the bypass with the
 * default limit.
 *
 * The EAGAIN assertion on the bypass runs is a todo: on this kernel a blocking
 * read in tcp_bpf_recvmsg returns EAGAIN after one wakeup without data, and
 * shutdown(SHUT_WR) wakes a socket's readers twice (inet_shutdown's own
 * sk_state_change, then the FIN_WAIT1 -> FIN_WAIT2 one when the peer ACKs the
 * FIN), with or without flow control. The diagnostics say where each happened.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, type Sandbox } from './support/sandbox.js';
import { load } from '../src/core/load.js';
import type { Counters } from '../src/core/layout.js';
import { BUILD_DIR, Tally, counters, delta, fmtBytes, requireTool } from './support/trust.js';

const BLOCKPAIR = join(BUILD_DIR, 'blockpair');
const tally = new Tally('trust-blocking');

const CONNECTIONS = 1000;
const BYTES = 2 * 1024 * 1024;
const SMALL_QUEUE_LIMIT = 64 * 1024;

interface BlockpairResult {
  connections: number;
  bytes: number;
  seconds: number;
  bytesVerified: number;
  failures: number;
  firstFailure: string | null;
  reads: number;
  waitallReads: number;
  writes: number;
  eagain: number;
  connectionsWithEagain: number;
  errors: Record<string, number>;
  otherErrno: string | null;
  /** "shape end phase": EAGAINs there. */
  eagainWhere: Record<string, number>;
  /** TCP state of the socket when the EAGAIN came back. */
  eagainTcpState: Record<string, number>;
  eagainSamples: string[];
  error?: string;
}

interface Run {
  name: string;
  json: BlockpairResult;
  d?: Counters;
}

async function blockpair(sb: Sandbox, args: string[]): Promise<BlockpairResult> {
  requireTool(BLOCKPAIR);
  const r = await sb.run(
    BLOCKPAIR,
    [
      '--connections',
      String(CONNECTIONS),
      '--concurrency',
      '8',
      '--bytes',
      String(BYTES),
      '--write-size',
      '1M',
      '--seconds',
      '100',
      ...args,
    ],
    { timeoutMs: 120_000 },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let json: BlockpairResult;
  try {
    json = JSON.parse(line) as BlockpairResult;
  } catch {
    throw new Error(
      `blockpair: no JSON on stdout (${JSON.stringify(r.stdout.slice(0, 300))}); stderr: ${r.stderr.slice(0, 500)}`,
    );
  }
  assert.equal(json.error, undefined, `blockpair: ${json.error}; stderr ${r.stderr}`);
  // 0: all clean; 1: some call failed or a byte was wrong (asserted below, by kind).
  assert.ok(r.code === 0 || r.code === 1, `blockpair exited ${r.code}: ${r.stderr}`);
  tally.connections += json.connections;
  tally.bytesVerified += json.bytesVerified;
  tally.failures += json.failures;
  return json;
}

function text(run: Run): string {
  const j = run.json;
  const d = run.d;
  return (
    `${run.name}: ${j.connections} connections × ${fmtBytes(j.bytes)} each way in ${j.seconds.toFixed(2)} s, ${fmtBytes(j.bytesVerified)} verified, ` +
    `${j.failures} failed connections; ${j.reads} reads (${j.waitallReads} MSG_WAITALL), ${j.writes} writes; ` +
    `failed calls ${JSON.stringify(j.errors)}; EAGAIN ${j.eagain} in ${j.connectionsWithEagain} connections` +
    (j.eagain ? ` where ${JSON.stringify(j.eagainWhere)}, TCP state ${JSON.stringify(j.eagainTcpState)}` : '') +
    (d
      ? `; ${d.flowToTcp} switches to TCP, ${d.flowReturns} back; redirected ${fmtBytes(d.bytesRedirected)}, by TCP under flow control ${fmtBytes(d.flowBytes)}`
      : '')
  );
}

/** Every byte of every connection arrived, and no call failed but with EAGAIN (asserted on its own). */
function assertIntact(run: Run): void {
  const j = run.json;
  assert.equal(j.connections, CONNECTIONS, `${run.name}: connections run`);
  assert.equal(j.failures, 0, `${run.name}: ${j.failures} failed connection(s); first: ${j.firstFailure}`);
  assert.equal(j.bytesVerified, CONNECTIONS * BYTES * 2, `${run.name}: bytes verified`);
  const hard = Object.entries(j.errors).filter(([k, v]) => k !== 'EAGAIN' && v > 0);
  assert.deepEqual(hard, [], `${run.name}: failed calls other than EAGAIN (first other errno: ${j.otherErrno})`);
}

const bypassRuns: Run[] = [];

test('blocking readers and writers, plain TCP (reference): every byte intact, no call fails, 0 EAGAIN', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-block-plain', async (sb) => {
      const run: Run = { name: 'plain TCP', json: await blockpair(sb, ['--seed', '1']) };
      t.diagnostic(text(run));
      assertIntact(run);
      assert.equal(
        run.json.eagain,
        0,
        `plain TCP: ${run.json.eagain} EAGAIN: ${JSON.stringify(run.json.eagainSamples)}`,
      );
    });
  });
});

test('blocking readers and writers, bypass with a 64 KiB queue limit: every byte intact while senders switch to TCP', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-block-small', async (sb) => {
      load({
        cgroup: sb.cgroup,
        pinDir: sb.pinDir,
        policy: { ports: null, ranges: null, queueLimit: SMALL_QUEUE_LIMIT },
      });
      const before = counters(sb);
      const json = await blockpair(sb, ['--seed', '2', '--read-pause-us', '200']);
      const run: Run = { name: 'bypass, 64 KiB queue limit', json, d: delta(before, counters(sb)) };
      bypassRuns.push(run);
      t.diagnostic(text(run));
      assertIntact(run);
      const d = run.d as Counters;
      assert.equal(d.bytesPassed, 0, 'no send missed its peer');
      assert.ok(d.bytesRedirected > 0, 'the connections were accelerated');
      // Returns are rare here (0 to 9 per run): a sender comes back only while no reader sleeps in
      // the receiver's wait queue, and these readers block in recv. trust-integrity's forced switches
      // (event-loop readers) show hundreds.
      assert.ok(d.flowToTcp >= CONNECTIONS, `switches to TCP: ${d.flowToTcp} for ${CONNECTIONS} connections`);
    });
  });
});

test('blocking readers and writers, bypass with the default queue limit: every byte intact', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-block-default', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      const before = counters(sb);
      const json = await blockpair(sb, ['--seed', '3']);
      const run: Run = { name: 'bypass, default queue limit', json, d: delta(before, counters(sb)) };
      bypassRuns.push(run);
      t.diagnostic(text(run));
      assertIntact(run);
      const d = run.d as Counters;
      assert.equal(d.bytesPassed, 0, 'no send missed its peer');
      assert.ok(d.bytesRedirected > 0, 'the connections were accelerated');
    });
  });
});

// Not tracked by the tally: a todo's failure must not fail the suite's summary. Its count is printed there.
test('a blocking reader never sees a spurious EAGAIN with the bypass loaded (issue 14, goal 3)', {
  todo:
    'tcp_bpf_recvmsg returns EAGAIN to a blocking read after one wakeup without data; shutdown(SHUT_WR) wakes the reader ' +
    '(inet_shutdown, and the FIN ACK: FIN_WAIT1 -> FIN_WAIT2), with or without flow control',
}, (t) => {
  if (!requirePrivileged(t)) return;
  assert.equal(bypassRuns.length, 2, 'both bypass runs completed');
  for (const run of bypassRuns) {
    t.diagnostic(
      `${run.name}: EAGAIN ${run.json.eagain}; samples: ${JSON.stringify(run.json.eagainSamples.slice(0, 4))}`,
    );
  }
  for (const run of bypassRuns) {
    assert.equal(
      run.json.eagain,
      0,
      `${run.name}: ${run.json.eagain} EAGAIN from blocking calls in ${run.json.connectionsWithEagain} of ${run.json.connections} connections, ` +
        `where ${JSON.stringify(run.json.eagainWhere)}, TCP state ${JSON.stringify(run.json.eagainTcpState)}`,
    );
  }
});

test('trust-blocking summary', (t: TestContext) => {
  t.diagnostic(tally.line());
  const eagain = bypassRuns.reduce((a, r) => a + r.json.eagain, 0);
  t.diagnostic(
    `trust-blocking: spurious EAGAIN with the bypass loaded ${eagain} in ${bypassRuns.reduce((a, r) => a + r.json.connections, 0)} connections (todo: issue 14, goal 3)`,
  );
});
