/**
 * The pin folder's layout: one file per map and per link, named after it.
 * A load pins every map of its object (load.ts), so a map the data plane
 * adds is pinned and kept by `load --replace` without a list to update here.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireBpffsPinDir } from '../os/bpffs.js';

/**
 * The maps user space opens by name (PinnedState.maps); test/pins.test.ts
 * checks that the object has each. The others are the data plane's own.
 */
export const MAP_NAMES = ['sock_hash', 'settings', 'allowed_ports', 'allowed_ranges', 'counters', 'events'] as const;
export type MapName = (typeof MAP_NAMES)[number];

export const LINK_NAMES = ['link_sockops', 'link_sk_msg'] as const;
export type LinkName = (typeof LINK_NAMES)[number];

/** The object's two programs; test/pins.test.ts checks they are all it has. */
export const PROGRAMS = { sockOps: 'sockbypass_sockops', skMsg: 'sockbypass_redirect' } as const;

export type PinState = 'none' | 'complete' | 'partial';

export function pinPath(pinDir: string, name: string): string {
  return join(pinDir, name);
}

/**
 * Whether a full set of sockbypass pins, none, or a remnant is at pinDir.
 * An existing folder that is not on a bpffs is refused: its files are not pins.
 */
export function pinState(pinDir: string): PinState {
  if (!existsSync(pinDir)) return 'none';
  requireBpffsPinDir(pinDir);
  const present = new Set(readdirSync(pinDir));
  const ours = [...MAP_NAMES, ...LINK_NAMES];
  const have = ours.filter((n) => present.has(n)).length;
  if (have === 0 && present.size === 0) return 'none';
  return have === ours.length ? 'complete' : 'partial';
}
