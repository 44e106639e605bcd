import { load, DEFAULT_MAX_ENTRIES } from '../core/load.js';
import { ALLOW_ALL, formatPolicy } from '../core/policy.js';
import { COMMON, str, toJson, type Command, type Options } from './command.js';
import { KNOB_OPTIONS, KNOB_SYNOPSIS, knobUsage, parsePolicyFlags, parsePositiveInt } from './parse.js';

/** The flags that shape a fresh load; `run` takes them too. */
export const LOAD_OPTIONS: Options = {
  cgroup: { type: 'string' },
  ports: { type: 'string' },
  ranges: { type: 'string' },
  ...KNOB_OPTIONS,
  'max-entries': { type: 'string' },
  object: { type: 'string' },
};

export const loadCommand: Command = {
  name: 'load',
  summary: 'turn the bypass on for a cgroup (default: the whole cgroup2 hierarchy)',
  usage: `sockbypass load [--cgroup PATH] [--pin-dir DIR] [--ports P,P..] [--ranges CIDR,..]
                ${KNOB_SYNOPSIS}
                [--max-entries N]
                [--object FILE] [--replace] [--json]
  --cgroup PATH       cgroup v2 directory (absolute, or relative to the cgroup2 mount)
  --ports P,...       accelerate only connections with one of these ports (default: all)
  --ranges CIDR,...   accelerate only connections whose two addresses are in these ranges
${knobUsage(22)}
  --max-entries N     sockhash capacity in sockets, two per connection (default ${DEFAULT_MAX_ENTRIES})
  --replace           swap new programs into a running load, keeping its maps and connections`,
  options: { ...COMMON, ...LOAD_OPTIONS, replace: { type: 'boolean' } },
  run(values, _pos, out) {
    const { policy } = parsePolicyFlags(values, ALLOW_ALL);
    const maxEntries = parsePositiveInt('max-entries', str(values, 'max-entries'));
    const result = load({
      cgroup: str(values, 'cgroup'),
      pinDir: str(values, 'pin-dir'),
      objectPath: str(values, 'object'),
      replace: values.replace === true,
      maxEntries,
      policy,
    });
    if (out.json) {
      out.write(toJson(result) + '\n');
      return 0;
    }
    const ids = `programs ${result.programIds.sockOps} (sock_ops), ${result.programIds.skMsg} (sk_msg)`;
    switch (result.outcome) {
      case 'loaded':
        out.write(
          `sockbypass loaded: cgroup ${result.cgroup}, pins in ${result.pinDir}, ${ids}; ${formatPolicy(policy)}\n`,
        );
        break;
      case 'already-loaded':
        out.write(
          `sockbypass is already loaded: cgroup ${result.cgroup}, pins in ${result.pinDir}, ${ids}. Nothing changed.\n`,
        );
        break;
      case 'replaced':
        out.write(
          `sockbypass programs replaced in place: cgroup ${result.cgroup}, ${ids}; maps and live connections kept\n`,
        );
        break;
    }
    return 0;
  },
};
