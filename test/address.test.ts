import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatAddress, formatEndpoint, parseAddress, parseRange } from '../src/core/address.js';

test('IPv4 becomes IPv4-mapped and formats back as a dotted quad', () => {
  assert.equal(parseAddress('10.1.2.3').toString('hex'), '00000000000000000000ffff0a010203');
  assert.equal(formatAddress(parseAddress('10.1.2.3')), '10.1.2.3');
  assert.equal(formatAddress(parseAddress('::ffff:127.0.0.1')), '127.0.0.1');
});

test('IPv6 text round-trips in RFC 5952 form', () => {
  for (const [input, out] of [
    ['::1', '::1'],
    ['::', '::'],
    ['fe80:0:0:0:1:0:0:1', 'fe80::1:0:0:1'],
    ['2001:db8:0:0:1:0:0:0', '2001:db8:0:0:1::'],
    ['2001:db8::', '2001:db8::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ] as const) {
    assert.equal(formatAddress(parseAddress(input)), out, input);
  }
  assert.equal(formatEndpoint(parseAddress('::1'), 80), '[::1]:80');
  assert.equal(formatEndpoint(parseAddress('127.0.0.1'), 80), '127.0.0.1:80');
});

test('ranges are measured over 128 bits', () => {
  assert.deepEqual(parseRange('127.0.0.0/8').prefixLength, 104);
  assert.deepEqual(parseRange('::1/128').prefixLength, 128);
  assert.deepEqual(parseRange('198.18.0.1').prefixLength, 128);
  assert.throws(() => parseRange('127.0.0.0/33'), /prefix length/);
  assert.throws(() => parseRange('nonsense/8'), /not an IP/);
});
