/**
 * The pin folder against the compiled object: the maps and programs user
 * space names exist in it, a load pins every map the object has, and a map
 * the data plane gains is pinned by `load --replace` and reused by the next.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, BpfObject } from '../src/libbpf/index.js';
import { BUILD_DIR, DEFAULT_OBJECT } from '../src/core/paths.js';
import { LINK_NAMES, MAP_NAMES, PROGRAMS } from '../src/core/pins.js';
import { load } from '../src/core/load.js';
import { unload } from '../src/core/unload.js';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox } from './support/sandbox.js';

const EXTRA_OBJECT = join(BUILD_DIR, 'test-extra-map.bpf.o');

function namesIn(path: string): { maps: string[]; programs: string[] } {
  const obj = BpfObject.open(path);
  try {
    return { maps: obj.mapNames(), programs: obj.programNames() };
  } finally {
    obj.close();
  }
}

test('the object has every map user space opens by name, and exactly the programs it attaches', () => {
  const { maps, programs } = namesIn(DEFAULT_OBJECT);
  for (const name of MAP_NAMES) assert.ok(maps.includes(name), `map ${name} in ${maps.join(', ')}`);
  assert.deepEqual([...programs].sort(), Object.values(PROGRAMS).sort());
  // libbpf's internal maps (.rodata, .bss, ...) are not the object's own and are never pinned.
  assert.ok(
    maps.every((m) => !m.startsWith('.') && !m.includes('.')),
    maps.join(', '),
  );
});

test('the test object is the shipped one plus the map extra_probe', () => {
  const shipped = namesIn(DEFAULT_OBJECT).maps;
  assert.deepEqual(namesIn(EXTRA_OBJECT).maps.sort(), [...shipped, 'extra_probe'].sort());
});

test('a load pins every map of its object; a map added to the data plane is pinned by --replace and reused by the next', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('pins-extra-map', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
    const shipped = namesIn(DEFAULT_OBJECT).maps;
    assert.deepEqual(readdirSync(sb.pinDir).sort(), [...shipped, ...LINK_NAMES].sort());

    // The running load has no extra_probe: --replace creates it and pins it.
    assert.equal(
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir, objectPath: EXTRA_OBJECT, replace: true }).outcome,
      'replaced',
    );
    const extraPin = join(sb.pinDir, 'extra_probe');
    assert.ok(existsSync(extraPin), 'extra_probe pinned by --replace');
    const first = BpfMap.openPinned(extraPin);
    const firstId = first.info.id;
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(0x5eed5eedn);
    first.update(Buffer.alloc(4), value);
    first.close();
    const sockHashId = () => {
      const m = BpfMap.openPinned(join(sb.pinDir, 'sock_hash'));
      try {
        return m.info.id;
      } finally {
        m.close();
      }
    };
    const sockHashBefore = sockHashId();

    // The next --replace reuses it: same kernel map, same contents; the other maps are kept too.
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir, objectPath: EXTRA_OBJECT, replace: true });
    const again = BpfMap.openPinned(extraPin);
    try {
      assert.equal(again.info.id, firstId, 'the same map, not a new one');
      assert.equal(again.lookup(Buffer.alloc(4))?.readBigUInt64LE(0), 0x5eed5eedn);
    } finally {
      again.close();
    }
    assert.equal(sockHashId(), sockHashBefore);

    // Unload removes every map pin, the one added by --replace included.
    assert.equal(unload({ pinDir: sb.pinDir }).outcome, 'unloaded');
    assert.equal(existsSync(sb.pinDir), false);
  });
});

test('a fresh load of an object with a new map pins it, and unload removes it', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('pins-extra-fresh', async (sb) => {
    load({ cgroup: sb.cgroup, pinDir: sb.pinDir, objectPath: EXTRA_OBJECT });
    assert.ok(existsSync(join(sb.pinDir, 'extra_probe')));
    assert.equal(unload({ pinDir: sb.pinDir }).outcome, 'unloaded');
    assert.equal(existsSync(sb.pinDir), false);
  });
});
