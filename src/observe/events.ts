/**
 * The data plane's event stream: the pinned `events` ring buffer, decoded.
 * Works from any process while sockbypass is loaded.
 *
 * The ring buffer has a single consumer position: two watchers of one load
 * (say `sockbypass trace` and `sockbypass run --log-events`) race for the
 * records, and each event reaches one of them or both, unpredictably. Run
 * one at a time.
 */
import { DEFAULT_PIN_DIR } from '../os/bpffs.js';
import { decodeSockEvent, sockEventCodec, type SockEvent } from '../core/layout.js';
import { RingBuffer } from '../libbpf/index.js';
import { PinnedState } from '../core/state.js';
import { readCounters } from '../core/counters.js';
import { diagSockets, listNetns, socketOwners, type NetnsEntry, type SocketOwner } from '../os/sockdiag.js';

export interface WatchEventsOptions {
  /** Milliseconds between drains of the ring buffer (default 50). */
  intervalMs?: number;
  /**
   * Called when the data plane dropped events because the ring buffer was
   * full (the kernel's events_lost counter moved): `count` since the last
   * report, `total` since load.
   */
  onLost?: (count: number, total: number) => void;
  /** Errors while draining (a throwing onEvent, a failed read). Default: rethrown. */
  onError?: (err: unknown) => void;
  /**
   * Deliver events already waiting in the ring buffer from before the watch
   * started. Default false: only events stamped at or after the start.
   */
  backlog?: boolean;
}

export interface EventWatch {
  /** Drain what is waiting now (also done on the timer); returns events delivered. */
  drain(): number;
  /** Drain once more, stop, and release the ring buffer and maps. Idempotent. */
  close(): void;
}

/** CLOCK_MONOTONIC now, in ns: the clock of SockEvent.timestampNs (libuv's hrtime is CLOCK_MONOTONIC). */
export function monotonicNowNs(): bigint {
  return process.hrtime.bigint();
}

let wallOffset: { ms: number; at: bigint } | undefined;

/**
 * Wall-clock time of an event's monotonic timestamp. The offset between the
 * two clocks is taken once (and again after a minute, to follow clock
 * adjustments), so events keep their order when converted.
 */
export function eventDate(event: SockEvent): Date {
  const mono = monotonicNowNs();
  if (!wallOffset || mono - wallOffset.at > 60_000_000_000n) {
    wallOffset = { ms: Date.now() - Number(mono) / 1e6, at: mono };
  }
  return new Date(wallOffset.ms + Number(event.timestampNs) / 1e6);
}

export function watchEvents(
  pinDir: string | undefined,
  onEvent: (event: SockEvent) => void,
  options: WatchEventsOptions = {},
): EventWatch {
  const state = PinnedState.open(pinDir ?? DEFAULT_PIN_DIR);
  const startNs = monotonicNowNs();
  let delivered = 0;
  let lostTotal: number;
  let rb: RingBuffer;
  try {
    lostTotal = readCounters(state).eventsLost;
    rb = RingBuffer.fromMap(
      state.maps.events,
      (record) => {
        if (record.length < sockEventCodec.size) throw new RangeError(`short event record: ${record.length} bytes`);
        const event = decodeSockEvent(record);
        if (!options.backlog && event.timestampNs < startNs) return;
        delivered++;
        onEvent(event);
      },
      { intervalMs: 0 },
    );
  } catch (err) {
    state.close();
    throw err;
  }

  let closed = false;
  const drain = (): number => {
    if (closed) return 0;
    const before = delivered;
    rb.consume();
    const lost = readCounters(state).eventsLost;
    if (lost > lostTotal) {
      const count = lost - lostTotal;
      lostTotal = lost;
      options.onLost?.(count, lost);
    }
    return delivered - before;
  };
  const timer = setInterval(() => {
    try {
      drain();
    } catch (err) {
      if (options.onError) options.onError(err);
      else throw err;
    }
  }, options.intervalMs ?? 50);

  return {
    drain,
    close() {
      if (closed) return;
      clearInterval(timer);
      try {
        drain();
      } finally {
        closed = true;
        rb.close();
        state.close();
      }
    },
  };
}

/** What the data plane cannot know about an event, looked up in user space. */
export interface EventContext {
  /** The socket's network namespace cookie, when known (the key's, or where the socket was found). */
  netnsCookie?: bigint;
  /** The namespace's name under /run/netns, if it has one. */
  netnsName?: string;
  /** Whether it is the namespace the watching process runs in. */
  currentNetns?: boolean;
  /** Processes holding the socket, when it could still be found. */
  processes?: SocketOwner[];
}

interface Found {
  owners: SocketOwner[];
  ns: NetnsEntry;
}

/**
 * Looks up, for events, the owning process (sock_ops runs in softirq, so the
 * event carries none) and the network namespace. Owners come from a
 * sock_diag dump of a namespace plus a /proc scan, redone at most every
 * `rescanMs` per namespace when an unknown socket shows up; a socket that
 * closed before the lookup stays without owner. What was found for an
 * accelerated socket is kept until its `closed` event.
 */
export class EventResolver {
  private namespaces: NetnsEntry[] = [];
  private namespacesAt = 0;
  private readonly known = new Map<bigint, Found>();
  /** Per namespace inode: when it was last scanned, and what that scan found. */
  private readonly scans = new Map<bigint, { at: number; found: Map<bigint, Found> }>();

  constructor(private readonly options: { owners?: boolean; rescanMs?: number } = {}) {}

  /** Re-list namespaces (this one, /run/netns, every process's), at most once a second. */
  private refreshNamespaces(): boolean {
    const now = Date.now();
    if (this.namespacesAt > 0 && now - this.namespacesAt < 1000) return false;
    this.namespacesAt = now;
    this.namespaces = listNetns({ processes: true });
    return true;
  }

  private byCookie(cookie: bigint): NetnsEntry | undefined {
    let ns = this.namespaces.find((n) => n.cookie === cookie);
    if (!ns && this.refreshNamespaces()) ns = this.namespaces.find((n) => n.cookie === cookie);
    return ns;
  }

  private scan(ns: NetnsEntry, cookie: bigint): Found | undefined {
    const now = Date.now();
    const last = this.scans.get(ns.inode);
    const hit = last?.found.get(cookie);
    if (hit || (last && now - last.at < (this.options.rescanMs ?? 25))) return hit;
    const found = new Map<bigint, Found>();
    try {
      const diag = [...diagSockets([ns]).values()].filter((d) => d.inode > 0 && d.state !== 'LISTEN');
      const byInode = socketOwners(new Set(diag.map((d) => d.inode)));
      for (const d of diag) {
        const owners = byInode.get(d.inode);
        if (owners) found.set(d.cookie, { owners, ns });
      }
    } catch {
      // the namespace went away
    }
    this.scans.set(ns.inode, { at: now, found });
    return found.get(cookie);
  }

  private find(event: SockEvent, keyNs: NetnsEntry | undefined): Found | undefined {
    if (keyNs) return this.scan(keyNs, event.socketCookie);
    // Its namespace is not known (yet) by cookie: the socket may be in any namespace.
    if (this.namespaces.length === 0) this.refreshNamespaces();
    for (const ns of this.namespaces) {
      const hit = this.scan(ns, event.socketCookie);
      if (hit) return hit;
    }
    return undefined;
  }

  resolve(event: SockEvent): EventContext {
    const keyNs = this.byCookie(event.key.netnsCookie);
    let found = this.known.get(event.socketCookie);
    if (!found && event.type !== 'closed' && this.options.owners !== false) {
      found = this.find(event, keyNs);
      const accelerated = event.type === 'accelerated_active' || event.type === 'accelerated_passive';
      if (found && accelerated) this.known.set(event.socketCookie, found);
    }
    if (event.type === 'closed') this.known.delete(event.socketCookie);
    const ns = keyNs ?? found?.ns;
    const out: EventContext = {};
    if (ns) {
      out.netnsCookie = ns.cookie;
      out.currentNetns = ns.current;
      if (ns.name) out.netnsName = ns.name;
    } else {
      out.netnsCookie = event.key.netnsCookie;
    }
    if (found) out.processes = found.owners;
    return out;
  }
}
