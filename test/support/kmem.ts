/**
 * Kernel memory snapshots for the scale measurement: every slab cache's
 * object bytes (/proc/slabinfo: active objects × object size), /proc/meminfo's
 * Slab and Percpu, and a BPF map's own figure (fdinfo "memlock", which for a
 * sockhash grows with its entries). Host-wide figures: other work on the
 * machine moves them too, so callers difference snapshots taken close together
 * and repeat.
 */
import { readFileSync } from 'node:fs';

export interface KmemSnapshot {
  /** cache name → active objects × object size, bytes */
  slabs: Map<string, number>;
  /** cache name → active objects */
  objects: Map<string, number>;
  /** /proc/meminfo Slab and Percpu, bytes */
  slabTotal: number;
  percpu: number;
}

function meminfo(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/meminfo`);
  return Number(m[1]) * 1024;
}

export function kmemSnapshot(): KmemSnapshot {
  const slabs = new Map<string, number>();
  const objects = new Map<string, number>();
  for (const line of readFileSync('/proc/slabinfo', 'utf8').split('\n').slice(2)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || !f[0]) continue;
    const active = Number(f[1]);
    slabs.set(f[0], active * Number(f[3]));
    objects.set(f[0], active);
  }
  return { slabs, objects, slabTotal: meminfo('Slab'), percpu: meminfo('Percpu') };
}

export interface KmemDelta {
  /** Sum over every cache of the object-byte change. */
  slabObjects: number;
  /** cache → object-byte change */
  bySlab: Map<string, number>;
  /** cache → object-count change */
  objectsBySlab: Map<string, number>;
  slabTotal: number;
  percpu: number;
}

export function kmemDelta(before: KmemSnapshot, after: KmemSnapshot): KmemDelta {
  const bySlab = new Map<string, number>();
  const objectsBySlab = new Map<string, number>();
  let slabObjects = 0;
  for (const name of new Set([...before.slabs.keys(), ...after.slabs.keys()])) {
    const d = (after.slabs.get(name) ?? 0) - (before.slabs.get(name) ?? 0);
    bySlab.set(name, d);
    objectsBySlab.set(name, (after.objects.get(name) ?? 0) - (before.objects.get(name) ?? 0));
    slabObjects += d;
  }
  return {
    slabObjects,
    bySlab,
    objectsBySlab,
    slabTotal: after.slabTotal - before.slabTotal,
    percpu: after.percpu - before.percpu,
  };
}

/** A map fd's "memlock" line in /proc/self/fdinfo: the kernel's estimate of the map's memory. */
export function mapMemlock(fd: number): number {
  const m = /^memlock:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m) throw new Error(`no memlock in fdinfo of fd ${fd}`);
  return Number(m[1]);
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
