/**
 * The outside-veth rows (issue 11, "do no harm"): traffic from a client in
 * the bench cgroup to a server OUTSIDE it, in another network namespace over
 * a veth pair (outside-peer.ts), with sockbypass loaded (ON) against not
 * loaded (OFF). The bypass cannot accelerate such a connection, so ON must
 * cost nothing: the target is on/off >= 0.98x in every row
 * (docs/benchmarks.md). Their ON runs are verified the other way round: no
 * socket joined the sockhash and every connection was left alone for having
 * no peer here (verify.ts, LeftAloneExpectation).
 *
 *   outside-veth-128K         iperf3 -l 128K (bulk)
 *   outside-veth-1K           iperf3 -l 1K (small writes)
 *   outside-veth-pingpong-64  sockperf ping-pong -m 64 (p50 is the target)
 *   outside-veth-crr          sbload crr, server and client in separate processes
 */
import { join } from 'node:path';
import { CONNECTION_RATE, LATENCY, THROUGHPUT } from './metrics.js';
import { outsidePeer, outsidePlacement } from './outside-peer.js';
import { parseSbloadOutput } from './sbload.js';
import {
  clientTimeoutMs,
  CRR_SIZE,
  iperf3Run,
  parsed,
  requireExit0,
  requireFewCrrFailures,
  sockperfPingPong,
  tool,
  waitForReadyFile,
} from './tool-runs.js';
import type { Workload } from './workloads.js';

/** Tools every outside row needs besides its workload tool: building and entering the namespaces. */
const TOPOLOGY_TOOLS = ['ip', 'nsenter'] as const;
const WHERE = 'server in a netns outside the cgroup, over a veth';

function outsideIperf3(length: number, label: string): Workload {
  return {
    id: `outside-veth-${label}`,
    group: 'outside',
    title: `outside veth iperf3 -l ${label}`,
    command: `iperf3 -c SERVER -t SECONDS -l ${label} --json (${WHERE}: iperf3 -s -1 --forceflush -B SERVER)`,
    metrics: [THROUGHPUT],
    needs: ['iperf3', ...TOPOLOGY_TOOLS],
    async run(ctx) {
      const r = await iperf3Run(ctx, outsidePlacement(ctx), { length, streams: 1 });
      // The control connection plus one per stream, each left alone at its client end.
      return {
        values: { [THROUGHPUT.key]: r.bitsPerSecond },
        expect: { leftAlone: true, minConnections: r.streams + 1 },
        detail: { ...r },
      };
    },
  };
}

function outsidePingPong(size: number): Workload {
  return {
    id: `outside-veth-pingpong-${size}`,
    group: 'outside',
    title: `outside veth sockperf pp -m ${size}`,
    command: `sockperf ping-pong --tcp -i SERVER -m ${size} -t SECONDS (${WHERE}: sockperf server --tcp -i SERVER)`,
    metrics: LATENCY,
    needs: ['sockperf', ...TOPOLOGY_TOOLS],
    async run(ctx) {
      const r = await sockperfPingPong(ctx, outsidePlacement(ctx), size);
      return {
        values: { p50Us: r.p50Us, p99Us: r.p99Us, p999Us: r.p999Us },
        expect: { leftAlone: true, minConnections: 1 },
        detail: { ...r, messageSize: size },
      };
    },
  };
}

/**
 * sbload crr split in two processes (--role server / client), as the server
 * must live outside the cgroup. The rate is the client's; the server is
 * killed once the client is done (its own idle rule would cost 2 s a run).
 */
const outsideCrr: Workload = {
  id: 'outside-veth-crr',
  group: 'outside',
  title: `outside veth sbload crr ${CRR_SIZE} B`,
  command: `sbload crr --role client --connect SERVER:PORT --size ${CRR_SIZE} --seconds SECONDS (SO_LINGER 0; ${WHERE}: sbload crr --role server --listen SERVER:PORT)`,
  metrics: [CONNECTION_RATE],
  needs: ['sbload', ...TOPOLOGY_TOOLS],
  async run(ctx) {
    const sbload = tool(ctx, 'sbload');
    const where = outsidePlacement(ctx);
    const port = await where.port();
    const listen = `${where.host}:${port}`;
    const ready = join(outsidePeer(ctx).scratchDir, `crr-${port}.ready`);
    const common = ['--family', 'tcp4', '--size', String(CRR_SIZE), '--seconds', String(ctx.seconds)];
    const server = where.startServer(sbload, [
      'crr',
      '--role',
      'server',
      '--listen',
      listen,
      '--ready-file',
      ready,
      ...common,
    ]);
    try {
      await waitForReadyFile(ctx.env, server, ready, 10_000);
      const f = await where.runClient(
        sbload,
        ['crr', '--role', 'client', '--connect', listen, ...common],
        clientTimeoutMs(ctx),
      );
      const r = parsed(() => parseSbloadOutput(f.stdout, 'crr'), f, 'sbload crr client');
      requireExit0(f, 'sbload crr client');
      requireFewCrrFailures(r);
      return {
        values: { [CONNECTION_RATE.key]: r.connectionsPerSecond },
        expect: { leftAlone: true, minConnections: r.connections },
        detail: { ...r },
      };
    } finally {
      await ctx.env.stop(server, 'SIGKILL');
    }
  },
};

/** In the order a full bench runs them, after the same-host rows. */
export const OUTSIDE_VETH_WORKLOADS: readonly Workload[] = [
  outsideIperf3(128 * 1024, '128K'),
  outsideIperf3(1024, '1K'),
  outsidePingPong(64),
  outsideCrr,
];
