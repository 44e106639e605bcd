/**
 * Turning the bypass off: detach both programs, then remove the pins.
 * Sockets already accelerated keep their redirect until they close (each
 * holds the sk_msg program, which holds the map), so no live data is lost;
 * nothing here deletes a map entry.
 */
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { BpfMap, openPinnedLinkIfAny, unpinPath } from '../libbpf/index.js';
import { DEFAULT_PIN_DIR } from '../os/bpffs.js';
import { LINK_NAMES, pinPath, pinState } from './pins.js';
import { checkPrivileges } from '../os/preflight.js';
import { PinnedState } from './state.js';
import { listSockets, pairSockets } from './sockhash.js';
import { otherVersionLoaded, SockbypassError, EXIT } from '../errors.js';

export interface UnloadOptions {
  pinDir?: string;
  /** Remove a partial set of pins left by a crash. */
  force?: boolean;
}

export interface UnloadResult {
  outcome: 'unloaded' | 'not-loaded' | 'removed-remnant';
  pinDir: string;
  /** Sockets in the map when unloading; they stay accelerated until they close. */
  acceleratedSockets: number;
  /** Connections with both ends in the map. */
  acceleratedConnections: number;
}

/** Detach whatever links are pinned, without reading any map: works for any layout version. */
function detachPinnedLinks(pinDir: string): void {
  for (const name of LINK_NAMES) {
    const link = openPinnedLinkIfAny(pinPath(pinDir, name), name);
    if (!link) continue;
    try {
      link.detach();
    } finally {
      link.close();
    }
  }
}

/**
 * Remove the links' pins, then every map pinned by its own name (a load pins
 * all its object's maps so), whichever version of the data plane made them.
 */
function removePins(pinDir: string): void {
  for (const name of LINK_NAMES) unpinPath(pinPath(pinDir, name));
  for (const name of existsSync(pinDir) ? readdirSync(pinDir) : []) {
    const path = pinPath(pinDir, name);
    const map = BpfMap.openPinnedIfMap(path);
    if (!map) continue;
    // The kernel keeps the first 15 characters of a map's name.
    const pinnedByName = map.name === name.slice(0, 15);
    map.close();
    if (pinnedByName) unpinPath(path);
  }
  if (existsSync(pinDir) && readdirSync(pinDir).length === 0) rmdirSync(pinDir);
}

export function unload(options: UnloadOptions = {}): UnloadResult {
  const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
  checkPrivileges('unload sockbypass');
  const state = pinState(pinDir);
  if (state === 'none') {
    // An empty folder may be someone else's: leave it.
    return { outcome: 'not-loaded', pinDir, acceleratedSockets: 0, acceleratedConnections: 0 };
  }
  if (state === 'partial') {
    if (!options.force) throw otherVersionLoaded(pinDir, 'an incomplete set of pins; remove them with unload --force');
    detachPinnedLinks(pinDir);
    removePins(pinDir);
    return { outcome: 'removed-remnant', pinDir, acceleratedSockets: 0, acceleratedConnections: 0 };
  }
  let opened: PinnedState;
  try {
    opened = PinnedState.open(pinDir);
  } catch (err) {
    if (!(options.force && err instanceof SockbypassError && err.exitCode === EXIT.otherVersionLoaded)) throw err;
    // Another layout version: its maps cannot be read, but its links and pins can still go.
    detachPinnedLinks(pinDir);
    removePins(pinDir);
    return { outcome: 'removed-remnant', pinDir, acceleratedSockets: 0, acceleratedConnections: 0 };
  }
  try {
    const sockets = listSockets(opened.maps.sock_hash);
    const connections = pairSockets(sockets).filter((p) => p.b).length;
    // sock_ops first: no socket enters the map after its verdict program is gone.
    opened.links.link_sockops.detach();
    opened.links.link_sk_msg.detach();
    removePins(pinDir);
    return { outcome: 'unloaded', pinDir, acceleratedSockets: sockets.length, acceleratedConnections: connections };
  } finally {
    opened.close();
  }
}
