/** What every CLI command module provides; main.ts dispatches to them. */
import type { ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = { [name: string]: string | boolean | (string | boolean)[] | undefined };

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: Options;
  /** Returns the process exit code. Output goes to `out`. */
  run(values: Values, positionals: string[], out: Output): Promise<number> | number;
}

export interface Output {
  write(text: string): void;
  json: boolean;
}

/** Shared flags. */
export const COMMON: Options = {
  'pin-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** JSON with bigints as decimal strings. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), indent);
}
