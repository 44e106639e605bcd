/**
 * A BPF object file: opened (parsed, nothing in the kernel yet), configured,
 * then loaded. Programs and maps are borrowed from the object and die with
 * it; pins and links keep what must outlive the process.
 */
import { existsSync } from 'node:fs';
import { errno, fn, koffi, ObjectOpenOpts, type Handle } from './ffi.js';
import { bpfError, BpfError, NotFoundError, VerifierError } from './errors.js';
import { captureLibbpfLog, verifierLogOf } from './log.js';
import { BpfMap } from './map.js';
import { BpfProgram } from './program.js';

export class BpfObject {
  private handle: Handle | null;
  private loaded = false;

  private constructor(
    readonly path: string,
    handle: Handle,
  ) {
    this.handle = handle;
  }

  /** Parse an object file. Nothing reaches the kernel until load(). */
  static open(path: string): BpfObject {
    if (!existsSync(path)) {
      throw new NotFoundError(`open BPF object ${path}`, 2, 'no such file');
    }
    const opts = { sz: koffi.sizeof(ObjectOpenOpts), object_name: null, relaxed_maps: false, pin_root_path: null };
    const run = captureLibbpfLog(() => fn.bpf_object__open_file(path, opts) as Handle);
    if (run.error) throw run.error;
    if (!run.value) throw bpfError(`open BPF object ${path}`, errno(), run.log.trim());
    return new BpfObject(path, run.value);
  }

  private live(): Handle {
    if (!this.handle) throw new Error(`BPF object ${this.path} is closed`);
    return this.handle;
  }

  private mapHandle(name: string): Handle {
    const map = fn.bpf_object__find_map_by_name(this.live(), name) as Handle;
    if (!map) throw new NotFoundError(`find map ${name} in ${this.path}`, 2, 'no such map in the object');
    return map;
  }

  /** The object's maps by name, without libbpf's internal ones (.rodata, .bss, .data, .kconfig). */
  mapNames(): string[] {
    const names: string[] = [];
    for (
      let map = fn.bpf_object__next_map(this.live(), null) as Handle;
      map;
      map = fn.bpf_object__next_map(this.live(), map) as Handle
    ) {
      if (!fn.bpf_map__is_internal(map)) names.push(fn.bpf_map__name(map) as string);
    }
    return names;
  }

  /** The object's programs by name. */
  programNames(): string[] {
    const names: string[] = [];
    for (
      let prog = fn.bpf_object__next_program(this.live(), null) as Handle;
      prog;
      prog = fn.bpf_object__next_program(this.live(), prog) as Handle
    ) {
      names.push(fn.bpf_program__name(prog) as string);
    }
    return names;
  }

  /** Before load: size a map. */
  setMaxEntries(mapName: string, maxEntries: number): void {
    const ret = fn.bpf_map__set_max_entries(this.mapHandle(mapName), maxEntries);
    if (ret < 0) throw bpfError(`set max_entries of ${mapName}`, ret);
  }

  /** Before load: use an existing kernel map (e.g. a pinned one) instead of creating one. */
  reuseMap(mapName: string, fd: number): void {
    const ret = fn.bpf_map__reuse_fd(this.mapHandle(mapName), fd);
    if (ret < 0) throw bpfError(`reuse the existing ${mapName} map`, ret);
  }

  /** Create maps and load programs. A verifier rejection throws VerifierError with the log. */
  load(): void {
    const run = captureLibbpfLog(() => fn.bpf_object__load(this.live()) as number);
    if (run.error) throw run.error;
    const ret = run.value ?? -1;
    if (ret < 0) {
      const log = verifierLogOf(run.log);
      const base = bpfError(`load BPF object ${this.path}`, ret, run.log.trim());
      if (log) throw new VerifierError(base.operation, base.errno, base.detail, log);
      throw base;
    }
    this.loaded = true;
  }

  program(name: string): BpfProgram {
    const prog = fn.bpf_object__find_program_by_name(this.live(), name) as Handle;
    if (!prog) throw new NotFoundError(`find program ${name} in ${this.path}`, 2, 'no such program in the object');
    const fd = fn.bpf_program__fd(prog) as number;
    if (fd < 0) throw new BpfError(`program ${name}`, 9, 'not loaded yet');
    return new BpfProgram(name, fd);
  }

  map(name: string): BpfMap {
    if (!this.loaded) throw new BpfError(`map ${name}`, 9, 'object not loaded yet');
    const fd = fn.bpf_map__fd(this.mapHandle(name)) as number;
    if (fd < 0) throw bpfError(`map ${name}`, fd);
    return BpfMap.borrow(fd);
  }

  /** Close every fd of the object. Unpinned, unlinked programs and maps go away. */
  close(): void {
    if (!this.handle) return;
    fn.bpf_object__close(this.handle);
    this.handle = null;
  }
}
