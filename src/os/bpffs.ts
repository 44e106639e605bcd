/** The BPF filesystem that holds sockbypass's pins. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { bpffsUnavailable, pinParentMissing } from '../errors.js';
import { mountsOfType } from './cgroup.js';

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/sockbypass';

/** The bpffs mount that contains `dir`, if any. */
export function bpffsContaining(dir: string, mountsText?: string): string | undefined {
  const full = resolve(dir);
  return mountsOfType('bpf', mountsText)
    .filter((m) => full === m || full.startsWith(m.endsWith('/') ? m : `${m}/`))
    .sort((a, b) => b.length - a.length)[0];
}

/**
 * Whether this process shares its parent's mount namespace. A command run in
 * a mount namespace of its own (unshare -m, some sandboxes) would mount a
 * bpffs that dies with it, and its pins and links with it.
 */
function sharesParentMountNamespace(): boolean {
  try {
    return readlinkSync('/proc/self/ns/mnt') === readlinkSync(`/proc/${process.ppid}/ns/mnt`);
  } catch {
    return true;
  }
}

/**
 * A pin folder named for reading (status, unload, policy): it must lie on a
 * bpffs, so that sockbypass never treats an ordinary directory's files as pins.
 */
export function requireBpffsPinDir(pinDir: string): void {
  if (!bpffsContaining(pinDir)) throw bpffsUnavailable(pinDir);
}

/**
 * Make sure `pinDir`'s parent lies in a bpffs. If none is mounted at
 * /sys/fs/bpf and the pin folder is under it, mount it (as systemd would).
 */
export function ensureBpffs(pinDir: string): void {
  if (!existsSync(dirname(resolve(pinDir)))) throw pinParentMissing(pinDir);
  if (bpffsContaining(dirname(pinDir))) return;
  const root = '/sys/fs/bpf';
  if (!resolve(pinDir).startsWith(`${root}/`)) throw bpffsUnavailable(pinDir);
  // A bpffs mounted inside a private mount namespace dies with it, and the load with it.
  if (!sharesParentMountNamespace()) throw bpffsUnavailable(pinDir);
  try {
    mkdirSync(root, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', root], { stdio: 'pipe' });
  } catch (cause) {
    throw bpffsUnavailable(pinDir, cause);
  }
  if (!bpffsContaining(dirname(pinDir))) throw bpffsUnavailable(pinDir);
}
