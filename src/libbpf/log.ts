/**
 * Routes libbpf's own log (libbpf_set_print) into sockbypass's reporting.
 * While `captureLibbpfLog` runs, every line is collected so an error can carry
 * what libbpf said (for a failed load, that includes the verifier log);
 * otherwise lines go to the handler set with `setLibbpfLogHandler`.
 */
import { fn, koffi, PrintFn } from './ffi.js';

export type LibbpfLevel = 'warn' | 'info' | 'debug';
export type LibbpfLogHandler = (level: LibbpfLevel, line: string) => void;

const LEVELS: readonly LibbpfLevel[] = ['warn', 'info', 'debug'];

let handler: LibbpfLogHandler = () => {};
const captures: string[][] = [];
let installed = false;

function onPrint(level: number, format: string, args: unknown): number {
  const buf = Buffer.alloc(16384);
  const n = fn.vsnprintf(buf, buf.length, format, args);
  const text = buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1))).toString('utf8');
  const name = LEVELS[level] ?? 'debug';
  const current = captures[captures.length - 1];
  if (current && name !== 'debug') current.push(text);
  else handler(name, text.replace(/\n$/, ''));
  return 0;
}

function install(): void {
  if (installed) return;
  const callback = koffi.register(onPrint, koffi.pointer(PrintFn));
  fn.libbpf_set_print(callback);
  installed = true;
}

export function setLibbpfLogHandler(next: LibbpfLogHandler): void {
  install();
  handler = next;
}

/** Run `body`, returning its result and the warn/info text libbpf printed meanwhile. */
export function captureLibbpfLog<T>(body: () => T): { value?: T; error?: unknown; log: string } {
  install();
  const lines: string[] = [];
  captures.push(lines);
  try {
    return { value: body(), log: lines.join('') };
  } catch (error) {
    return { error, log: lines.join('') };
  } finally {
    captures.pop();
  }
}

/** The verifier's output inside libbpf's load log, if the log has one. */
export function verifierLogOf(log: string): string {
  const m = /-- BEGIN PROG LOAD LOG --\n([\s\S]*?)-- END PROG LOAD LOG --/.exec(log);
  return m?.[1] ?? '';
}
