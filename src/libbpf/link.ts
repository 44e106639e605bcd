/**
 * Links: both attachments sockbypass makes are kernel link objects (sock_ops
 * on a cgroup, sk_msg on the sockhash), behind one small interface: pin,
 * detach, swap the program, close.
 */
import { closeSync, unlinkSync } from 'node:fs';
import { BPF, fn, koffi, LinkUpdateOpts } from './ffi.js';
import { bpfError, check, NotFoundError } from './errors.js';
import { linkInfo, type LinkInfo } from './info.js';

export interface Link {
  /** Make the attachment outlive this process. */
  pin(path: string): void;
  /** Remove the pin; the attachment lives on while some fd or pin holds it. */
  unpin(path: string): void;
  /** Detach from the kernel hook now, whoever else holds the link. */
  detach(): void;
  /** Swap the attached program atomically. */
  update(programFd: number): void;
  /** Drop this process's handle; an unpinned link then detaches. */
  close(): void;
  info(): LinkInfo;
}

class FdLink implements Link {
  private closed = false;
  constructor(
    readonly fd: number,
    private readonly what: string,
  ) {}

  pin(path: string): void {
    check(fn.bpf_obj_pin(this.fd, path), `pin ${this.what} link at ${path}`);
  }
  unpin(path: string): void {
    unpinPath(path);
  }
  detach(): void {
    check(fn.bpf_link_detach(this.fd), `detach ${this.what}`);
  }
  update(programFd: number): void {
    const opts = { sz: koffi.sizeof(LinkUpdateOpts), flags: 0, old_prog_fd: 0, old_map_fd: 0 };
    check(fn.bpf_link_update(this.fd, programFd, opts), `replace the ${this.what} program`);
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
  info(): LinkInfo {
    return linkInfo(this.fd);
  }
}

export function unpinPath(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Attach a sock_ops program to a cgroup v2 directory (fd) as a link. */
export function attachSockOps(programFd: number, cgroupFd: number, cgroupPath: string): Link {
  const fd = check(
    fn.bpf_link_create(programFd, cgroupFd, BPF.CGROUP_SOCK_OPS, null),
    `attach sock_ops to cgroup ${cgroupPath}`,
  );
  return new FdLink(fd, `sock_ops on ${cgroupPath}`);
}

/**
 * Attach an sk_msg program to a sockmap/sockhash as its msg_verdict. libbpf 1.1
 * has no helper for this, so it is the raw link-create call; the kernel
 * supports sockmap links since 6.10.
 */
export function attachSkMsg(programFd: number, mapFd: number): Link {
  const fd = check(fn.bpf_link_create(programFd, mapFd, BPF.SK_MSG_VERDICT, null), 'attach sk_msg to the sockhash');
  return new FdLink(fd, 'sk_msg on the sockhash');
}

/** Open a pinned link. Throws NotFoundError if nothing is pinned there. */
export function openPinnedLink(path: string, what: string): Link {
  const fd = check(fn.bpf_obj_get(path), `open pinned ${what} link ${path}`);
  return new FdLink(fd, what);
}

/** Like openPinnedLink, but undefined when the pin is absent. */
export function openPinnedLinkIfAny(path: string, what: string): Link | undefined {
  const fd = fn.bpf_obj_get(path);
  if (fd < 0) {
    const err = bpfError(`open pinned ${what} link ${path}`, fd);
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
  return new FdLink(fd, what);
}
