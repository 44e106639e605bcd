import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BenchParseError } from '../src/bench/errors.js';
import { parseSbloadOutput } from '../src/bench/sbload.js';

test('stream', () => {
  const text = '{"mode":"stream","bytes":1073741824,"seconds":0.5,"bitsPerSecond":17179869184}\n';
  assert.deepEqual(parseSbloadOutput(text), {
    mode: 'stream',
    bytes: 1073741824,
    seconds: 0.5,
    bitsPerSecond: 17179869184,
  });
});

test('rr', () => {
  const text = '{"mode":"rr","p50Us":7.5,"p99Us":12.25,"p999Us":40,"roundTrips":100000}';
  assert.deepEqual(parseSbloadOutput(text), { mode: 'rr', p50Us: 7.5, p99Us: 12.25, p999Us: 40, roundTrips: 100000 });
});

test('crr, with failures reported rather than rejected', () => {
  const text = '{"mode":"crr","connectionsPerSecond":25000.5,"connections":50001,"failures":3}';
  assert.deepEqual(parseSbloadOutput(text), {
    mode: 'crr',
    connectionsPerSecond: 25000.5,
    connections: 50001,
    failures: 3,
  });
});

test('unknown extra fields are ignored', () => {
  const text = '{"mode":"crr","connectionsPerSecond":10,"connections":10,"failures":0,"family":"unix"}';
  assert.deepEqual(parseSbloadOutput(text), { mode: 'crr', connectionsPerSecond: 10, connections: 10, failures: 0 });
});

test('expected mode narrows the type and is checked', () => {
  const rr = parseSbloadOutput('{"mode":"rr","p50Us":1,"p99Us":2,"p999Us":3,"roundTrips":5}', 'rr');
  assert.equal(rr.p99Us, 2);
  assertParseError(
    () => parseSbloadOutput('{"mode":"rr","p50Us":1,"p99Us":2,"p999Us":3,"roundTrips":5}', 'stream'),
    /expected mode "stream", got "rr"/,
  );
});

function assertParseError(run: () => unknown, reasonPattern: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof BenchParseError, `expected BenchParseError, got ${String(error)}`);
    assert.equal(error.source, 'sbload');
    assert.match(error.reason, reasonPattern);
    return true;
  });
}

test('missing fields throw, naming the field', () => {
  assertParseError(() => parseSbloadOutput('{"mode":"stream","bytes":10,"seconds":1}'), /bitsPerSecond/);
  assertParseError(() => parseSbloadOutput('{"mode":"rr","p50Us":1,"p99Us":2,"roundTrips":5}'), /p999Us/);
  assertParseError(() => parseSbloadOutput('{"mode":"crr","connectionsPerSecond":1,"connections":1}'), /failures/);
});

test('mistyped, negative and non-integer fields throw', () => {
  assertParseError(() => parseSbloadOutput('{"mode":"stream","bytes":"10","seconds":1,"bitsPerSecond":80}'), /bytes/);
  assertParseError(() => parseSbloadOutput('{"mode":"stream","bytes":10,"seconds":-1,"bitsPerSecond":80}'), /negative/);
  assertParseError(
    () => parseSbloadOutput('{"mode":"crr","connectionsPerSecond":1,"connections":1.5,"failures":0}'),
    /non-integer/,
  );
});

test('a run that measured nothing throws', () => {
  assertParseError(
    () => parseSbloadOutput('{"mode":"stream","bytes":0,"seconds":1,"bitsPerSecond":0}'),
    /nothing was measured/,
  );
  assertParseError(
    () => parseSbloadOutput('{"mode":"rr","p50Us":0,"p99Us":0,"p999Us":0,"roundTrips":0}'),
    /nothing was measured/,
  );
  assertParseError(
    () => parseSbloadOutput('{"mode":"crr","connectionsPerSecond":0,"connections":0,"failures":9}'),
    /nothing was measured/,
  );
});

test('rr percentiles out of order throw', () => {
  assertParseError(
    () => parseSbloadOutput('{"mode":"rr","p50Us":5,"p99Us":2,"p999Us":9,"roundTrips":5}'),
    /out of order/,
  );
});

test('unknown or missing mode, error key, empty and truncated output throw', () => {
  assertParseError(() => parseSbloadOutput('{"mode":"udp"}'), /unknown mode "udp"/);
  assertParseError(() => parseSbloadOutput('{"bytes":1}'), /unknown mode undefined/);
  assertParseError(
    () => parseSbloadOutput('{"error":"connect: Connection refused"}'),
    /sbload reported an error: connect: Connection refused/,
  );
  assertParseError(() => parseSbloadOutput(''), /empty output/);
  assertParseError(() => parseSbloadOutput('{"mode":"stream","bytes":10'), /invalid or truncated JSON/);
});
