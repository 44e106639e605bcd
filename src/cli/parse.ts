/** Parsing of flag values shared by several commands; each failure is a usage error. */
import { usage } from '../errors.js';
import type { Policy } from '../core/policy.js';
import { validatePolicy } from '../core/policy.js';
import type { Options } from './command.js';

/** The data plane's rule settings, flags of load, policy, run and bench: [flag, Policy field, unit, what 0 means]. */
const RULE_FLAGS = [
  ['queue-limit', 'queueLimit', 'a byte count', 'tcp_rmem[2]'],
  ['small-write', 'smallWrite', 'a byte count', 'off'],
  ['small-backlog', 'smallBacklog', 'a byte count', 'any backlog'],
  ['short-messages', 'shortMessages', 'a message count', 'off'],
] as const;

export const RULE_OPTIONS: Options = Object.fromEntries(RULE_FLAGS.map(([flag]) => [flag, { type: 'string' as const }]));

export function parsePositiveInt(name: string, text: string | undefined, max = 2 ** 31 - 1): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw usage(`--${name} wants a whole number, got ${JSON.stringify(text)}`);
  const n = Number(text);
  if (n < 1 || n > max) throw usage(`--${name} must be between 1 and ${max}, got ${n}`);
  return n;
}

export function parsePorts(text: string): number[] {
  if (text.trim() === '') throw usage('--ports wants a comma-separated list of ports, got an empty value');
  const ports = text.split(',').map((p) => p.trim());
  return ports.map((p) => {
    if (!/^\d+$/.test(p)) throw usage(`--ports wants a comma-separated list of ports, got ${JSON.stringify(p)}`);
    return Number(p);
  });
}

/** Policy from --ports/--ranges/--all-ports/--all-ranges; undefined parts stay as they are. */
export function parsePolicyFlags(
  values: Record<string, unknown>,
  current: Policy,
): { policy: Policy; changed: boolean } {
  const policy: Policy = { ...current };
  let changed = false;
  if (typeof values.ports === 'string' && values['all-ports'] === true) throw usage('--ports and --all-ports contradict each other');
  if (typeof values.ranges === 'string' && values['all-ranges'] === true) throw usage('--ranges and --all-ranges contradict each other');
  if (typeof values.ports === 'string') {
    policy.ports = parsePorts(values.ports);
    changed = true;
  }
  if (values['all-ports'] === true) {
    policy.ports = null;
    changed = true;
  }
  if (typeof values.ranges === 'string') {
    if (values.ranges.trim() === '') throw usage('--ranges wants a comma-separated list of CIDR ranges, got an empty value');
    policy.ranges = values.ranges.split(',').map((r) => r.trim());
    changed = true;
  }
  if (values['all-ranges'] === true) {
    policy.ranges = null;
    changed = true;
  }
  for (const [flag, field, unit, zero] of RULE_FLAGS) {
    const text = values[flag];
    if (typeof text !== 'string') continue;
    if (!/^\d+$/.test(text)) throw usage(`--${flag} wants ${unit} (0: ${zero}), got ${JSON.stringify(text)}`);
    policy[field] = Number(text);
    changed = true;
  }
  validatePolicy(policy);
  return { policy, changed };
}
