import { unload } from '../core/unload.js';
import { COMMON, str, toJson, type Command } from './command.js';

export const unloadCommand: Command = {
  name: 'unload',
  summary: 'turn the bypass off; accelerated connections keep working until they close',
  usage: `sockbypass unload [--pin-dir DIR] [--force] [--json]
  --force   also remove an incomplete set of pins left by a crash`,
  options: { ...COMMON, force: { type: 'boolean' } },
  run(values, _pos, out) {
    const result = unload({ pinDir: str(values, 'pin-dir'), force: values.force === true });
    if (out.json) out.write(toJson(result) + '\n');
    else if (result.outcome === 'not-loaded')
      out.write(`sockbypass is not loaded at ${result.pinDir}; nothing to do\n`);
    else if (result.outcome === 'removed-remnant')
      out.write(`removed an incomplete set of pins from ${result.pinDir}\n`);
    else {
      out.write(
        `sockbypass unloaded from ${result.pinDir}: ${result.acceleratedConnections} accelerated connection(s) ` +
          `(${result.acceleratedSockets} socket(s)) stay accelerated until they close\n`,
      );
    }
    return 0;
  },
};
