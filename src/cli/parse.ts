/** Parsing of flag values shared by several commands; each failure is a usage error. */
import { usage } from '../errors.js';
import type { Policy } from '../core/policy.js';
import { validatePolicy } from '../core/policy.js';
import { KNOBS, type KnobSpec } from '../core/knobs.js';
import type { Options } from './command.js';

/** The knobs' flags (core/knobs.ts), taken by load, policy, run and bench. */
export const KNOB_OPTIONS: Options = Object.fromEntries(KNOBS.map(({ flag }) => [flag, { type: 'string' as const }]));

const metavar = (knob: KnobSpec) => (knob.unit === 'bytes' ? 'B' : 'N');

/** "[--queue-limit B] [--small-write B] ...", for a usage synopsis. */
export const KNOB_SYNOPSIS = KNOBS.map((k) => `[--${k.flag} ${metavar(k)}]`).join(' ');

/** "--queue-limit, --small-write, ...". */
export const KNOB_FLAG_LIST = KNOBS.map((k) => `--${k.flag}`).join(', ');

function amount(value: number, unit: KnobSpec['unit']): string {
  const MiB = 1024 * 1024;
  return unit === 'bytes' && value >= MiB && value % MiB === 0 ? `${value / MiB} MiB` : String(value);
}

/** Word-wrap `text` to `width` columns, every line after the first indented by `indent`. */
function wrap(text: string, indent: number, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** One usage entry per knob: flag, what it does, its default and what 0 means; `column` is where the text starts. */
export function knobUsage(column: number, width = 92): string {
  return KNOBS.map((k) => {
    const head = `  --${k.flag} ${metavar(k)}`.padEnd(column);
    const zero = k.default === 0 ? `default 0: ${k.zero}` : `default ${amount(k.default, k.unit)}; 0: ${k.zero}`;
    return head + wrap(`${k.help} (${zero})`, column, width);
  }).join('\n');
}

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

/**
 * Policy from --ports/--ranges/--all-ports/--all-ranges and the knobs' flags;
 * undefined parts stay as they are. The result is validated here, at the
 * edge, so a command fails before it does any work.
 */
export function parsePolicyFlags(
  values: Record<string, unknown>,
  current: Policy,
): { policy: Policy; changed: boolean } {
  const policy: Policy = { ...current };
  let changed = false;
  if (typeof values.ports === 'string' && values['all-ports'] === true)
    throw usage('--ports and --all-ports contradict each other');
  if (typeof values.ranges === 'string' && values['all-ranges'] === true)
    throw usage('--ranges and --all-ranges contradict each other');
  if (typeof values.ports === 'string') {
    policy.ports = parsePorts(values.ports);
    changed = true;
  }
  if (values['all-ports'] === true) {
    policy.ports = null;
    changed = true;
  }
  if (typeof values.ranges === 'string') {
    if (values.ranges.trim() === '')
      throw usage('--ranges wants a comma-separated list of CIDR ranges, got an empty value');
    policy.ranges = values.ranges.split(',').map((r) => r.trim());
    changed = true;
  }
  if (values['all-ranges'] === true) {
    policy.ranges = null;
    changed = true;
  }
  for (const knob of KNOBS) {
    const text = values[knob.flag];
    if (typeof text !== 'string') continue;
    if (!/^\d+$/.test(text)) {
      throw usage(`--${knob.flag} wants a whole number of ${knob.unit} (0: ${knob.zero}), got ${JSON.stringify(text)}`);
    }
    policy[knob.field] = Number(text);
    changed = true;
  }
  validatePolicy(policy);
  return { policy, changed };
}
