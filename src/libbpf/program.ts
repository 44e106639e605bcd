/** A loaded BPF program, borrowed from its BpfObject or opened by id. */
import { closeSync } from 'node:fs';
import { fn } from './ffi.js';
import { programInfo, type ProgramInfo } from './info.js';

export class BpfProgram {
  constructor(
    readonly name: string,
    readonly fd: number,
  ) {}

  info(): ProgramInfo {
    return programInfo(this.fd);
  }
}

/** Whether a program with this id is still loaded in the kernel. */
export function programLoaded(id: number): boolean {
  const fd = fn.bpf_prog_get_fd_by_id(id);
  if (fd < 0) return false;
  closeSync(fd);
  return true;
}
