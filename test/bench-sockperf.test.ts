import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { BenchParseError } from '../src/bench/errors.js';
import { parseSockperfPingPong } from '../src/bench/sockperf.js';

// Tests run from dist/test/; fixtures stay in the source tree.
const fixture = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/bench/${name}`, import.meta.url), 'utf8');

test('TCP ping-pong, 64 B: values exactly as sockperf 3.7 printed them (ANSI colours stripped)', () => {
  assert.deepEqual(parseSockperfPingPong(fixture('sockperf-pp-tcp-m64.txt')), {
    protocol: 'TCP',
    p50Us: 9.362,
    p99Us: 30.592,
    p999Us: 55.931,
    avgUs: 10.223,
    stdDevUs: 7.285,
    minUs: 6.482,
    maxUs: 494.78,
    observations: 26898,
    validSeconds: 0.55,
    droppedMessages: 0,
    duplicatedMessages: 0,
    outOfOrderMessages: 0,
  });
});

test('TCP ping-pong, 16 KB', () => {
  const result = parseSockperfPingPong(fixture('sockperf-pp-tcp-m16k.txt'));
  assert.equal(result.protocol, 'TCP');
  assert.equal(result.p50Us, 12.037);
  assert.equal(result.p99Us, 37.396);
  assert.equal(result.p999Us, 62.163);
  assert.equal(result.avgUs, 12.582);
  assert.equal(result.observations, 21837);
});

test("a run without --tcp is reported as UDP (sockperf's default), so the bench can reject it", () => {
  const result = parseSockperfPingPong(fixture('sockperf-pp-udp-m64.txt'));
  assert.equal(result.protocol, 'UDP');
  assert.equal(result.p50Us, 9.177);
  assert.equal(result.p99Us, 30.808);
  assert.equal(result.p999Us, 50.065);
  assert.equal(result.avgUs, 9.958);
  assert.equal(result.observations, 27608);
});

test("older sockperf's avg-lat= spelling is accepted", () => {
  const older = fixture('sockperf-pp-tcp-m64.txt').replace('avg-latency=', 'avg-lat=');
  assert.equal(parseSockperfPingPong(older).avgUs, 10.223);
});

function assertParseError(text: string, reasonPattern: RegExp): void {
  assert.throws(
    () => parseSockperfPingPong(text),
    (error: unknown) => {
      assert.ok(error instanceof BenchParseError, `expected BenchParseError, got ${String(error)}`);
      assert.equal(error.source, 'sockperf');
      assert.match(error.reason, reasonPattern);
      return true;
    },
  );
}

test('connection refused (sockperf exits 0 after printing ERROR) throws', () => {
  assertParseError(
    fixture('sockperf-pp-refused.txt'),
    /sockperf reported an error: Can`t connect socket \(errno=111 Connection refused\)/,
  );
});

test('a real output cut in half throws', () => {
  assertParseError(fixture('sockperf-pp-tcp-m64-truncated.txt'), /truncated/);
});

test('an output cut inside the percentile table, before <MIN>, throws', () => {
  const full = fixture('sockperf-pp-tcp-m64.txt');
  const cut = full.slice(0, full.indexOf('---> <MIN>'));
  assert.ok(cut.includes('percentile 50.000'), 'the cut keeps p50, so only the end marker is missing');
  assertParseError(cut, /truncated/);
});

test('empty output throws', () => {
  assertParseError('', /empty output/);
});

test('a server that never answered throws', () => {
  assertParseError(
    'sockperf: No messages were received from the server. Is the server down?\n',
    /No messages were received from the server/,
  );
});

test('a missing required percentile throws', () => {
  const withoutP999 = fixture('sockperf-pp-tcp-m64.txt').replace(/^.*percentile 99\.900.*\n/m, '');
  assertParseError(withoutP999, /missing percentile 99\.900/);
});

test('statistics for two servers are refused as ambiguous', () => {
  const full = fixture('sockperf-pp-tcp-m64.txt');
  const block = full.slice(full.indexOf('sockperf: ========= Printing statistics'));
  assertParseError(full + block.replace('Server No: 0', 'Server No: 1'), /2 servers/);
});
