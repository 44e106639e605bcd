/**
 * The errors a sockbypass user meets: one line saying what is wrong, one
 * saying the fix, and a documented exit code (docs/cli.md).
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notPermitted: 3,
  noCgroup2: 4,
  cgroupMissing: 5,
  kernelUnsupported: 6,
  objectMissing: 7,
  otherVersionLoaded: 8,
  notLoaded: 9,
  bpffsUnavailable: 10,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class SockbypassError extends Error {
  override readonly name = 'SockbypassError';
  constructor(
    message: string,
    /** What the user should do about it. */
    readonly fix: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What loading needs: CAP_PERFMON because the programs read kernel structs (bpf_rdonly_cast). */
export const LOAD_CAPABILITIES = 'CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN';

export const notPermitted = (what: string, cause?: unknown, needs = 'CAP_BPF and CAP_NET_ADMIN') =>
  new SockbypassError(
    `${what}: permission denied (needs root, or ${needs})`,
    'run it as root, e.g. with sudo',
    EXIT.notPermitted,
    { cause },
  );

export const noCgroup2 = () =>
  new SockbypassError(
    'no cgroup v2 hierarchy is mounted (no cgroup2 line in /proc/mounts)',
    'mount one: mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with systemd.unified_cgroup_hierarchy=1)',
    EXIT.noCgroup2,
  );

export const cgroupMissing = (path: string, why: string) =>
  new SockbypassError(
    `cgroup ${path} ${why}`,
    'pass --cgroup with an existing directory inside the cgroup2 mount (see /proc/mounts), or create it with mkdir',
    EXIT.cgroupMissing,
  );

export const kernelUnsupported = (what: string, cause?: unknown) =>
  new SockbypassError(
    `this kernel cannot run sockbypass: ${what}`,
    'use Linux 6.10 or newer built with CONFIG_DEBUG_INFO_BTF=y, CONFIG_BPF_SYSCALL=y, CONFIG_BPF_STREAM_PARSER=y and CONFIG_CGROUP_BPF=y',
    EXIT.kernelUnsupported,
    { cause },
  );

export const objectMissing = (path: string) =>
  new SockbypassError(
    `BPF object ${path} does not exist (the build has not run)`,
    'build it: make (or npm run build) in the sockbypass checkout',
    EXIT.objectMissing,
  );

export const otherVersionLoaded = (pinDir: string, found: string) =>
  new SockbypassError(
    `a different sockbypass version is loaded at ${pinDir} (${found})`,
    `unload it first with the version that loaded it, or remove it: sockbypass unload --force --pin-dir ${pinDir}`,
    EXIT.otherVersionLoaded,
  );

export const notLoaded = (pinDir: string) =>
  new SockbypassError(`sockbypass is not loaded at ${pinDir}`, 'load it first: sockbypass load', EXIT.notLoaded);

export const bpffsUnavailable = (dir: string, cause?: unknown) =>
  new SockbypassError(
    `cannot use ${dir} for pins: no BPF filesystem (bpffs) there, and none could be mounted for it`,
    'mount it: mount -t bpf bpf /sys/fs/bpf, or pass --pin-dir inside a mounted bpffs',
    EXIT.bpffsUnavailable,
    { cause },
  );

export const pinParentMissing = (dir: string) =>
  new SockbypassError(
    `cannot use ${dir} for pins: its parent folder does not exist`,
    'create the parent inside a mounted bpffs, or pass another --pin-dir',
    EXIT.bpffsUnavailable,
  );

export const objectUnusable = (path: string, why: string, cause?: unknown) =>
  new SockbypassError(
    `BPF object ${path} is not a usable sockbypass object: ${why}`,
    'rebuild it with make in the sockbypass checkout, or pass --object with a file that make built',
    EXIT.objectMissing,
    { cause },
  );

export const otherInstance = (cgroup: string, where: string, pinDir?: string) =>
  new SockbypassError(
    `another sockbypass load already covers cgroup ${cgroup}: ${where}`,
    `unload that one first (sockbypass unload --pin-dir ${pinDir ?? 'ITS_PIN_DIR'}), or choose a cgroup it does not cover`,
    EXIT.otherVersionLoaded,
  );

export const usage = (message: string) => new SockbypassError(message, 'see sockbypass <command> --help', EXIT.usage);
