/**
 * Through NAT on one host (issue 12). Pairing identifies a connection by its
 * two ISNs and the client port (bpf/sockbypass.bpf.c, "Pairing"), which
 * REDIRECT and DNAT leave alone, so both hops through a sidecar and a
 * kube-proxy Service pair, with iptables and with nftables rules:
 * every byte verified (SHA-256 at both ends), lo and the veths carry only
 * handshakes and teardowns, and `connections --json` shows the app's view
 * (the VIP) and the other end's (the proxy's or pod's address) as one pair.
 *
 * Never cross-wire: where the two ends compute different identities (a SYN
 * proxy answers with its own ISN, SNAT rewrites the client port, TCP_REPAIR
 * makes sockets without a handshake) the connection stays on TCP, intact.
 * An FTP helper rewriting a PORT command does not change the identity: that
 * connection pairs, and its payload no longer passes the helper (docs/nat.md).
 * Two namespaces with identical tuples at once never meet.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, waitFor, type Sandbox } from './support/sandbox.js';
import { createNetns, createVeth, netnsNames, runInNetns, startInNetns, strayVeths } from './support/netns.js';
import { FIREWALLS, inNs, iptables, iptablesPackets, nft, sysctl, type Firewall } from './support/netfilter.js';
import { capture, synPorts } from './support/capture.js';
import { buildPattern, HAPROXY, routed, SERVER_PORT, type NatSetup, type PatternName } from './support/nat-patterns.js';
import { load } from '../src/core/load.js';
import { withPinnedState } from '../src/core/state.js';
import { connections, type ConnectionDetails } from '../src/observe/connections.js';
import {
  BUILD_DIR,
  CLI,
  Tally,
  assertIntact,
  counters,
  delta,
  fmtBytes,
  readyPort,
  requireTool,
  startIntegrity,
  type SbloadRun,
} from './support/trust.js';
import type { Counters } from '../src/core/layout.js';

const tally = new Tally('nat');
const REPAIR = join(BUILD_DIR, 'repair');
const SBLOAD = join(BUILD_DIR, 'sbload');

function tmp(sb: Sandbox): string {
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-nat-'));
  sb.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function countRun(cli: SbloadRun, srv: SbloadRun): void {
  tally.run(cli);
  tally.bytesVerified += srv.json.bytesVerified;
  tally.failures += srv.json.failures;
}

function counterText(d: Counters): string {
  return (
    `pairs ${d.pairsJoined}, inserted ${d.socketsInserted}, left alone (no peer) ${d.leftNoPeer}, (peer declined) ${d.leftPeerDeclined}, ` +
    `redirected ${fmtBytes(d.bytesRedirected)}, passed to TCP ${fmtBytes(d.bytesPassed)}, misses ${d.redirectMisses}, sticky ${d.stickyTcp}`
  );
}

interface Transfer {
  cli: SbloadRun;
  srv: SbloadRun;
  d: Counters;
  /** Most sockets in the sockhash at once while it ran. */
  maxInMap: number;
}

/** A split integrity run (server in serverNs, client in clientNs), intact both ways and agreeing on both hashes. */
async function transfer(
  sb: Sandbox,
  dir: string,
  o: {
    serverNs: string;
    listen: string;
    clientNs: string;
    connect: string;
    connections: number;
    bytes: string;
    seed: number;
    bind?: string;
    tag: string;
  },
): Promise<Transfer> {
  const ready = join(dir, `ready-${o.tag}`);
  const common = [
    '--connections',
    String(o.connections),
    '--bytes',
    o.bytes,
    '--seconds',
    '40',
    '--seed',
    String(o.seed),
  ];
  const before = counters(sb);
  const server = startIntegrity(sb, ['--role', 'server', '--listen', o.listen, '--ready-file', ready, ...common], {
    netns: o.serverNs,
    timeoutMs: 60_000,
  });
  await readyPort(ready, server.proc);
  const client = startIntegrity(
    sb,
    ['--role', 'client', '--connect', o.connect, ...(o.bind ? ['--bind', o.bind] : []), ...common],
    {
      netns: o.clientNs,
      timeoutMs: 60_000,
    },
  );
  let maxInMap = 0;
  let done = false;
  void Promise.allSettled([server.result, client.result]).then(() => (done = true));
  while (!done) {
    maxInMap = Math.max(
      maxInMap,
      withPinnedState(sb.pinDir, (s) => s.maps.sock_hash.count()),
    );
    await new Promise((r) => setTimeout(r, 10));
  }
  const [cli, srv] = [await client.result, await server.result];
  const d = delta(before, counters(sb));
  countRun(cli, srv);
  assertIntact(cli, `${o.tag} client`, 1);
  assertIntact(srv, `${o.tag} server`, 1);
  assert.equal(cli.json.c2sSha256, srv.json.c2sSha256, `${o.tag}: both ends hash the client→server bytes alike`);
  assert.equal(cli.json.s2cSha256, srv.json.s2cSha256, `${o.tag}: both ends hash the server→client bytes alike`);
  return { cli, srv, d, maxInMap };
}

/** `sockbypass connections --json` while one long-lived connection runs round trips through the pattern. */
async function viewsWhileRunning(sb: Sandbox, setup: NatSetup, dir: string): Promise<ConnectionDetails[]> {
  const ready = join(dir, `ready-rr-${setup.pattern}-${setup.firewall}`);
  const server = startInNetns(sb, setup.serverNs, SBLOAD, [
    'rr',
    '--role',
    'server',
    '--listen',
    setup.listen,
    '--ready-file',
    ready,
    '--seconds',
    '20',
  ]);
  await readyPort(ready, server);
  // Round trips for up to 8 s; stopped as soon as the view shows the pairs (node's start-up alone takes a while on 2 busy CPUs).
  const client = startInNetns(sb, setup.clientNs, SBLOAD, [
    'rr',
    '--role',
    'client',
    '--connect',
    setup.connect,
    '--seconds',
    '8',
    '--warmup',
    '100',
  ]);
  let seen: ConnectionDetails[] = [];
  while (client.child.exitCode === null) {
    const out = execFileSync(process.execPath, [CLI, 'connections', '--json', '--pin-dir', sb.pinDir]).toString();
    const list = (JSON.parse(out) as { connections: ConnectionDetails[] }).connections;
    if (list.filter((c) => c.b).length >= setup.hops) {
      seen = list;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(
    client.child.exitCode,
    null,
    `rr client through ${setup.pattern} ended before the view showed its pairs: ${client.stderr()}`,
  );
  client.child.kill('SIGTERM');
  server.child.kill('SIGTERM');
  await Promise.all([client.done, server.done]);
  return seen;
}

async function throughPattern(
  t: TestContext,
  sb: Sandbox,
  pattern: PatternName,
  fw: Firewall,
  dir: string,
): Promise<void> {
  const setup = await buildPattern(sb, pattern, fw, dir);
  const label = `${pattern} (${fw})`;
  const connections = 6;
  // Under flow control's smallest bound (the receive buffer plus tcp_wmem[2], 4 MiB here): a proxy
  // that reads slower than the app writes cannot fall far enough behind for flow control to send
  // part of a body by TCP (as TCP's own window would), so every byte takes the redirect.
  const bytes = '3M';
  const caps = await Promise.all(setup.taps.map((tap) => capture(sb, tap.ns, tap.dev)));
  const run = await transfer(sb, dir, { ...setup, connections, bytes, seed: 21, tag: label });
  const packets = await Promise.all(caps.map((c) => c.stop()));
  t.diagnostic(
    `${label}: ${connections} × ${bytes} each way through ${setup.hops} hop(s), ${fmtBytes(run.cli.json.bytesVerified + run.srv.json.bytesVerified)} verified, ` +
      `sha256 c2s ${run.cli.json.c2sSha256?.slice(0, 12)}… s2c ${run.cli.json.s2cSha256?.slice(0, 12)}… agree; ${counterText(run.d)}; ` +
      setup.taps.map((tap, i) => `${packets[i]} packets on ${tap.label}`).join(', '),
  );
  assert.equal(run.d.pairsJoined, connections * setup.hops, `${label}: both hops of every connection paired`);
  assert.equal(run.d.leftNoPeer + run.d.leftPeerDeclined + run.d.pairUnjoined, 0, `${label}: no end left alone`);
  assert.equal(run.d.flowToTcp, 0, `${label}: flow control never had to send by TCP`);
  setup.taps.forEach((tap, i) => {
    // A handshake and a teardown are ≤ 12 packets; unaccelerated, 3 MiB each way is hundreds.
    assert.ok((packets[i] as number) <= 12 * connections * tap.hops, `${label}: ${packets[i]} packets on ${tap.label}`);
  });

  const views = await viewsWhileRunning(sb, setup, dir);
  const natted = views.find(
    (c) => c.natted && c.a.remote === setup.views.clientRemote && c.b?.local === setup.views.peerLocal,
  );
  t.diagnostic(
    `${label}: connections --json during a round-trip run: ` +
      views
        .map(
          (c) =>
            `[${c.a.local}→${c.a.remote} | ${c.b ? `${c.b.local}→${c.b.remote}` : '-'}${c.natted ? ', natted' : ''}]`,
        )
        .join(' '),
  );
  assert.ok(
    natted,
    `${label}: a natted pair with the client's view ${setup.views.clientRemote} and its peer's ${setup.views.peerLocal}`,
  );
  assert.equal(natted.a.role, 'client', `${label}: the app's end comes first`);
  assert.equal(
    natted.a.local,
    natted.b?.remote,
    `${label}: the client's own address survives (REDIRECT and DNAT rewrite the destination only)`,
  );
}

for (const pattern of ['sidecar-outbound', 'sidecar-inbound', 'service'] as const) {
  const what = {
    'sidecar-outbound': 'app → VIP:80, OUTPUT REDIRECT to haproxy on 15001, on over a veth to the server',
    'sidecar-inbound':
      'client → pod:8080 over a veth, PREROUTING REDIRECT to haproxy on 15006, on to the app (127.0.0.1 / pod address)',
    service: 'client pod → Service VIP:80, DNAT in the node namespace (kube-proxy chains), routed to the server pod',
  }[pattern];
  test(`${pattern}: ${what}; iptables and nftables: both hops pair, bytes intact, only handshakes on the wire, both views shown`, async (t) => {
    if (!requirePrivileged(t)) return;
    await tally.track(t, async () => {
      requireTool(HAPROXY);
      await withSandbox(`nat-${pattern}`, async (sb) => {
        load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
        const dir = tmp(sb);
        for (const fw of FIREWALLS) await throughPattern(t, sb, pattern, fw, dir);
      });
    });
  });
}

/** A run whose ends must never pair: nothing enters the sockhash, each end is counted as left alone. */
function assertNeverPaired(run: Transfer, connections: number, label: string): void {
  assert.equal(run.maxInMap, 0, `${label}: no socket ever entered the sockhash`);
  assert.equal(run.d.socketsInserted + run.d.pairsJoined, 0, `${label}: nothing inserted, nothing paired`);
  assert.equal(run.d.leftNoPeer, 2 * connections, `${label}: both ends of every connection left alone`);
}

test('never cross-wire: a SYNPROXY in front of the server answers with its own ISN; the ends never pair and stay intact over TCP', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('nat-synproxy', async (sb) => {
      const cli = createNetns(sb, 'syn-c');
      const srv = createNetns(sb, 'syn-s');
      const veth = createVeth(sb, cli, srv, '198.18.40.2/24', '198.18.40.1/24');
      sysctl(srv, 'net.netfilter.nf_conntrack_tcp_loose', '0');
      iptables(sb, srv, [
        [
          '-t',
          'raw',
          '-A',
          'PREROUTING',
          '-i',
          veth.b,
          '-p',
          'tcp',
          '--dport',
          String(SERVER_PORT),
          '--syn',
          '-j',
          'CT',
          '--notrack',
        ],
        [
          '-A',
          'INPUT',
          '-i',
          veth.b,
          '-p',
          'tcp',
          '--dport',
          String(SERVER_PORT),
          '-m',
          'conntrack',
          '--ctstate',
          'INVALID,UNTRACKED',
          '-j',
          'SYNPROXY',
          '--sack-perm',
          '--timestamp',
          '--wscale',
          '7',
          '--mss',
          '1460',
        ],
        [
          '-A',
          'INPUT',
          '-i',
          veth.b,
          '-p',
          'tcp',
          '--dport',
          String(SERVER_PORT),
          '-m',
          'conntrack',
          '--ctstate',
          'INVALID',
          '-j',
          'DROP',
        ],
      ]);
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      const connections = 20;
      const run = await transfer(sb, tmp(sb), {
        serverNs: srv,
        listen: `198.18.40.1:${SERVER_PORT}`,
        clientNs: cli,
        connect: `198.18.40.1:${SERVER_PORT}`,
        connections,
        bytes: '256K',
        seed: 31,
        tag: 'synproxy',
      });
      const proxied = iptablesPackets(srv, 'filter', 'INPUT', 'SYNPROXY');
      t.diagnostic(
        `synproxy: ${connections} connections, ${fmtBytes(run.cli.json.bytesVerified + run.srv.json.bytesVerified)} verified; SYNPROXY rule matched ${proxied} packets; ${counterText(run.d)}`,
      );
      assert.ok(proxied >= 2 * connections, 'the SYN proxy answered the SYNs and completed the handshakes');
      assertNeverPaired(run, connections, 'synproxy');
    });
  });
});

test('never cross-wire: SNAT that rewrites the client port (iptables and nftables, in a node namespace); the ends never pair and stay intact', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('nat-snat', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      const dir = tmp(sb);
      for (const fw of FIREWALLS) {
        const r = routed(sb, 50, 51);
        if (fw === 'iptables') {
          iptables(sb, r.node, [
            [
              '-t',
              'nat',
              '-A',
              'POSTROUTING',
              '-o',
              r.serverVeth.b,
              '-p',
              'tcp',
              '-j',
              'SNAT',
              '--to-source',
              '198.18.51.1:20000-20100',
            ],
          ]);
        } else {
          nft(
            sb,
            r.node,
            `table ip node-snat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "${r.serverVeth.b}" meta l4proto tcp snat to 198.18.51.1:20000-20100; }
}\n`,
          );
        }
        const connections = 20;
        const syns = await synPorts(sb, r.server, r.serverVeth.a);
        const run = await transfer(sb, dir, {
          serverNs: r.server,
          listen: `198.18.51.2:${SERVER_PORT}`,
          clientNs: r.client,
          connect: `198.18.51.2:${SERVER_PORT}`,
          bind: '198.18.50.2:41000',
          connections,
          bytes: '256K',
          seed: 41,
          tag: `snat-${fw}`,
        });
        const ports = await syns.stop();
        t.diagnostic(
          `snat (${fw}): client ports 41000-${41000 + connections - 1}, the server saw SYNs from ports ${[...new Set(ports)].sort((x, y) => x - y).join(',')}; ${counterText(run.d)}`,
        );
        assert.equal(ports.length, connections, `snat (${fw}): one SYN per connection reached the server`);
        assert.ok(
          ports.every((p) => p >= 20000 && p <= 20100),
          `snat (${fw}): every client port was rewritten into 20000-20100`,
        );
        assertNeverPaired(run, connections, `snat (${fw})`);
      }
    });
  });
});

interface RepairResult {
  ok: boolean;
  badBytes: number;
  error?: string;
}

async function repairRun(sb: Sandbox, ns: string, args: string[]): Promise<{ json: RepairResult; d: Counters }> {
  const before = counters(sb);
  const done = await runInNetns(sb, ns, REPAIR, args, { timeoutMs: 30_000 });
  const d = delta(before, counters(sb));
  const json = JSON.parse(done.stdout.trim().split('\n').pop() ?? '{}') as RepairResult;
  assert.equal(json.error, undefined, `repair ${args.join(' ')}: ${json.error} ${done.stderr}`);
  assert.equal(done.code, 0, `repair ${args.join(' ')}: exit ${done.code}, ${done.stdout} ${done.stderr}`);
  assert.ok(json.ok && json.badBytes === 0, `repair ${args.join(' ')}: every byte arrived`);
  return { json, d };
}

test('never cross-wire: TCP_REPAIR -- repaired ends never pair; a client restored into its paired tuple stays on TCP and the data is intact', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    requireTool(REPAIR);
    await withSandbox('nat-repair', async (sb) => {
      const ns = createNetns(sb, 'repair');
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      const bytes = 4 << 20;
      // Arbitrary sequence numbers, one pair wrapping around 2^32 at once.
      for (const [a, b] of [
        ['0x12345678', '0x9abcdef0'],
        ['0xffffffff', '0xfffffff0'],
        ['1', '1'],
      ] as const) {
        const { json, d } = await repairRun(sb, ns, ['pair', '--seq-a', a, '--seq-b', b, '--bytes', String(bytes)]);
        tally.connections += 1;
        tally.bytesVerified += 2 * bytes;
        t.diagnostic(`repair pair seq ${a}/${b}: ${JSON.stringify(json)}; ${counterText(d)}`);
        assert.equal(d.socketsInserted + d.pairsJoined, 0, `repaired pair ${a}/${b}: never inserted`);
        assert.equal(
          d.leftNoPeer,
          2,
          `repaired pair ${a}/${b}: both ends (established without a SYN) found no pending pair`,
        );
      }
      // A paired connection whose client is checkpointed and restored (CRIU's way) into the same tuple and sequence numbers.
      const { json, d } = await repairRun(sb, ns, ['restore', '--bytes', String(bytes)]);
      tally.connections += 1;
      tally.bytesVerified += 4 * bytes;
      t.diagnostic(`repair restore: ${JSON.stringify(json)}; ${counterText(d)}`);
      assert.equal(d.pairsJoined, 1, 'restore: the original connection paired');
      assert.equal(d.socketsInserted, 2, 'restore: the restored end never entered the sockhash');
      assert.equal(d.leftNoPeer, 1, 'restore: the restored end found no pending pair');
      assert.ok(d.stickyTcp >= 1, "restore: the server's stored peer key found nothing and it went on by TCP");
    });
  });
});

/**
 * A tiny FTP-like control connection: the server greets, the client sends
 * USER (the helper only parses a line that starts after a newline it saw),
 * then PORT; the server echoes each line it received.
 */
const FTP_SERVER = `
const net = require('node:net');
const srv = net.createServer((s) => {
  s.write('220 ready\\r\\n');
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\r\\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 2);
      if (line === 'QUIT') { s.end('221 bye\\r\\n'); srv.close(); return; }
      s.write('200 got ' + line + '\\r\\n');
    }
  });
});
srv.listen(21, process.argv[1], () => console.log('listening'));
`;
const FTP_CLIENT = `
const net = require('node:net');
const s = net.connect(21, process.argv[1]);
let buf = '', step = 0;
s.on('data', (d) => {
  buf += d;
  if (step === 0 && buf.includes('220 ready\\r\\n')) { step = 1; s.write('USER anonymous\\r\\n'); }
  if (step === 1 && buf.includes('200 got USER')) { step = 2; s.write(process.argv[2] + '\\r\\n'); }
  const m = /200 got (PORT .*)\\r\\n/.exec(buf);
  if (step === 2 && m) { step = 3; s.write('QUIT\\r\\n'); console.log(JSON.stringify({ serverGot: m[1] })); }
});
s.on('error', (e) => { console.log(JSON.stringify({ error: String(e) })); process.exit(2); });
`;

test('ALG: the FTP helper rewriting a PORT command does not change the handshake identity -- the control connection pairs, and its payload bypasses the helper', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('nat-alg', async (sb) => {
      // The client's address and the SNAT address print to PORT arguments of different lengths, so the helper must adjust sequence numbers.
      const r = routed(sb, 52, 153);
      iptables(sb, r.node, [
        ['-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '21', '-j', 'CT', '--helper', 'ftp'],
        [
          '-t',
          'nat',
          '-A',
          'POSTROUTING',
          '-o',
          r.serverVeth.b,
          '-p',
          'tcp',
          '-j',
          'SNAT',
          '--to-source',
          '198.18.153.1',
        ],
      ]);
      const port = 'PORT 198,18,52,2,156,64';
      const session = async (): Promise<string> => {
        const server = startInNetns(sb, r.server, process.execPath, ['-e', FTP_SERVER, '198.18.153.2']);
        await waitFor(() => server.stdout().includes('listening') || server.child.exitCode !== null, 10_000);
        const client = await runInNetns(sb, r.client, process.execPath, ['-e', FTP_CLIENT, '198.18.153.2', port], {
          timeoutMs: 15_000,
        });
        await server.done;
        const json = JSON.parse(client.stdout.trim().split('\n').pop() ?? '{}') as {
          serverGot?: string;
          error?: string;
        };
        assert.equal(json.error, undefined, `ftp-like client: ${json.error}`);
        return json.serverGot ?? '';
      };
      const off = await session();
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      const before = counters(sb);
      const on = await session();
      const d = delta(before, counters(sb));
      t.diagnostic(
        `alg: client sent "${port}"; bypass off, the server got "${off}"; bypass on, "${on}"; ${counterText(d)}`,
      );
      assert.equal(
        off,
        'PORT 198,18,153,1,156,64',
        'without the bypass the helper rewrites the PORT address (the test has teeth)',
      );
      assert.equal(d.pairsJoined, 1, 'the helper changes no ISN and keeps the port: the control connection pairs');
      assert.equal(
        on,
        port,
        'paired, the PORT command arrives exactly as the client wrote it: the helper never sees it',
      );
    });
  });
});

test('isolation: two namespaces with identical app → VIP REDIRECT setups and the same client ports, at once, never meet', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('nat-iso', async (sb) => {
      const dir = tmp(sb);
      const namespaces = [createNetns(sb, 'iso-a'), createNetns(sb, 'iso-b')];
      for (const ns of namespaces) {
        // The app's source address lives on a veth whose both ends stay in the namespace; the VIP is routed there, then redirected to the local server.
        inNs(ns, 'ip', ['link', 'add', 'sbnat0', 'type', 'veth', 'peer', 'name', 'sbnat1']);
        inNs(ns, 'ip', ['addr', 'add', '198.18.3.2/24', 'dev', 'sbnat0']);
        inNs(ns, 'ip', ['link', 'set', 'sbnat0', 'up']);
        inNs(ns, 'ip', ['link', 'set', 'sbnat1', 'up']);
        inNs(ns, 'ip', ['route', 'add', '198.18.10.10/32', 'dev', 'sbnat0']);
        iptables(sb, ns, [
          [
            '-t',
            'nat',
            '-A',
            'OUTPUT',
            '-p',
            'tcp',
            '-d',
            '198.18.10.10',
            '--dport',
            '80',
            '-j',
            'REDIRECT',
            '--to-ports',
            '15001',
          ],
          [
            '-t',
            'nat',
            '-A',
            'OUTPUT',
            '-p',
            'tcp',
            '-d',
            '198.18.10.10',
            '--dport',
            '81',
            '-j',
            'REDIRECT',
            '--to-ports',
            '15002',
          ],
        ]);
      }
      // Beside the transfers, one long-lived connection per namespace (round trips for 3 s,
      // the same client port in both) that the connections view is sure to catch.
      const rrServers = namespaces.map((ns, i) => {
        const ready = join(dir, `ready-rr-${i}`);
        return {
          ready,
          proc: startInNetns(sb, ns, SBLOAD, [
            'rr',
            '--role',
            'server',
            '--listen',
            '0.0.0.0:15002',
            '--ready-file',
            ready,
            '--seconds',
            '30',
          ]),
        };
      });
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      const perNs = 40;
      const before = counters(sb);
      let crossed = 0;
      let pairsSeen = 0;
      let running = true;
      const watch = (async () => {
        while (running) {
          const list = connections({ pinDir: sb.pinDir });
          crossed += list.filter((c) => c.b && c.crossNamespace).length;
          const natted = list.filter((c) => c.b && c.natted);
          if (new Set(natted.map((c) => c.a.netns.cookie)).size >= 2) pairsSeen = Math.max(pairsSeen, natted.length);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      for (const r of rrServers) await readyPort(r.ready, r.proc);
      const rrClients = namespaces.map((ns) =>
        startInNetns(sb, ns, SBLOAD, [
          'rr',
          '--role',
          'client',
          '--connect',
          '198.18.10.10:81',
          '--bind',
          '198.18.3.2:43000',
          '--seconds',
          '3',
          '--warmup',
          '100',
        ]),
      );
      const runs = await Promise.all(
        namespaces.map((ns, i) =>
          transfer(sb, dir, {
            serverNs: ns,
            listen: '0.0.0.0:15001',
            clientNs: ns,
            connect: '198.18.10.10:80',
            bind: '198.18.3.2:42000',
            connections: perNs,
            bytes: '1M',
            seed: 500 + i,
            tag: `iso-${i}`,
          }),
        ),
      );
      for (const c of rrClients) assert.equal((await c.done).code, 0, `rr client: ${c.stderr()}`);
      running = false;
      await watch;
      for (const r of rrServers) r.proc.child.kill('SIGTERM');
      const d = delta(before, counters(sb));
      t.diagnostic(
        `isolation: 2 × ${perNs} connections from 198.18.3.2:42000-${42000 + perNs - 1} to 198.18.10.10:80 (→ 127.0.0.1:15001), other seeds per namespace; ` +
          `${runs.map((r, i) => `ns ${i}: c2s ${r.cli.json.c2sSha256?.slice(0, 12)}…`).join(', ')}; natted pairs seen at once in both namespaces ${pairsSeen}, pairs across namespaces ${crossed}; ${counterText(d)}`,
      );
      assert.notEqual(
        runs[0]?.cli.json.c2sSha256,
        runs[1]?.cli.json.c2sSha256,
        'the two namespaces carried different bytes',
      );
      assert.ok(pairsSeen >= 2, 'the connections view caught natted pairs of both namespaces at once');
      assert.equal(crossed, 0, 'no pair ever had its ends in two namespaces');
      assert.equal(
        d.pairsJoined,
        2 * perNs + 2,
        'every connection in both namespaces paired (and the two round-trip connections)',
      );
      assert.equal(d.insertExists, 0, 'identical tuples in two namespaces never collided in the map');
    });
    assert.deepEqual(strayVeths(), [], 'no veth left behind');
    assert.deepEqual(
      netnsNames().filter((n) => n.startsWith('sbt-') && n.includes(`-${process.pid}-`)),
      [],
      'no namespace left behind',
    );
  });
});

test('nat summary', (t) => {
  t.diagnostic(tally.line());
});
