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

/** The info of a loaded program by id, or undefined when no such program is loaded. */
export function programInfoById(id: number): ProgramInfo | undefined {
  const fd = fn.bpf_prog_get_fd_by_id(id) as number;
  if (fd < 0) return undefined;
  try {
    return programInfo(fd);
  } finally {
    closeSync(fd);
  }
}
