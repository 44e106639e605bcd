/**
 * Indistinguishable from TCP, except by speed: every case of build/conform
 * runs over plain TCP (a cgroup with nothing loaded) and over the bypass (a
 * cgroup with sockbypass loaded, where the case must really have been
 * redirected: the counters show its sockets inserted and its messages
 * redirected). What the application observed must be identical, or be exactly
 * a row of the documented differences (test/support/conform-differences.ts,
 * docs/conformance.md). Ends with one line: cases, identical, documented
 * differences, failures. CONFORM_ONLY=case,case runs only those cases.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requirePrivileged } from './support/privileged.js';
import { Sandbox } from './support/sandbox.js';
import { counters, delta, requireTool } from './support/trust.js';
import {
  CONFORM,
  differences,
  formatDifferences,
  listCases,
  runCase,
  type FieldDifference,
} from './support/conform.js';
import { DOCUMENTED_DIFFERENCES, type DocumentedDifference } from './support/conform-differences.js';
import { load } from '../src/core/load.js';

type Verdict = 'identical' | 'documented' | 'failure';

function asFields(doc: DocumentedDifference): FieldDifference[] {
  return Object.entries(doc.fields).map(([field, v]) => ({ field, plain: v.plain, bypass: v.bypass }));
}

function sortFields(diffs: FieldDifference[]): FieldDifference[] {
  return [...diffs].sort((a, b) => a.field.localeCompare(b.field));
}

test('the documented differences name only cases that exist, once each', (t) => {
  if (!requirePrivileged(t)) return;
  requireTool(CONFORM);
  const names = new Set(listCases());
  const documented = DOCUMENTED_DIFFERENCES.map((d) => d.case);
  assert.deepEqual(
    documented.filter((c) => !names.has(c)),
    [],
    'rows for cases conform does not have',
  );
  assert.equal(new Set(documented).size, documented.length, 'one row per case');
  for (const d of DOCUMENTED_DIFFERENCES)
    assert.ok(Object.keys(d.fields).length > 0, `${d.case}: a row lists what differs`);
});

test('an application sees the same thing over the bypass as over TCP (conformance)', async (t) => {
  if (!requirePrivileged(t)) return;
  requireTool(CONFORM);
  const plain = new Sandbox('conform-plain');
  const bypass = new Sandbox('conform-bypass');
  const verdicts = new Map<string, Verdict>();
  try {
    // Short connections join the sockhash too (shortMessages 0): every case must be redirected.
    load({ cgroup: bypass.cgroup, pinDir: bypass.pinDir, policy: { ports: null, ranges: null, shortMessages: 0 } });
    const only = process.env.CONFORM_ONLY?.split(',').filter((c) => c !== '');
    for (const name of listCases().filter((c) => !only || only.includes(c))) {
      await t.test(name, async () => {
        verdicts.set(name, 'failure');
        const reference = await runCase(plain, name);
        const before = counters(bypass);
        const observed = await runCase(bypass, name);
        const d = delta(before, counters(bypass));
        // Not accelerated, not compared: the case would prove nothing about the bypass.
        assert.ok(d.socketsInserted >= 2, `${name}: ${d.socketsInserted} sockets joined the sockhash`);
        assert.ok(d.messagesRedirected > 0, `${name}: no message was redirected`);
        const found = differences(reference, observed);
        const doc = DOCUMENTED_DIFFERENCES.find((r) => r.case === name);
        if (!doc) {
          assert.deepEqual(found, [], `${name} differs from TCP: ${formatDifferences(found)}`);
          verdicts.set(name, 'identical');
          return;
        }
        assert.notEqual(
          found.length,
          0,
          `${name}: the documented difference is gone (fixed?): remove its row from the table and docs/conformance.md`,
        );
        assert.deepEqual(
          sortFields(found),
          sortFields(asFields(doc)),
          `${name}: differs from TCP other than documented: ${formatDifferences(found)}`,
        );
        verdicts.set(name, 'documented');
      });
    }
  } finally {
    await plain.cleanup();
    await bypass.cleanup();
  }
  const count = (v: Verdict): number => [...verdicts.values()].filter((x) => x === v).length;
  t.diagnostic(
    `conformance: ${verdicts.size} cases, ${count('identical')} identical, ${count('documented')} documented differences, ${count('failure')} failures`,
  );
});
