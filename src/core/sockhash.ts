/** The sockets in the sockhash, decoded and paired into connections (no sock_diag: see observe/connections.ts). */
import type { BpfMap } from '../libbpf/index.js';
import { decodeSocketKey, samePair, type SocketKey } from './layout.js';

export interface AcceleratedSocket {
  key: SocketKey;
  /** The socket cookie (the sockhash value). */
  cookie: bigint;
}

export interface SocketPair {
  /** The two ends of one connection; `b` is absent while the peer has not joined yet (or could not). */
  a: AcceleratedSocket;
  b?: AcceleratedSocket;
}

export function listSockets(sockHash: BpfMap): AcceleratedSocket[] {
  const out: AcceleratedSocket[] = [];
  for (const raw of sockHash.keys()) {
    const value = sockHash.lookup(raw);
    if (!value) continue; // closed meanwhile
    out.push({ key: decodeSocketKey(raw), cookie: value.readBigUInt64LE(0) });
  }
  return out;
}

/**
 * The two ends of a connection carry the same handshake tag in their keys
 * (their tuples may differ: NAT), so sockets are grouped by it.
 */
export function pairSockets(sockets: readonly AcceleratedSocket[]): SocketPair[] {
  const byTag = new Map<bigint, AcceleratedSocket[]>();
  for (const s of sockets) byTag.set(s.key.handshake, [...(byTag.get(s.key.handshake) ?? []), s]);
  const pairs: SocketPair[] = [];
  for (const group of byTag.values()) {
    const left = [...group];
    while (left.length > 0) {
      const a = left.shift() as AcceleratedSocket;
      const i = left.findIndex((b) => samePair(a.key, b.key));
      pairs.push(i >= 0 ? { a, b: left.splice(i, 1)[0] as AcceleratedSocket } : { a });
    }
  }
  return pairs;
}
