/**
 * `sockbypass run`: a foreground agent. It loads sockbypass (or adopts a load
 * already pinned), serves Prometheus metrics and a health check over HTTP,
 * optionally streams the data plane's events, and on stop unloads what it
 * loaded (unless told to keep it). A load it adopted is always left in place.
 *
 * The Prometheus counters mirror the kernel's per-CPU counters, one metric per
 * row of the counter table (core/counters.ts): each scrape reads the absolute
 * values (collect()), so they are exact and survive an agent restart the way
 * the kernel's counters do (they count since load).
 */
import { createServer, type Server } from 'node:http';
import { isIPv6 } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { DEFAULT_PIN_DIR } from '../os/bpffs.js';
import { usage, SockbypassError, EXIT } from '../errors.js';
import { watchEvents, type EventWatch } from './events.js';
import type { SockEvent } from '../core/layout.js';
import { listSockets, pairSockets } from '../core/sockhash.js';
import { COUNTERS, readCounters, type CounterName, type CounterSpec, type Counters } from '../core/counters.js';
import { load, type LoadOptions, type LoadResult } from '../core/load.js';
import { pinState } from '../core/pins.js';
import { PinnedState } from '../core/state.js';
import { unload, type UnloadResult } from '../core/unload.js';

export const DEFAULT_METRICS_ADDR = '127.0.0.1:9464';

export interface RunOptions extends LoadOptions {
  /** host:port (IPv6 as [addr]:port) for /metrics and /healthz. Port 0 picks a free one. */
  metricsAddr?: string;
  /** Keep the load on stop even when this agent made it. */
  keep?: boolean;
  /** Receive the data plane's events (this agent then consumes the ring buffer). */
  onEvent?: (event: SockEvent) => void;
  onLost?: (count: number, total: number) => void;
  /** Errors that happen in the background (event reading). */
  onError?: (err: unknown) => void;
}

export interface AgentStop {
  /** What unload reported, when the agent unloaded. */
  unloaded?: UnloadResult;
  /** Why the load was left in place, when it was. */
  kept?: 'adopted' | 'keep';
}

export interface Agent {
  load: LoadResult;
  /** Whether this agent made the load (and so unloads it on stop unless keep). */
  loadedByUs: boolean;
  pinDir: string;
  /** Where /metrics is served: the bound address. */
  metrics: { host: string; port: number; url: string };
  registry: Registry;
  stop(): Promise<AgentStop>;
}

/** Parse "host:port" / "[v6]:port". */
export function parseHostPort(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m?.[1] || !Number.isInteger(port) || port > 65535) {
    throw usage(`--metrics-addr wants HOST:PORT (IPv6 as [ADDR]:PORT), got ${JSON.stringify(text)}`);
  }
  return { host: m[1], port };
}

interface Snapshot {
  loaded: boolean;
  counters: Counters;
  mapEntries: number;
  mapCapacity: number;
  connections: number;
}

/** Read everything a scrape reports, from the pinned maps. */
export function snapshot(state: PinnedState): Snapshot {
  const sockets = listSockets(state.maps.sock_hash);
  return {
    loaded: pinState(state.pinDir) === 'complete',
    counters: readCounters(state),
    mapEntries: sockets.length,
    mapCapacity: state.maps.sock_hash.info.maxEntries,
    connections: pairSockets(sockets).filter((p) => p.b).length,
  };
}

/**
 * A private prom-client Registry whose metrics read the kernel counters on
 * every scrape. `read` is called once per scrape.
 */
export function createMetrics(read: () => Snapshot): Registry {
  const registry = new Registry();
  // registry.metrics() runs every collect() in one synchronous pass: they share one read,
  // and the next scrape (a later turn of the event loop) reads afresh.
  let cached: Snapshot | undefined;
  const get = (): Snapshot => {
    if (!cached) {
      cached = read();
      setImmediate(() => (cached = undefined));
    }
    return cached;
  };
  // One metric per name in the counter table; rows sharing a name are its labelled series.
  const byMetric = new Map<string, CounterSpec[]>();
  for (const row of COUNTERS) byMetric.set(row.metric.name, [...(byMetric.get(row.metric.name) ?? []), row]);
  for (const [name, rows] of byMetric) {
    const first = rows[0] as CounterSpec;
    const labelNames = Object.keys(first.metric.labels ?? {});
    const config = { name, help: first.metric.help, labelNames, registers: [registry] };
    const series = (set: (labels: Record<string, string>, value: number) => void) => {
      const counters = get().counters;
      for (const row of rows) set({ ...row.metric.labels }, counters[row.name as CounterName]);
    };
    if (first.kind === 'gauge') {
      new Gauge({
        ...config,
        collect() {
          series((labels, value) => this.set(labels, value));
        },
      });
    } else {
      new Counter({
        ...config,
        collect() {
          this.reset();
          series((labels, value) => this.inc(labels, value));
        },
      });
    }
  }
  const gauge = (name: string, help: string, value: (s: Snapshot) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value(get()));
      },
    });
  gauge('sockbypass_loaded', '1 while the load this agent serves is pinned, else 0.', (s) => (s.loaded ? 1 : 0));
  gauge('sockbypass_map_entries', 'Sockets in the sockhash now.', (s) => s.mapEntries);
  gauge('sockbypass_map_capacity', 'Capacity of the sockhash (max_entries).', (s) => s.mapCapacity);
  gauge('sockbypass_map_fill_ratio', 'Sockhash entries / capacity.', (s) =>
    s.mapCapacity ? s.mapEntries / s.mapCapacity : 0,
  );
  gauge('sockbypass_accelerated_connections', 'Connections with both ends in the sockhash now.', (s) => s.connections);
  return registry;
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function startAgent(options: RunOptions = {}): Promise<Agent> {
  const addrText = options.metricsAddr ?? DEFAULT_METRICS_ADDR;
  const { host, port } = parseHostPort(addrText);
  const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
  let state: PinnedState | undefined;
  let watch: EventWatch | undefined;
  const registry = createMetrics(() => {
    if (!state) throw new Error('not started');
    return snapshot(state);
  });
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) =>
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`error: ${(err as Error).message}\n`),
      );
    } else if (path === '/healthz') {
      const ok = state !== undefined && pinState(pinDir) === 'complete';
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : `not loaded at ${pinDir}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  });
  // Listen first: a busy address then fails before anything is loaded.
  try {
    await listen(server, host, port);
  } catch (err) {
    throw new SockbypassError(
      `cannot serve metrics on ${addrText}: ${(err as Error).message}`,
      'pass a free address with --metrics-addr HOST:PORT',
      EXIT.failure,
      { cause: err },
    );
  }
  const closeServer = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });

  let loaded: LoadResult;
  try {
    loaded = load({ ...options, pinDir, replace: false });
  } catch (err) {
    await closeServer();
    throw err;
  }
  const loadedByUs = loaded.outcome === 'loaded';
  try {
    state = PinnedState.open(pinDir);
    if (options.onEvent) {
      watch = watchEvents(pinDir, options.onEvent, {
        ...(options.onLost ? { onLost: options.onLost } : {}),
        onError: options.onError ?? ((err) => process.stderr.write(`sockbypass run: reading events: ${String(err)}\n`)),
      });
    }
  } catch (err) {
    state?.close();
    await closeServer();
    if (loadedByUs && !options.keep) unload({ pinDir });
    throw err;
  }

  const address = server.address();
  const boundPort = typeof address === 'object' && address ? address.port : port;
  const urlHost = isIPv6(host) ? `[${host}]` : host;
  let stopping: Promise<AgentStop> | undefined;
  return {
    load: loaded,
    loadedByUs,
    pinDir,
    metrics: { host, port: boundPort, url: `http://${urlHost}:${boundPort}/metrics` },
    registry,
    stop() {
      stopping ??= (async (): Promise<AgentStop> => {
        await closeServer();
        watch?.close();
        state?.close();
        if (!loadedByUs) return { kept: 'adopted' };
        if (options.keep) return { kept: 'keep' };
        return { unloaded: unload({ pinDir }) };
      })();
      return stopping;
    },
  };
}
