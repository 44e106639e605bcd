/** cgroup v2: where it is mounted, checking a target directory, and naming one by id. */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, isAbsolute } from 'node:path';
import { cgroupMissing, noCgroup2 } from '../errors.js';

/** Mount points of one filesystem type, from /proc/mounts. */
export function mountsOfType(fsType: string, mountsText = readFileSync('/proc/mounts', 'utf8')): string[] {
  return mountsText
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f[2] === fsType && f[1] !== undefined)
    .map((f) => (f[1] as string).replace(/\\040/g, ' '));
}

/** The root cgroup's id: the inode of the hierarchy's top directory. */
const ROOT_CGROUP_ID = 1n;

/**
 * The cgroup2 mount point: the first one showing the whole hierarchy, else the
 * first in /proc/mounts. A container in a cgroup namespace sees its own cgroup
 * mounted at /sys/fs/cgroup before the host's root bind-mounted in for the agent.
 */
export function cgroup2Mount(
  mountsText?: string,
  idOf: (dir: string) => bigint | undefined = cgroupIdIfPresent,
): string {
  const mounts = mountsOfType('cgroup2', mountsText);
  const mount = mounts.find((m) => idOf(m) === ROOT_CGROUP_ID) ?? mounts[0];
  if (!mount) throw noCgroup2();
  return mount;
}

function cgroupIdIfPresent(dir: string): bigint | undefined {
  try {
    return cgroupId(dir);
  } catch {
    return undefined;
  }
}

/**
 * The absolute cgroup directory for `path`: undefined means the mount's root;
 * a relative path is taken inside the mount; an absolute one must lie inside it.
 */
export function resolveCgroup(path?: string): string {
  // An empty --cgroup must never fall through to the root, which is every process on the host.
  if (path !== undefined && path.trim() === '') throw cgroupMissing('""', 'is an empty path');
  const mount = cgroup2Mount();
  const full = path === undefined ? mount : isAbsolute(path) ? resolve(path) : resolve(mount, path);
  const rel = relative(mount, full);
  if (rel.startsWith('..') || isAbsolute(rel)) throw cgroupMissing(full, `is not inside the cgroup2 mount ${mount}`);
  if (!existsSync(full)) throw cgroupMissing(full, 'does not exist');
  if (!statSync(full).isDirectory() || !existsSync(join(full, 'cgroup.procs'))) {
    throw cgroupMissing(full, 'is not a cgroup directory');
  }
  return full;
}

/** cgroup id (the directory's inode on cgroup2) of a cgroup directory. */
export function cgroupId(dir: string): bigint {
  return statSync(dir, { bigint: true }).ino;
}

/** Find the directory of a cgroup id by walking the hierarchy (bounded depth). */
export function cgroupPathById(id: bigint, maxDepth = 8): string | undefined {
  const mount = cgroup2Mount();
  const walk = (dir: string, depth: number): string | undefined => {
    if (cgroupId(dir) === id) return dir;
    if (depth >= maxDepth) return undefined;
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return undefined;
    }
    for (const name of entries) {
      const found = walk(join(dir, name), depth + 1);
      if (found) return found;
    }
    return undefined;
  };
  return walk(mount, 0);
}

/** Create a child cgroup (for tests and the bench). */
export function createCgroup(name: string, parent = cgroup2Mount()): string {
  const dir = join(parent, name);
  mkdirSync(dir);
  return dir;
}

/** Move a process into a cgroup. */
export function moveToCgroup(dir: string, pid: number): void {
  writeFileSync(join(dir, 'cgroup.procs'), `${pid}\n`);
}

export function cgroupProcs(dir: string): number[] {
  return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

/** Remove a cgroup, first moving any process left in it to the parent. */
export function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  const parent = resolve(dir, '..');
  for (const pid of cgroupProcs(dir)) {
    try {
      moveToCgroup(parent, pid);
    } catch {
      // The process exited meanwhile.
    }
  }
  rmdirSync(dir);
}
