/**
 * The three same-host NAT patterns of issue 12 ("Through NAT"), each built in
 * fresh namespaces of a NatHost with iptables or nftables rules (addresses in
 * 198.18.0.0/15, rules only inside those namespaces):
 *
 *  (a) sidecar outbound: app → VIP:80, OUTPUT REDIRECT to a local proxy on
 *      15001 (Istio's shape), which connects on over a veth to the server;
 *  (b) sidecar inbound: client → pod:8080 over a veth, PREROUTING REDIRECT in
 *      the pod to its proxy on 15006, which connects to the app on 127.0.0.1
 *      (iptables variant) or the pod's address (nftables variant);
 *  (c) Service: client pod → VIP:80 through a node namespace that DNATs it
 *      (kube-proxy's chains) and routes it to the server pod.
 *
 * The proxy is Debian's haproxy (haproxy.ts). Used by the bench's nat rows
 * (nat-workloads.ts, iptables variant) and by test/nat.test.ts (both).
 */
import { startHaproxy } from './haproxy.js';
import type { NatHost, Veth } from './nat-host.js';
import { applyIptables, applyNft, setSysctl, type Firewall } from './netfilter.js';

export type PatternName = 'sidecar-outbound' | 'sidecar-inbound' | 'service';
export const PATTERNS: readonly PatternName[] = ['sidecar-outbound', 'sidecar-inbound', 'service'];

/** An interface a pattern's connections cross, for a packet capture. */
export interface Tap {
  readonly ns: string;
  readonly dev: string;
  readonly label: string;
  /** Connection hops crossing it per application connection. */
  readonly hops: number;
}

export interface NatSetup {
  readonly pattern: PatternName;
  readonly firewall: Firewall;
  readonly clientNs: string;
  /** What the application connects to: "VIP:port" or the pod's address. */
  readonly connect: string;
  readonly serverNs: string;
  /** Where the server listens ("addr:port"; the proxy or DNAT forwards there). */
  readonly listen: string;
  readonly taps: readonly Tap[];
  /** TCP connections per application connection (2 through a proxy). */
  readonly hops: number;
  /** The natted pair `connections` must show: the client end's remote and its peer's local. */
  readonly views: { readonly clientRemote: string; readonly peerLocal: string };
}

export const SERVER_PORT = 5201;

/** Two namespaces over a veth: a (addrA) and b (addrB), /24. */
function twoNs(
  host: NatHost,
  tagA: string,
  tagB: string,
  addrA: string,
  addrB: string,
): { a: string; b: string; veth: Veth } {
  const a = host.addNamespace(tagA);
  const b = host.addNamespace(tagB);
  const veth = host.addVeth(a, b, `${addrA}/24`, `${addrB}/24`);
  return { a, b, veth };
}

export interface Routed {
  readonly client: string;
  readonly node: string;
  readonly server: string;
  /** client↔node: .a in the client, .b in the node */
  readonly clientVeth: Veth;
  /** server↔node: .a in the server, .b in the node */
  readonly serverVeth: Veth;
}

/**
 * client (198.18.N.2) ↔ node (198.18.N.1 | 198.18.M.1) ↔ server (198.18.M.2):
 * a node namespace routing between two pods, as on a Kubernetes node.
 */
export function routed(host: NatHost, n: number, m: number): Routed {
  const client = host.addNamespace('pod-c');
  const node = host.addNamespace('node');
  const server = host.addNamespace('pod-s');
  const clientVeth = host.addVeth(client, node, `198.18.${n}.2/24`, `198.18.${n}.1/24`);
  const serverVeth = host.addVeth(server, node, `198.18.${m}.2/24`, `198.18.${m}.1/24`);
  host.inNs(client, host.commands.ip, ['route', 'add', 'default', 'via', `198.18.${n}.1`]);
  host.inNs(server, host.commands.ip, ['route', 'add', 'default', 'via', `198.18.${m}.1`]);
  setSysctl(host, node, 'net.ipv4.ip_forward', '1');
  return { client, node, server, clientVeth, serverVeth };
}

const VIP_OUT = '198.18.10.10';

async function sidecarOutbound(host: NatHost, fw: Firewall): Promise<NatSetup> {
  const { a: app, b: srv, veth } = twoNs(host, 'app', 'srv', '198.18.3.2', '198.18.3.1');
  host.inNs(app, host.commands.ip, ['route', 'add', `${VIP_OUT}/32`, 'via', '198.18.3.1']);
  if (fw === 'iptables') {
    applyIptables(host, app, [
      ['-t', 'nat', '-N', 'ISTIO_OUTPUT'],
      ['-t', 'nat', '-N', 'ISTIO_REDIRECT'],
      ['-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-j', 'ISTIO_OUTPUT'],
      ['-t', 'nat', '-A', 'ISTIO_OUTPUT', '-d', `${VIP_OUT}/32`, '-j', 'ISTIO_REDIRECT'],
      ['-t', 'nat', '-A', 'ISTIO_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15001'],
    ]);
  } else {
    applyNft(
      host,
      app,
      `table ip sidecar {
  chain output { type nat hook output priority -100; ip daddr ${VIP_OUT} tcp dport 80 redirect to :15001; }
}\n`,
    );
  }
  await startHaproxy(host, {
    ns: app,
    listen: '0.0.0.0:15001',
    upstream: `198.18.3.1:${SERVER_PORT}`,
    name: `out-${fw}`,
  });
  return {
    pattern: 'sidecar-outbound',
    firewall: fw,
    clientNs: app,
    connect: `${VIP_OUT}:80`,
    serverNs: srv,
    listen: `198.18.3.1:${SERVER_PORT}`,
    taps: [
      { ns: app, dev: 'lo', label: 'app lo (app→proxy)', hops: 1 },
      { ns: app, dev: veth.a, label: 'veth (proxy→server)', hops: 1 },
    ],
    hops: 2,
    views: { clientRemote: `${VIP_OUT}:80`, peerLocal: '127.0.0.1:15001' },
  };
}

async function sidecarInbound(host: NatHost, fw: Firewall): Promise<NatSetup> {
  const { a: cli, b: pod, veth } = twoNs(host, 'cli', 'pod', '198.18.4.2', '198.18.4.1');
  if (fw === 'iptables') {
    applyIptables(host, pod, [
      ['-t', 'nat', '-N', 'ISTIO_INBOUND'],
      ['-t', 'nat', '-N', 'ISTIO_IN_REDIRECT'],
      ['-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '-j', 'ISTIO_INBOUND'],
      ['-t', 'nat', '-A', 'ISTIO_INBOUND', '-p', 'tcp', '--dport', '8080', '-j', 'ISTIO_IN_REDIRECT'],
      ['-t', 'nat', '-A', 'ISTIO_IN_REDIRECT', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '15006'],
    ]);
  } else {
    applyNft(
      host,
      pod,
      `table ip sidecar {
  chain prerouting { type nat hook prerouting priority dstnat; tcp dport 8080 redirect to :15006; }
}\n`,
    );
  }
  // Locally made connections skip PREROUTING, so the proxy's own connection to :8080 is not redirected.
  const appAddress = fw === 'iptables' ? '127.0.0.1' : '198.18.4.1';
  await startHaproxy(host, { ns: pod, listen: '0.0.0.0:15006', upstream: `${appAddress}:8080`, name: `in-${fw}` });
  return {
    pattern: 'sidecar-inbound',
    firewall: fw,
    clientNs: cli,
    connect: '198.18.4.1:8080',
    serverNs: pod,
    listen: '0.0.0.0:8080',
    taps: [
      { ns: pod, dev: veth.b, label: 'veth (client→proxy)', hops: 1 },
      { ns: pod, dev: 'lo', label: 'pod lo (proxy→app)', hops: 1 },
    ],
    hops: 2,
    views: { clientRemote: '198.18.4.1:8080', peerLocal: '198.18.4.1:15006' },
  };
}

const VIP_SVC = '198.18.20.10';

function service(host: NatHost, fw: Firewall): NatSetup {
  const r = routed(host, 5, 6);
  const endpoint = '198.18.6.2:8080';
  if (fw === 'iptables') {
    // kube-proxy's iptables mode, one endpoint (with more, KUBE-SVC picks one with -m statistic).
    applyIptables(host, r.node, [
      ['-t', 'nat', '-N', 'KUBE-SERVICES'],
      ['-t', 'nat', '-N', 'KUBE-SVC-SBNAT'],
      ['-t', 'nat', '-N', 'KUBE-SEP-SBNAT'],
      ['-t', 'nat', '-A', 'PREROUTING', '-j', 'KUBE-SERVICES'],
      ['-t', 'nat', '-A', 'OUTPUT', '-j', 'KUBE-SERVICES'],
      ['-t', 'nat', '-A', 'KUBE-SERVICES', '-d', `${VIP_SVC}/32`, '-p', 'tcp', '--dport', '80', '-j', 'KUBE-SVC-SBNAT'],
      ['-t', 'nat', '-A', 'KUBE-SVC-SBNAT', '-j', 'KUBE-SEP-SBNAT'],
      ['-t', 'nat', '-A', 'KUBE-SEP-SBNAT', '-p', 'tcp', '-j', 'DNAT', '--to-destination', endpoint],
    ]);
  } else {
    // kube-proxy's nftables mode: a verdict map from VIP . proto . port to the service's chain.
    applyNft(
      host,
      r.node,
      `table ip kube-proxy {
  chain endpoint-sbnat { meta l4proto tcp dnat to ${endpoint}; }
  chain service-sbnat { goto endpoint-sbnat; }
  chain services { ip daddr . meta l4proto . th dport vmap { ${VIP_SVC} . tcp . 80 : goto service-sbnat }; }
  chain nat-prerouting { type nat hook prerouting priority dstnat; jump services; }
  chain nat-output { type nat hook output priority -100; jump services; }
}\n`,
    );
  }
  return {
    pattern: 'service',
    firewall: fw,
    clientNs: r.client,
    connect: `${VIP_SVC}:80`,
    serverNs: r.server,
    listen: endpoint,
    taps: [
      { ns: r.client, dev: r.clientVeth.a, label: 'client veth', hops: 1 },
      { ns: r.server, dev: r.serverVeth.a, label: 'server veth', hops: 1 },
    ],
    hops: 1,
    views: { clientRemote: `${VIP_SVC}:80`, peerLocal: endpoint },
  };
}

/** Builds `pattern` with `fw` rules in new namespaces of `host`; everything it made goes at the host's cleanup. */
export async function buildPattern(host: NatHost, pattern: PatternName, fw: Firewall): Promise<NatSetup> {
  if (pattern === 'sidecar-outbound') return sidecarOutbound(host, fw);
  if (pattern === 'sidecar-inbound') return sidecarInbound(host, fw);
  return service(host, fw);
}
