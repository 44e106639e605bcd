/**
 * The trust suite's closing line: connections, bytes verified, faults
 * injected and failures over every trust-*.test.ts file of this run. Each
 * file saves its tally (test/support/trust.ts); this file runs after them
 * (the suite runs files one at a time, in name order).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tallyDir } from './support/trust.js';

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
  const saved: Saved[] = existsSync(dir)
    ? readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Saved)
    : [];
  rmSync(dir, { recursive: true, force: true });
  if (saved.length === 0) {
    // Run on its own, without the trust files: nothing to add up.
    t.diagnostic('trust suite summary: no trust-*.test.ts file ran in this run');
    return;
  }
  const sum = (k: 'connections' | 'bytesVerified' | 'faults' | 'failures') => saved.reduce((a, s) => a + s[k], 0);
  const failedTests = saved.flatMap((s) => s.failedTests.map((n) => `${s.file}: ${n}`));
  t.diagnostic(
    `trust suite summary (${saved.length} files): connections ${sum('connections')}, bytes verified ${sum('bytesVerified')} ` +
      `(${(sum('bytesVerified') / 2 ** 30).toFixed(2)} GiB), faults injected ${sum('faults')}, failures ${sum('failures')}, ` +
      `failed tests ${failedTests.length}`,
  );
  assert.equal(sum('failures'), 0, 'no connection of any trust test lost, corrupted or reordered a byte');
  assert.deepEqual(failedTests, []);
});
