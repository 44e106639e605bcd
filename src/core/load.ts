/**
 * Turning the bypass on: open → configure → load → attach → pin, unwinding
 * on any failure so nothing is left half-attached. `replace` swaps new
 * programs into a running load without touching its maps, so connections
 * already accelerated are not disturbed.
 */
import { closeSync, constants, existsSync, mkdirSync, openSync, rmdirSync } from 'node:fs';
import {
  BpfError,
  BpfObject,
  BpfMap,
  NotSupportedError,
  VerifierError,
  PermissionError,
  attachSkMsg,
  attachSockOps,
  unpinPath,
  type Link,
} from '../libbpf/index.js';
import { DEFAULT_PIN_DIR, ensureBpffs } from '../os/bpffs.js';
import { cgroupPathById, resolveCgroup } from '../os/cgroup.js';
import {
  kernelUnsupported,
  LOAD_CAPABILITIES,
  notPermitted,
  objectMissing,
  objectUnusable,
  otherInstance,
  otherVersionLoaded,
  SockbypassError,
} from '../errors.js';
import { otherInstancesCovering } from './instances.js';
import { MAP_NAMES, PROGRAMS, pinPath, pinState, type MapName } from './pins.js';
import { ALLOW_ALL, validatePolicy, writeValidPolicy, type Policy } from './policy.js';
import { checkKernel, checkLoadPrivileges } from '../os/preflight.js';
import { DEFAULT_OBJECT } from './paths.js';
import { PinnedState } from './state.js';

export const DEFAULT_MAX_ENTRIES = 131072;

/**
 * Pending pairs live from a listener's SYN-ACK to the final ACK (microseconds
 * on one host); the LRU only has to outlast a burst of handshakes, including
 * SYNs from other hosts that never pair.
 */
export function pendingPairsFor(maxEntries: number): number {
  return Math.max(4096, Math.ceil(maxEntries / 8));
}

/** The `pair_words` map holds one word per joined connection: half the sockhash's sockets. */
export function pairWordsFor(maxEntries: number): number {
  return Math.ceil(maxEntries / 2);
}

export interface LoadOptions {
  /** cgroup v2 directory to attach to; default the cgroup2 mount's root. */
  cgroup?: string;
  pinDir?: string;
  objectPath?: string;
  /** Swap new programs into an existing load instead of refusing. */
  replace?: boolean;
  /** Capacity of the sockhash (sockets, two per connection). Fresh loads only. */
  maxEntries?: number;
  /** Fresh loads only; `replace` keeps the running policy. */
  policy?: Policy;
}

export interface LoadResult {
  outcome: 'loaded' | 'already-loaded' | 'replaced';
  pinDir: string;
  /** The attach cgroup's directory (or its id, when the directory is gone). */
  cgroup: string;
  programIds: { sockOps: number; skMsg: number };
}

function loadObject(objectPath: string, configure: (obj: BpfObject) => void): BpfObject {
  if (!existsSync(objectPath)) throw objectMissing(objectPath);
  const obj = BpfObject.open(objectPath);
  try {
    configure(obj);
    obj.load();
    return obj;
  } catch (err) {
    obj.close();
    if (err instanceof PermissionError) throw notPermitted('load the BPF programs', err, LOAD_CAPABILITIES);
    throw err;
  }
}

/** Open and load, turning "this file is not our object" into one clear error. */
function loadOurObject(objectPath: string, configure: (obj: BpfObject) => void): BpfObject {
  try {
    return loadObject(objectPath, configure);
  } catch (err) {
    if (err instanceof SockbypassError || err instanceof VerifierError) throw err;
    if (err instanceof BpfError) {
      const why =
        err.detail
          .split('\n')
          .filter((l) => l.trim())
          .slice(-1)[0] ?? err.message;
      throw objectUnusable(objectPath, `${err.operation}: ${why.trim()}`, err);
    }
    throw err;
  }
}

function describeCgroup(state: PinnedState): string {
  const id = state.links.link_sockops.info().cgroupId;
  if (id === undefined) return 'unknown';
  return cgroupPathById(id) ?? `cgroup id ${id}`;
}

function programIds(state: PinnedState): LoadResult['programIds'] {
  return {
    sockOps: state.links.link_sockops.info().programId,
    skMsg: state.links.link_sk_msg.info().programId,
  };
}

export function load(options: LoadOptions = {}): LoadResult {
  const pinDir = options.pinDir ?? DEFAULT_PIN_DIR;
  const objectPath = options.objectPath ?? DEFAULT_OBJECT;
  checkLoadPrivileges('load sockbypass');
  if (!existsSync(objectPath)) throw objectMissing(objectPath);
  checkKernel();
  if (options.policy) validatePolicy(options.policy);
  const cgroupDir = resolveCgroup(options.cgroup);
  ensureBpffs(pinDir);

  const existing = pinState(pinDir);
  if (existing === 'partial') {
    throw otherVersionLoaded(pinDir, 'an incomplete set of pins, left by a failed or different version');
  }
  if (existing === 'complete') {
    const state = PinnedState.open(pinDir);
    try {
      if (!options.replace) {
        return { outcome: 'already-loaded', pinDir, cgroup: describeCgroup(state), programIds: programIds(state) };
      }
      return replacePrograms(state, objectPath);
    } finally {
      state.close();
    }
  }
  const others = otherInstancesCovering(cgroupDir);
  const first = others[0];
  if (first) {
    const where = `program ${first.programId} attached at ${first.cgroup}${first.pinDir ? `, pinned in ${first.pinDir}` : ''}`;
    throw otherInstance(cgroupDir, where, first.pinDir);
  }
  return loadFresh(pinDir, objectPath, cgroupDir, options);
}

function loadFresh(pinDir: string, objectPath: string, cgroupDir: string, options: LoadOptions): LoadResult {
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const obj = loadOurObject(objectPath, (o) => {
    o.setMaxEntries('sock_hash', maxEntries);
    o.setMaxEntries('pairs', pendingPairsFor(maxEntries));
    o.setMaxEntries('pair_words', pairWordsFor(maxEntries));
  });
  const links: Link[] = [];
  const pinned: string[] = [];
  let cgroupFd = -1;
  let createdDir = false;
  try {
    const maps = Object.fromEntries(MAP_NAMES.map((n) => [n, obj.map(n)])) as Record<MapName, BpfMap>;
    writeValidPolicy(maps, options.policy ?? ALLOW_ALL);

    // sk_msg first: a socket inserted before its map has a verdict program would never be redirected.
    const skMsg = obj.program(PROGRAMS.skMsg);
    const sockOps = obj.program(PROGRAMS.sockOps);
    const skMsgLink = attach(() => attachSkMsg(skMsg.fd, maps.sock_hash.fd));
    links.push(skMsgLink);
    cgroupFd = openSync(cgroupDir, constants.O_RDONLY | constants.O_DIRECTORY);
    const sockOpsLink = attach(() => attachSockOps(sockOps.fd, cgroupFd, cgroupDir));
    links.push(sockOpsLink);

    if (!existsSync(pinDir)) {
      mkdirSync(pinDir);
      createdDir = true;
    }
    // Every map of the object, not only those user space reads: replace reuses them all.
    for (const name of obj.mapNames()) {
      obj.map(name).pin(pinPath(pinDir, name));
      pinned.push(pinPath(pinDir, name));
    }
    skMsgLink.pin(pinPath(pinDir, 'link_sk_msg'));
    pinned.push(pinPath(pinDir, 'link_sk_msg'));
    sockOpsLink.pin(pinPath(pinDir, 'link_sockops'));
    pinned.push(pinPath(pinDir, 'link_sockops'));

    return {
      outcome: 'loaded',
      pinDir,
      cgroup: cgroupDir,
      programIds: { sockOps: sockOps.info().id, skMsg: skMsg.info().id },
    };
  } catch (err) {
    // Unwind: without pins, closing the links below detaches them.
    for (const path of pinned.reverse()) unpinPath(path);
    if (createdDir) rmdirSync(pinDir);
    throw err;
  } finally {
    for (const link of links.reverse()) link.close();
    if (cgroupFd >= 0) closeSync(cgroupFd);
    obj.close();
  }
}

function attach(body: () => Link): Link {
  try {
    return body();
  } catch (err) {
    if (err instanceof PermissionError) throw notPermitted('attach the BPF programs', err);
    if (err instanceof NotSupportedError) throw kernelUnsupported(err.message, err);
    throw err;
  }
}

/**
 * Load new programs against the pinned maps and swap them into the pinned
 * links. A map the new object has and the load has not (the data plane grew
 * one) is created, and pinned before the swap.
 */
function replacePrograms(state: PinnedState, objectPath: string): LoadResult {
  const reused: BpfMap[] = [];
  const added: string[] = [];
  const pinned: string[] = [];
  let obj: BpfObject | undefined;
  try {
    obj = loadOurObject(objectPath, (o) => {
      for (const name of o.mapNames()) {
        const map = BpfMap.openPinnedIfMap(pinPath(state.pinDir, name));
        if (!map) {
          added.push(name);
          continue;
        }
        reused.push(map);
        o.reuseMap(name, map.fd);
      }
    });
    for (const name of added) {
      obj.map(name).pin(pinPath(state.pinDir, name));
      pinned.push(pinPath(state.pinDir, name));
    }
    const skMsg = obj.program(PROGRAMS.skMsg);
    const sockOps = obj.program(PROGRAMS.sockOps);
    state.links.link_sk_msg.update(skMsg.fd);
    state.links.link_sockops.update(sockOps.fd);
    return {
      outcome: 'replaced',
      pinDir: state.pinDir,
      cgroup: describeCgroup(state),
      programIds: { sockOps: sockOps.info().id, skMsg: skMsg.info().id },
    };
  } catch (err) {
    for (const path of pinned.reverse()) unpinPath(path);
    throw err;
  } finally {
    for (const map of reused) map.close();
    obj?.close();
  }
}
