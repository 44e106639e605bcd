/**
 * Gate for tests that load BPF for real. Without root/CAP_BPF they skip
 * locally, but under CI=true they fail: CI must never pass by skipping.
 */
import type { TestContext } from 'node:test';
import { existsSync } from 'node:fs';
import { hasCapability } from '../../src/os/preflight.js';
import { DEFAULT_OBJECT } from '../../src/core/paths.js';

export function privilegedUnavailable(): string | undefined {
  if (!hasCapability(39) && !hasCapability(21)) return 'needs root (CAP_BPF or CAP_SYS_ADMIN)';
  if (!hasCapability(12)) return 'needs CAP_NET_ADMIN';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'needs kernel BTF';
  if (!existsSync(DEFAULT_OBJECT)) return `needs ${DEFAULT_OBJECT}: run make`;
  return undefined;
}

/** Call first in every privileged test. Returns false when the test must stop (skipped). */
export function requirePrivileged(t: TestContext): boolean {
  const why = privilegedUnavailable();
  if (!why) return true;
  if (process.env.CI === 'true') throw new Error(`privileged test cannot run under CI=true: ${why}`);
  t.skip(why);
  return false;
}

/**
 * Gate for tests that need programs besides the kernel (iperf3, haproxy, …):
 * `missing` names those not found. Under CI=true a missing one fails the test
 * (with `fix`, how to get it); locally the test skips.
 */
export function requireTools(t: TestContext, missing: readonly string[], fix: string): boolean {
  if (missing.length === 0) return true;
  if (process.env.CI === 'true') throw new Error(`${missing.join(', ')} missing (${fix})`);
  t.skip(`needs ${missing.join(', ')}`);
  return false;
}
