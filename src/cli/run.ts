import { ALLOW_ALL, formatPolicy } from '../core/policy.js';
import { DEFAULT_METRICS_ADDR, startAgent } from '../observe/run.js';
import { COMMON, str, type Command } from './command.js';
import { stopSignal } from './live.js';
import { KNOB_SYNOPSIS, parsePolicyFlags, parsePositiveInt } from './parse.js';
import { eventPrinter } from './trace.js';
import { LOAD_OPTIONS } from './load.js';

export const runCommand: Command = {
  name: 'run',
  summary: 'foreground agent: load (or adopt a load), serve Prometheus metrics, unload on exit',
  usage: `sockbypass run [--cgroup PATH] [--pin-dir DIR] [--ports P,P..] [--ranges CIDR,..]
               ${KNOB_SYNOPSIS}
               [--max-entries N] [--object FILE] [--metrics-addr HOST:PORT]
               [--log-events [--json] [--no-owners]] [--keep]
  Loads like \`sockbypass load\` (or adopts a load already pinned at --pin-dir),
  serves http://HOST:PORT/metrics (Prometheus) and /healthz, and runs until
  SIGINT/SIGTERM. Then it unloads what it loaded and exits 0; an adopted load
  is always left in place.
  --metrics-addr HOST:PORT  where to serve (default ${DEFAULT_METRICS_ADDR}; IPv6 as [ADDR]:PORT)
  --log-events              print the data plane's events to stdout, like \`sockbypass trace\`
  --json                    with --log-events: one JSON object per line
  --no-owners               with --log-events: no owner lookups (sock_diag, /proc)
  --keep                    leave the load in place on exit`,
  options: {
    ...COMMON,
    ...LOAD_OPTIONS,
    'metrics-addr': { type: 'string' },
    'log-events': { type: 'boolean' },
    'no-owners': { type: 'boolean' },
    keep: { type: 'boolean' },
  },
  async run(values, _pos, out) {
    const { policy } = parsePolicyFlags(values, ALLOW_ALL);
    const maxEntries = parsePositiveInt('max-entries', str(values, 'max-entries'));
    const log = (line: string) => process.stderr.write(`sockbypass run: ${line}\n`);
    const printer =
      values['log-events'] === true
        ? eventPrinter(out.write, { json: out.json, owners: values['no-owners'] !== true })
        : undefined;
    const signal = stopSignal();
    let agent;
    try {
      agent = await startAgent({
        cgroup: str(values, 'cgroup'),
        pinDir: str(values, 'pin-dir'),
        objectPath: str(values, 'object'),
        maxEntries,
        policy,
        metricsAddr: str(values, 'metrics-addr'),
        keep: values.keep === true,
        ...(printer ? { onEvent: printer.onEvent, onLost: printer.onLost } : {}),
        onError(err) {
          log(`reading events failed: ${String(err)}`);
        },
      });
    } catch (err) {
      signal.dispose();
      throw err;
    }
    const l = agent.load;
    if (agent.loadedByUs) log(`loaded: cgroup ${l.cgroup}, pins in ${l.pinDir}; ${formatPolicy(policy)}`);
    else
      log(
        `adopted the load already pinned in ${l.pinDir} (cgroup ${l.cgroup}); it stays loaded on exit, and load flags were not applied`,
      );
    log(`serving ${agent.metrics.url} and /healthz; SIGINT/SIGTERM to stop`);
    const why = await signal.stopped;
    const result = await agent.stop();
    if (result.unloaded)
      log(
        `${why}: unloaded (${result.unloaded.acceleratedConnections} connection(s) stay accelerated until they close)`,
      );
    else
      log(
        `${why}: left loaded in ${agent.pinDir} (${result.kept === 'keep' ? '--keep' : 'adopted, not ours to unload'})`,
      );
    return 0;
  },
};
