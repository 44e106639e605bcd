import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Btf } from './support/btf.js';
import { BUILD_DIR, PACKAGE_ROOT } from '../src/core/paths.js';
import {
  addrRangeCodec,
  countersCodec,
  decodeSocketKey,
  encodeSocketKey,
  EVENT_TYPES,
  LAYOUT_VERSION,
  samePair,
  settingsCodec,
  sockEventCodec,
  socketKeyCodec,
  sumCounters,
} from '../src/core/layout.js';
import type { StructCodec } from '../src/core/codec.js';

// The BTF of build/layout.bpf.o describes every shared struct exactly as clang laid it out.
const btf = new Btf(join(BUILD_DIR, 'layout.bpf.o'));
const codecs: Array<StructCodec<object>> = [socketKeyCodec, settingsCodec, addrRangeCodec, countersCodec, sockEventCodec];

for (const codec of codecs) {
  test(`codec of struct ${codec.cName} matches the C layout in BTF`, () => {
    const c = btf.struct(codec.cName);
    assert.equal(codec.size, c.size, 'struct size');
    assert.deepEqual(
      codec.fields.map((f) => ({ name: f.c, offset: f.offset, size: f.size })),
      c.members,
      'members, offsets and sizes, in order',
    );
  });
}

test('the program object carries the same struct layouts as the layout probe', () => {
  const prog = new Btf(join(BUILD_DIR, 'sockbypass.bpf.o'));
  for (const name of ['socket_key', 'settings', 'addr_range', 'counters']) {
    assert.deepEqual(prog.struct(name), btf.struct(name), name);
  }
});

test('event type values match enum event_type', () => {
  const values = btf.enumValues('event_type');
  const expected = Object.fromEntries(Object.entries(EVENT_TYPES).map(([k, v]) => [`EVENT_${k.toUpperCase()}`, v]));
  assert.deepEqual(values, expected);
});

test('LAYOUT_VERSION matches SOCKBYPASS_LAYOUT_VERSION in the C header', () => {
  const header = readFileSync(join(PACKAGE_ROOT, 'bpf', 'sockbypass.h'), 'utf8');
  const m = /#define SOCKBYPASS_LAYOUT_VERSION (\d+)/.exec(header);
  assert.equal(Number(m?.[1]), LAYOUT_VERSION);
});

test('a socket key round-trips and maps IPv4 into ::ffff:0:0/96', () => {
  const key = { localAddress: '127.0.0.1', remoteAddress: '127.0.0.2', localPort: 40000, remotePort: 5201, netnsCookie: 4097n, handshake: 0x1234567889abcdefn };
  const raw = encodeSocketKey(key);
  assert.equal(raw.length, 56);
  assert.equal(raw.subarray(0, 16).toString('hex'), '00000000000000000000ffff7f000001');
  assert.equal(raw.readUInt32LE(32), 40000, 'ports are host order');
  assert.deepEqual(decodeSocketKey(raw), key);
  assert.ok(samePair(key, { ...key, localAddress: key.remoteAddress, remoteAddress: '198.18.0.9', localPort: key.remotePort, remotePort: key.localPort }), 'a NATed peer view with the same tag and client port');
  assert.ok(!samePair(key, { ...key, handshake: key.handshake + 1n, localPort: key.remotePort, remotePort: key.localPort }), 'another handshake tag');
  const v6 = { ...key, localAddress: '::1', remoteAddress: 'fd00::1:2' };
  assert.deepEqual(decodeSocketKey(encodeSocketKey(v6)), v6);
});

test('per-CPU counters are summed over CPUs', () => {
  const a = Buffer.alloc(countersCodec.size);
  const b = Buffer.alloc(countersCodec.size);
  const bytes = countersCodec.fields.find((f) => f.name === 'bytesRedirected');
  assert.ok(bytes);
  a.writeBigUInt64LE(1000n, bytes.offset);
  b.writeBigUInt64LE(234n, bytes.offset);
  assert.equal(sumCounters([a, b]).bytesRedirected, 1234);
});

test("the README's key table states struct socket_key as BTF lays it out", () => {
  const readme = readFileSync(join(PACKAGE_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### The key'), readme.indexOf('### Byte order'));
  const c = btf.struct('socket_key');
  assert.match(section, new RegExp(`\`struct socket_key\` \\(\`bpf/sockbypass.h\`\\), ${c.size} bytes`), 'the size in the text');
  const rows = [...section.matchAll(/^\| (\d+) \| `(\w+)(?:\[\d+\])?` \|/gm)].map((m) => ({ offset: Number(m[1]), name: m[2] }));
  assert.deepEqual(rows, c.members.map((m) => ({ offset: m.offset, name: m.name })), 'one row per member, at its offset');
});
