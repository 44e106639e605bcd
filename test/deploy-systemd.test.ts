/**
 * deploy/systemd/sockbypass.service: `systemd-analyze verify` accepts it (with its install path
 * pointed at this checkout, since the package is not installed here), and its ExecStart/ExecStop,
 * expanded the way systemd expands them, behave as the unit promises on a real load: the agent
 * keeps the load across a stop and a restart (the next agent adopts it), ExecStop after a crash
 * leaves it, and an orderly stop with SOCKBYPASS_ON_STOP=unload unloads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { freePort, withSandbox } from './support/sandbox.js';
import { terminate, waitHealthy } from './support/agent.js';
import { pinState } from '../src/core/pins.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const UNIT = readFileSync(join(ROOT, 'deploy', 'systemd', 'sockbypass.service'), 'utf8');
const ENV_EXAMPLE = readFileSync(join(ROOT, 'deploy', 'systemd', 'sockbypass.env'), 'utf8');
const INSTALL_PATH = '/usr/lib/node_modules/sockbypass';

function verify(unitText: string): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-unit-'));
  try {
    writeFileSync(join(dir, 'sockbypass.service'), unitText);
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'sockbypass.service')], { encoding: 'utf8' });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('systemd-analyze verify accepts the unit installed at the checkout, and rejects it where nothing is installed', () => {
  const installed = verify(UNIT.replaceAll(INSTALL_PATH, ROOT));
  assert.equal(installed.status, 0, installed.output);
  assert.doesNotMatch(installed.output, /sockbypass\.service/, 'no complaint about our unit');
  // The control: verify does check the ExecStart path, so the pass above means something.
  const missing = verify(UNIT.replaceAll(INSTALL_PATH, '/nonexistent/sockbypass'));
  assert.notEqual(missing.status, 0);
  assert.match(missing.output, /\/nonexistent\/sockbypass\/bin\/sockbypass\.js is not executable/);
});

test('the unit bounds capabilities to what loading needs, and runs the agent with --keep', () => {
  assert.match(UNIT, /^CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN$/m);
  assert.match(UNIT, /^ExecStart=\S+ run --keep /m);
  assert.match(UNIT, /^EnvironmentFile=-\/etc\/default\/sockbypass$/m);
  assert.match(UNIT, /^Restart=on-failure$/m);
});

/** The [Service] Environment= assignments, then an EnvironmentFile's, the later winning. */
function environment(unit: string, envFile: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)) env[m[1] as string] = m[2] as string;
  for (const m of envFile.matchAll(/^([A-Z_]+)=(.*)$/gm)) env[m[1] as string] = m[2] as string;
  return env;
}

/**
 * systemd's command-line rules, as far as the unit uses them: words split on blanks, '...' and
 * "..." quote, ${VAR} expands inside a word, a bare $VAR word splits into words, $$ is a $.
 */
function commandLine(line: string, env: Record<string, string>): string[] {
  const words: Array<{ text: string; quoted: boolean }> = [];
  const re = /'([^']*)'|"([^"]*)"|(\S+)/g;
  for (const m of line.matchAll(re)) words.push({ text: m[1] ?? m[2] ?? (m[3] as string), quoted: m[3] === undefined });
  const expand = (s: string) =>
    s.replace(/\$\$|\$\{([A-Z_]+)\}|\$([A-Z_]+)/g, (all, a?: string, b?: string) =>
      all === '$$' ? '$' : (env[(a ?? b) as string] ?? ''),
    );
  return words.flatMap((w) => {
    const bare = /^\$([A-Z_]+)$/.exec(w.text);
    if (bare && !w.quoted) return (env[bare[1] as string] ?? '').split(/\s+/).filter(Boolean);
    return [expand(w.text)];
  });
}

function unitCommand(key: 'ExecStart' | 'ExecStop', env: Record<string, string>): string[] {
  const line = new RegExp(`^${key}=(.*)$`, 'm').exec(UNIT.replaceAll(INSTALL_PATH, ROOT))?.[1];
  assert.ok(line, `${key} in the unit`);
  return commandLine(line, env);
}

test('ExecStart keeps the load over stop and restart, ExecStop unloads only on an orderly stop when configured', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('systemd', async (sb) => {
    const port = await freePort();
    const env = {
      ...environment(UNIT, ENV_EXAMPLE),
      SOCKBYPASS_PIN_DIR: sb.pinDir,
      SOCKBYPASS_METRICS_ADDR: `127.0.0.1:${port}`,
      SOCKBYPASS_FLAGS: `--cgroup ${sb.cgroup} --ports 6379`,
      SOCKBYPASS_ON_STOP: 'unload',
    };
    const start = unitCommand('ExecStart', env);
    assert.deepEqual(
      start.slice(-4),
      ['--cgroup', sb.cgroup, '--ports', '6379'],
      'the bare $SOCKBYPASS_FLAGS split into words',
    );
    const health = `http://127.0.0.1:${port}/healthz`;

    const first = sb.start(start[0] as string, start.slice(1), { cgroup: null, env: { ...process.env, ...env } });
    await waitHealthy(first, health);
    assert.match(first.stderr(), /loaded: cgroup /);
    assert.equal(await terminate(first), 0);
    assert.equal(pinState(sb.pinDir), 'complete', 'a stopped agent leaves the load (--keep)');

    const second = sb.start(start[0] as string, start.slice(1), { cgroup: null, env: { ...process.env, ...env } });
    await waitHealthy(second, health);
    assert.match(second.stderr(), /adopted the load already pinned/);

    const stop = unitCommand('ExecStop', env);
    const afterCrash = spawnSync(stop[0] as string, stop.slice(1), {
      env: { ...process.env, ...env, SERVICE_RESULT: 'exit-code' },
      encoding: 'utf8',
    });
    assert.equal(afterCrash.status, 0, afterCrash.stderr);
    assert.equal(pinState(sb.pinDir), 'complete', 'ExecStop after a crash leaves the load');

    const orderly = spawnSync(stop[0] as string, stop.slice(1), {
      env: { ...process.env, ...env, SERVICE_RESULT: 'success' },
      encoding: 'utf8',
    });
    assert.equal(orderly.status, 0, orderly.stderr);
    assert.match(orderly.stdout, /unloaded/);
    assert.equal(pinState(sb.pinDir), 'none', 'an orderly stop with SOCKBYPASS_ON_STOP=unload unloads');
    assert.equal(await terminate(second), 0, 'the agent exits cleanly after ExecStop unloaded under it');
  });
});

test('with SOCKBYPASS_ON_STOP=keep (the default) an orderly stop leaves the load', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('systemd-keep', async (sb) => {
    const env: Record<string, string> = { ...environment(UNIT, ENV_EXAMPLE), SOCKBYPASS_PIN_DIR: sb.pinDir };
    assert.equal(env.SOCKBYPASS_ON_STOP, 'keep');
    execFileSync(
      process.execPath,
      [join(ROOT, 'bin', 'sockbypass.js'), 'load', '--cgroup', sb.cgroup, '--pin-dir', sb.pinDir],
      { stdio: 'pipe' },
    );
    const stop = unitCommand('ExecStop', env);
    const r = spawnSync(stop[0] as string, stop.slice(1), {
      env: { ...process.env, ...env, SERVICE_RESULT: 'success' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(pinState(sb.pinDir), 'complete');
  });
});
