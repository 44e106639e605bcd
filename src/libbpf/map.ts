/**
 * A BPF map by file descriptor: from a loaded object, or opened from a pin by
 * another process. Keys and values are raw Buffers; src/core/layout.ts gives them
 * meaning. Per-CPU values come back one Buffer per possible CPU.
 */
import { closeSync, readFileSync } from 'node:fs';
import { fn, BPF } from './ffi.js';
import { bpfError, check, NotFoundError } from './errors.js';
import { mapInfo, type MapInfo } from './info.js';

const PERCPU_TYPES = new Set([5, 6, 10]); // PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH

let possibleCpus: number | undefined;
export function numPossibleCpus(): number {
  possibleCpus ??= check(fn.libbpf_num_possible_cpus(), 'count possible CPUs');
  return possibleCpus;
}

export type UpdateFlag = 'any' | 'noexist' | 'exist';
const FLAGS: Record<UpdateFlag, number> = { any: BPF.ANY, noexist: BPF.NOEXIST, exist: BPF.EXIST };

export class BpfMap {
  private closed = false;

  private constructor(
    readonly fd: number,
    readonly info: MapInfo,
    /** Whether this object owns the fd (opened from a pin) or borrows it from a BpfObject. */
    private readonly ownsFd: boolean,
  ) {}

  /** Wrap a map fd that a BpfObject owns; closing the object closes it. */
  static borrow(fd: number): BpfMap {
    return new BpfMap(fd, mapInfo(fd), false);
  }

  /** Open a pinned map. Throws NotFoundError if nothing is pinned there. */
  static openPinned(path: string): BpfMap {
    const fd = check(fn.bpf_obj_get(path), `open pinned map ${path}`);
    try {
      return new BpfMap(fd, mapInfo(fd), true);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /**
   * The map pinned at `path`, or undefined when nothing is pinned there or the
   * pin is not a map (a link, a program): the kernel's fdinfo names the kind.
   */
  static openPinnedIfMap(path: string): BpfMap | undefined {
    const fd = fn.bpf_obj_get(path) as number;
    if (fd < 0) {
      const err = bpfError(`open pin ${path}`, fd);
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    try {
      if (!/^map_type:/m.test(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))) {
        closeSync(fd);
        return undefined;
      }
      return new BpfMap(fd, mapInfo(fd), true);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  get name(): string {
    return this.info.name;
  }
  get perCpu(): boolean {
    return PERCPU_TYPES.has(this.info.type);
  }
  /** Bytes of one value slot; per-CPU slots are rounded up to 8 bytes. */
  private get slotSize(): number {
    return this.perCpu ? Math.ceil(this.info.valueSize / 8) * 8 : this.info.valueSize;
  }
  private get valueBufferSize(): number {
    return this.perCpu ? this.slotSize * numPossibleCpus() : this.info.valueSize;
  }

  private checkKey(key: Buffer): void {
    if (key.length !== this.info.keySize) {
      throw new RangeError(`map ${this.name}: key has ${key.length} bytes, map wants ${this.info.keySize}`);
    }
  }

  /** The value for `key`, or undefined when absent. Per-CPU maps: see lookupPerCpu. */
  lookup(key: Buffer): Buffer | undefined {
    this.checkKey(key);
    const value = Buffer.alloc(this.valueBufferSize);
    const ret = fn.bpf_map_lookup_elem(this.fd, key, value);
    if (ret < 0) {
      const err = bpfError(`look up in map ${this.name}`, ret);
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    return value;
  }

  /** One value per possible CPU. */
  lookupPerCpu(key: Buffer): Buffer[] | undefined {
    const all = this.lookup(key);
    if (!all) return undefined;
    const out: Buffer[] = [];
    for (let off = 0; off < all.length; off += this.slotSize) {
      out.push(all.subarray(off, off + this.info.valueSize));
    }
    return out;
  }

  update(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): void {
    this.checkKey(key);
    if (value.length !== this.info.valueSize && !this.perCpu) {
      throw new RangeError(`map ${this.name}: value has ${value.length} bytes, map wants ${this.info.valueSize}`);
    }
    check(fn.bpf_map_update_elem(this.fd, key, value, FLAGS[flag]), `update map ${this.name}`);
  }

  /** Delete `key`; returns false when it was absent. */
  delete(key: Buffer): boolean {
    this.checkKey(key);
    const ret = fn.bpf_map_delete_elem(this.fd, key);
    if (ret < 0) {
      const err = bpfError(`delete from map ${this.name}`, ret);
      if (err instanceof NotFoundError) return false;
      throw err;
    }
    return true;
  }

  /** Every key, in the map's order. Entries may come and go meanwhile. */
  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.info.keySize);
      const ret = fn.bpf_map_get_next_key(this.fd, prev, next);
      if (ret < 0) {
        const err = bpfError(`iterate map ${this.name}`, ret);
        if (err instanceof NotFoundError) return;
        throw err;
      }
      yield next;
      prev = next;
    }
  }

  count(): number {
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }

  pin(path: string): void {
    check(fn.bpf_obj_pin(this.fd, path), `pin map ${this.name} at ${path}`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsFd) closeSync(this.fd);
  }
}
