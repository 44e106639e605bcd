/** Helpers for tests that start `sockbypass run` as its own process and talk to it over HTTP. */
import assert from 'node:assert/strict';
import type { Started } from './sandbox.js';

/** Wait until GET url answers 200; fails with the agent's stderr if it never does or exits. */
export async function waitHealthy(proc: Started, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && proc.child.exitCode === null && proc.child.signalCode === null) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`agent never answered 200 on ${url}:\n${proc.stderr()}`);
}

/** SIGTERM the agent and wait for it to exit; returns its exit code. */
export async function terminate(proc: Started, timeoutMs = 15_000): Promise<number | null> {
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs);
  try {
    const done = await proc.done;
    assert.equal(done.signal, null, `agent did not exit on SIGTERM within ${timeoutMs} ms:\n${done.stderr}`);
    return done.code;
  } finally {
    clearTimeout(timer);
  }
}
