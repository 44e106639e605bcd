/** `sockbypass demo`: the README's main job (src/demo.ts). */
import { usage } from '../errors.js';
import { BenchAborted } from '../bench/env.js';
import { DEMO_PAIRS, DEMO_SECONDS, runDemo } from '../demo.js';
import { parsePositiveInt } from './parse.js';
import { SIGNAL_EXIT } from './bench.js';
import { str, toJson, type Command } from './command.js';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'show the bypass at work: packets on lo, throughput and latency, on vs off (under two minutes)',
  usage: `sockbypass demo [--pairs N] [--seconds S] [--json]
  Loads sockbypass into a cgroup of its own, counts TCP packets on lo during an iperf3 transfer
  with the bypass off and on, measures throughput (iperf3) and latency (sockperf) on vs off,
  unloads, and prints a short table. Needs root, iperf3, sockperf and tcpdump (scripts/demo.sh
  installs and builds everything, then runs this).
  --pairs N     on/off runs of each measurement (default ${DEMO_PAIRS})
  --seconds S   seconds per run (default ${DEMO_SECONDS})
  --json        print the bench JSON report after the table`,
  options: {
    pairs: { type: 'string' },
    seconds: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  async run(values, positionals, out) {
    if (positionals.length > 0) throw usage(`demo takes no arguments, got ${JSON.stringify(positionals.join(' '))}`);
    const pairs = parsePositiveInt('pairs', str(values, 'pairs'), 20);
    const seconds = parsePositiveInt('seconds', str(values, 'seconds'), 60);
    try {
      const { report } = await runDemo({
        write: (t) => out.write(t),
        ...(pairs === undefined ? {} : { pairs }),
        ...(seconds === undefined ? {} : { seconds }),
      });
      if (out.json) out.write(toJson(report, 2) + '\n');
      return report.cleanupProblems.length > 0 ? 1 : 0;
    } catch (err) {
      if (err instanceof BenchAborted) {
        process.stderr.write(
          `sockbypass demo: interrupted by ${err.reason}; its processes, pins and cgroup were removed\n`,
        );
        return SIGNAL_EXIT[err.reason] ?? 1;
      }
      throw err;
    }
  },
};
