/**
 * The container image, built here: a Debian 12 base bootstrapped with mmdebstrap from the host's
 * Debian mirror (cached: /var/cache/sockbypass-test and podman's storage), the Dockerfile built
 * with podman (--isolation chroot: podman cannot start containers on this VM's hybrid cgroups),
 * then the image's root filesystem mounted (podman image mount) and sockbypass run from it in a
 * chroot, with the host's bpffs and cgroup2 root mounted like a container's volumes and the
 * DaemonSet's capability set: load, status, run (/healthz, SIGTERM) and unload really happen in
 * the kernel, in a cgroup and pin folder of the test's own.
 * Which image: by default the Dockerfile's `prebuilt` target (the runtime stage's recipe plus the
 * package installed here from `npm pack`), which builds in minutes cold; with SOCKBYPASS_IMAGE=1
 * (scripts/test.sh --image) the full multi-stage build, whose clang stage is too slow cold to fit
 * in the suite's time budget next to the other tests. Times: docs/deploy.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { requirePrivileged } from './support/privileged.js';
import { freePort, withSandbox } from './support/sandbox.js';
import { terminate, waitHealthy } from './support/agent.js';
import { cgroup2Mount, cgroupId } from '../src/os/cgroup.js';
import { pinState } from '../src/core/pins.js';
import { PinnedState } from '../src/core/state.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const CACHE = '/var/cache/sockbypass-test';
const BASE_TARBALL = join(CACHE, 'debian12-minbase.tar');
const BASE_IMAGE = 'localhost/sockbypass-base:debian12';
const FULL_BUILD = process.env.SOCKBYPASS_IMAGE === '1';
const IMAGE = FULL_BUILD ? 'localhost/sockbypass:test' : 'localhost/sockbypass:test-prebuilt';
/** The build context the Dockerfile's `prebuilt` stage copies /opt/sockbypass from. */
const APP_CONTEXT = 'sockbypass-app';
const DEBIAN_SOURCES = '/etc/apt/sources.list.d/debian.sources';
/** The host's CA bundle, for a network whose TLS proxy re-signs the npm registry. */
const HOST_CA = '/etc/ssl/certs/ca-certificates.crt';
const CAPS = '+bpf,+perfmon,+net_admin';

function run(cmd: string, args: string[], timeoutMs = 20 * 60_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  assert.equal(
    r.status,
    0,
    `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${(r.stdout ?? '').slice(-3000)}\n${(r.stderr ?? '').slice(-3000)}`,
  );
  return r.stdout;
}

function missingTools(): string | undefined {
  for (const tool of ['podman', 'mmdebstrap', 'unshare', 'chroot']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return `needs ${tool} (scripts/setup.sh installs podman and mmdebstrap)`;
  }
  if (!existsSync(DEBIAN_SOURCES)) return `needs the Debian mirror in ${DEBIAN_SOURCES}`;
  return undefined;
}

/** The base image: podman's copy, else the cached tarball, else a fresh mmdebstrap. */
function ensureBaseImage(log: (s: string) => void): void {
  if (spawnSync('podman', ['image', 'exists', BASE_IMAGE]).status === 0) {
    log(`base ${BASE_IMAGE}: cached in podman`);
    return;
  }
  if (!existsSync(BASE_TARBALL)) {
    mkdirSync(CACHE, { recursive: true });
    const started = Date.now();
    // mmdebstrap picks the output format by the name's ending: keep .tar on the partial file.
    const partial = BASE_TARBALL.replace(/\.tar$/, '.partial.tar');
    run('mmdebstrap', ['--variant=minbase', '--quiet', 'bookworm', partial, DEBIAN_SOURCES]);
    renameSync(partial, BASE_TARBALL);
    log(`mmdebstrap: ${seconds(started)} s`);
  }
  run('podman', ['import', '--quiet', BASE_TARBALL, BASE_IMAGE]);
  log(`base ${BASE_IMAGE}: imported from ${BASE_TARBALL}`);
}

/**
 * The package as an operator installs it without a compiler (docs/deploy.md, npm package): the
 * checkout's `npm pack` (built by setup.sh) installed with its production dependencies into
 * `dir`/opt/sockbypass, the folder the `prebuilt` stage copies.
 */
function installPackage(dir: string): string {
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const [info] = JSON.parse(out) as Array<{ filename: string }>;
  assert.ok(info);
  const app = join(dir, 'opt', 'sockbypass');
  run('npm', [
    'install',
    '--global',
    '--prefix',
    app,
    '--omit=dev',
    '--no-audit',
    '--no-fund',
    '--prefer-offline',
    '--loglevel=error',
    join(dir, info.filename),
  ]);
  return app;
}

function buildImage(log: (s: string) => void): void {
  const started = Date.now();
  const common = [
    'build',
    '--isolation',
    'chroot',
    '--layers',
    '--force-rm',
    '--quiet',
    '--build-arg',
    `BASE_IMAGE=${BASE_IMAGE}`,
    '-t',
    IMAGE,
  ];
  if (FULL_BUILD) {
    const ca = existsSync(HOST_CA)
      ? ['-v', `${HOST_CA}:/run/extra-ca.crt:ro`, '--build-arg', 'EXTRA_CA_CERTS=/run/extra-ca.crt']
      : [];
    run('podman', [...common, ...ca, ROOT]);
    log(`podman build (full, clang stage): ${seconds(started)} s`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-image-app-'));
  try {
    const app = installPackage(dir);
    log(`npm pack + install: ${seconds(started)} s`);
    run('podman', [...common, '--target', 'prebuilt', '--build-context', `${APP_CONTEXT}=${app}`, ROOT]);
    log(`podman build (prebuilt target): ${seconds(started)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function seconds(since: number): number {
  return Math.round((Date.now() - since) / 1000);
}

/** A chroot into the image's root filesystem, with the host's bpffs and cgroup2 root as volumes. */
const CHROOT_SCRIPT = `set -e
R="$IMAGE_ROOT"
mount -t proc proc "$R/proc"
mount --bind /sys "$R/sys"
mount --bind /sys/fs/bpf "$R/sys/fs/bpf"
mount --bind "$HOST_CGROUP_ROOT" "$R/sys/fs/cgroup"
mount --rbind /dev "$R/dev"
exec chroot "$R" /usr/bin/setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,${CAPS} -- /usr/bin/env -i PATH=/opt/sockbypass/bin:/usr/bin:/bin "$@"`;

/** The Dockerfile's instructions per stage (continuation lines joined, comments dropped). */
function dockerfileStages(): Array<{ name: string; instructions: string[] }> {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages: Array<{ name: string; instructions: string[] }> = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim().replace(/\s+/g, ' ');
    if (line === '' || line.startsWith('#')) continue;
    const from = /^FROM \S+ AS (\S+)$/i.exec(line);
    if (from?.[1]) stages.push({ name: from[1], instructions: [] });
    stages.at(-1)?.instructions.push(line);
  }
  return stages;
}

test('the default test image and the full image share one runtime recipe and differ only in where /opt/sockbypass comes from', () => {
  const stages = dockerfileStages();
  assert.deepEqual(
    stages.map((s) => s.name),
    ['runtime-base', 'build', 'prebuilt', 'runtime'],
    'runtime is the last stage: the default target',
  );
  const byName = new Map(stages.map((s) => [s.name, s.instructions]));
  assert.deepEqual(byName.get('prebuilt'), [
    'FROM runtime-base AS prebuilt',
    `COPY --from=${APP_CONTEXT} / /opt/sockbypass`,
  ]);
  assert.deepEqual(byName.get('runtime'), [
    'FROM runtime-base AS runtime',
    'COPY --from=build /opt/sockbypass /opt/sockbypass',
  ]);
});

test(`the image (${FULL_BUILD ? 'full multi-stage build' : 'prebuilt target'}) builds from a Debian 12 base, and sockbypass runs from its filesystem against this kernel`, {
  timeout: (FULL_BUILD ? 30 : 12) * 60_000,
}, async (t) => {
  if (!requirePrivileged(t)) return;
  const missing = missingTools();
  if (missing) {
    if (process.env.CI === 'true') assert.fail(`image test cannot run under CI=true: ${missing}`);
    return t.skip(missing);
  }
  const log = (s: string) => t.diagnostic(s);
  const started = Date.now();
  ensureBaseImage(log);
  buildImage(log);
  log(`base + build: ${seconds(started)} s`);

  const imageRoot = run('podman', ['image', 'mount', IMAGE]).trim();
  try {
    // The runtime stage: Node and libbpf1, the package, and no compiler or vmlinux.h.
    const pkg = join(imageRoot, 'opt/sockbypass/lib/node_modules/sockbypass');
    assert.ok(existsSync(join(pkg, 'build/sockbypass.bpf.o')), 'the CO-RE object is in the image');
    assert.ok(!existsSync(join(pkg, 'build/vmlinux.h')));
    const version = (p: string) =>
      (JSON.parse(readFileSync(join(p, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(version(pkg), version(ROOT), "the checkout's version");
    if (!FULL_BUILD) {
      assert.deepEqual(
        readFileSync(join(pkg, 'build/sockbypass.bpf.o')),
        readFileSync(join(ROOT, 'build/sockbypass.bpf.o')),
        "the checkout's object",
      );
    }
    for (const absent of ['usr/bin/clang', 'usr/bin/bpftool', 'usr/bin/make', 'usr/bin/npm', 'usr/include/bpf']) {
      assert.ok(!existsSync(join(imageRoot, absent)), `${absent} is not in the runtime image`);
    }
    assert.ok(existsSync(join(imageRoot, 'usr/bin/node')));
    const libbpf = run('chroot', [imageRoot, '/sbin/ldconfig', '-p']);
    assert.match(libbpf, /libbpf\.so\.1 /, 'libbpf1 is in the image');
    log(`node in the image: ${run('chroot', [imageRoot, '/usr/bin/node', '--version']).trim()}`);

    await withSandbox('image', async (sb) => {
      const hostRoot = cgroup2Mount();
      const cgroupInside = join('/sys/fs/cgroup', relative(hostRoot, sb.cgroup));
      const env = { ...process.env, IMAGE_ROOT: imageRoot, HOST_CGROUP_ROOT: hostRoot };
      const inImage = (...args: string[]) =>
        spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', CHROOT_SCRIPT, 'chroot', ...args], {
          env,
          encoding: 'utf8',
          timeout: 60_000,
        });

      const loaded = inImage('sockbypass', 'load', '--cgroup', cgroupInside, '--pin-dir', sb.pinDir, '--json');
      assert.equal(loaded.status, 0, loaded.stderr);
      assert.equal(pinState(sb.pinDir), 'complete', 'pinned on the host bpffs');
      const state = PinnedState.open(sb.pinDir);
      try {
        assert.equal(state.links.link_sockops.info().cgroupId, cgroupId(sb.cgroup), 'attached to the test cgroup');
      } finally {
        state.close();
      }
      const status = inImage('sockbypass', 'status', '--pin-dir', sb.pinDir, '--json');
      assert.equal(status.status, 0, status.stderr);
      assert.equal((JSON.parse(status.stdout) as { loaded: boolean }).loaded, true);

      // The image's default command, the agent: adopts, serves /healthz, exits 0 on SIGTERM.
      const port = await freePort();
      const agent = sb.start(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          CHROOT_SCRIPT,
          'chroot',
          'sockbypass',
          'run',
          '--keep',
          '--pin-dir',
          sb.pinDir,
          '--metrics-addr',
          `127.0.0.1:${port}`,
        ],
        { cgroup: null, env },
      );
      await waitHealthy(agent, `http://127.0.0.1:${port}/healthz`);
      assert.match(agent.stderr(), /adopted the load already pinned/);
      assert.equal(await terminate(agent), 0);
      assert.equal(pinState(sb.pinDir), 'complete');

      const unloaded = inImage('sockbypass', 'unload', '--pin-dir', sb.pinDir);
      assert.equal(unloaded.status, 0, unloaded.stderr);
      assert.equal(pinState(sb.pinDir), 'none');
    });
  } finally {
    spawnSync('podman', ['image', 'umount', IMAGE]);
  }
});
