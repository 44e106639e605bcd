import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { BenchParseError } from '../src/bench/errors.js';
import { parseIperf3Json } from '../src/bench/iperf3.js';

// Tests run from dist/test/; fixtures stay in the source tree.
const fixture = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/bench/${name}`, import.meta.url), 'utf8');

test('one stream, 64 B writes: receiver-side numbers from end.sum_received', () => {
  const result = parseIperf3Json(fixture('iperf3-l64.json'));
  assert.deepEqual(result, {
    bitsPerSecond: 147028825.54307836,
    bytes: 18382720,
    seconds: 1.000224,
    retransmits: 0,
    streams: 1,
    blockSizeBytes: 64,
  });
});

test('receiver side is used, not the sender side', () => {
  const result = parseIperf3Json(fixture('iperf3-l64.json'));
  // end.sum_sent in the same file says 169243167.47021922 bit/s and 21158400 bytes.
  assert.notEqual(result.bitsPerSecond, 169243167.47021922);
  assert.notEqual(result.bytes, 21158400);
});

test('-P 4 at 128 KB: summed receiver numbers, sender retransmits, stream count', () => {
  const result = parseIperf3Json(fixture('iperf3-l128k-p4.json'));
  assert.deepEqual(result, {
    bitsPerSecond: 18743229665.937363,
    bytes: 2344077503,
    seconds: 1.000501,
    retransmits: 5,
    streams: 4,
    blockSizeBytes: 131072,
  });
});

function assertParseError(text: string, reasonPattern: RegExp): void {
  assert.throws(
    () => parseIperf3Json(text),
    (error: unknown) => {
      assert.ok(error instanceof BenchParseError, `expected BenchParseError, got ${String(error)}`);
      assert.equal(error.source, 'iperf3');
      assert.match(error.reason, reasonPattern);
      return true;
    },
  );
}

test('connection refused (iperf3 exits 0 but writes an error key) throws', () => {
  assertParseError(
    fixture('iperf3-refused.json'),
    /iperf3 reported an error: unable to connect to server: Connection refused/,
  );
});

test('a real output cut in half throws', () => {
  assertParseError(fixture('iperf3-l64-truncated.json'), /invalid or truncated JSON/);
});

test('empty and whitespace-only output throw', () => {
  assertParseError('', /empty output/);
  assertParseError(' \n\t', /empty output/);
});

test('non-object JSON throws', () => {
  assertParseError('[]', /JSON object/);
  assertParseError('null', /JSON object/);
});

test('missing end.sum_received throws instead of yielding NaN', () => {
  const parsed = JSON.parse(fixture('iperf3-l64.json')) as { end: Record<string, unknown> };
  delete parsed.end['sum_received'];
  assertParseError(JSON.stringify(parsed), /end\.sum_received/);
});

test('a non-numeric bits_per_second throws', () => {
  const parsed = JSON.parse(fixture('iperf3-l64.json')) as { end: { sum_received: Record<string, unknown> } };
  parsed.end.sum_received['bits_per_second'] = 'fast';
  assertParseError(JSON.stringify(parsed), /end\.sum_received\.bits_per_second/);
});

test('a run in which the receiver got no bytes throws', () => {
  const parsed = JSON.parse(fixture('iperf3-l64.json')) as { end: { sum_received: Record<string, unknown> } };
  parsed.end.sum_received['bytes'] = 0;
  parsed.end.sum_received['bits_per_second'] = 0;
  assertParseError(JSON.stringify(parsed), /nothing was measured/);
});

test('retransmits are omitted when iperf3 does not report them', () => {
  const parsed = JSON.parse(fixture('iperf3-l64.json')) as { end: { sum_sent: Record<string, unknown> } };
  delete parsed.end.sum_sent['retransmits'];
  const result = parseIperf3Json(JSON.stringify(parsed));
  assert.equal('retransmits' in result, false);
  assert.equal(result.bitsPerSecond, 147028825.54307836);
});
