/** Facts about the machine a bench ran on, for the report. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem, version } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../core/paths.js';
import type { ToolPaths } from './workloads.js';

export interface MachineFacts {
  /** `uname -r`. */
  readonly kernel: string;
  /** `uname -v`. */
  readonly kernelBuild: string;
  /** `nproc`. */
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly node: string;
  readonly sockbypassVersion: string;
  /** `git describe --always --dirty` of the checkout, when it is one. */
  readonly gitCommit: string | null;
  /** First line of each tool's version output; null for a missing tool. */
  readonly tools: Readonly<Record<string, string | null>>;
  /** 1, 5 and 15 minute load averages when the bench started. */
  readonly loadAverageAtStart: readonly number[];
}

function firstLine(command: string, args: readonly string[], lenient = true): string | null {
  try {
    const out = execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
    return out.toString().trim().split('\n')[0]?.trim() || null;
  } catch (e) {
    if (!lenient) return null;
    // Some tools print their version on stderr or exit non-zero after printing it.
    const err = e as { stdout?: Buffer; stderr?: Buffer };
    const text = `${err.stdout?.toString() ?? ''}${err.stderr?.toString() ?? ''}`.trim();
    return text.split('\n')[0]?.trim() || null;
  }
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function machineFacts(tools: ToolPaths): MachineFacts {
  const toolVersions: Record<string, string | null> = {};
  const versionArgs: Record<string, string[]> = {
    iperf3: ['--version'],
    sockperf: ['--version'],
    tcpdump: ['--version'],
    sbload: ['--help'],
    ip: ['-V'],
    nsenter: ['--version'],
    iptables: ['--version'],
    haproxy: ['-v'],
  };
  for (const [name, path] of Object.entries(tools)) {
    if (path === undefined) {
      toolVersions[name] = null;
    } else if (name === 'sbload') {
      toolVersions[name] = path;
    } else {
      const line = firstLine(path, versionArgs[name] ?? ['--version']);
      // sockperf prints a banner with ANSI colours.
      toolVersions[name] = line === null ? null : line.replace(/\x1b\[[0-9;]*m/g, '');
    }
  }
  return {
    kernel: release(),
    kernelBuild: version(),
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    node: process.version,
    sockbypassVersion: packageVersion(),
    gitCommit: firstLine('git', ['-C', PACKAGE_ROOT, 'describe', '--always', '--dirty'], false),
    tools: toolVersions,
    loadAverageAtStart: loadavg().map((l) => Number(l.toFixed(2))),
  };
}
