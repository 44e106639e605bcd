/** `sockbypass bench`: on/off interleaved benchmarks in a cgroup of their own (src/bench/runner.ts). */
import { usage } from '../errors.js';
import { BenchAborted } from '../bench/env.js';
import { DEFAULT_PAIRS, DEFAULT_SECONDS, QUICK_PAIRS, QUICK_SECONDS } from '../bench/plan.js';
import { renderBenchReport, writeBenchOutputs } from '../bench/render.js';
import { runBench } from '../bench/runner.js';
import { QUICK_WORKLOADS, WORKLOADS } from '../bench/workloads.js';
import { KNOB_FLAG_LIST, KNOB_OPTIONS, KNOB_SYNOPSIS, parsePolicyFlags, parsePositiveInt } from './parse.js';
import { ALLOW_ALL } from '../core/policy.js';
import { str, toJson, type Command } from './command.js';

/** Exit codes of a run stopped by a signal, as a shell reports them. */
export const SIGNAL_EXIT: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };

export const benchCommand: Command = {
  name: 'bench',
  summary: 'measure throughput, latency, connection rate and packets on lo with the bypass on vs off',
  usage: `sockbypass bench [--quick] [--pairs N] [--seconds S] [--only LIST] [--out DIR] [--no-reference] [--json]
                 ${KNOB_SYNOPSIS}
  Runs each workload with the bypass on and off, interleaved in pairs (on-off, off-on, ...),
  in a cgroup and pin folder of its own (sockbypass-bench-<pid>), and removes both at the end,
  also on Ctrl-C. Runs that were not what they claim (on without redirection, off with
  sockbypass attached) are discarded and listed with the reason.
  --pairs N       on/off pairs per workload (default ${DEFAULT_PAIRS}; --quick: ${QUICK_PAIRS})
  --seconds S     seconds per run, whole (default ${DEFAULT_SECONDS}; --quick: ${QUICK_SECONDS})
  --quick         ${QUICK_WORKLOADS.join(', ')} only: under a minute
  --only LIST     comma-separated workloads, patterns (outside-veth-*, nat-*-rr), groups
                  (throughput, latency, connections, packets, outside, nat) or NAT patterns
                  (sidecar-outbound, sidecar-inbound, service):
                  ${WORKLOADS.map((w) => w.id).join(', ')}
  --out DIR       write DIR/bench.json (every run, summaries, discarded runs, machine facts),
                  DIR/bench.svg (on/off ratio chart) and DIR/bench.txt (the table)
  --no-reference  skip the AF_UNIX reference runs (sbload) and their same-tool TCP check
  --json          print the JSON report instead of the table
  ${KNOB_FLAG_LIST}
                  the policy every ON run loads with, as for \`load\` (default: load's defaults)
Progress goes to stderr. Exit 0 when every row has a valid pair, 1 when some row has none
or cleanup failed, 130/143 when interrupted (after cleaning up).`,
  options: {
    pairs: { type: 'string' },
    seconds: { type: 'string' },
    quick: { type: 'boolean' },
    only: { type: 'string' },
    out: { type: 'string' },
    'no-reference': { type: 'boolean' },
    ...KNOB_OPTIONS,
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  async run(values, positionals, out) {
    if (positionals.length > 0) throw usage(`bench takes no arguments, got ${JSON.stringify(positionals.join(' '))}`);
    const pairs = parsePositiveInt('pairs', str(values, 'pairs'), 100);
    const seconds = parsePositiveInt('seconds', str(values, 'seconds'), 3600);
    const onlyText = str(values, 'only');
    const only =
      onlyText === undefined
        ? undefined
        : onlyText
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
    if (only !== undefined && only.length === 0) throw usage('--only wants a comma-separated list of workloads');
    const outDir = str(values, 'out');
    const { policy, changed } = parsePolicyFlags(values, ALLOW_ALL);
    let report;
    try {
      report = await runBench({
        ...(pairs === undefined ? {} : { pairs }),
        ...(seconds === undefined ? {} : { seconds }),
        ...(only === undefined ? {} : { only }),
        quick: values.quick === true,
        references: values['no-reference'] !== true,
        ...(changed ? { policy } : {}),
        commandLine: ['sockbypass', 'bench', ...process.argv.slice(3)].join(' '),
      });
    } catch (err) {
      if (err instanceof BenchAborted) {
        process.stderr.write(
          `sockbypass bench: interrupted by ${err.reason}; its processes, pins and cgroup were removed\n`,
        );
        return SIGNAL_EXIT[err.reason] ?? 1;
      }
      if (err instanceof RangeError) throw usage(err.message);
      throw err;
    }
    out.write(out.json ? toJson(report, 2) + '\n' : renderBenchReport(report));
    if (outDir !== undefined) {
      const paths = await writeBenchOutputs(report, outDir);
      process.stderr.write(`wrote ${paths.json}, ${paths.svg} and ${paths.text}\n`);
    }
    const empty = report.summaries.filter((s) => s.ratioMedian === null);
    if (empty.length > 0) {
      process.stderr.write(
        `sockbypass bench: ${empty.length} row(s) without a valid on/off pair: ${[...new Set(empty.map((s) => s.workload))].join(', ')} (see "Discarded runs")\n`,
      );
    }
    return report.cleanupProblems.length > 0 || empty.length > 0 ? 1 : 0;
  },
};
