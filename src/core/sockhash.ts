/** The sockets in the sockhash, decoded and paired into connections (no sock_diag: see observe/connections.ts). */
import type { BpfMap } from '../libbpf/index.js';
import { decodeSocketKey, encodeSocketKey, peerKey, type SocketKey } from './layout.js';

export interface AcceleratedSocket {
  key: SocketKey;
  /** The socket cookie (the sockhash value). */
  cookie: bigint;
}

export interface SocketPair {
  /** The two ends of one connection; `b` is absent when the peer is not in the map (e.g. a remote peer). */
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

function keyId(key: SocketKey): string {
  return encodeSocketKey(key).toString('hex');
}

export function pairSockets(sockets: readonly AcceleratedSocket[]): SocketPair[] {
  const byKey = new Map(sockets.map((s) => [keyId(s.key), s]));
  const seen = new Set<string>();
  const pairs: SocketPair[] = [];
  for (const s of sockets) {
    const id = keyId(s.key);
    if (seen.has(id)) continue;
    seen.add(id);
    const peerId = keyId(peerKey(s.key));
    const peer = byKey.get(peerId);
    if (peer) seen.add(peerId);
    pairs.push(peer ? { a: s, b: peer } : { a: s });
  }
  return pairs;
}
