/**
 * bpf_obj_get_info_by_fd for maps, programs and links. Only the leading
 * fields sockbypass reads are decoded; the kernel accepts a shorter info
 * buffer and fills what fits. Offsets are the kernel UAPI's
 * (include/uapi/linux/bpf.h), stable by the UAPI promise.
 */
import { BPF, fn } from './ffi.js';
import { check } from './errors.js';

function infoOf(fd: number, size: number, what: string): Buffer {
  const buf = Buffer.alloc(size);
  const len = [size];
  check(fn.bpf_obj_get_info_by_fd(fd, buf, len), `read ${what} info`);
  return buf;
}

function cString(buf: Buffer, offset: number, max: number): string {
  const slice = buf.subarray(offset, offset + max);
  const end = slice.indexOf(0);
  return slice.subarray(0, end < 0 ? max : end).toString('utf8');
}

export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export function mapInfo(fd: number): MapInfo {
  const b = infoOf(fd, 40, 'map');
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: cString(b, 24, 16),
  };
}

export interface ProgramInfo {
  type: number;
  id: number;
  tag: string;
  name: string;
}

export function programInfo(fd: number): ProgramInfo {
  const b = infoOf(fd, 80, 'program');
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    tag: b.subarray(8, 16).toString('hex'),
    name: cString(b, 64, 16),
  };
}

export interface LinkInfo {
  type: number;
  id: number;
  programId: number;
  /** For a cgroup link: the cgroup's id (its inode number on cgroup2). */
  cgroupId?: bigint;
  /** For a sockmap link: the map's id. */
  mapId?: number;
  attachType: number;
}

export function linkInfo(fd: number): LinkInfo {
  const b = infoOf(fd, 32, 'link');
  const type = b.readUInt32LE(0);
  const base = { type, id: b.readUInt32LE(4), programId: b.readUInt32LE(8) };
  if (type === BPF.LINK_TYPE_CGROUP) {
    return { ...base, cgroupId: b.readBigUInt64LE(16), attachType: b.readUInt32LE(24) };
  }
  if (type === BPF.LINK_TYPE_SOCKMAP) {
    return { ...base, mapId: b.readUInt32LE(16), attachType: b.readUInt32LE(20) };
  }
  return { ...base, attachType: -1 };
}
