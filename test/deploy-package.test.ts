/**
 * The npm package runs without a compiler: `npm pack` carries the compiled CO-RE object and the
 * built JavaScript (and neither vmlinux.h nor sources), and in a fresh directory
 * `npm install <tarball>` then `npx sockbypass load/status/unload` work with a PATH holding only
 * node, npm and sh (no clang, bpftool or make). Also: what `load` says on kernels it cannot run on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox } from './support/sandbox.js';
import { pinState } from '../src/core/pins.js';
import { checkLoadPrivileges, kernelProblem, REQUIRED_KFUNCS } from '../src/os/preflight.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** `npm pack` of the built checkout into `dir`; the build itself is setup.sh's (prepack runs the same make + tsc). */
function pack(dir: string): { tarball: string; files: string[] } {
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const [info] = JSON.parse(out) as Array<{ filename: string; files: Array<{ path: string }> }>;
  assert.ok(info);
  return { tarball: join(dir, info.filename), files: info.files.map((f) => f.path) };
}

test('npm pack carries the CO-RE object and dist/src, and no vmlinux.h, sources or tests', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-pack-'));
  try {
    const { files } = pack(dir);
    for (const f of [
      'build/sockbypass.bpf.o',
      'bin/sockbypass.js',
      'dist/src/cli/main.js',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'package.json',
    ]) {
      assert.ok(files.includes(f), `${f} is in the package`);
    }
    const unwanted = files.filter(
      (f) =>
        /vmlinux|\.c$|\.h$|(^|\/)src\/.*\.ts$|^dist\/test\/|^test\/|^tools\/|\.map$/.test(f) && !f.endsWith('.d.ts'),
    );
    assert.deepEqual(unwanted, []);
    assert.deepEqual(
      files.filter((f) => f.startsWith('build/')),
      ['build/sockbypass.bpf.o'],
      'only the shipped object from build/',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npm install <tarball> in a fresh directory, then npx sockbypass load/status/unload with only node, npm and sh on PATH', async (t) => {
  if (!requirePrivileged(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-install-'));
  try {
    const { tarball } = pack(dir);
    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'sockbypass-install-test', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball], {
      cwd: app,
      stdio: 'pipe',
    });
    const installed = join(app, 'node_modules', 'sockbypass');
    assert.ok(existsSync(join(installed, 'build', 'sockbypass.bpf.o')));
    assert.ok(!existsSync(join(installed, 'build', 'vmlinux.h')));

    // A PATH without clang, bpftool, make or gcc: only what running needs.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const which = (name: string) => execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    for (const name of ['node', 'npm', 'npx', 'sh']) symlinkSync(which(name), join(bin, name));
    const env = { ...process.env, PATH: bin };
    assert.notEqual(
      spawnSync('sh', ['-c', 'command -v clang || command -v bpftool || command -v make'], { env }).status,
      0,
      'no build tools on the PATH',
    );

    await withSandbox('package', async (sb) => {
      const npx = (...args: string[]) =>
        spawnSync(join(bin, 'npx'), ['--no-install', 'sockbypass', ...args], { cwd: app, env, encoding: 'utf8' });
      const loaded = npx('load', '--cgroup', sb.cgroup, '--pin-dir', sb.pinDir, '--json');
      assert.equal(loaded.status, 0, loaded.stderr);
      assert.equal((JSON.parse(loaded.stdout) as { outcome: string }).outcome, 'loaded');
      assert.equal(pinState(sb.pinDir), 'complete');

      const status = npx('status', '--pin-dir', sb.pinDir, '--json');
      assert.equal(status.status, 0, status.stderr);
      const st = JSON.parse(status.stdout) as { loaded: boolean; cgroup: string };
      assert.equal(st.loaded, true);
      assert.equal(st.cgroup, sb.cgroup);

      const unloaded = npx('unload', '--pin-dir', sb.pinDir);
      assert.equal(unloaded.status, 0, unloaded.stderr);
      assert.equal(pinState(sb.pinDir), 'none');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('load names the kernel it cannot run on: older than 6.10, or without the kfuncs', () => {
  const btf = readFileSync('/sys/kernel/btf/vmlinux');
  assert.match(kernelProblem('6.1.0-28-amd64', btf) ?? '', /Linux 6\.1\.0-28-amd64 is older than 6\.10.*sockmap links/);
  assert.match(kernelProblem('5.15.0', btf) ?? '', /older than 6\.10/);
  assert.equal(kernelProblem('6.10.0', btf), undefined, "this machine's BTF has the kfuncs");
  assert.equal(kernelProblem('7.0.0', btf), undefined);
  const withoutRdonly = Buffer.from(`\0${REQUIRED_KFUNCS[0]}\0other\0`);
  assert.match(kernelProblem('6.12.0', withoutRdonly) ?? '', /lacks the kfunc\(s\) bpf_rdonly_cast \(Linux 6\.12\.0\)/);
});

test('load asks for CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (or CAP_SYS_ADMIN and CAP_NET_ADMIN)', () => {
  const capEff = (...caps: number[]) =>
    `CapEff:\t${caps
      .reduce((m, c) => m | (1n << BigInt(c)), 0n)
      .toString(16)
      .padStart(16, '0')}\n`;
  const [NET_ADMIN, SYS_ADMIN, PERFMON, BPF] = [12, 21, 38, 39];
  assert.doesNotThrow(() => checkLoadPrivileges('load', capEff(BPF, PERFMON, NET_ADMIN)));
  assert.doesNotThrow(() => checkLoadPrivileges('load', capEff(SYS_ADMIN, NET_ADMIN)));
  assert.throws(
    () => checkLoadPrivileges('load', capEff(BPF, NET_ADMIN)),
    /needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN/,
  );
  assert.throws(() => checkLoadPrivileges('load', capEff(BPF, PERFMON)), /permission denied/);
});
