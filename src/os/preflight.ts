/** Checks that turn a kernel's terse EPERM/EINVAL into an error naming the fix. */
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { BpfError, sockhashSupported } from '../libbpf/index.js';
import { kernelUnsupported, LOAD_CAPABILITIES, notPermitted } from '../errors.js';

const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
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

/**
 * Loading also needs CAP_PERFMON (or CAP_SYS_ADMIN): the verifier lets a program
 * read kernel structs through bpf_rdonly_cast only with it.
 */
export function checkLoadPrivileges(what: string, statusText?: string): void {
  const sysAdmin = hasCapability(CAP_SYS_ADMIN, statusText);
  const bpf = sysAdmin || (hasCapability(CAP_BPF, statusText) && hasCapability(CAP_PERFMON, statusText));
  if (!bpf || !hasCapability(CAP_NET_ADMIN, statusText)) throw notPermitted(what, undefined, LOAD_CAPABILITIES);
}

/** The oldest kernel with everything the object uses: sockmap links (BPF_LINK_CREATE for sk_msg) came last. */
export const MIN_KERNEL = { major: 6, minor: 10 } as const;
/** kfuncs the data plane calls; libbpf would otherwise fail the load with a bare "not found in kernel BTF". */
export const REQUIRED_KFUNCS = ['bpf_cast_to_kern_ctx', 'bpf_rdonly_cast'] as const;

/** Why this kernel cannot run the object, or undefined. `btf` is the raw vmlinux BTF. */
export function kernelProblem(kernelRelease: string, btf: Buffer): string | undefined {
  const m = /^(\d+)\.(\d+)/.exec(kernelRelease);
  if (m) {
    const major = Number(m[1]);
    const minor = Number(m[2]);
    if (major < MIN_KERNEL.major || (major === MIN_KERNEL.major && minor < MIN_KERNEL.minor)) {
      return `Linux ${kernelRelease} is older than ${MIN_KERNEL.major}.${MIN_KERNEL.minor}, the first kernel with sockmap links (BPF_LINK_CREATE for sk_msg programs)`;
    }
  }
  // BTF names live NUL-terminated in its string section.
  const missing = REQUIRED_KFUNCS.filter((name) => !btf.includes(Buffer.from(`\0${name}\0`)));
  if (missing.length > 0) return `the kernel's BTF lacks the kfunc(s) ${missing.join(', ')} (Linux ${kernelRelease})`;
  return undefined;
}

/** BTF for CO-RE, the kernel version and kfuncs, and sockhash support. */
export function checkKernel(btfPath = '/sys/kernel/btf/vmlinux'): void {
  if (!existsSync(btfPath)) throw kernelUnsupported(`no kernel BTF at ${btfPath}`);
  const problem = kernelProblem(release(), readFileSync(btfPath));
  if (problem) throw kernelUnsupported(problem);
  let supported: boolean;
  try {
    supported = sockhashSupported();
  } catch (err) {
    if (err instanceof BpfError) throw kernelUnsupported(`probing BPF_MAP_TYPE_SOCKHASH failed (${err.detail})`, err);
    throw err;
  }
  if (!supported) throw kernelUnsupported('BPF_MAP_TYPE_SOCKHASH is not supported');
}
