import { status } from '../status.js';
import { formatPolicy } from '../policy.js';
import { COMMON, str, toJson, type Command } from './command.js';
import type { Counters } from '../layout.js';

export function formatCounters(c: Counters): string {
  return [
    `  sockets accelerated   ${c.socketsInserted}  (closed since: ${c.socketsClosed})`,
    `  insert failures       map full ${c.insertMapFull}, exists ${c.insertExists}, other ${c.insertOther}`,
    `  skipped by policy     ${c.policySkipped}`,
    `  redirected            ${c.messagesRedirected} messages, ${c.bytesRedirected} bytes`,
    `  redirect misses       ${c.redirectMisses} messages, ${c.bytesPassed} bytes passed to TCP`,
    `  events lost           ${c.eventsLost}`,
  ].join('\n');
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'whether the bypass is on, where, its policy, map fill and counters',
  usage: `sockbypass status [--pin-dir DIR] [--json]`,
  options: { ...COMMON },
  run(values, _pos, out) {
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
        `  cgroup                ${s.cgroup}`,
        `  pins                  ${s.pinDir}`,
        `  programs              sock_ops id ${p?.sockOps.id}, sk_msg id ${p?.skMsg.id}`,
        `  policy                ${s.policy ? formatPolicy(s.policy) : '?'}`,
        `  sockhash              ${s.map?.entries} of ${s.map?.maxEntries} entries`,
        formatCounters(s.counters),
      ].join('\n') + '\n',
    );
    return 0;
  },
};
