/**
 * The errors a user meets: each prints one clear message naming the fix,
 * exits with its documented code, and leaves the kernel as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, type Sandbox, type Finished } from './support/sandbox.js';
import { bpftoolCgroupAttachments, bpftoolPrograms } from './support/witness.js';
import { PACKAGE_ROOT } from '../src/core/paths.js';
import { EXIT } from '../src/errors.js';
import { cgroup2Mount } from '../src/os/cgroup.js';
import { DEFAULT_MAX_ENTRIES, load } from '../src/core/load.js';
import { withPinnedState } from '../src/core/state.js';
import { settingsCodec } from '../src/core/layout.js';
import { checkPrivileges } from '../src/os/preflight.js';
import { main } from '../src/cli/main.js';
import { KNOBS } from '../src/core/knobs.js';

const CLI = join(PACKAGE_ROOT, 'bin', 'sockbypass.js');

function kernelSnapshot(sb: Sandbox): unknown {
  return {
    programs: bpftoolPrograms()
      .map((p) => p.id)
      .sort(),
    pins: existsSync(sb.pinDir) ? readdirSync(sb.pinDir).sort() : null,
    attachments: bpftoolCgroupAttachments(sb.cgroup.split('/').pop() as string),
  };
}

async function cli(sb: Sandbox, args: string[], wrap: string[] = []): Promise<Finished> {
  const argv = [...wrap, process.execPath, CLI, ...args];
  return sb.run(argv[0] as string, argv.slice(1), { cgroup: null });
}

/** Run the CLI expecting a failure; check code, message, fix line, and an unchanged kernel. */
async function expectError(
  sb: Sandbox,
  args: string[],
  code: number,
  message: RegExp,
  wrap: string[] = [],
): Promise<void> {
  const before = kernelSnapshot(sb);
  const r = await cli(sb, args, wrap);
  assert.equal(r.code, code, `exit code for ${args.join(' ')}; stderr: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.match(r.stderr, /^  fix: .+/m, 'names the fix');
  assert.equal(r.stderr.trim().split('\n').length, 2, `one message and one fix line, got: ${r.stderr}`);
  assert.equal(r.stdout, '');
  assert.deepEqual(kernelSnapshot(sb), before, 'kernel unchanged');
}

test('usage errors exit 2 and name the flag', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('cli-usage', async (sb) => {
    const base = ['--pin-dir', sb.pinDir, '--cgroup', sb.cgroup];
    await expectError(sb, ['load', ...base, '--max-entries', 'lots'], EXIT.usage, /--max-entries wants a whole number/);
    await expectError(sb, ['load', ...base, '--max-entries', '0'], EXIT.usage, /--max-entries must be between/);
    await expectError(sb, ['load', ...base, '--ports', '80,x'], EXIT.usage, /--ports wants/);
    await expectError(sb, ['load', ...base, '--ports', '70000'], EXIT.usage, /bad port 70000/);
    await expectError(sb, ['load', ...base, '--ranges', '10.0.0.0/40'], EXIT.usage, /prefix length/);
    await expectError(sb, ['load', ...base, '--frobnicate'], EXIT.usage, /Unknown option '--frobnicate'/);
    const r = await cli(sb, ['frobnicate']);
    assert.equal(r.code, EXIT.usage);
  });
});

test('not root: exit 3 with the fix', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('cli-noroot', async (sb) => {
    const nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'];
    await expectError(
      sb,
      ['load', '--cgroup', sb.cgroup, '--pin-dir', sb.pinDir],
      EXIT.notPermitted,
      /permission denied \(needs root/,
      nobody,
    );
    await expectError(sb, ['unload', '--pin-dir', sb.pinDir], EXIT.notPermitted, /permission denied/, nobody);
  });
  assert.throws(() => checkPrivileges('x', 'CapEff:\t0000000000000000\n'), /permission denied/);
});

test('no cgroup2 mount: exit 4', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('cli-nocg2', async (sb) => {
    // A private mount namespace without the cgroup2 mount: the host's mounts are untouched.
    const mount = cgroup2Mount();
    const wrap = [
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      `umount -l ${mount} && exec "$@"`,
      'sh',
    ];
    await expectError(sb, ['load', '--pin-dir', sb.pinDir], EXIT.noCgroup2, /no cgroup v2 hierarchy is mounted/, wrap);
  });
});

test('cgroup path missing or outside the hierarchy: exit 5', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('cli-cgmissing', async (sb) => {
    await expectError(
      sb,
      ['load', '--pin-dir', sb.pinDir, '--cgroup', join(sb.cgroup, 'nope')],
      EXIT.cgroupMissing,
      /does not exist/,
    );
    await expectError(
      sb,
      ['load', '--pin-dir', sb.pinDir, '--cgroup', '/tmp'],
      EXIT.cgroupMissing,
      /not inside the cgroup2 mount/,
    );
  });
});

test('kernel without BTF: exit 6', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('cli-nobtf', async (sb) => {
    // Hide /sys/kernel/btf in a private mount namespace.
    const wrap = [
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount -t tmpfs none /sys/kernel/btf && exec "$@"',
      'sh',
    ];
    await expectError(
      sb,
      ['load', '--pin-dir', sb.pinDir, '--cgroup', sb.cgroup],
      EXIT.kernelUnsupported,
      /no kernel BTF/,
      wrap,
    );
  });
});

test('object file missing: exit 7', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('cli-noobj', async (sb) => {
    await expectError(
      sb,
      ['load', '--pin-dir', sb.pinDir, '--cgroup', sb.cgroup, '--object', '/nonexistent/sockbypass.bpf.o'],
      EXIT.objectMissing,
      /does not exist \(the build has not run\)/,
    );
  });
});

test('pin folder outside any bpffs: exit 10', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('cli-nobpffs', async (sb) => {
    await expectError(
      sb,
      ['load', '--pin-dir', '/tmp/sockbypass-pins', '--cgroup', sb.cgroup],
      EXIT.bpffsUnavailable,
      /no BPF filesystem/,
    );
  });
});

test('a second load says where it is loaded and changes nothing; a different version is refused with exit 8', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('cli-versions', async (sb) => {
    const first = await cli(sb, ['load', '--pin-dir', sb.pinDir, '--cgroup', sb.cgroup]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /sockbypass loaded: cgroup/);
    const before = kernelSnapshot(sb);
    const second = await cli(sb, ['load', '--pin-dir', sb.pinDir, '--cgroup', sb.cgroup]);
    assert.equal(second.code, 0);
    assert.match(second.stdout, new RegExp(`already loaded: cgroup ${sb.cgroup}, pins in ${sb.pinDir}`));
    assert.deepEqual(kernelSnapshot(sb), before);

    // Pretend another layout version loaded it.
    withPinnedState(sb.pinDir, (s) => {
      const v = settingsCodec.decode(s.maps.settings.lookup(Buffer.alloc(4)) as Buffer);
      s.maps.settings.update(Buffer.alloc(4), settingsCodec.encode({ ...v, layoutVersion: 999 }));
    });
    await expectError(
      sb,
      ['load', '--pin-dir', sb.pinDir, '--cgroup', sb.cgroup],
      EXIT.otherVersionLoaded,
      /different sockbypass version.*layout version 999/,
    );
    await expectError(sb, ['status', '--pin-dir', sb.pinDir], EXIT.otherVersionLoaded, /different sockbypass version/);
    const forced = await cli(sb, ['unload', '--force', '--pin-dir', sb.pinDir]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(existsSync(sb.pinDir), false);
    assert.deepEqual(bpftoolCgroupAttachments(sb.cgroup.split('/').pop() as string), []);
  });
});

test('status --json and the library agree on a fresh load', async (t) => {
  if (!requirePrivileged(t)) return;
  await withSandbox('cli-status', async (sb) => {
    const loaded = load({ cgroup: sb.cgroup, pinDir: sb.pinDir, policy: { ports: [5001, 6379], ranges: null } });
    const r = await cli(sb, ['status', '--json', '--pin-dir', sb.pinDir]);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as {
      loaded: boolean;
      cgroup: string;
      programs: { sockOps: { id: number } };
      policy: unknown;
      map: { maxEntries: number };
    };
    assert.equal(s.loaded, true);
    assert.equal(s.cgroup, sb.cgroup);
    assert.equal(s.programs.sockOps.id, loaded.programIds.sockOps);
    assert.deepEqual(s.policy, {
      ports: [5001, 6379],
      ranges: null,
      queueLimit: 0,
      smallWrite: 4096,
      smallBacklog: 65536,
      shortMessages: 2,
    });
    assert.equal(s.map.maxEntries, DEFAULT_MAX_ENTRIES);
    const text = execFileSync(process.execPath, [CLI, 'status', '--pin-dir', sb.pinDir]).toString();
    assert.match(
      text,
      /policy\s+ports 5001,6379; addresses all; queue limit the receiver's SO_RCVBUF if set, else tcp_rmem\[2\]/,
    );
    const un = await cli(sb, ['unload', '--pin-dir', sb.pinDir]);
    assert.match(un.stdout, /sockbypass unloaded from .*: 0 accelerated connection/);
  });
});

test('every knob is a flag of load, policy, run and bench, in their usage too; load explains each', async () => {
  for (const command of ['load', 'policy', 'run', 'bench']) {
    let text = '';
    assert.equal(
      await main([command, '--help'], (s) => {
        text += s;
        return true;
      }),
      EXIT.ok,
    );
    for (const k of KNOBS) assert.match(text, new RegExp(`--${k.flag}\\b`), `${command} --help names --${k.flag}`);
  }
  let load = '';
  await main(['load', '--help'], (s) => {
    load += s;
    return true;
  });
  for (const k of KNOBS)
    assert.match(load, new RegExp(`^  --${k.flag} [BN] +\\S`, 'm'), `load --help explains --${k.flag}`);
});
