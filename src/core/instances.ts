/**
 * Another sockbypass load covering the same sockets would fight ours for the
 * map keys (every insert but one fails). Before a fresh load, look for
 * sockbypass sock_ops programs attached to the target cgroup, its ancestors
 * (their programs run for it too) and its descendants.
 */
import { closeSync, constants, existsSync, openSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { openPinnedLinkIfAny, programInfoById, sockOpsProgramIds } from '../libbpf/index.js';
import { cgroup2Mount, mountsOfType } from '../os/cgroup.js';

export interface OtherInstance {
  cgroup: string;
  programId: number;
  /** Its pin folder, when one of the bpffs folders holds its link. */
  pinDir?: string;
}

function programName(id: number): string {
  return programInfoById(id)?.name ?? '';
}

function sockbypassProgramsAt(dir: string): number[] {
  let fd: number;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch {
    return [];
  }
  try {
    return sockOpsProgramIds(fd, dir).filter((id) => programName(id).startsWith('sockbypass'));
  } finally {
    closeSync(fd);
  }
}

function descendants(dir: string, limit: number): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    if (out.length >= limit || depth > 16) return;
    let names: string[];
    try {
      names = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const n of names) {
      out.push(join(d, n));
      walk(join(d, n), depth + 1);
    }
  };
  walk(dir, 0);
  return out;
}

/** The pin folder (one level below a bpffs mount) whose sock_ops link runs `programId`. */
function pinDirOf(programId: number): string | undefined {
  for (const mount of mountsOfType('bpf')) {
    let names: string[] = [];
    try {
      names = readdirSync(mount);
    } catch {
      continue;
    }
    for (const name of names) {
      const path = join(mount, name, 'link_sockops');
      if (!existsSync(path)) continue;
      try {
        const link = openPinnedLinkIfAny(path, 'sock_ops');
        try {
          if (link?.info().programId === programId) return join(mount, name);
        } finally {
          link?.close();
        }
      } catch {
        // not a link, or not ours to open
      }
    }
  }
  return undefined;
}

export function otherInstancesCovering(cgroupDir: string): OtherInstance[] {
  const mount = cgroup2Mount();
  const dirs: string[] = [];
  for (let d = cgroupDir; ; d = dirname(d)) {
    dirs.push(d);
    if (relative(mount, d) === '' || d === dirname(d)) break;
  }
  dirs.push(...descendants(cgroupDir, 20000));
  const found: OtherInstance[] = [];
  for (const dir of dirs) {
    for (const programId of sockbypassProgramsAt(dir)) {
      const pinDir = pinDirOf(programId);
      found.push(pinDir ? { cgroup: dir, programId, pinDir } : { cgroup: dir, programId });
    }
  }
  return found;
}
