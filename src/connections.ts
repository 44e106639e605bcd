/** The sockets in the sockhash, decoded and paired into connections. */
import type { BpfMap } from './libbpf/index.js';
import { decodeSocketKey, encodeSocketKey, peerKey, type SocketKey } from './layout.js';
import { formatEndpoint, isMapped, parseAddress } from './address.js';
import { DEFAULT_PIN_DIR } from './bpffs.js';
import { diagSockets, listNetns, socketOwners, type SocketOwner } from './sockdiag.js';
import { withPinnedState } from './state.js';

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

/** A socket in the sockhash, with what sock_diag and /proc say about it. */
export interface SocketDetails extends AcceleratedSocket {
  /** "addr:port" of this end and of its peer, as the key has them. */
  local: string;
  remote: string;
  /**
   * The socket's real family. The key stores IPv4 as ::ffff:a.b.c.d, so it
   * cannot tell an AF_INET socket from an AF_INET6 one talking IPv4; sock_diag
   * can. 'unknown' when the socket was not found (closed meanwhile, or in a
   * namespace no process and no /run/netns name leads to).
   */
  family: 'inet' | 'inet6' | 'unknown';
  /** An AF_INET6 socket whose addresses are IPv4-mapped (a dual-stack socket talking IPv4). */
  mapped: boolean;
  /** TCP state, e.g. ESTABLISHED. */
  state?: string;
  /** 'server' when a listening socket in its namespace has its local port, else 'client'. */
  role?: 'client' | 'server';
  inode?: number;
  uid?: number;
  /** Processes holding the socket open (usually one). */
  processes: SocketOwner[];
}

export interface NetnsRef {
  cookie: bigint;
  /** Its name under /run/netns, if any. */
  name?: string;
  /** True for the namespace the describing process runs in. */
  current?: boolean;
  /** nsfs inode, when the namespace was found. */
  inode?: bigint;
}

/** One accelerated connection: its two ends (`b` absent when the peer is not in the map). */
export interface ConnectionDetails {
  netns: NetnsRef;
  a: SocketDetails;
  b?: SocketDetails;
}

function endpointOf(address: string, port: number): string {
  return formatEndpoint(parseAddress(address), port);
}

/**
 * Enrich sockets read from the sockhash with family, state, owner and
 * network-namespace name, and pair them. Namespaces are searched in this
 * order until every key's namespace is found: this process's, those named
 * under /run/netns, then those of every running process.
 */
export function describeSockets(sockets: readonly AcceleratedSocket[]): ConnectionDetails[] {
  const wanted = new Set(sockets.map((s) => s.key.netnsCookie));
  let namespaces = listNetns();
  if ([...wanted].some((cookie) => !namespaces.some((ns) => ns.cookie === cookie))) {
    namespaces = listNetns({ processes: true });
  }
  const searched = namespaces.filter((ns) => wanted.has(ns.cookie));
  const diag = diagSockets(searched);
  const listening = new Set(
    [...diag.values()].filter((d) => d.state === 'LISTEN').map((d) => `${d.netns.cookie}:${d.localPort}`),
  );
  const owners = socketOwners(new Set([...diag.values()].map((d) => d.inode).filter((i) => i > 0)));

  const details = (s: AcceleratedSocket): SocketDetails => {
    const d = diag.get(s.cookie);
    const out: SocketDetails = {
      ...s,
      local: endpointOf(s.key.localAddress, s.key.localPort),
      remote: endpointOf(s.key.remoteAddress, s.key.remotePort),
      family: d?.family ?? 'unknown',
      mapped: d !== undefined && d.family === 'inet6' && isMapped(d.localAddress),
      processes: d && d.inode > 0 ? (owners.get(d.inode) ?? []) : [],
    };
    if (d) {
      out.state = d.state;
      out.inode = d.inode;
      out.uid = d.uid;
      out.role = listening.has(`${s.key.netnsCookie}:${s.key.localPort}`) ? 'server' : 'client';
    }
    return out;
  };
  const netnsRef = (cookie: bigint): NetnsRef => {
    const ns = namespaces.find((n) => n.cookie === cookie);
    if (!ns) return { cookie };
    return { cookie, current: ns.current, inode: ns.inode, ...(ns.name ? { name: ns.name } : {}) };
  };

  const pairs = pairSockets(sockets).map((p): ConnectionDetails => {
    let a = details(p.a);
    let b = p.b ? details(p.b) : undefined;
    if (b && a.role === 'server' && b.role !== 'server') [a, b] = [b, a]; // client first
    return b ? { netns: netnsRef(p.a.key.netnsCookie), a, b } : { netns: netnsRef(p.a.key.netnsCookie), a };
  });
  return pairs.sort(
    (x, y) =>
      (x.netns.cookie < y.netns.cookie ? -1 : x.netns.cookie > y.netns.cookie ? 1 : 0) ||
      x.a.key.localPort - y.a.key.localPort ||
      x.a.key.remotePort - y.a.key.remotePort,
  );
}

/** Every accelerated connection of the load pinned at `pinDir`, described. */
export function connections(options: { pinDir?: string } = {}): ConnectionDetails[] {
  const sockets = withPinnedState(options.pinDir ?? DEFAULT_PIN_DIR, (state) => listSockets(state.maps.sock_hash));
  return describeSockets(sockets);
}
