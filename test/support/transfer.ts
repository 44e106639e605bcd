/**
 * A verified bidirectional TCP transfer, run as its own process inside a
 * test's cgroup: a server and a client in this process each send `--bytes`
 * of pseudo-random data and SHA-256 what they send and receive.
 *
 * Prints `CONNECTED {ports}` once both ends exist, `DONE {result}` when both
 * directions are complete (then holds the connection open for --hold-ms so a
 * test can look at the map), and exits after closing.
 *
 * With --reply-after the server sends only once it has received everything:
 * a one-way stream, then the answer.
 *
 * usage: node transfer.js --listen HOST --connect HOST [--port N] [--bytes N] [--chunk N] [--hold-ms N] [--reply-after]
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1' },
    connect: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    bytes: { type: 'string', default: String(64 * 1024 * 1024) },
    chunk: { type: 'string', default: String(64 * 1024) },
    'hold-ms': { type: 'string', default: '0' },
    'reply-after': { type: 'boolean', default: false },
  },
});
const total = Number(values.bytes);
const chunk = Number(values.chunk);
const holdMs = Number(values['hold-ms']);

interface Side {
  sent: string;
  received: string;
  receivedBytes: number;
}

/**
 * Send `total` bytes (a fixed random block, rotated per chunk) and hash both directions; with
 * `replyAfter`, start sending once `total` bytes were received.
 */
function drive(sock: Socket, replyAfter = false): Promise<Side> {
  const block = randomBytes(chunk + 257);
  const sentHash = createHash('sha256');
  const recvHash = createHash('sha256');
  let received = 0;
  let sent = 0;
  let sendDone = false;
  let resolveSide: (s: Side) => void;
  const result = new Promise<Side>((r) => (resolveSide = r));
  let finished = false;
  const maybeDone = () => {
    if (sendDone && received >= total && !finished) {
      finished = true;
      resolveSide({ sent: sentHash.digest('hex'), received: recvHash.digest('hex'), receivedBytes: received });
    }
  };
  let started = false;
  const start = () => {
    if (!started) {
      started = true;
      pump();
    }
  };
  sock.on('data', (d: Buffer) => {
    recvHash.update(d);
    received += d.length;
    if (replyAfter && received >= total) start();
    maybeDone();
  });
  const pump = () => {
    while (sent < total) {
      const n = Math.min(chunk, total - sent);
      const off = sent % 257;
      const piece = block.subarray(off, off + n);
      sentHash.update(piece);
      sent += n;
      if (!sock.write(piece)) {
        sock.once('drain', pump);
        return;
      }
    }
    sendDone = true;
    maybeDone();
  };
  if (!replyAfter) start();
  return result;
}

const server = createServer();
server.listen(Number(values.port), values.listen, () => {
  const addr = server.address();
  if (!addr || typeof addr !== 'object') throw new Error('no server address');
  let serverSide: Promise<Side> | undefined;
  let serverSock: Socket | undefined;
  const accepted = new Promise<void>((resolve) =>
    server.once('connection', (s) => {
      s.setNoDelay(true);
      serverSock = s;
      serverSide = drive(s, values['reply-after']);
      resolve();
    }),
  );
  const client = connect({ host: values.connect, port: addr.port }, async () => {
    client.setNoDelay(true);
    const clientSide = drive(client);
    await accepted;
    process.stdout.write(
      `CONNECTED ${JSON.stringify({ serverPort: addr.port, clientPort: client.localPort, clientAddress: client.localAddress })}\n`,
    );
    const [c, s] = await Promise.all([clientSide, serverSide as Promise<Side>]);
    process.stdout.write(
      `DONE ${JSON.stringify({
        bytes: total,
        clientToServerIntact: c.sent === s.received && s.receivedBytes === total,
        serverToClientIntact: s.sent === c.received && c.receivedBytes === total,
        client: c,
        server: s,
      })}\n`,
    );
    setTimeout(() => {
      client.end();
      serverSock?.end();
      server.close();
    }, holdMs);
  });
  client.on('error', (e) => {
    process.stderr.write(`client error: ${e.message}\n`);
    process.exit(1);
  });
});
