/** The pin folder's layout: one file per map and per link. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireBpffsPinDir } from '../os/bpffs.js';

export const MAP_NAMES = ['sock_hash', 'sock_states', 'settings', 'allowed_ports', 'allowed_ranges', 'counters', 'events', 'services', 'pairs'] as const;
export type MapName = (typeof MAP_NAMES)[number];

export const LINK_NAMES = ['link_sockops', 'link_sk_msg'] as const;
export type LinkName = (typeof LINK_NAMES)[number];

export const PROGRAMS = { sockOps: 'sockbypass_sockops', skMsg: 'sockbypass_redirect' } as const;

export type PinState = 'none' | 'complete' | 'partial';

export function pinPath(pinDir: string, name: MapName | LinkName): string {
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
