/**
 * The trust suite's closing line: connections, bytes verified, faults
 * injected and failures over every trust-*.test.ts file of this run. Each
 * file saves its tally (test/support/trust.ts); this file runs after them
 * (the suite runs files one at a time, in name order). Run without them, or
 * before them, it has nothing to add up, and fails rather than pass on nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tallyDir, trustFilesOfRun } from './support/trust.js';
import { requirePrivileged } from './support/privileged.js';

interface Saved {
  file: string;
  connections: number;
  bytesVerified: number;
  faults: number;
  failures: number;
  failedTests: string[];
}

test('trust suite summary', (t) => {
  const dir = tallyDir();
  const expected = trustFilesOfRun(dirname(fileURLToPath(import.meta.url)));
  const saved: Saved[] = existsSync(dir)
    ? readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Saved)
    : [];
  rmSync(dir, { recursive: true, force: true });

  assert.ok(
    expected.length > 0,
    'this run has no trust-*.test.js file to summarize: run the summary after them (node --test dist/test/trust-*.test.js)',
  );
  const tallied = new Set(saved.map((s) => `${s.file}.test.js`));
  assert.deepEqual(
    expected.filter((f) => !tallied.has(f)),
    [],
    'every trust file of this run leaves its tally; one that crashed, or ran after the summary, left none',
  );

  const sum = (k: 'connections' | 'bytesVerified' | 'faults' | 'failures') => saved.reduce((a, s) => a + s[k], 0);
  const failedTests = saved.flatMap((s) => s.failedTests.map((n) => `${s.file}: ${n}`));
  t.diagnostic(
    `trust suite summary (${saved.length} files): connections ${sum('connections')}, bytes verified ${sum('bytesVerified')} ` +
      `(${(sum('bytesVerified') / 2 ** 30).toFixed(2)} GiB), faults injected ${sum('faults')}, failures ${sum('failures')}, ` +
      `failed tests ${failedTests.length}`,
  );
  if (sum('connections') === 0) {
    // The trust files' privileged tests skipped (or fail under CI): there is nothing the summary could vouch for.
    if (!requirePrivileged(t)) return;
    assert.fail('the trust files of this run checked no connection');
  }
  assert.equal(sum('failures'), 0, 'no connection of any trust test lost, corrupted or reordered a byte');
  assert.deepEqual(failedTests, []);
});
