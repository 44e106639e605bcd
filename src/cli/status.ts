import { status } from '../core/status.js';
import { COUNTERS, readCounters, type CounterName, type CounterSpec, type Counters } from '../core/counters.js';
import { formatPolicy } from '../core/policy.js';
import { COMMON, str, toJson, type Command, type Output } from './command.js';
import { DEFAULT_PIN_DIR } from '../os/bpffs.js';
import { pinState } from '../core/pins.js';
import { PinnedState } from '../core/state.js';
import { usage } from '../errors.js';
import { stopSignal, timeOfDay } from './live.js';

/** Width of the label column of `status` and `status --watch` (the longest counter label, and room). */
const LABEL = 26;

/** One line per counter of the table, as `status` prints them. */
export function formatCounters(c: Counters): string {
  return COUNTERS.map(({ name, label }) => `  ${label.padEnd(LABEL)}${c[name]}`).join('\n');
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'whether the bypass is on, where, its policy, map fill and counters',
  usage: `sockbypass status [--pin-dir DIR] [--json] [--watch [--interval S]]
  --watch       refresh the counters with per-second rates until Ctrl-C
  --interval S  seconds between refreshes (default 1; fractions allowed)`,
  options: { ...COMMON, watch: { type: 'boolean' }, interval: { type: 'string' } },
  run(values, _pos, out) {
    if (values.watch === true)
      return watchStatus(str(values, 'pin-dir') ?? DEFAULT_PIN_DIR, parseInterval(str(values, 'interval')), out);
    if (values.interval !== undefined) throw usage('--interval needs --watch');
    const s = status({ pinDir: str(values, 'pin-dir') });
    if (out.json) {
      out.write(toJson(s, 2) + '\n');
      return 0;
    }
    if (!s.loaded) {
      out.write(`sockbypass is not loaded (pin folder ${s.pinDir})\n`);
      return 0;
    }
    const p = s.programs;
    out.write(
      [
        `sockbypass is loaded`,
        ...[
          ['cgroup', s.cgroup],
          ['pins', s.pinDir],
          ['programs', `sock_ops id ${p?.sockOps.id}, sk_msg id ${p?.skMsg.id}`],
          ['policy', s.policy ? formatPolicy(s.policy) : '?'],
          ['sockhash', `${s.map?.entries} of ${s.map?.maxEntries} entries`],
        ].map(([label, value]) => `  ${String(label).padEnd(LABEL)}${value}`),
        formatCounters(s.counters),
      ].join('\n') + '\n',
    );
    return 0;
  },
};

function parseInterval(text: string | undefined): number {
  if (text === undefined) return 1;
  const n = Number(text);
  if (!/^\d*\.?\d+$/.test(text) || !(n >= 0.05) || n > 3600) {
    throw usage(`--interval wants seconds between 0.05 and 3600, got ${JSON.stringify(text)}`);
  }
  return n;
}

type Rates = Record<keyof Counters, number>;

/** One refresh of status --watch, as text. */
export function formatWatch(
  c: Counters,
  rates: Rates | undefined,
  map: { entries: number; maxEntries: number },
  when: Date,
  intervalS: number,
): string {
  // A gauge goes up and down: its rate would say nothing.
  const rate = (row: CounterSpec) =>
    rates && row.kind === 'counter' ? rates[row.name as CounterName].toFixed(1) : '-';
  const lines = [
    `sockbypass at ${timeOfDay(when)}, every ${intervalS} s (Ctrl-C to stop)`,
    `  ${'sockhash'.padEnd(LABEL)}${map.entries} of ${map.maxEntries} entries`,
    `  ${'counter'.padEnd(LABEL)}${'total'.padStart(16)}${'per second'.padStart(14)}`,
    ...COUNTERS.map(
      (row) => `  ${row.label.padEnd(LABEL)}${String(c[row.name]).padStart(16)}${rate(row).padStart(14)}`,
    ),
  ];
  return lines.join('\n') + '\n';
}

async function watchStatus(pinDir: string, intervalS: number, out: Output): Promise<number> {
  const state = PinnedState.open(pinDir);
  const signal = stopSignal();
  const tty = process.stdout.isTTY === true && !out.json;
  let prev: { c: Counters; at: bigint } | undefined;
  try {
    for (;;) {
      if (pinState(pinDir) !== 'complete') {
        out.write(
          out.json
            ? toJson({ time: new Date().toISOString(), loaded: false }) + '\n'
            : `sockbypass was unloaded from ${pinDir}\n`,
        );
        return 0;
      }
      const at = process.hrtime.bigint();
      const c = readCounters(state);
      const map = { entries: state.maps.sock_hash.count(), maxEntries: state.maps.sock_hash.info.maxEntries };
      let rates: Rates | undefined;
      if (prev) {
        const dt = Number(at - prev.at) / 1e9;
        const p = prev.c;
        rates = Object.fromEntries(
          (Object.keys(c) as Array<keyof Counters>).map((k) => [k, dt > 0 ? (c[k] - p[k]) / dt : 0]),
        ) as Rates;
      }
      prev = { c, at };
      const now = new Date();
      if (out.json)
        out.write(toJson({ time: now.toISOString(), loaded: true, map, counters: c, rates: rates ?? null }) + '\n');
      else out.write((tty ? '\x1b[H\x1b[2J' : prev && rates ? '\n' : '') + formatWatch(c, rates, map, now, intervalS));
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([
        signal.stopped.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), intervalS * 1000))),
      ]);
      clearTimeout(timer);
      if (stopped) return 0;
    }
  } finally {
    signal.dispose();
    state.close();
  }
}
