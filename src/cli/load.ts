import { load, DEFAULT_MAX_ENTRIES } from '../core/load.js';
import { ALLOW_ALL, formatPolicy } from '../core/policy.js';
import { COMMON, str, toJson, type Command, type Options } from './command.js';
import { parsePolicyFlags, parsePositiveInt, RULE_OPTIONS } from './parse.js';

/** The flags that shape a fresh load; `run` takes them too. */
export const LOAD_OPTIONS: Options = {
  cgroup: { type: 'string' },
  ports: { type: 'string' },
  ranges: { type: 'string' },
  ...RULE_OPTIONS,
  'max-entries': { type: 'string' },
  object: { type: 'string' },
};

export const loadCommand: Command = {
  name: 'load',
  summary: 'turn the bypass on for a cgroup (default: the whole cgroup2 hierarchy)',
  usage: `sockbypass load [--cgroup PATH] [--pin-dir DIR] [--ports P,P..] [--ranges CIDR,..]
                [--queue-limit B] [--small-write B] [--small-backlog B] [--short-messages N]
                [--max-entries N]
                [--object FILE] [--replace] [--json]
  --cgroup PATH     cgroup v2 directory (absolute, or relative to the cgroup2 mount)
  --ports P,...     accelerate only connections with one of these ports (default: all)
  --ranges CIDR,... accelerate only connections whose two addresses are in these ranges
  --queue-limit B   bytes a receiver without its own SO_RCVBUF may have queued before
                    its sender goes by TCP until it catches up (default 0: tcp_rmem[2])
  --small-write B   a sender whose writes so far average under B bytes goes by TCP for
                    good (default 0: off; 4096 suits streams of tiny writes)...
  --small-backlog B   ...once over B bytes (default 65536) wait at its receiver
  --short-messages N  new connections to a service (server address and port) whose recent
                    sockets sent under N messages each on average stay on TCP (default 2; 0: off)
  --max-entries N   sockhash capacity in sockets, two per connection (default ${DEFAULT_MAX_ENTRIES})
  --replace         swap new programs into a running load, keeping its maps and connections`,
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
        out.write(`sockbypass loaded: cgroup ${result.cgroup}, pins in ${result.pinDir}, ${ids}; ${formatPolicy(policy)}\n`);
        break;
      case 'already-loaded':
        out.write(`sockbypass is already loaded: cgroup ${result.cgroup}, pins in ${result.pinDir}, ${ids}. Nothing changed.\n`);
        break;
      case 'replaced':
        out.write(`sockbypass programs replaced in place: cgroup ${result.cgroup}, ${ids}; maps and live connections kept\n`);
        break;
    }
    return 0;
  },
};
