/** Checks that turn a kernel's terse EPERM/EINVAL into an error naming the fix. */
import { existsSync, readFileSync } from 'node:fs';
import { BpfError, sockhashSupported } from '../libbpf/index.js';
import { kernelUnsupported, notPermitted } from '../errors.js';

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_BPF = 39;

function effectiveCapabilities(statusText = readFileSync('/proc/self/status', 'utf8')): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(statusText);
  return m?.[1] ? BigInt(`0x${m[1]}`) : 0n;
}

export function hasCapability(cap: number, statusText?: string): boolean {
  return ((effectiveCapabilities(statusText) >> BigInt(cap)) & 1n) === 1n;
}

/** sockbypass needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN. */
export function checkPrivileges(what: string, statusText?: string): void {
  const bpf = hasCapability(CAP_BPF, statusText) || hasCapability(CAP_SYS_ADMIN, statusText);
  if (!bpf || !hasCapability(CAP_NET_ADMIN, statusText)) throw notPermitted(what);
}

/** BTF for CO-RE, and sockhash support. */
export function checkKernel(btfPath = '/sys/kernel/btf/vmlinux'): void {
  if (!existsSync(btfPath)) throw kernelUnsupported(`no kernel BTF at ${btfPath}`);
  let supported: boolean;
  try {
    supported = sockhashSupported();
  } catch (err) {
    if (err instanceof BpfError) throw kernelUnsupported(`probing BPF_MAP_TYPE_SOCKHASH failed (${err.detail})`, err);
    throw err;
  }
  if (!supported) throw kernelUnsupported('BPF_MAP_TYPE_SOCKHASH is not supported');
}
