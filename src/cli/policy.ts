import { DEFAULT_PIN_DIR } from '../os/bpffs.js';
import { checkPrivileges } from '../os/preflight.js';
import { formatPolicy, readPolicy, writePolicy } from '../core/policy.js';
import { withPinnedState } from '../core/state.js';
import { COMMON, str, toJson, type Command } from './command.js';
import { KNOB_OPTIONS, KNOB_SYNOPSIS, parsePolicyFlags } from './parse.js';

export const policyCommand: Command = {
  name: 'policy',
  summary: 'show or change which connections are accelerated, at runtime (new connections only)',
  usage: `sockbypass policy [--ports P,P.. | --all-ports] [--ranges CIDR,.. | --all-ranges]
                  ${KNOB_SYNOPSIS}
                  [--pin-dir DIR] [--json]
  with no flags it prints the policy in force; the flags are load's (sockbypass load --help)`,
  options: {
    ...COMMON,
    ports: { type: 'string' },
    ranges: { type: 'string' },
    ...KNOB_OPTIONS,
    'all-ports': { type: 'boolean' },
    'all-ranges': { type: 'boolean' },
  },
  run(values, _pos, out) {
    checkPrivileges('change the sockbypass policy');
    const pinDir = str(values, 'pin-dir') ?? DEFAULT_PIN_DIR;
    const policy = withPinnedState(pinDir, (state) => {
      const { policy: next, changed } = parsePolicyFlags(values, readPolicy(state.maps));
      if (changed) writePolicy(state.maps, next);
      return readPolicy(state.maps);
    });
    out.write(out.json ? toJson(policy) + '\n' : `policy: ${formatPolicy(policy)}\n`);
    return 0;
  },
};
