/** The BPF filesystem that holds sockbypass's pins. */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { bpffsUnavailable } from './errors.js';
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
 * Make sure `pinDir`'s parent lies in a bpffs. If none is mounted at
 * /sys/fs/bpf and the pin folder is under it, mount it (as systemd would).
 */
export function ensureBpffs(pinDir: string): void {
  if (bpffsContaining(dirname(pinDir))) return;
  const root = '/sys/fs/bpf';
  if (!resolve(pinDir).startsWith(`${root}/`)) throw bpffsUnavailable(pinDir);
  try {
    mkdirSync(root, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', root], { stdio: 'pipe' });
  } catch (cause) {
    throw bpffsUnavailable(pinDir, cause);
  }
  if (!bpffsContaining(dirname(pinDir))) throw bpffsUnavailable(pinDir);
}
