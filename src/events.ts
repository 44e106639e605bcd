/**
 * The data plane's event stream: the pinned `events` ring buffer, decoded.
 * Works from any process while sockbypass is loaded.
 *
 * The ring buffer has a single consumer position: two watchers of one load
 * (say `sockbypass trace` and `sockbypass run --log-events`) split the events
 * between them. Run one at a time.
 */
import { DEFAULT_PIN_DIR } from './bpffs.js';
import { decodeSockEvent, sockEventCodec, type SockEvent } from './layout.js';
import { RingBuffer } from './libbpf/index.js';
import { PinnedState } from './state.js';
import { readCounters } from './status.js';
import { diagSockets, listNetns, socketOwners, type NetnsEntry, type SocketOwner } from './sockdiag.js';

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

/** Wall-clock time of an event's monotonic timestamp. */
export function eventDate(event: SockEvent, nowMs = Date.now(), nowMonoNs = monotonicNowNs()): Date {
  return new Date(nowMs - Number(nowMonoNs - event.timestampNs) / 1e6);
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
  /** The namespace's name under /run/netns, if it has one. */
  netnsName?: string;
  /** Whether it is the namespace the watching process runs in. */
  currentNetns?: boolean;
  /** Processes holding the socket, when it could still be found. */
  processes?: SocketOwner[];
}

/**
 * Looks up, for events, the owning process (sock_ops runs in softirq, so the
 * event carries none) and the namespace's name. Owners come from a
 * sock_diag dump of the event's namespace plus a /proc scan, redone at most
 * every `rescanMs` when an unknown socket shows up; a socket that closed
 * before the lookup stays without owner. Results are kept per socket cookie
 * until its `closed` event.
 */
export class EventResolver {
  private namespaces: NetnsEntry[] = [];
  private namespacesAt = 0;
  /** Owners of accelerated sockets seen in events, until their `closed` event. */
  private readonly owners = new Map<bigint, SocketOwner[]>();
  /** Per namespace: when it was last scanned, and what that scan found. */
  private readonly scans = new Map<bigint, { at: number; owners: Map<bigint, SocketOwner[]> }>();

  constructor(private readonly options: { owners?: boolean; rescanMs?: number } = {}) {}

  private netns(cookie: bigint): NetnsEntry | undefined {
    let ns = this.namespaces.find((n) => n.cookie === cookie);
    if (ns) return ns;
    const now = Date.now();
    if (now - this.namespacesAt < 1000 && this.namespacesAt > 0) return undefined;
    this.namespacesAt = now;
    this.namespaces = listNetns();
    ns = this.namespaces.find((n) => n.cookie === cookie);
    if (ns) return ns;
    this.namespaces = listNetns({ processes: true });
    return this.namespaces.find((n) => n.cookie === cookie);
  }

  /** Owners of `cookie` from a scan of `ns`, rescanning if the last one is older than rescanMs. */
  private scan(ns: NetnsEntry, cookie: bigint): SocketOwner[] | undefined {
    const now = Date.now();
    const last = this.scans.get(ns.cookie);
    const found = last?.owners.get(cookie);
    if (found || (last && now - last.at < (this.options.rescanMs ?? 25))) return found;
    const diag = [...diagSockets([ns]).values()].filter((d) => d.inode > 0 && d.state !== 'LISTEN');
    const byInode = socketOwners(new Set(diag.map((d) => d.inode)));
    const owners = new Map<bigint, SocketOwner[]>();
    for (const d of diag) {
      const o = byInode.get(d.inode);
      if (o) owners.set(d.cookie, o);
    }
    this.scans.set(ns.cookie, { at: now, owners });
    return owners.get(cookie);
  }

  resolve(event: SockEvent): EventContext {
    const ns = this.netns(event.key.netnsCookie);
    const out: EventContext = {};
    if (ns?.name) out.netnsName = ns.name;
    if (ns) out.currentNetns = ns.current;
    if (this.options.owners === false || !ns) return out;
    let owners = this.owners.get(event.socketCookie);
    if (!owners && event.type !== 'closed') {
      try {
        owners = this.scan(ns, event.socketCookie);
      } catch {
        // the namespace went away: no owner
      }
      const accelerated = event.type === 'accelerated_active' || event.type === 'accelerated_passive';
      if (owners && accelerated) this.owners.set(event.socketCookie, owners);
    }
    if (owners) out.processes = owners;
    if (event.type === 'closed') this.owners.delete(event.socketCookie);
    return out;
  }
}
