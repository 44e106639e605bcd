/**
 * The sockbypass CLI: parse arguments, call the library, print. Errors are
 * printed once, as what went wrong and how to fix it, with a documented
 * exit code (docs/cli.md).
 */
import { parseArgs } from 'node:util';
import { EXIT, SockbypassError } from '../errors.js';
import { BpfError, VerifierError } from '../libbpf/index.js';
import type { Command } from './command.js';
import { loadCommand } from './load.js';
import { unloadCommand } from './unload.js';
import { statusCommand } from './status.js';
import { policyCommand } from './policy.js';
import { traceCommand } from './trace.js';
import { connectionsCommand } from './connections.js';
import { runCommand } from './run.js';
import { benchCommand } from './bench.js';
import { demoCommand } from './demo.js';

const COMMANDS: readonly Command[] = [
  loadCommand,
  unloadCommand,
  statusCommand,
  policyCommand,
  traceCommand,
  connectionsCommand,
  runCommand,
  benchCommand,
  demoCommand,
];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: sockbypass <command> [options]',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "sockbypass <command> --help shows a command's options. Exit codes: docs/cli.md.",
  ].join('\n');
}

export async function main(argv: string[], write = (s: string) => process.stdout.write(s)): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    write(help() + '\n');
    return name ? EXIT.ok : EXIT.usage;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`sockbypass: unknown command ${JSON.stringify(name)}\n${help()}\n`);
    return EXIT.usage;
  }
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: false, strict: true });
    } catch (err) {
      // Node's parseArgs messages run on with advice about '--'; the first sentence is the point.
      const first = (err as Error).message.split(/\.\s|\n/)[0] ?? String(err);
      throw new SockbypassError(`${name}: ${first}`, `see: sockbypass ${name} --help`, EXIT.usage);
    }
    if (parsed.values.help) {
      write(command.usage + '\n');
      return EXIT.ok;
    }
    return await command.run(parsed.values, parsed.positionals, { write, json: parsed.values.json === true });
  } catch (err) {
    return report(err);
  }
}

function report(err: unknown): number {
  if (err instanceof SockbypassError) {
    process.stderr.write(`sockbypass: ${err.message}\n  fix: ${err.fix}\n`);
    return err.exitCode;
  }
  if (err instanceof VerifierError) {
    process.stderr.write(`sockbypass: the kernel's verifier rejected a program: ${err.operation}\n${err.log}\n`);
    return EXIT.failure;
  }
  if (err instanceof BpfError) {
    process.stderr.write(`sockbypass: ${err.message}\n`);
    return EXIT.failure;
  }
  process.stderr.write(`sockbypass: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.failure;
}
