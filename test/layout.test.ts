import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Btf } from './support/btf.js';
import { BUILD_DIR, PACKAGE_ROOT } from '../src/core/paths.js';
import {
  addrRangeCodec,
  decodeSocketKey,
  encodeSocketKey,
  EVENT_TYPES,
  LAYOUT_VERSION,
  samePair,
  settingsCodec,
  sockEventCodec,
  socketKeyCodec,
} from '../src/core/layout.js';
import { COUNTERS as COUNTER_ROWS, countersCodec, sumCounters, type CounterSpec } from '../src/core/counters.js';
import { KNOBS } from '../src/core/knobs.js';
import { formatPolicy, validatePolicy } from '../src/core/policy.js';
import type { StructCodec } from '../src/core/codec.js';

// The BTF of build/layout.bpf.o describes every shared struct exactly as clang laid it out.
const btf = new Btf(join(BUILD_DIR, 'layout.bpf.o'));
const codecs: Array<StructCodec<object>> = [
  socketKeyCodec,
  settingsCodec,
  addrRangeCodec,
  countersCodec,
  sockEventCodec,
];

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
  const key = {
    localAddress: '127.0.0.1',
    remoteAddress: '127.0.0.2',
    localPort: 40000,
    remotePort: 5201,
    netnsCookie: 4097n,
    handshake: 0x1234567889abcdefn,
  };
  const raw = encodeSocketKey(key);
  assert.equal(raw.length, 56);
  assert.equal(raw.subarray(0, 16).toString('hex'), '00000000000000000000ffff7f000001');
  assert.equal(raw.readUInt32LE(32), 40000, 'ports are host order');
  assert.deepEqual(decodeSocketKey(raw), key);
  assert.ok(
    samePair(key, {
      ...key,
      localAddress: key.remoteAddress,
      remoteAddress: '198.18.0.9',
      localPort: key.remotePort,
      remotePort: key.localPort,
    }),
    'a NATed peer view with the same tag and client port',
  );
  assert.ok(
    !samePair(key, { ...key, handshake: key.handshake + 1n, localPort: key.remotePort, remotePort: key.localPort }),
    'another handshake tag',
  );
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
  assert.match(
    section,
    new RegExp(`\`struct socket_key\` \\(\`bpf/sockbypass.h\`\\), ${c.size} bytes`),
    'the size in the text',
  );
  const rows = [...section.matchAll(/^\| (\d+) \| `(\w+)(?:\[\d+\])?` \|/gm)].map((m) => ({
    offset: Number(m[1]),
    name: m[2],
  }));
  assert.deepEqual(
    rows,
    c.members.map((m) => ({ offset: m.offset, name: m.name })),
    'one row per member, at its offset',
  );
});

test('the counter table is struct counters, field for field, with one label and one metric series per row', () => {
  const COUNTERS: readonly CounterSpec[] = COUNTER_ROWS;
  assert.deepEqual(
    COUNTERS.map((r) => r.c),
    btf.struct('counters').members.map((m) => m.name),
    'one row per C field, in the C order',
  );
  const unique = (values: string[], what: string) =>
    assert.equal(new Set(values).size, values.length, `${what} unique`);
  unique(
    COUNTERS.map((r) => r.name),
    'TypeScript names',
  );
  unique(
    COUNTERS.map((r) => r.label),
    'labels',
  );
  unique(
    COUNTERS.map((r) => `${r.metric.name}${JSON.stringify(r.metric.labels ?? {})}`),
    'metric series',
  );
  for (const r of COUNTERS) {
    assert.match(r.metric.name, /^sockbypass_[a-z_]+$/, r.name);
    if (r.kind === 'counter') assert.match(r.metric.name, /_total$/, `${r.name}: a Prometheus counter ends in _total`);
    assert.ok(r.label.length < 26, `${r.name}: label fits the status column`);
    // Rows sharing a metric share its help and its label names.
    for (const other of COUNTERS.filter((o) => o.metric.name === r.metric.name)) {
      assert.equal(other.metric.help, r.metric.help, r.metric.name);
      assert.deepEqual(Object.keys(other.metric.labels ?? {}), Object.keys(r.metric.labels ?? {}), r.metric.name);
    }
  }
});

test('the knob table is struct settings after its header, field for field', () => {
  const members = btf.struct('settings').members;
  assert.deepEqual(
    members.slice(0, 2).map((m) => m.name),
    ['flags', 'layout_version'],
  );
  assert.deepEqual(
    KNOBS.map((k) => k.c),
    members.slice(2).map((m) => m.name),
  );
  assert.ok(
    members.slice(2).every((m) => m.size === 4),
    'every knob is a __u32',
  );
  for (const k of KNOBS) {
    assert.ok(k.default >= 0 && k.default <= k.max, `${k.field}: default within bounds`);
    assert.ok(k.max <= 2 ** 31 - 1, `${k.field}: bound fits a __u32 and a JS integer flag`);
  }
});

test('a policy is validated against the knob bounds, and worded from the knob rows', () => {
  for (const k of KNOBS) {
    assert.doesNotThrow(() => validatePolicy({ ports: null, ranges: null, [k.field]: k.max }));
    assert.throws(
      () => validatePolicy({ ports: null, ranges: null, [k.field]: k.max + 1 }),
      new RegExp(`bad ${k.flag.replaceAll('-', ' ')}`),
    );
    assert.throws(() => validatePolicy({ ports: null, ranges: null, [k.field]: -1 }), /want 0\.\./);
  }
  assert.equal(
    formatPolicy({ ports: null, ranges: null }),
    "ports all; addresses all; queue limit the receiver's SO_RCVBUF if set, else tcp_rmem[2]; " +
      'small-write rule senders whose writes average under 4096 B go by TCP once over 65536 B are queued; short connections: services whose sockets sent under 2 messages each on average stay on TCP',
  );
  assert.equal(
    formatPolicy({
      ports: [80],
      ranges: ['10.0.0.0/8'],
      queueLimit: 0,
      smallWrite: 4096,
      smallBacklog: 1000,
      shortMessages: 0,
      flowControl: false,
    }),
    "ports 80; addresses 10.0.0.0/8; queue limit the receiver's SO_RCVBUF if set, else tcp_rmem[2]; " +
      'small-write rule senders whose writes average under 4096 B go by TCP once over 1000 B are queued; short connections: off; flow control OFF',
  );
});
