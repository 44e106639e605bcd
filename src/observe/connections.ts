/** The sockets in the sockhash, decoded and paired into connections. */
import { listSockets, pairSockets, type AcceleratedSocket } from '../core/sockhash.js';
import { formatEndpoint, isMapped, parseAddress } from '../core/address.js';
import { DEFAULT_PIN_DIR } from '../os/bpffs.js';
import { diagSockets, listNetns, socketOwners, type NetnsEntry, type SocketOwner } from '../os/sockdiag.js';
import { withPinnedState } from '../core/state.js';

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
  /** The network namespace the socket lives in: its cookie from the key, named where it could be found. */
  netns: NetnsRef;
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

/** One accelerated connection: its two ends (`b` absent while the peer has not joined). */
export interface ConnectionDetails {
  /** The handshake tag both ends' keys carry: (active ISN + 1) << 32 | (passive ISN + 1). */
  handshake: bigint;
  /** The namespace of both ends when they share one; absent for a connection between two namespaces. */
  netns?: NetnsRef;
  /** The ends live in two namespaces (a veth between them). */
  crossNamespace: boolean;
  /** The ends see different tuples: NAT (REDIRECT, DNAT) between them. */
  natted: boolean;
  a: SocketDetails;
  b?: SocketDetails;
}

function endpointOf(address: string, port: number): string {
  return formatEndpoint(parseAddress(address), port);
}

function netnsRef(ns: NetnsEntry): NetnsRef {
  return { cookie: ns.cookie, current: ns.current, inode: ns.inode, ...(ns.name ? { name: ns.name } : {}) };
}

/**
 * Enrich sockets read from the sockhash with family, state, owner and
 * network namespace, and pair them. Sockets are looked up by cookie with
 * sock_diag in this process's namespace and those named under /run/netns;
 * any not found there are searched for in the namespaces of every running
 * process.
 */
export function describeSockets(sockets: readonly AcceleratedSocket[]): ConnectionDetails[] {
  if (sockets.length === 0) return [];
  let namespaces = listNetns();
  const diag = diagSockets(namespaces);
  if (sockets.some((s) => !diag.has(s.cookie))) {
    const more = listNetns({ processes: true }).filter((ns) => !namespaces.some((n) => n.inode === ns.inode));
    for (const [cookie, d] of diagSockets(more)) diag.set(cookie, d);
    namespaces = [...namespaces, ...more];
  }
  const listening = new Set(
    [...diag.values()].filter((d) => d.state === 'LISTEN').map((d) => `${d.netns.inode}:${d.localPort}`),
  );
  const wantedInodes = new Set(sockets.map((s) => diag.get(s.cookie)?.inode ?? 0).filter((i) => i > 0));
  const owners = socketOwners(wantedInodes);

  const netnsOf = (cookie: bigint): NetnsRef => {
    const ns = namespaces.find((n) => n.cookie === cookie);
    return ns ? netnsRef(ns) : { cookie };
  };
  const details = (s: AcceleratedSocket): SocketDetails => {
    const d = diag.get(s.cookie);
    const out: SocketDetails = {
      ...s,
      netns: netnsOf(s.key.netnsCookie),
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
      out.role = listening.has(`${d.netns.inode}:${s.key.localPort}`) ? 'server' : 'client';
    }
    return out;
  };
  const pairs = pairSockets(sockets).map((p): ConnectionDetails => {
    let a = details(p.a);
    let b = p.b ? details(p.b) : undefined;
    if (b && a.role === 'server' && b.role !== 'server') [a, b] = [b, a]; // client first
    const crossNamespace = b !== undefined && b.netns.cookie !== a.netns.cookie;
    const natted = b !== undefined && (a.local !== b.remote || a.remote !== b.local);
    return {
      handshake: p.a.key.handshake,
      ...(crossNamespace ? {} : { netns: a.netns }),
      crossNamespace,
      natted,
      a,
      ...(b ? { b } : {}),
    };
  });
  return pairs.sort(
    (x, y) =>
      (x.a.netns.cookie < y.a.netns.cookie ? -1 : x.a.netns.cookie > y.a.netns.cookie ? 1 : 0) ||
      x.a.key.localPort - y.a.key.localPort ||
      x.a.key.remotePort - y.a.key.remotePort,
  );
}

/**
 * Every accelerated connection of the load pinned at `pinDir`, described:
 * pairs only. A client end whose server end has not joined yet (the instant
 * between the two ESTABLISHED callbacks) is not a connection the bypass
 * carries; `unpaired: true` lists such ends too.
 */
export function connections(options: { pinDir?: string; unpaired?: boolean } = {}): ConnectionDetails[] {
  const sockets = withPinnedState(options.pinDir ?? DEFAULT_PIN_DIR, (state) => listSockets(state.maps.sock_hash));
  const all = describeSockets(sockets);
  return options.unpaired ? all : all.filter((c) => c.b);
}
