/**
 * Test traffic for the observability tests, run as its own process (inside a
 * sandbox's cgroup). Two modes, so the two ends of each connection belong to
 * different processes:
 *
 *   node conns.js serve [--listen HOST]
 *     Prints `LISTENING {"port":N,"pid":P}`, reads every connection to its
 *     end, and on SIGUSR2 (or when --expect N connections have finished)
 *     prints `SERVED {"connections":N,"bytes":B}` and exits.
 *
 *   node conns.js connect --port N [--host H] [--count C] [--bytes B] [--hold]
 *     Opens C connections, sends B bytes on each, prints
 *     `READY {"pid":P,"clientPorts":[...]}` once all are connected and written;
 *     with --hold waits for SIGUSR2 before closing. Prints `CLOSED` and exits
 *     once every connection is fully closed.
 */
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    listen: { type: 'string', default: '::' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    count: { type: 'string', default: '1' },
    bytes: { type: 'string', default: '0' },
    expect: { type: 'string', default: '0' },
    hold: { type: 'boolean', default: false },
  },
});

function serve(): void {
  let connections = 0;
  let finished = 0;
  let bytes = 0;
  const expect = Number(values.expect);
  const server = createServer((sock) => {
    connections++;
    sock.on('data', (d: Buffer) => (bytes += d.length));
    sock.on('error', () => {});
    sock.on('end', () => sock.end());
    sock.on('close', () => {
      finished++;
      if (expect > 0 && finished === expect) done();
    });
  });
  const done = () => {
    process.stdout.write(`SERVED ${JSON.stringify({ connections, bytes })}\n`);
    server.close(() => process.exit(0));
  };
  process.on('SIGUSR2', done);
  server.listen(Number(values.port), values.listen, () => {
    const addr = server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    process.stdout.write(`LISTENING ${JSON.stringify({ port, pid: process.pid })}\n`);
  });
}

async function connectAll(): Promise<void> {
  const count = Number(values.count);
  const payload = Buffer.alloc(Number(values.bytes), 0x5a);
  const socks: Socket[] = [];
  const closed: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = connect(Number(values.port), values.host, () => resolve(s));
      s.once('error', reject);
    });
    sock.on('data', () => {});
    closed.push(new Promise((resolve) => sock.on('close', () => resolve())));
    socks.push(sock);
  }
  await Promise.all(
    socks.map((s) => (payload.length ? new Promise<void>((resolve) => s.write(payload, () => resolve())) : undefined)),
  );
  // The handler exists before READY is printed, so a test can signal right after reading it.
  const release = values.hold ? new Promise<void>((resolve) => process.once('SIGUSR2', () => resolve())) : undefined;
  process.stdout.write(`READY ${JSON.stringify({ pid: process.pid, clientPorts: socks.map((s) => s.localPort) })}\n`);
  await release;
  for (const s of socks) s.end();
  await Promise.all(closed);
  process.stdout.write('CLOSED\n');
}

if (positionals[0] === 'serve') serve();
else if (positionals[0] === 'connect') {
  connectAll().catch((err: unknown) => {
    process.stderr.write(`conns: ${String(err)}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: conns.js serve|connect [options]\n');
  process.exit(2);
}
