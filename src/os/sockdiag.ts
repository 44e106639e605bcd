/**
 * Which process owns a socket, and what the socket really is: the kernel's
 * sock_diag netlink interface (what `ss` uses), called through koffi, plus a
 * scan of /proc/PID/fd for the owning processes (also what `ss -p` does).
 *
 * sock_diag only sees the sockets of the network namespace the netlink
 * socket was created in. To look into another namespace, the calling thread
 * enters it with setns(2) just long enough to create the netlink socket, and
 * returns to its own at once (network namespaces are per thread, and the
 * calling code is synchronous, so nothing else runs on this thread
 * meanwhile). The same socket answers SO_NETNS_COOKIE, which is how a
 * namespace's cookie — the one the sockhash key carries — is learnt without
 * any helper process.
 *
 * Needs CAP_SYS_ADMIN for setns and root to read other users' /proc/PID/fd.
 */
import { createRequire } from 'node:module';
import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  constants as fsConstants,
} from 'node:fs';
import { join } from 'node:path';
import type * as KoffiModule from 'koffi';

const require = createRequire(import.meta.url);
const koffi = require('koffi') as typeof KoffiModule;
const libc = koffi.load('libc.so.6');

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  send: libc.func('long send(int fd, const void *buf, size_t len, int flags)'),
  recv: libc.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int optname, _Out_ void *optval, _Inout_ uint32_t *optlen)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int optname, const void *optval, uint32_t optlen)'),
  setns: libc.func('int setns(int fd, int nstype)'),
};

const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const IPPROTO_TCP = 6;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const SO_NETNS_COOKIE = 71;
const CLONE_NEWNET = 0x40000000;

export const TCP_STATES = [
  '?',
  'ESTABLISHED',
  'SYN-SENT',
  'SYN-RECV',
  'FIN-WAIT-1',
  'FIN-WAIT-2',
  'TIME-WAIT',
  'CLOSE',
  'CLOSE-WAIT',
  'LAST-ACK',
  'LISTEN',
  'CLOSING',
  'NEW-SYN-RECV',
] as const;

class SysError extends Error {
  constructor(
    what: string,
    readonly errno: number,
  ) {
    super(`${what}: errno ${errno}`);
  }
}

function sys(ret: number, what: string): number {
  if (ret < 0) throw new SysError(what, koffi.errno());
  return ret;
}

/** One TCP socket as sock_diag reports it. */
export interface DiagSocket {
  /** The socket's own family: an AF_INET6 socket talking IPv4 is 'inet6' with mapped addresses. */
  family: 'inet' | 'inet6';
  state: string;
  /** 16-byte form (IPv4 as ::ffff:a.b.c.d), like the sockhash key. */
  localAddress: Buffer;
  localPort: number;
  remoteAddress: Buffer;
  remotePort: number;
  cookie: bigint;
  /** sockfs inode; 0 when no file holds the socket (e.g. orphaned while closing). */
  inode: number;
  uid: number;
}

const V4_MAPPED = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function to16(family: number, raw: Buffer): Buffer {
  return family === AF_INET ? Buffer.concat([V4_MAPPED, raw.subarray(0, 4)]) : Buffer.from(raw);
}

/** A sock_diag netlink socket, created in the namespace at `netnsPath` (default: this thread's). */
export class DiagSocketHandle {
  private constructor(readonly fd: number) {}

  static open(netnsPath?: string): DiagSocketHandle {
    const create = () =>
      sys(c.socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG) as number, 'socket(AF_NETLINK)');
    const fd = netnsPath === undefined ? create() : inNetns(netnsPath, create);
    const handle = new DiagSocketHandle(fd);
    try {
      const tv = Buffer.alloc(16);
      tv.writeBigInt64LE(2n, 0); // a dump never takes seconds; do not hang if the kernel stays silent
      sys(c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length) as number, 'setsockopt(SO_RCVTIMEO)');
    } catch (err) {
      handle.close();
      throw err;
    }
    return handle;
  }

  /** The cookie of the network namespace this socket lives in (SO_NETNS_COOKIE, Linux 5.14+). */
  netnsCookie(): bigint {
    const value = Buffer.alloc(8);
    const len = [8];
    sys(c.getsockopt(this.fd, SOL_SOCKET, SO_NETNS_COOKIE, value, len) as number, 'getsockopt(SO_NETNS_COOKIE)');
    return value.readBigUInt64LE(0);
  }

  /** Every TCP socket of the namespace, both families. */
  tcpSockets(): DiagSocket[] {
    return [...this.dump(AF_INET), ...this.dump(AF_INET6)];
  }

  private dump(family: number): DiagSocket[] {
    const req = Buffer.alloc(16 + 56);
    req.writeUInt32LE(req.length, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt32LE(family, 8); // sequence number: anything
    req.writeUInt8(family, 16);
    req.writeUInt8(IPPROTO_TCP, 17);
    req.writeUInt32LE(0xffffffff, 20); // every state
    sys(c.send(this.fd, req, req.length, 0) as number, 'send sock_diag request');

    const out: DiagSocket[] = [];
    const buf = Buffer.alloc(65536);
    for (;;) {
      const n = sys(c.recv(this.fd, buf, buf.length, 0) as number, 'recv sock_diag answer');
      if (n === 0) throw new Error('sock_diag: netlink socket closed mid-dump');
      for (let off = 0; off + 16 <= n; ) {
        const len = buf.readUInt32LE(off);
        const type = buf.readUInt16LE(off + 4);
        if (len < 16 || off + len > n) throw new Error(`sock_diag: malformed netlink message (len ${len})`);
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) {
          const error = buf.readInt32LE(off + 16);
          if (error === 0) return out;
          throw new SysError('sock_diag dump', -error);
        }
        if (type === SOCK_DIAG_BY_FAMILY && len >= 16 + 72) {
          const m = off + 16;
          const fam = buf.readUInt8(m);
          const cookieLo = BigInt(buf.readUInt32LE(m + 44));
          const cookieHi = BigInt(buf.readUInt32LE(m + 48));
          out.push({
            family: fam === AF_INET ? 'inet' : 'inet6',
            state: TCP_STATES[buf.readUInt8(m + 1)] ?? String(buf.readUInt8(m + 1)),
            localPort: buf.readUInt16BE(m + 4),
            remotePort: buf.readUInt16BE(m + 6),
            localAddress: to16(fam, buf.subarray(m + 8, m + 24)),
            remoteAddress: to16(fam, buf.subarray(m + 24, m + 40)),
            cookie: (cookieHi << 32n) | cookieLo,
            uid: buf.readUInt32LE(m + 64),
            inode: buf.readUInt32LE(m + 68),
          });
        }
        off += (len + 3) & ~3;
      }
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/**
 * Run `body` with this thread inside the network namespace at `nsPath`
 * (a /run/netns/NAME bind mount or a /proc/PID/ns/net link), then return.
 * `body` must be synchronous.
 */
export function inNetns<T>(nsPath: string, body: () => T): T {
  const home = openSync('/proc/thread-self/ns/net', fsConstants.O_RDONLY);
  let target = -1;
  try {
    target = openSync(nsPath, fsConstants.O_RDONLY);
    sys(c.setns(target, CLONE_NEWNET) as number, `enter network namespace ${nsPath}`);
    try {
      return body();
    } finally {
      // Failing to return would leave this thread in a foreign namespace: never continue then.
      if ((c.setns(home, CLONE_NEWNET) as number) < 0) {
        process.stderr.write(`sockbypass: cannot return to the original network namespace (errno ${koffi.errno()})\n`);
        process.abort();
      }
    }
  } finally {
    if (target >= 0) closeSync(target);
    closeSync(home);
  }
}

/** A network namespace sockbypass can look into. */
export interface NetnsEntry {
  /** The namespace cookie (what the sockhash key carries). */
  cookie: bigint;
  /** The nsfs inode (what `ls -l /proc/PID/ns/net` shows). */
  inode: bigint;
  /** Name under /run/netns, if it has one. */
  name?: string;
  /** Whether it is the namespace this process runs in. */
  current: boolean;
  /** A path that opens it. */
  path: string;
}

export const NETNS_RUN_DIR = '/run/netns';

function nsInode(path: string): bigint | undefined {
  try {
    return statSync(path, { bigint: true }).ino;
  } catch {
    return undefined;
  }
}

/**
 * The network namespaces to look into: this process's own, every one named
 * under /run/netns and, with `processes`, every other one some process runs
 * in. Each comes with its cookie. Namespaces that cannot be entered are skipped.
 */
export function listNetns(options: { processes?: boolean } = {}): NetnsEntry[] {
  const candidates: Array<{ path: string; name?: string; current: boolean }> = [
    { path: '/proc/thread-self/ns/net', current: true },
  ];
  let names: string[] = [];
  try {
    names = readdirSync(NETNS_RUN_DIR).sort();
  } catch {
    // no named namespaces
  }
  for (const name of names) candidates.push({ path: join(NETNS_RUN_DIR, name), name, current: false });
  if (options.processes) {
    for (const pid of pids()) candidates.push({ path: `/proc/${pid}/ns/net`, current: false });
  }
  const byInode = new Map<bigint, NetnsEntry>();
  for (const cand of candidates) {
    const inode = nsInode(cand.path);
    if (inode === undefined) continue;
    const known = byInode.get(inode);
    if (known) {
      if (cand.name && !known.name) known.name = cand.name;
      continue;
    }
    let cookie: bigint;
    try {
      const h = DiagSocketHandle.open(cand.current ? undefined : cand.path);
      try {
        cookie = h.netnsCookie();
      } finally {
        h.close();
      }
    } catch {
      continue;
    }
    byInode.set(inode, {
      cookie,
      inode,
      current: cand.current,
      path: cand.path,
      ...(cand.name ? { name: cand.name } : {}),
    });
  }
  return [...byInode.values()];
}

function pids(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

/** A process holding a socket open. */
export interface SocketOwner {
  pid: number;
  command: string;
  fd: number;
}

/**
 * The processes holding each of `inodes` open, from /proc/PID/fd (the same
 * walk `ss -p` does). Threads share their process's fd table, so each
 * process is listed once.
 */
export function socketOwners(inodes: ReadonlySet<number>): Map<number, SocketOwner[]> {
  const owners = new Map<number, SocketOwner[]>();
  if (inodes.size === 0) return owners;
  for (const pid of pids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // exited, or not ours to read
    }
    let command: string | undefined;
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (!m) continue;
      const inode = Number(m[1]);
      if (!inodes.has(inode)) continue;
      if (command === undefined) {
        try {
          command = readFileSync(`/proc/${pid}/comm`, 'utf8').trimEnd();
        } catch {
          command = '?';
        }
      }
      const list = owners.get(inode) ?? [];
      list.push({ pid, command, fd: Number(fd) });
      owners.set(inode, list);
    }
  }
  return owners;
}

/** Every TCP socket in each of `namespaces`, keyed by socket cookie. */
export function diagSockets(namespaces: readonly NetnsEntry[]): Map<bigint, DiagSocket & { netns: NetnsEntry }> {
  const out = new Map<bigint, DiagSocket & { netns: NetnsEntry }>();
  for (const ns of namespaces) {
    let h: DiagSocketHandle;
    try {
      h = DiagSocketHandle.open(ns.current ? undefined : ns.path);
    } catch {
      continue;
    }
    try {
      for (const s of h.tcpSockets()) out.set(s.cookie, { ...s, netns: ns });
    } finally {
      h.close();
    }
  }
  return out;
}
