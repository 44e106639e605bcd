/**
 * The nat rows (issue 12, "Through NAT"): same-host TCP through each NAT
 * pattern of nat-topology.ts (iptables rules, haproxy as the sidecar), built
 * in the bench's own namespaces (nat-peer.ts), with sockbypass loaded (ON)
 * against not loaded (OFF). Every process (client, haproxy, server) is inside
 * the bench cgroup, so every hop can pair: an ON run must show a pair joined
 * per connection hop and no end left alone (verify.ts, PairedExpectation).
 *
 *   nat-sidecar-out-*   app → VIP:80, OUTPUT REDIRECT to haproxy, on over a veth to the server
 *   nat-sidecar-in-*    client → pod:8080 over a veth, PREROUTING REDIRECT to haproxy, on to the app on 127.0.0.1
 *   nat-service-*       client pod → VIP:80, DNAT in a node namespace (kube-proxy's chains), routed to the server pod
 *
 *   *-stream   sbload stream, one connection: throughput as the receiving server counts it
 *   *-rr       sbload rr, 64-byte round trips over one connection: round trips per second
 */
import { join } from 'node:path';
import type { RunContext, Tool, Workload } from './workloads.js';
import { JsonFields } from './json-fields.js';
import { REQUEST_RATE, THROUGHPUT } from './metrics.js';
import { nsenterArgv } from './nat-host.js';
import { natHost, natSetup } from './nat-peer.js';
import type { NatSetup, PatternName } from './nat-topology.js';
import { parseSbloadOutput } from './sbload.js';
import { clientTimeoutMs, parsed, reap, requireExit0, tool, waitForReadyFile } from './tool-runs.js';
import { ToolFailure, type BenchProcess, type Finished } from './env.js';

/** Tools every nat row needs: sbload for the load, the rest to build and enter the pattern. */
const NAT_TOOLS: readonly Tool[] = ['sbload', 'haproxy', 'iptables', 'ip', 'nsenter'];
/** Request and response size of the rr rows. */
export const NAT_RR_SIZE = 64;
/** A stream server exits once it read its client's EOF; this long at most, then it is killed. */
const SERVER_GRACE_MS = 5000;

interface NatRowPattern {
  /** Row id prefix: nat-<short>-stream / -rr. */
  readonly short: string;
  readonly pattern: PatternName;
  readonly title: string;
  readonly where: string;
}

export const NAT_ROW_PATTERNS: readonly NatRowPattern[] = [
  {
    short: 'sidecar-out',
    pattern: 'sidecar-outbound',
    title: 'NAT sidecar outbound',
    where: 'app -> VIP:80, OUTPUT REDIRECT to haproxy :15001, on over a veth to the server',
  },
  {
    short: 'sidecar-in',
    pattern: 'sidecar-inbound',
    title: 'NAT sidecar inbound',
    where: 'client -> pod:8080 over a veth, PREROUTING REDIRECT to haproxy :15006, on to the app on 127.0.0.1',
  },
  {
    short: 'service',
    pattern: 'service',
    title: 'NAT Service DNAT',
    where: 'client pod -> VIP:80, DNAT in a node namespace (kube-proxy chains), routed to the server pod',
  },
];

let readyFiles = 0;

/** Starts an sbload server where the pattern's server listens, inside the cgroup; resolves once it listens. */
async function startServer(ctx: RunContext, setup: NatSetup, args: readonly string[]): Promise<BenchProcess> {
  const ready = join(natHost(ctx).dir, `server-${readyFiles++}.ready`);
  const [cmd, argv] = nsenterArgv(tool(ctx, 'nsenter'), setup.serverNs, tool(ctx, 'sbload'), [
    ...args,
    '--role',
    'server',
    '--listen',
    setup.listen,
    '--ready-file',
    ready,
  ]);
  const server = ctx.env.start(cmd, argv, { inCgroup: true });
  try {
    await waitForReadyFile(ctx.env, server, ready, 10_000);
  } catch (e) {
    await ctx.env.stop(server, 'SIGKILL');
    throw e;
  }
  return server;
}

function runClient(ctx: RunContext, setup: NatSetup, args: readonly string[]): Promise<Finished> {
  const [cmd, argv] = nsenterArgv(tool(ctx, 'nsenter'), setup.clientNs, tool(ctx, 'sbload'), [
    ...args,
    '--role',
    'client',
    '--connect',
    setup.connect,
  ]);
  return ctx.env.run(cmd, argv, { timeoutMs: clientTimeoutMs(ctx), inCgroup: true });
}

/**
 * The one client failure a stream run tolerates: after its timed window the
 * client waits in a blocking read() for the receiver's EOF, and with the
 * bypass on that read can return EAGAIN (docs/nat.md, "a blocking read()
 * returned EAGAIN"). The figure is the receiver's, which that does not touch.
 */
export const TOLERATED_STREAM_CLIENT_FAILURE =
  /stream: waiting for the receiver to finish: Resource temporarily unavailable/;

/** The stream client's outcome: fine, or the tolerated failure (recorded); any other failure fails the run. */
export function streamClientProblem(f: Finished): string | undefined {
  if (f.code === 0) return undefined;
  const text = `${f.stderr}\n${f.stdout}`;
  if (TOLERATED_STREAM_CLIENT_FAILURE.test(text)) return text.trim().split('\n')[0];
  requireExit0(f, 'sbload stream client');
  return undefined;
}

function natStream(p: NatRowPattern): Workload {
  return {
    id: `nat-${p.short}-stream`,
    group: 'nat',
    title: `${p.title} sbload stream`,
    command: `sbload stream --role client --connect CONNECT --seconds SECONDS (${p.where}; server: sbload stream --role server, its received bytes)`,
    metrics: [THROUGHPUT],
    needs: NAT_TOOLS,
    selectors: [p.pattern, `nat-${p.short}`],
    async run(ctx) {
      const setup = await natSetup(ctx, p.pattern);
      const seconds = ['--seconds', String(ctx.seconds)];
      const server = await startServer(ctx, setup, ['stream', ...seconds]);
      let client: Finished;
      try {
        client = await runClient(ctx, setup, ['stream', ...seconds]);
      } finally {
        await reap(ctx, server, SERVER_GRACE_MS);
      }
      const clientProblem = streamClientProblem(client);
      const received = await server.done;
      const r = parsed(() => parseSbloadOutput(received.stdout, 'stream'), received, 'sbload stream server');
      requireExit0(received, 'sbload stream server');
      return {
        values: { [THROUGHPUT.key]: r.bitsPerSecond },
        // One connection, setup.hops hops, each carrying every byte the server received.
        expect: { minSockets: 2 * setup.hops, payloadBytes: setup.hops * r.bytes, minPairs: setup.hops },
        detail: { ...r, pattern: p.pattern, hops: setup.hops, ...(clientProblem ? { clientProblem } : {}) },
      };
    },
  };
}

/** Round trips per second as the rr client measured them (its `seconds` is the timed window). */
export function requestRate(stdout: string): {
  requestsPerSecond: number;
  roundTrips: number;
  p50Us: number;
  p99Us: number;
} {
  const r = parseSbloadOutput(stdout, 'rr');
  const seconds = JsonFields.parse('sbload', stdout).number('seconds');
  if (!(seconds > 0)) throw new ToolFailure(`sbload rr measured over ${seconds} s`);
  return { requestsPerSecond: r.roundTrips / seconds, roundTrips: r.roundTrips, p50Us: r.p50Us, p99Us: r.p99Us };
}

function natRr(p: NatRowPattern): Workload {
  return {
    id: `nat-${p.short}-rr`,
    group: 'nat',
    title: `${p.title} sbload rr ${NAT_RR_SIZE} B`,
    command: `sbload rr --role client --connect CONNECT --size ${NAT_RR_SIZE} --seconds SECONDS (${p.where}; server: sbload rr --role server)`,
    metrics: [REQUEST_RATE],
    needs: NAT_TOOLS,
    selectors: [p.pattern, `nat-${p.short}`],
    async run(ctx) {
      const setup = await natSetup(ctx, p.pattern);
      const common = ['--size', String(NAT_RR_SIZE), '--seconds', String(ctx.seconds)];
      const server = await startServer(ctx, setup, ['rr', ...common]);
      let client: Finished;
      try {
        client = await runClient(ctx, setup, ['rr', ...common]);
      } finally {
        // The server exits once the client closed; it prints nothing the row needs.
        await reap(ctx, server, SERVER_GRACE_MS);
      }
      const r = parsed(() => requestRate(client.stdout), client, 'sbload rr client');
      requireExit0(client, 'sbload rr client');
      return {
        values: { [REQUEST_RATE.key]: r.requestsPerSecond },
        // Each timed round trip is NAT_RR_SIZE bytes each way on every hop (warm-up round trips come on top).
        expect: {
          minSockets: 2 * setup.hops,
          payloadBytes: setup.hops * 2 * NAT_RR_SIZE * r.roundTrips,
          minPairs: setup.hops,
        },
        detail: { ...r, pattern: p.pattern, hops: setup.hops },
      };
    },
  };
}

/** In the order a full bench runs them, after the outside-veth rows. */
export const NAT_WORKLOADS: readonly Workload[] = NAT_ROW_PATTERNS.flatMap((p) => [natStream(p), natRr(p)]);
