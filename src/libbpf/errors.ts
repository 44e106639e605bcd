/**
 * Errors of the libbpf layer. Each carries the failing operation, the errno
 * and libbpf's own message; callers test for the sentinel classes
 * (NotSupportedError, NotFoundError, PermissionError, ExistsError) instead of
 * errno numbers, and a failed program load carries the verifier log.
 */
import { constants } from 'node:os';
import { fn } from './ffi.js';

const E = constants.errno;

export class BpfError extends Error {
  override readonly name: string = 'BpfError';
  constructor(
    /** What was being done, e.g. "attach sock_ops to /sys/fs/cgroup/unified/x". */
    readonly operation: string,
    /** Positive errno. */
    readonly errno: number,
    /** libbpf's text for the errno, plus anything libbpf printed meanwhile. */
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${operation}: ${detail}`, options);
  }
}

export class NotSupportedError extends BpfError {
  override readonly name = 'NotSupportedError';
}
export class NotFoundError extends BpfError {
  override readonly name = 'NotFoundError';
}
export class PermissionError extends BpfError {
  override readonly name = 'PermissionError';
}
export class ExistsError extends BpfError {
  override readonly name = 'ExistsError';
}

/** The kernel refused a program; `log` is the verifier's output. */
export class VerifierError extends BpfError {
  override readonly name = 'VerifierError';
  constructor(
    operation: string,
    errno: number,
    detail: string,
    readonly log: string,
  ) {
    super(operation, errno, detail);
  }
}

/** libbpf_strerror's text for a positive errno. */
export function strerror(errno: number): string {
  const buf = Buffer.alloc(256);
  fn.libbpf_strerror(-errno, buf, buf.length);
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
}

/** Build the sentinel error that fits `errno` (positive or negative). */
export function bpfError(operation: string, errno: number, extra = ''): BpfError {
  const code = Math.abs(errno);
  const detail = strerror(code) + (extra ? `\n${extra}` : '');
  switch (code) {
    case E.EPERM:
    case E.EACCES:
      return new PermissionError(operation, code, detail);
    case E.ENOENT:
    case E.ESRCH:
      return new NotFoundError(operation, code, detail);
    case E.EOPNOTSUPP:
    case E.ENOTSUP:
    case E.ENOSYS:
    case 524 /* ENOTSUPP, kernel-internal */:
      return new NotSupportedError(operation, code, detail);
    case E.EEXIST:
      return new ExistsError(operation, code, detail);
    default:
      return new BpfError(operation, code, detail);
  }
}

/** Throw for a libbpf call that returns a negative errno (libbpf 1.x convention). */
export function check(ret: number, operation: string): number {
  if (ret < 0) throw bpfError(operation, ret);
  return ret;
}
