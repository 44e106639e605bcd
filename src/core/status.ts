/** What is loaded, where, with which policy, how full, and the counters. */
import { DEFAULT_PIN_DIR } from '../os/bpffs.js';
import { cgroupPathById } from '../os/cgroup.js';
import { programInfoById } from '../libbpf/index.js';
import { readCounters, zeroCounters, type Counters } from './counters.js';
import { pinState } from './pins.js';
import { readPolicy, type Policy } from './policy.js';
import { withPinnedState } from './state.js';

export interface ProgramStatus {
  id: number;
  name: string;
  tag: string;
}

export interface Status {
  loaded: boolean;
  pinDir: string;
  cgroup?: string;
  cgroupId?: string;
  programs?: { sockOps: ProgramStatus; skMsg: ProgramStatus };
  policy?: Policy;
  map?: { entries: number; maxEntries: number };
  counters: Counters;
}

function programStatus(id: number): ProgramStatus {
  const info = programInfoById(id);
  return info ? { id, name: info.name, tag: info.tag } : { id, name: '?', tag: '?' };
}

export function status(options: { pinDir?: string } = {}): Status {
  const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
  if (pinState(pinDir) === 'none') return { loaded: false, pinDir, counters: zeroCounters() };
  return withPinnedState(pinDir, (state) => {
    const sockOpsLink = state.links.link_sockops.info();
    const skMsgLink = state.links.link_sk_msg.info();
    const cgroupId = sockOpsLink.cgroupId;
    const sockHash = state.maps.sock_hash;
    const result: Status = {
      loaded: true,
      pinDir,
      programs: { sockOps: programStatus(sockOpsLink.programId), skMsg: programStatus(skMsgLink.programId) },
      policy: readPolicy(state.maps),
      map: { entries: sockHash.count(), maxEntries: sockHash.info.maxEntries },
      counters: readCounters(state),
    };
    if (cgroupId !== undefined) {
      result.cgroupId = cgroupId.toString();
      result.cgroup = cgroupPathById(cgroupId) ?? `(cgroup id ${cgroupId})`;
    }
    return result;
  });
}
