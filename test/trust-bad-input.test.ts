/**
 * Trust, part 7: bad input. Every CLI flag with a wrong value, a cgroup that
 * is not one, pin folders that are not bpffs, bpffs missing, corrupt objects,
 * another instance already loaded: each must give one clear error (two lines:
 * the message and `  fix: …`), its documented exit code (docs/cli.md), and
 * change nothing -- in the kernel (our cgroup's attachments, our pins, the
 * policy in force) or on disk.
 *
 * test/cli.test.ts already covers: --max-entries lots/0, --ports 80,x/70000,
 * --ranges 10.0.0.0/40, an unknown option and command, not root, no cgroup2,
 * a missing cgroup and /tmp as cgroup, no BTF, a missing object, /tmp as a
 * fresh pin folder, another layout version for load and status. This file
 * does the rest. Each test runs all its cases and then lists every case that
 * was wrong, so one run shows them all.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { requirePrivileged } from './support/privileged.js';
import { withSandbox, type Sandbox, type Finished } from './support/sandbox.js';
import { bpftoolCgroupAttachments } from './support/witness.js';
import { EXIT } from '../src/errors.js';
import { load } from '../src/core/load.js';
import { unload } from '../src/core/unload.js';
import { readPolicy, formatPolicy } from '../src/core/policy.js';
import { withPinnedState } from '../src/core/state.js';
import { pinState } from '../src/core/pins.js';
import { resolveCgroup, cgroup2Mount, createCgroup, removeCgroup } from '../src/os/cgroup.js';
import { settingsCodec } from '../src/core/layout.js';
import { BUILD_DIR, CLI, Tally } from './support/trust.js';

const tally = new Tally('trust-bad-input');

/** What the kernel and the disk hold for this sandbox: compared before and after each case. */
function snapshot(sb: Sandbox, extraPinDirs: string[] = [], files: string[] = []): unknown {
  const pins = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : null);
  const policy = (dir: string) => {
    // A folder that is not bpffs, or a load of another layout version, has no policy we can read.
    try {
      return pinState(dir) === 'complete' ? formatPolicy(withPinnedState(dir, (s) => readPolicy(s.maps))) : null;
    } catch (err) {
      return `unreadable: ${(err as Error).message}`;
    }
  };
  return {
    attachments: bpftoolCgroupAttachments(sb.cgroup.split('/').pop() as string),
    pins: Object.fromEntries([sb.pinDir, ...extraPinDirs].map((d) => [d, pins(d)])),
    policy: Object.fromEntries([sb.pinDir, ...extraPinDirs].map((d) => [d, policy(d)])),
    files: Object.fromEntries(files.map((f) => [f, existsSync(f) ? readFileSync(f, 'utf8') : null])),
  };
}

interface Case {
  name: string;
  args: string[];
  /** Acceptable exit codes (the documented one first). */
  codes: number[];
  message: RegExp;
  wrap?: string[];
  extraPinDirs?: string[];
  files?: string[];
  /** Undo what a wrong case did, so the next case starts from the same state. */
  after?: () => void;
}

async function cli(sb: Sandbox, args: string[], wrap: string[] = []): Promise<Finished> {
  const argv = [...wrap, process.execPath, CLI, ...args];
  return sb.run(argv[0] as string, argv.slice(1), { cgroup: null, timeoutMs: 30_000 });
}

/** Run one case; returns what is wrong with it (empty when all is well). */
async function check(t: TestContext, sb: Sandbox, c: Case): Promise<string[]> {
  const before = snapshot(sb, c.extraPinDirs, c.files);
  const r = await cli(sb, c.args, c.wrap);
  const after = snapshot(sb, c.extraPinDirs, c.files);
  c.after?.();
  const lines = r.stderr.trim().split('\n');
  const wrong: string[] = [];
  if (!c.codes.includes(r.code ?? -1)) wrong.push(`exit ${r.code}, want ${c.codes.join(' or ')}`);
  if (!c.message.test(r.stderr)) wrong.push(`message does not match ${c.message}`);
  if (!/^ {2}fix: .+/m.test(r.stderr)) wrong.push('no "  fix:" line');
  if (lines.length !== 2) wrong.push(`${lines.length} lines on stderr, want 2`);
  if (r.stdout !== '') wrong.push(`printed on stdout: ${JSON.stringify(r.stdout.slice(0, 160))}`);
  try {
    assert.deepEqual(after, before);
  } catch {
    wrong.push(`changed the kernel or the disk: ${JSON.stringify(before)} → ${JSON.stringify(after)}`);
  }
  tally.checks++;
  if (wrong.length) tally.failures++;
  const shown = c.args
    .map((a) => (a.length > 60 ? `${a.slice(0, 40)}…(${a.length} chars)` : a))
    .join(' ')
    .replaceAll(sb.cgroup, 'CG')
    .replaceAll(sb.pinDir, 'PD');
  t.diagnostic(
    `${wrong.length ? 'WRONG' : 'ok   '} ${c.name}: sockbypass ${shown} → exit ${r.code}; ${JSON.stringify(lines.slice(0, 3).join(' ⏎ ').slice(0, 260))}${wrong.length ? ` -- ${wrong.join('; ')}` : ''}`,
  );
  return wrong.map((w) => `${c.name}: ${w}`);
}

async function checkAll(t: TestContext, sb: Sandbox, cases: Case[]): Promise<void> {
  const problems: string[] = [];
  for (const c of cases) problems.push(...(await check(t, sb, c)));
  assert.deepEqual(problems, [], `${problems.length} of ${cases.length} cases are wrong`);
}

const U = EXIT.usage;
const manyPorts = Array.from({ length: 1100 }, (_, i) => String(i + 1)).join(',');
const manyRanges = Array.from({ length: 300 }, (_, i) => `10.${Math.floor(i / 256)}.${i % 256}.0/24`).join(',');

test('load: every flag with a wrong value is a usage error (exit 2) and loads nothing', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-bad-load', async (sb) => {
      const w = ['--cgroup', sb.cgroup, '--pin-dir', sb.pinDir];
      await checkAll(t, sb, [
        {
          name: 'negative --max-entries',
          args: ['load', ...w, '--max-entries', '-5'],
          codes: [U],
          message: /--max-entries/,
        },
        {
          name: 'fractional --max-entries',
          args: ['load', ...w, '--max-entries', '1.5'],
          codes: [U],
          message: /--max-entries wants a whole number/,
        },
        {
          name: 'huge --max-entries',
          args: ['load', ...w, '--max-entries', '99999999999'],
          codes: [U],
          message: /--max-entries must be between/,
        },
        {
          name: 'empty --max-entries',
          args: ['load', ...w, '--max-entries', ''],
          codes: [U],
          message: /--max-entries/,
        },
        {
          name: '--max-entries without a value',
          args: ['load', ...w, '--max-entries'],
          codes: [U],
          message: /--max-entries/,
        },
        { name: 'empty --ports', args: ['load', ...w, '--ports', ''], codes: [U], message: /--ports/ },
        { name: 'port 0', args: ['load', ...w, '--ports', '0'], codes: [U], message: /port 0/ },
        { name: 'negative port', args: ['load', ...w, '--ports', '-1'], codes: [U], message: /--ports/ },
        { name: 'empty item in --ports', args: ['load', ...w, '--ports', '80,,81'], codes: [U], message: /--ports/ },
        {
          name: 'more ports than the policy map holds (1024)',
          args: ['load', ...w, '--ports', manyPorts],
          codes: [U],
          message: /ports/,
        },
        {
          name: '--ranges not an address',
          args: ['load', ...w, '--ranges', 'banana'],
          codes: [U],
          message: /not an IP address/,
        },
        {
          name: '--ranges octet 300',
          args: ['load', ...w, '--ranges', '300.0.0.0/8'],
          codes: [U],
          message: /not an IP address/,
        },
        { name: '--ranges /129', args: ['load', ...w, '--ranges', '::1/129'], codes: [U], message: /prefix length/ },
        { name: 'empty --ranges', args: ['load', ...w, '--ranges', ''], codes: [U], message: /--ranges|address/ },
        {
          name: 'more ranges than the policy map holds (256)',
          args: ['load', ...w, '--ranges', manyRanges],
          codes: [U],
          message: /ranges/,
        },
        {
          name: '--queue-limit not a number',
          args: ['load', ...w, '--queue-limit', 'x'],
          codes: [U],
          message: /--queue-limit/,
        },
        {
          name: 'negative --queue-limit',
          args: ['load', ...w, '--queue-limit', '-1'],
          codes: [U],
          message: /--queue-limit/,
        },
        {
          name: 'huge --queue-limit',
          args: ['load', ...w, '--queue-limit', '99999999999'],
          codes: [U],
          message: /queue limit|--queue-limit/,
        },
        {
          name: 'a value for the switch --replace',
          args: ['load', ...w, '--replace=yes'],
          codes: [U],
          message: /--replace/,
        },
        { name: 'a value for the switch --json', args: ['load', ...w, '--json=1'], codes: [U], message: /--json/ },
        {
          name: '--cgroup without a value',
          args: ['load', '--pin-dir', sb.pinDir, '--cgroup'],
          codes: [U],
          message: /--cgroup/,
        },
        { name: 'a stray positional argument', args: ['load', ...w, 'now'], codes: [U], message: /now|argument/ },
      ]);
    });
  });
});

test('unload, status, policy and run: wrong values are usage errors (exit 2) and change nothing', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-bad-other', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir, policy: { ports: [5001], ranges: null } });
      const pd = ['--pin-dir', sb.pinDir];
      await checkAll(t, sb, [
        {
          name: 'status: --interval without --watch',
          args: ['status', ...pd, '--interval', '1'],
          codes: [U],
          message: /--interval needs --watch/,
        },
        {
          name: 'status: --interval 0',
          args: ['status', ...pd, '--watch', '--interval', '0'],
          codes: [U],
          message: /--interval/,
        },
        {
          name: 'status: --interval abc',
          args: ['status', ...pd, '--watch', '--interval', 'abc'],
          codes: [U],
          message: /--interval/,
        },
        {
          name: 'status: a stray positional argument',
          args: ['status', ...pd, 'all'],
          codes: [U],
          message: /all|argument/,
        },
        { name: 'policy: --ports x', args: ['policy', ...pd, '--ports', 'x'], codes: [U], message: /--ports/ },
        { name: 'policy: --ports 70000', args: ['policy', ...pd, '--ports', '70000'], codes: [U], message: /70000/ },
        {
          name: 'policy: --ranges /33',
          args: ['policy', ...pd, '--ranges', '1.2.3.4/33'],
          codes: [U],
          message: /prefix length/,
        },
        {
          name: 'policy: --queue-limit x',
          args: ['policy', ...pd, '--queue-limit', 'x'],
          codes: [U],
          message: /--queue-limit/,
        },
        {
          name: 'policy: --ports and --all-ports together',
          args: ['policy', ...pd, '--ports', '80', '--all-ports'],
          codes: [U],
          message: /--all-ports|--ports/,
        },
        {
          name: 'policy: --ranges and --all-ranges together',
          args: ['policy', ...pd, '--ranges', '10.0.0.0/8', '--all-ranges'],
          codes: [U],
          message: /--all-ranges|--ranges/,
        },
        {
          name: 'policy: more ports than the map holds',
          args: ['policy', ...pd, '--ports', manyPorts],
          codes: [U],
          message: /ports/,
        },
        {
          name: 'policy: unknown option',
          args: ['policy', ...pd, '--max-entries', '5'],
          codes: [U],
          message: /--max-entries/,
        },
        {
          name: 'run: --metrics-addr without a port',
          args: ['run', '--cgroup', sb.cgroup, ...pd, '--metrics-addr', 'localhost'],
          codes: [U],
          message: /--metrics-addr/,
        },
        {
          name: 'run: --metrics-addr port 99999',
          args: ['run', '--cgroup', sb.cgroup, ...pd, '--metrics-addr', '127.0.0.1:99999'],
          codes: [U],
          message: /--metrics-addr/,
        },
        {
          name: 'run: --max-entries 0',
          args: ['run', '--cgroup', sb.cgroup, ...pd, '--max-entries', '0'],
          codes: [U],
          message: /--max-entries/,
        },
        { name: 'unload: a value for --force', args: ['unload', ...pd, '--force=1'], codes: [U], message: /--force/ },
        { name: 'unload: unknown option', args: ['unload', ...pd, '--bogus'], codes: [U], message: /--bogus/ },
        // Last: if a stray argument is ignored, this one unloads.
        {
          name: 'unload: a stray positional argument',
          args: ['unload', ...pd, 'everything'],
          codes: [U],
          message: /everything|argument/,
        },
      ]);
    });
  });
});

test('cgroups that are not cgroups: exit 5, and an empty --cgroup is never taken as the whole host', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-bad-cgroup', async (sb) => {
      const pd = ['--pin-dir', sb.pinDir];
      const v1 = readFileSync('/proc/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' '))
        .find((f) => f[2] === 'cgroup')?.[1];
      await checkAll(t, sb, [
        {
          name: 'a file inside the cgroup2 mount',
          args: ['load', ...pd, '--cgroup', join(sb.cgroup, 'cgroup.procs')],
          codes: [EXIT.cgroupMissing],
          message: /is not a cgroup directory/,
        },
        {
          name: 'a relative path that does not exist',
          args: ['load', ...pd, '--cgroup', 'sockbypass-no-such-cgroup'],
          codes: [EXIT.cgroupMissing],
          message: /does not exist/,
        },
        ...(v1
          ? [
              {
                name: 'a cgroup v1 hierarchy',
                args: ['load', ...pd, '--cgroup', v1],
                codes: [EXIT.cgroupMissing],
                message: /not inside the cgroup2 mount/,
              },
            ]
          : []),
      ]);
      // Not run through the CLI: if this resolved to the mount's root, the CLI would attach host-wide.
      let resolved: string | undefined;
      let threw: unknown;
      try {
        resolved = resolveCgroup('');
      } catch (err) {
        threw = err;
      }
      tally.checks++;
      t.diagnostic(
        `--cgroup '' resolves to ${resolved === undefined ? `an error (${String(threw)})` : JSON.stringify(resolved)}${resolved === cgroup2Mount() ? ' -- the cgroup2 ROOT: every process on the host' : ''}`,
      );
      if (resolved !== undefined) tally.failures++;
      assert.equal(
        resolved,
        undefined,
        `an empty --cgroup must be refused (exit 5), but it resolves to ${resolved} (the whole host)`,
      );
    });
  });
});

test('an unwritable (read-only) cgroup2 mount: load either works or fails cleanly', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-ro-cgroup', async (sb) => {
      const mount = cgroup2Mount();
      const wrap = [
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount -o remount,bind,ro ${mount} && exec "$@"`,
        'sh',
      ];
      const r = await cli(sb, ['load', '--cgroup', sb.cgroup, '--pin-dir', sb.pinDir], wrap);
      tally.checks++;
      const attached = bpftoolCgroupAttachments(sb.cgroup.split('/').pop() as string);
      t.diagnostic(
        `read-only cgroup2 mount: exit ${r.code}, ${JSON.stringify((r.stdout + r.stderr).trim().slice(0, 200))}; attachments now: ${attached.length}`,
      );
      if (r.code === 0) {
        assert.equal(pinState(sb.pinDir), 'complete', 'a load that says it succeeded is pinned');
        assert.equal(attached.length, 1, 'and attached (attaching needs no write to the cgroup directory)');
      } else {
        assert.equal(r.code, EXIT.cgroupMissing);
        assert.equal(r.stderr.trim().split('\n').length, 2);
        assert.deepEqual(attached, []);
      }
    });
  });
});

test('pin folders: a missing parent, and ordinary directories, are refused without touching their files', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-bad-pins', async (sb) => {
      const dir = mkdtempSync(join(tmpdir(), 'sockbypass-notbpffs-'));
      const empty = mkdtempSync(join(tmpdir(), 'sockbypass-empty-'));
      sb.onCleanup(() => {
        rmSync(dir, { recursive: true, force: true });
        rmSync(empty, { recursive: true, force: true });
      });
      // A user's directory that happens to hold files named like pins.
      const files = ['settings', 'events', 'counters', 'notes.txt'].map((f) => join(dir, f));
      for (const f of files) writeFileSync(f, `user data in ${f}\n`);
      const deep = join(sb.pinDir, 'missing', 'parent');
      await checkAll(t, sb, [
        {
          name: 'load: pin folder whose parent is missing',
          args: ['load', '--cgroup', sb.cgroup, '--pin-dir', deep],
          codes: [EXIT.bpffsUnavailable, U],
          message: /missing|exist|parent|pin/,
          extraPinDirs: [deep],
        },
        {
          name: 'unload: an ordinary directory with files named like pins',
          args: ['unload', '--pin-dir', dir],
          codes: [EXIT.bpffsUnavailable],
          message: /BPF filesystem|bpffs/,
          files,
        },
        {
          name: 'unload --force: an ordinary directory with files named like pins',
          args: ['unload', '--force', '--pin-dir', dir],
          codes: [EXIT.bpffsUnavailable],
          message: /BPF filesystem|bpffs/,
          files,
        },
        {
          name: 'status: an ordinary directory',
          args: ['status', '--pin-dir', dir],
          codes: [EXIT.bpffsUnavailable],
          message: /BPF filesystem|bpffs/,
          files,
        },
        {
          name: 'policy: an ordinary directory',
          args: ['policy', '--pin-dir', dir, '--ports', '80'],
          codes: [EXIT.bpffsUnavailable, EXIT.notLoaded],
          message: /BPF filesystem|bpffs|not loaded/,
          files,
        },
      ]);
      // An empty ordinary directory is not ours to delete either.
      const r = await cli(sb, ['unload', '--pin-dir', empty]);
      tally.checks++;
      t.diagnostic(
        `unload --pin-dir EMPTY-ORDINARY-DIR: exit ${r.code}; ${JSON.stringify((r.stdout + r.stderr).trim())}; the directory ${existsSync(empty) ? 'is still there' : 'was DELETED'}`,
      );
      if (!existsSync(empty)) tally.failures++;
      assert.ok(existsSync(empty), 'unload deleted an empty directory that is not a pin folder');
    });
  });
});

test('bpffs missing (private mount namespace without /sys/fs/bpf): a clean exit 10, never a load that is not there', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-nobpffs', async (sb) => {
      const umount = [
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'umount -l /sys/fs/bpf && exec "$@"',
        'sh',
      ];
      // Without CAP_SYS_ADMIN the bpffs cannot be mounted again: exit 10.
      const noMount = [
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'umount -l /sys/fs/bpf && exec setpriv --bounding-set -sys_admin --inh-caps -sys_admin "$@"',
        'sh',
      ];
      await checkAll(t, sb, [
        {
          name: 'load, bpffs missing and not mountable',
          args: ['load', '--cgroup', sb.cgroup, '--pin-dir', sb.pinDir],
          codes: [EXIT.bpffsUnavailable],
          message: /no BPF filesystem/,
          wrap: noMount,
        },
      ]);
      // Mountable: load mounts bpffs inside the private namespace, which dies with the command.
      const r = await cli(sb, ['load', '--cgroup', sb.cgroup, '--pin-dir', sb.pinDir], umount);
      const attached = bpftoolCgroupAttachments(sb.cgroup.split('/').pop() as string);
      tally.checks++;
      const vanished = r.code === 0 && attached.length === 0;
      if (vanished) tally.failures++;
      t.diagnostic(
        `load with /sys/fs/bpf unmounted in a private mount namespace: exit ${r.code}, ${JSON.stringify((r.stdout + r.stderr).trim().slice(0, 220))}; ` +
          `afterwards: ${attached.length} attachment(s), pins ${pinState(sb.pinDir)}${vanished ? ' -- it said "loaded", but the load vanished with the namespace' : ''}`,
      );
      assert.ok(
        !vanished,
        'load reported success, but nothing is attached once the command exited (its bpffs mount died with its mount namespace)',
      );
      if (r.code !== 0) {
        assert.equal(r.code, EXIT.bpffsUnavailable);
        assert.equal(r.stderr.trim().split('\n').length, 2);
      }
    });
  });
});

test('corrupt objects: a truncated object, a non-ELF file, a directory, a non-BPF ELF, a BPF object without our maps', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-badobj', async (sb) => {
      const dir = mkdtempSync(join(tmpdir(), 'sockbypass-obj-'));
      sb.onCleanup(() => rmSync(dir, { recursive: true, force: true }));
      const real = join(BUILD_DIR, 'sockbypass.bpf.o');
      const truncated = join(dir, 'truncated.bpf.o');
      writeFileSync(truncated, readFileSync(real).subarray(0, 5000));
      const text = join(dir, 'text.bpf.o');
      writeFileSync(text, 'this is not an ELF file\n');
      const emptyFile = join(dir, 'empty.bpf.o');
      writeFileSync(emptyFile, '');
      const elf = join(dir, 'sbload');
      copyFileSync(join(BUILD_DIR, 'sbload'), elf);
      const w = ['--cgroup', sb.cgroup, '--pin-dir', sb.pinDir];
      // docs/cli.md: 7 = the object file is missing (fix: make); 1 = a libbpf error with its message.
      // A corrupt object is either; what matters is one message, one fix line, nothing loaded.
      const bad = [EXIT.objectMissing, EXIT.failure];
      await checkAll(t, sb, [
        {
          name: 'truncated copy of build/sockbypass.bpf.o',
          args: ['load', ...w, '--object', truncated],
          codes: bad,
          message: /truncated\.bpf\.o/,
        },
        { name: 'a text file', args: ['load', ...w, '--object', text], codes: bad, message: /text\.bpf\.o/ },
        { name: 'an empty file', args: ['load', ...w, '--object', emptyFile], codes: bad, message: /empty\.bpf\.o/ },
        { name: 'a directory', args: ['load', ...w, '--object', dir], codes: bad, message: /sockbypass-obj-/ },
        { name: 'an ELF executable, not BPF', args: ['load', ...w, '--object', elf], codes: bad, message: /sbload/ },
        {
          name: 'a BPF object without our maps (build/layout.bpf.o)',
          args: ['load', ...w, '--object', join(BUILD_DIR, 'layout.bpf.o')],
          codes: bad,
          message: /layout\.bpf\.o/,
        },
      ]);
      // --replace with a corrupt object must leave the running load untouched.
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      await checkAll(t, sb, [
        {
          name: 'load --replace with a truncated object',
          args: ['load', ...w, '--replace', '--object', truncated],
          codes: bad,
          message: /truncated\.bpf\.o/,
        },
      ]);
    });
  });
});

test('another instance: a second load into the same cgroup or a child of it is refused; --replace and policy against another version exit 8', async (t) => {
  if (!requirePrivileged(t)) return;
  await tally.track(t, async () => {
    await withSandbox('trust-second', async (sb) => {
      load({ cgroup: sb.cgroup, pinDir: sb.pinDir });
      const otherPins = `${sb.pinDir}-second`;
      const child = createCgroup('child', sb.cgroup);
      const removeSecond = () => {
        if (pinState(otherPins) !== 'none') unload({ pinDir: otherPins, force: true });
        if (existsSync(otherPins)) rmSync(otherPins, { recursive: true, force: true });
      };
      sb.onCleanup(() => {
        removeSecond();
        removeCgroup(child);
      });
      await checkAll(t, sb, [
        {
          name: 'a second load into the same cgroup, other pin folder',
          args: ['load', '--cgroup', sb.cgroup, '--pin-dir', otherPins],
          codes: [EXIT.otherVersionLoaded],
          message: /already|another|loaded/,
          extraPinDirs: [otherPins],
          after: removeSecond,
        },
        {
          name: 'a second load into a child cgroup',
          args: ['load', '--cgroup', child, '--pin-dir', otherPins],
          codes: [EXIT.otherVersionLoaded],
          message: /already|another|loaded/,
          extraPinDirs: [otherPins],
          after: removeSecond,
        },
      ]);
      // Another layout version at the pin folder.
      withPinnedState(sb.pinDir, (s) => {
        const v = settingsCodec.decode(s.maps.settings.lookup(Buffer.alloc(4)) as Buffer);
        s.maps.settings.update(Buffer.alloc(4), settingsCodec.encode({ ...v, layoutVersion: 999 }));
      });
      await checkAll(t, sb, [
        {
          name: 'load --replace over another layout version',
          args: ['load', '--replace', '--cgroup', sb.cgroup, '--pin-dir', sb.pinDir],
          codes: [EXIT.otherVersionLoaded],
          message: /different sockbypass version/,
        },
        {
          name: 'policy against another layout version',
          args: ['policy', '--pin-dir', sb.pinDir, '--ports', '80'],
          codes: [EXIT.otherVersionLoaded],
          message: /different sockbypass version/,
        },
        {
          name: 'run against another layout version',
          args: ['run', '--cgroup', sb.cgroup, '--pin-dir', sb.pinDir, '--metrics-addr', '127.0.0.1:0'],
          codes: [EXIT.otherVersionLoaded],
          message: /different sockbypass version/,
        },
      ]);
    });
  });
});

test('trust-bad-input summary', (t) => {
  t.diagnostic(`${tally.line()}; cases checked ${tally.checks}`);
});
