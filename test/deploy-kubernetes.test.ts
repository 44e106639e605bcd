/**
 * Kubernetes: the Helm chart (rendered offline by test/support/helm-lite.ts; helm is not in
 * Debian 12) and deploy/kubernetes/daemonset.yaml validate against Kubernetes' schemas
 * (kubernetes-models), carry what the deployment promises (capabilities, probes, keep, every
 * node), and the agent, started with the DaemonSet's own arguments and capabilities in a
 * container-like environment (a cgroup namespace whose own cgroup2 mount comes first, the host's
 * root bind-mounted like the hostPath), attaches to the host cgroup it was given, keeps the load
 * over SIGTERM, is adopted by the next agent, and the uninstall cleanup pod's command unloads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { requirePrivileged } from './support/privileged.js';
import { freePort, withSandbox } from './support/sandbox.js';
import { terminate, waitHealthy } from './support/agent.js';
import { renderChart } from './support/helm-lite.js';
import { cgroup2Mount, cgroupId, createCgroup, removeCgroup } from '../src/os/cgroup.js';
import { pinState } from '../src/core/pins.js';
import { PinnedState } from '../src/core/state.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const CHART = join(ROOT, 'deploy', 'helm', 'sockbypass');
const CLI = join(ROOT, 'bin', 'sockbypass.js');

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests, validated by kubernetes-models, read field by field
  spec: any;
}

const NODES = { items: [{ metadata: { name: 'node-a' } }, { metadata: { name: 'node-b' } }] };
const lookupNodes = (apiVersion: string, kind: string) => (apiVersion === 'v1' && kind === 'Node' ? NODES : {});

function validate(obj: K8sObject): void {
  if (obj.kind === 'DaemonSet') new DaemonSet(obj as never).validate();
  else if (obj.kind === 'Pod') new Pod(obj as never).validate();
  else if (obj.kind === 'Service') new Service(obj as never).validate();
  else if (obj.kind === 'ServiceMonitor') {
    // A CRD kubernetes-models does not carry: check what the Prometheus Operator reads.
    assert.equal(obj.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(typeof obj.spec.selector.matchLabels, 'object');
    assert.ok(Array.isArray(obj.spec.endpoints) && obj.spec.endpoints.length > 0);
  } else assert.fail(`unexpected kind ${obj.kind}`);
}

function byKind(docs: unknown[], kind: string): K8sObject[] {
  return (docs as K8sObject[]).filter((d) => d.kind === kind);
}

test('the chart renders valid objects with default and with every optional value', () => {
  const defaults = renderChart(CHART) as K8sObject[];
  assert.deepEqual(
    defaults.map((d) => d.kind),
    ['DaemonSet'],
    'defaults: only the DaemonSet (no ServiceMonitor; no cleanup pods offline)',
  );
  const full = renderChart(CHART, {
    values: {
      cgroup: 'kubepods.slice',
      hostCgroupRoot: '/sys/fs/cgroup/unified',
      policy: { ports: '6379,5432', ranges: '10.0.0.0/8', extraArgs: ['--queue-limit', '4194304'] },
      metrics: { port: 9555, serviceMonitor: { enabled: true, labels: { release: 'prometheus' } } },
    },
    release: { name: 'sb', namespace: 'sockbypass' },
    lookup: lookupNodes,
  }) as K8sObject[];
  assert.deepEqual(full.map((d) => d.kind).sort(), ['DaemonSet', 'Pod', 'Pod', 'Service', 'ServiceMonitor']);
  for (const obj of [...defaults, ...full]) validate(obj);

  const [ds] = byKind(full, 'DaemonSet');
  const args = ds?.spec.template.spec.containers[0].args as string[];
  assert.deepEqual(args, [
    'run',
    '--keep',
    '--cgroup',
    '/host/cgroup/kubepods.slice',
    '--pin-dir',
    '/sys/fs/bpf/sockbypass',
    '--metrics-addr',
    '0.0.0.0:9555',
    '--ports',
    '6379,5432',
    '--ranges',
    '10.0.0.0/8',
    '--queue-limit',
    '4194304',
  ]);
  assert.equal(
    ds?.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'cgroup2').hostPath.path,
    '/sys/fs/cgroup/unified',
  );
  const [svc] = byKind(full, 'Service');
  const [sm] = byKind(full, 'ServiceMonitor');
  assert.deepEqual(sm?.spec.selector.matchLabels, svc?.metadata.labels, 'the ServiceMonitor selects the Service');
  assert.equal(sm?.metadata.labels?.release, 'prometheus');
  assert.deepEqual(svc?.spec.selector, ds?.spec.template.metadata.labels, 'the Service selects the agents');
  assert.deepEqual(
    byKind(full, 'Pod').map((p) => p.spec.nodeName),
    ['node-a', 'node-b'],
    'one cleanup pod per node',
  );
  for (const p of byKind(full, 'Pod')) assert.equal(p.metadata.annotations?.['helm.sh/hook'], 'post-delete');
});

test('schema validation catches a broken manifest (the check above can fail)', () => {
  const [ds] = renderChart(CHART) as K8sObject[];
  assert.ok(ds);
  const broken = structuredClone(ds);
  broken.spec.template.spec.containers[0].ports[0].containerPort = 'metrics';
  assert.throws(() => validate(broken), /containerPort must be integer/);
});

test('deploy/kubernetes/daemonset.yaml is the chart rendered with its defaults', () => {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy', 'kubernetes', 'daemonset.yaml'), 'utf8')).map(
    (d) => d.toJS() as K8sObject,
  );
  assert.deepEqual(docs, renderChart(CHART));
});

test('the DaemonSet: root with BPF, PERFMON, NET_ADMIN only, probes on /healthz, keep, every node', () => {
  const [ds] = renderChart(CHART) as K8sObject[];
  const pod = ds?.spec.template.spec;
  const agent = pod.containers[0];
  assert.deepEqual(agent.securityContext.capabilities, { drop: ['ALL'], add: ['BPF', 'PERFMON', 'NET_ADMIN'] });
  assert.equal(agent.securityContext.privileged, false);
  assert.equal(agent.securityContext.runAsUser, 0);
  for (const probe of [agent.livenessProbe, agent.readinessProbe])
    assert.deepEqual(probe.httpGet, { path: '/healthz', port: 'metrics' });
  assert.equal(agent.ports[0].containerPort, 9464);
  assert.ok(agent.args.includes('--keep'));
  assert.equal(pod.priorityClassName, 'system-node-critical');
  assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
  assert.deepEqual(
    pod.volumes.map((v: { hostPath: { path: string } }) => v.hostPath.path),
    ['/sys/fs/bpf', '/sys/fs/cgroup'],
  );
  const annotations = ds?.spec.template.metadata.annotations;
  assert.deepEqual(annotations, {
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': '9464',
    'prometheus.io/path': '/metrics',
  });
  const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  for (const key of ['image', 'cgroup', 'policy', 'metrics', 'tolerations', 'resources'])
    assert.ok(key in values, `values.yaml has ${key}`);
});

test('each capability the DaemonSet adds is needed: without any one of them load is refused', async (t) => {
  if (!requirePrivileged(t)) return;
  const [ds] = renderChart(CHART) as K8sObject[];
  const added = ds?.spec.template.spec.containers[0].securityContext.capabilities.add as string[];
  await withSandbox('k8s-caps', async (sb) => {
    for (const dropped of added) {
      const caps = added
        .filter((c) => c !== dropped)
        .map((c) => `+${c.toLowerCase()}`)
        .join(',');
      const r = spawnSync(
        'setpriv',
        [
          '--inh-caps=-all',
          '--ambient-caps=-all',
          `--bounding-set=-all,${caps}`,
          '--',
          process.execPath,
          CLI,
          'load',
          '--cgroup',
          sb.cgroup,
          '--pin-dir',
          sb.pinDir,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 3, `without ${dropped}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /permission denied \(needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN\)/);
      assert.equal(pinState(sb.pinDir), 'none');
    }
  });
});

/**
 * The shell run inside `unshare --cgroup --mount`: the container's own cgroup2 first (its root is
 * the namespace's), then the host root bind-mounted like the DaemonSet's hostPath, the host mount
 * hidden; then exec the agent with the capability set of the manifest (setpriv).
 */
const CONTAINER_SCRIPT = `set -e
mount -t cgroup2 none "$NS_CGROUP"
mount --bind "$HOST_CGROUP_ROOT" "$HOST_CGROUP"
umount -l "$HOST_CGROUP_ROOT"
exec setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,$CAPS -- "$@"`;

test('the agent, run like the DaemonSet in a cgroup namespace: host cgroup found, SIGTERM keeps, restart adopts, cleanup unloads', async (t) => {
  if (!requirePrivileged(t)) return;
  const docs = renderChart(CHART, { lookup: lookupNodes });
  const [ds] = byKind(docs, 'DaemonSet');
  const [cleanupPod] = byKind(docs, 'Pod');
  const agent = ds?.spec.template.spec.containers[0];
  const caps = (agent.securityContext.capabilities.add as string[]).map((c) => `+${c.toLowerCase()}`).join(',');
  const dir = mkdtempSync(join(tmpdir(), 'sockbypass-container-'));
  try {
    await withSandbox('k8s', async (sb) => {
      const hostRoot = cgroup2Mount();
      // The "pod" cgroup the agent runs in: its cgroup namespace's root, not the target.
      const podCgroup = createCgroup('pod', sb.cgroup);
      sb.onCleanup(() => removeCgroup(podCgroup));
      mkdirSync(join(dir, 'ns-cgroup'));
      mkdirSync(join(dir, 'host-cgroup'));
      const port = await freePort();
      // The manifest's args with the test's cgroup, pin dir and a loopback port.
      const args = (agent.args as string[]).map((a, i, all) => {
        if (all[i - 1] === '--cgroup')
          return a.replace(/^\/host\/cgroup\/.*/, join(dir, 'host-cgroup', relative(hostRoot, sb.cgroup)));
        if (all[i - 1] === '--pin-dir') return sb.pinDir;
        if (all[i - 1] === '--metrics-addr') return `127.0.0.1:${port}`;
        return a;
      });
      const env = {
        ...process.env,
        NS_CGROUP: join(dir, 'ns-cgroup'),
        HOST_CGROUP: join(dir, 'host-cgroup'),
        HOST_CGROUP_ROOT: hostRoot,
        CAPS: caps,
      };
      const startAgent = () =>
        sb.start(
          'unshare',
          [
            '--cgroup',
            '--mount',
            '--propagation',
            'private',
            'sh',
            '-c',
            CONTAINER_SCRIPT,
            'container',
            process.execPath,
            CLI,
            ...args,
          ],
          { cgroup: podCgroup, env },
        );
      const health = `http://127.0.0.1:${port}/healthz`;

      const first = startAgent();
      await waitHealthy(first, health);
      assert.match(first.stderr(), /loaded: cgroup /);
      const state = PinnedState.open(sb.pinDir);
      let programs: number;
      try {
        assert.equal(
          state.links.link_sockops.info().cgroupId,
          cgroupId(sb.cgroup),
          'attached to the host cgroup named by --cgroup, not the namespace root',
        );
        programs = state.links.link_sockops.info().programId;
      } finally {
        state.close();
      }
      assert.equal(await terminate(first), 0);
      assert.equal(pinState(sb.pinDir), 'complete', 'SIGTERM (pod stop, rolling upgrade) leaves the load');

      const second = startAgent();
      await waitHealthy(second, health);
      assert.match(second.stderr(), /adopted the load already pinned/);
      const status = JSON.parse(
        execFileSync(process.execPath, [CLI, 'status', '--pin-dir', sb.pinDir, '--json'], { encoding: 'utf8' }),
      ) as { programs: { sockOps: { id: number } } };
      assert.equal(status.programs.sockOps.id, programs, 'the same programs after the restart');
      assert.equal(await terminate(second), 0);
      assert.equal(pinState(sb.pinDir), 'complete');

      // helm uninstall: the post-delete cleanup pod's command, with its capabilities.
      const cleanup = cleanupPod?.spec.containers[0];
      const cleanupArgs = (cleanup.args as string[]).map((a, i, all) => (all[i - 1] === '--pin-dir' ? sb.pinDir : a));
      const cleanupCaps = (cleanup.securityContext.capabilities.add as string[])
        .map((c) => `+${c.toLowerCase()}`)
        .join(',');
      const r = spawnSync(
        'setpriv',
        [
          '--inh-caps=-all',
          '--ambient-caps=-all',
          `--bounding-set=-all,${cleanupCaps}`,
          '--',
          process.execPath,
          CLI,
          ...cleanupArgs,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      assert.equal(pinState(sb.pinDir), 'none', 'the cleanup pod unloads');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
