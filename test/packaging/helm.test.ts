// The Helm chart, rendered by the real helm (built by scripts/helm-check.sh) and checked for what
// the issue asks of it: a highly available control plane (replicas ≥ 2, /readyz and /healthz probes,
// PodDisruptionBudget, rolling updates that never drop below the desired count, resources, a
// restrictive securityContext), secrets from an existing Secret or generated, an Envoy edge fleet
// (Deployment, Service, HPA) whose bootstrap is renderBootstrap's plus the stats listener and is
// accepted by Envoy, optional monitors and dashboards; and kubeconform fails on a broken manifest.
// Under CI=true a missing helm fails (scripts/helm-check.sh runs before the tests).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import YAML from 'yaml';
import { withStatsListener } from '../../deploy/envoy/bootstrap.ts';
import { loadSettings } from '../../src/settings.ts';
import { loadKeyRing } from '../../src/store/secrets.ts';
import { renderBootstrap, renderChannelSds } from '../../src/xds/bootstrap.ts';
import { requireComponent } from '../support/components.ts';
import { repoPath } from './support.ts';

const CHART = repoPath('helm/portico');
const tools = Object.fromEntries(
  spawnSync('bash', [repoPath('scripts/helm-check.sh'), '--print-env'], { encoding: 'utf8' })
    .stdout.trim()
    .split('\n')
    .map((l) => l.split('=') as [string, string]),
) as { HELM_BIN: string; KUBECONFORM_BIN: string; SCHEMA_DIR: string; KUBE_VERSION: string };
const haveTools = spawnSync(tools.HELM_BIN, ['version'], { encoding: 'utf8' }).status === 0;

function needHelm(t: TestContext): boolean {
  if (haveTools) return true;
  const why = `helm is not built yet (run scripts/helm-check.sh): ${tools.HELM_BIN}`;
  if (process.env.CI === 'true') throw new Error(`${why}; CI runs it before the tests`);
  t.skip(why);
  return false;
}

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; data?: Record<string, string> };

function render(valuesFile: string | undefined, set: string[] = []): { manifests: Manifest[]; yaml: string } {
  const args = [
    'template',
    'portico',
    CHART,
    '--namespace',
    'gw',
    '--kube-version',
    tools.KUBE_VERSION,
    ...(valuesFile ? ['-f', path.join(CHART, 'ci', valuesFile)] : []),
    ...set.flatMap((s) => ['--set', s]),
  ];
  const r = spawnSync(tools.HELM_BIN, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return {
    yaml: r.stdout,
    manifests: YAML.parseAllDocuments(r.stdout)
      .map((d) => d.toJS() as Manifest)
      .filter(Boolean),
  };
}
const find = (ms: Manifest[], kind: string, name: string) => {
  const m = ms.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(m, `${kind} ${name} (have: ${ms.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')})`);
  return m!;
};
const selects = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The container env with secret references resolved from `secrets` (what the pod would see). */
function podEnv(container: any, secrets: Record<string, Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.secretKeyRef) {
      const { name, key, optional } = e.valueFrom.secretKeyRef;
      const v = secrets[name]?.[key];
      if (v !== undefined) env[e.name] = v;
      else assert.ok(optional, `${e.name}: secret ${name}/${key} exists or the reference is optional`);
    }
  }
  return env;
}
const decoded = (s: Manifest) => Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));

describe('Helm chart (helm/portico)', () => {
  it('control plane: ≥2 replicas, probes on /readyz and /healthz, zero-unavailable rolling update, PDB, resources, locked down', (t) => {
    if (!needHelm(t)) return;
    const { manifests } = render('default-values.yaml');
    const dep = find(manifests, 'Deployment', 'portico-control-plane');
    assert.ok(dep.spec.replicas >= 2);
    assert.equal(dep.spec.strategy.rollingUpdate.maxUnavailable, 0);
    const pod = dep.spec.template;
    assert.ok(selects(dep.spec.selector.matchLabels, pod.metadata.labels));
    const c = pod.spec.containers[0];
    const port = (name: string) => c.ports.find((p: { name: string }) => p.name === name).containerPort as number;
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'admin' });
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'admin' });
    assert.ok(c.startupProbe, 'a startup budget for migrations');
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
    // Security: non-root (matching the image's USER), no privilege escalation, read-only root, no capabilities.
    const image = /^USER\s+(\d+)/m.exec(readFileSync(repoPath('Dockerfile'), 'utf8'))![1];
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
    assert.equal(String(pod.spec.securityContext.runAsUser), image);
    assert.equal(pod.spec.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    assert.ok(pod.spec.volumes.some((v: { name: string; emptyDir?: unknown }) => v.emptyDir) && c.volumeMounts.some((m: { mountPath: string }) => m.mountPath === '/tmp'), 'a writable /tmp');
    assert.equal(pod.spec.automountServiceAccountToken, false);
    // Shutdown: SIGTERM, the replica keeps serving while DNS drops it (the delay), then drains within the
    // grace period (+5 s), all before the kubelet kills.
    const settings = loadSettings(podEnv(c, { 'portico-secrets': decoded(find(manifests, 'Secret', 'portico-secrets')) }));
    assert.ok(settings.shutdownDelayMs >= 10_000, "the delay covers the DNS TTL and Envoy's DNS refresh (5 s each)");
    assert.ok(pod.spec.terminationGracePeriodSeconds >= (settings.shutdownDelayMs + settings.shutdownGraceMs) / 1000 + 5, 'grace covers delay + drain + the bounded exit');
    // Replicas answer callouts behind one Service: each translates before it is ready (no first translation while serving).
    assert.equal(settings.translateOn, 'start');
    // The settings the replicas run with: listeners on the container ports, identical callout address.
    assert.equal(settings.adminPort, port('admin'));
    assert.equal(settings.grpcPort, port('xds'));
    assert.equal(settings.calloutListenPort, port('callouts'));
    assert.equal(settings.adminHost, '0.0.0.0');
    assert.equal(settings.calloutAddress, `portico-control-plane-pods.gw.svc.cluster.local:${port('callouts')}`);
    assert.equal(settings.accessLog, true);
    assert.equal(settings.accessLogAddress, `portico-control-plane-pods.gw.svc.cluster.local:${port('xds')}`, 'the same on every replica');
    assert.match(settings.databaseUrl!, /^postgresql:\/\//);
    assert.equal(loadKeyRing(settings).current.key.length, 32, 'a generated master key is a valid 32-byte key');
    assert.match(settings.adminToken!, /^pta_/);

    const pdb = find(manifests, 'PodDisruptionBudget', 'portico-control-plane');
    assert.ok(selects(pdb.spec.selector.matchLabels, pod.metadata.labels));
    assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < dep.spec.replicas, 'a drain can proceed one pod at a time');

    // Services: one virtual IP (admin, ADS, callouts) and a headless one resolving to every ready replica.
    const svc = find(manifests, 'Service', 'portico-control-plane');
    assert.deepEqual(svc.spec.ports.map((p: { targetPort: string }) => p.targetPort).sort(), ['admin', 'callouts', 'xds']);
    const headless = find(manifests, 'Service', 'portico-control-plane-pods');
    assert.equal(headless.spec.clusterIP, 'None');
    assert.equal(headless.spec.publishNotReadyAddresses, false, 'a draining replica leaves DNS');
    for (const s of [svc, headless]) assert.ok(selects(s.spec.selector, pod.metadata.labels));
    assert.deepEqual(headless.spec.ports.map((p: { targetPort: string }) => p.targetPort).sort(), ['callouts', 'xds']);
  });

  it('secrets: generated (kept across upgrades) or taken from an existing Secret; database URL required', (t) => {
    if (!needHelm(t)) return;
    const { manifests } = render('default-values.yaml');
    const secret = find(manifests, 'Secret', 'portico-secrets');
    assert.equal(secret.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
    assert.deepEqual(Object.keys(secret.data!).sort(), ['admin-token', 'database-url', 'master-key']);
    const dep = find(manifests, 'Deployment', 'portico-control-plane');
    assert.ok(dep.spec.template.metadata.annotations['checksum/secret'], 'pods roll when the Secret changes');

    const existing = render('existing-secret-values.yaml').manifests;
    assert.equal(existing.filter((m) => m.kind === 'Secret').length, 0, 'no Secret created');
    const refs = find(existing, 'Deployment', 'portico-control-plane')
      .spec.template.spec.containers[0].env.filter((e: any) => e.valueFrom?.secretKeyRef)
      .map((e: any) => e.valueFrom.secretKeyRef);
    assert.ok(refs.length >= 4);
    for (const r of refs) assert.equal(r.name, 'portico-credentials');
    const env = podEnv(find(existing, 'Deployment', 'portico-control-plane').spec.template.spec.containers[0], {
      'portico-credentials': { 'master-key': Buffer.alloc(32, 7).toString('base64'), 'admin-token': 't', 'database-url': 'postgresql://db/portico' },
    });
    assert.equal(loadSettings(env).migrate, false, 'PORTICO_MIGRATE=false when migrations run separately');

    const r = spawnSync(tools.HELM_BIN, ['template', 'portico', CHART, '--kube-version', tools.KUBE_VERSION], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /secrets\.databaseUrl .* is required unless secrets\.existingSecret is set/);

    const full = render('full-values.yaml').manifests;
    const data = decoded(find(full, 'Secret', 'portico-secrets'));
    assert.equal(data['redis-url'], 'redis://redis.db.svc:6379');
    const settings = loadSettings(podEnv(find(full, 'Deployment', 'portico-control-plane').spec.template.spec.containers[0], { 'portico-secrets': data }));
    assert.equal(settings.redisUrl, 'redis://redis.db.svc:6379');
    assert.equal(settings.previousMasterKeys.length, 1);
    const sealedBefore = loadKeyRing({ ...settings, masterKey: settings.previousMasterKeys[0], previousMasterKeys: [] }).seal('s3cret', 'test');
    assert.equal(loadKeyRing(settings).open(sealedBefore, 'test'), 's3cret', 'secrets sealed under the previous key still open during a rotation');
  });

  it("Envoy: Deployment + Service + HPA + PDB; the bootstrap is renderBootstrap's plus the stats listener", (t) => {
    if (!needHelm(t)) return;
    for (const [file, group, api, addresses, trustDomain] of [
      ['default-values.yaml', 'edge', 'GRPC', ['portico-control-plane-pods.gw.svc.cluster.local:18000'], 'portico'],
      ['full-values.yaml', 'public', 'DELTA_GRPC', ['portico-0.portico.example.svc.cluster.local:18000', '10.0.0.12:18000'], 'acme.example'],
    ] as const) {
      const { manifests } = render(file);
      const values = YAML.parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')).envoy;
      const cm = find(manifests, 'ConfigMap', 'portico-envoy-bootstrap');
      const bootstrap = YAML.parse(cm.data!['envoy.yaml']!);
      const expected = withStatsListener(
        renderBootstrap({
          role: 'edge',
          xdsAddresses: [...addresses],
          adminPort: values.adminPort,
          apiType: api,
          maxHeapBytes: values.maxHeapBytes,
          maxDownstreamConnections: values.maxDownstreamConnections,
          channelSdsDir: '/etc/envoy',
        }),
        { adminPort: values.adminPort, statsPort: values.statsPort },
      );
      assert.deepEqual(bootstrap, JSON.parse(JSON.stringify(expected)), `${file}: helm/portico/templates/envoy-configmap.yaml mirrors src/xds/bootstrap.ts + deploy/envoy/bootstrap.ts`);
      // The channel SDS files beside it name the node certificate Secret's files and the trust domain.
      const sds = renderChannelSds({ certFile: '/etc/portico/tls/tls.crt', keyFile: '/etc/portico/tls/tls.key', caFile: '/etc/portico/tls/ca.crt', trustDomain });
      for (const [name, doc] of Object.entries(sds)) assert.deepEqual(YAML.parse(cm.data![name]!), doc, `${file}: ${name}`);

      const dep = find(manifests, 'Deployment', 'portico-envoy');
      const pod = dep.spec.template;
      const c = pod.spec.containers[0];
      assert.match(c.image, /^envoyproxy\/envoy:v1\.40\./);
      assert.equal(c.args[c.args.indexOf('--service-cluster') + 1], group);
      assert.equal(c.args[c.args.indexOf('--service-node') + 1], '$(POD_NAME)');
      assert.equal(c.env.find((e: any) => e.name === 'POD_NAME').valueFrom.fieldRef.fieldPath, 'metadata.name');
      assert.ok(pod.spec.volumes.some((v: any) => v.configMap?.name === cm.metadata.name));
      assert.equal(c.args[c.args.indexOf('--config-path') + 1], `${c.volumeMounts.find((m: any) => m.name === 'bootstrap').mountPath}/envoy.yaml`);
      assert.deepEqual(c.readinessProbe.httpGet, { path: '/ready', port: 'stats' });
      assert.equal(c.ports.find((p: any) => p.name === 'stats').containerPort, values.statsPort);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(pod.spec.securityContext.runAsNonRoot, true);
      assert.equal(dep.spec.strategy.rollingUpdate.maxUnavailable, 0);
      assert.ok(dep.spec.template.metadata.annotations['checksum/bootstrap'], 'Envoys roll when the bootstrap changes');

      const svc = find(manifests, 'Service', 'portico-envoy');
      assert.ok(selects(svc.spec.selector, pod.metadata.labels));
      const containerPorts = c.ports.map((p: any) => p.containerPort);
      for (const p of svc.spec.ports) assert.ok(containerPorts.includes(p.targetPort), `service port ${p.port} → a container port`);
      assert.ok(!svc.spec.ports.some((p: any) => p.targetPort === values.statsPort || p.targetPort === values.adminPort), 'stats and admin are not on the edge Service');
      const pdb = find(manifests, 'PodDisruptionBudget', 'portico-envoy');
      assert.ok(selects(pdb.spec.selector.matchLabels, pod.metadata.labels));
    }
    const def = render('default-values.yaml').manifests;
    const hpa = find(def, 'HorizontalPodAutoscaler', 'portico-envoy');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'portico-envoy' });
    assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
    assert.equal(find(def, 'Deployment', 'portico-envoy').spec.replicas, undefined, 'the HPA owns the replica count');
    const fixed = render('existing-secret-values.yaml').manifests;
    assert.equal(fixed.filter((m) => m.kind === 'HorizontalPodAutoscaler').length, 0);
    assert.equal(find(fixed, 'Deployment', 'portico-envoy').spec.replicas, 3);
    assert.equal(render('default-values.yaml', ['envoy.enabled=false']).manifests.filter((m) => m.metadata.name.startsWith('portico-envoy')).length, 0);
  });

  it('flows: the runtime is a sidecar of each Envoy pod on loopback, where the control plane tells Envoy to find it', (t) => {
    if (!needHelm(t)) return;
    const isLoopback = (host: string) => host === '127.0.0.1' || host === '::1' || host === 'localhost';
    for (const file of ['default-values.yaml', 'full-values.yaml', 'existing-secret-values.yaml']) {
      const { manifests } = render(file);
      const secret = manifests.find((m) => m.kind === 'Secret' && m.metadata.name === 'portico-secrets');
      // An existing Secret: stand in for it with the keys the chart references.
      const keys = YAML.parse(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')).secrets.keys as Record<string, string>;
      const secrets = secret
        ? { 'portico-secrets': decoded(secret) }
        : { 'portico-credentials': { [keys.databaseUrl!]: 'postgresql://u@db/p', [keys.masterKey!]: Buffer.alloc(32, 7).toString('base64'), [keys.adminToken!]: 'pta_x' } };
      const secretName = Object.keys(secrets)[0]!;
      const envoyPod = find(manifests, 'Deployment', 'portico-envoy').spec.template;
      const sidecar = envoyPod.spec.containers.find((c: any) => c.name === 'flows');
      assert.ok(sidecar, `${file}: a flows container beside Envoy`);
      const cpPod = find(manifests, 'Deployment', 'portico-control-plane').spec.template;
      assert.equal(sidecar.image, cpPod.spec.containers[0].image, 'the control-plane image');
      const env = podEnv(sidecar, { [secretName]: secrets[secretName as keyof typeof secrets]! });
      const flows = loadSettings(env);
      assert.equal(flows.role, 'flows');
      assert.equal(flows.migrate, false, 'the sidecars never migrate');
      assert.ok(flows.databaseUrl, 'it follows the model from the database');
      assert.ok(flows.adminToken, 'with the bootstrap token set, a first start mints no token into the log');
      // Nothing of it is reachable from the network: every address loopback, no container port.
      assert.ok(isLoopback(flows.flowsListenHost), `runtime binds ${flows.flowsListenHost}`);
      assert.ok(isLoopback(flows.adminHost), `admin binds ${flows.adminHost}`);
      assert.equal(sidecar.ports, undefined);
      assert.equal(sidecar.securityContext.readOnlyRootFilesystem, true);
      assert.ok(
        sidecar.volumeMounts.some((m: any) => m.mountPath === '/tmp'),
        'a writable /tmp',
      );
      assert.ok(sidecar.resources.requests.cpu && sidecar.resources.limits.memory);
      // The control plane publishes the sidecar's address as the runtime's cluster and the step
      // listener on the pod's loopback, where the sidecar sends its calls back (to the peer's step port).
      const cp = loadSettings(podEnv(cpPod.spec.containers[0], { [secretName]: secrets[secretName as keyof typeof secrets]! }));
      assert.equal(cp.flowsAddress, `${flows.flowsListenHost}:${flows.flowsListenPort}`);
      assert.equal(cp.flowsStepAddress, flows.flowsStepAddress);
      assert.ok(isLoopback(cp.flowsStepAddress.slice(0, cp.flowsStepAddress.lastIndexOf(':'))), 'the step listener authenticates nobody: loopback only');
      assert.ok(envoyPod.spec.volumes.some((v: any) => v.name === sidecar.volumeMounts[0].name && v.emptyDir));
    }
    const off = render('default-values.yaml', ['envoy.flows.enabled=false']).manifests;
    assert.deepEqual(
      find(off, 'Deployment', 'portico-envoy').spec.template.spec.containers.map((c: any) => c.name),
      ['envoy'],
    );
  });

  it('Envoy accepts the rendered bootstraps (envoy --mode validate)', (t) => {
    if (!needHelm(t)) return;
    const envoy = requireComponent(t, 'envoy');
    if (!envoy) return;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-helm-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const file of ['default-values.yaml', 'full-values.yaml']) {
      const data = find(render(file).manifests, 'ConfigMap', 'portico-envoy-bootstrap').data!;
      // The ConfigMap is mounted at /etc/envoy: its SDS files go beside the bootstrap here.
      const sub = path.join(dir, file);
      mkdirSync(sub);
      for (const [name, text] of Object.entries(data)) writeFileSync(path.join(sub, name), text.replaceAll('/etc/envoy/', `${sub}/`));
      const p = path.join(sub, 'envoy.yaml');
      const r: ReturnType<typeof spawnSync> = spawnSync(envoy, ['--mode', 'validate', '-c', p, '--service-node', 'pod-1', '--service-cluster', 'edge', '--use-dynamic-base-id'], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${file}: ${r.stderr || r.stdout}`);
    }
  });

  it('monitors and dashboards behind flags', (t) => {
    if (!needHelm(t)) return;
    assert.equal(render('default-values.yaml').manifests.filter((m) => /Monitor$/.test(m.kind)).length, 0, 'off by default');
    const full = render('full-values.yaml').manifests;
    const sm = find(full, 'ServiceMonitor', 'portico-control-plane');
    const pm = find(full, 'PodMonitor', 'portico-envoy');
    for (const m of [sm, pm]) assert.equal(m.metadata.labels?.release, 'kube-prometheus-stack');
    const cpSvc = find(full, 'Service', 'portico-control-plane');
    assert.ok(selects(sm.spec.selector.matchLabels, cpSvc.metadata.labels!));
    assert.deepEqual(
      sm.spec.endpoints.map((e: any) => [e.port, e.path]),
      [['admin', '/metrics']],
    );
    assert.ok(cpSvc.spec.ports.some((p: any) => p.name === 'admin'));
    const envoyPod = find(full, 'Deployment', 'portico-envoy').spec.template;
    assert.ok(selects(pm.spec.selector.matchLabels, envoyPod.metadata.labels));
    assert.deepEqual(
      pm.spec.podMetricsEndpoints.map((e: any) => [e.port, e.path]),
      [['stats', '/stats/prometheus']],
    );

    const dashboards = readdirSync(repoPath('deploy/grafana/dashboards')).filter((f) => f.endsWith('.json'));
    const r = spawnSync(tools.HELM_BIN, ['template', 'portico', CHART, '-f', path.join(CHART, 'ci/default-values.yaml'), '--set', 'dashboards.enabled=true', '--kube-version', tools.KUBE_VERSION], {
      encoding: 'utf8',
    });
    if (dashboards.length === 0) {
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /no dashboards/);
      return;
    }
    assert.equal(r.status, 0, r.stderr);
    const cms = YAML.parseAllDocuments(r.stdout)
      .map((d) => d.toJS() as Manifest)
      .filter((m) => m?.kind === 'ConfigMap' && m.metadata.labels?.grafana_dashboard === '1');
    assert.equal(cms.length, dashboards.length, 'one ConfigMap per dashboard');
    for (const f of dashboards) {
      const cm = cms.find((m) => m.data?.[f] !== undefined);
      assert.ok(cm, f);
      assert.deepEqual(JSON.parse(cm!.data![f]!), JSON.parse(readFileSync(repoPath('deploy/grafana/dashboards', f), 'utf8')));
    }
  });

  it('kubeconform, as scripts/helm-check.sh runs it, refuses a broken manifest', (t) => {
    if (!needHelm(t)) return;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-kubeconform-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const args = (f: string) => [
      '-strict',
      '-summary',
      '-kubernetes-version',
      tools.KUBE_VERSION,
      '-schema-location',
      `${path.dirname(tools.SCHEMA_DIR)}/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
      '-skip',
      'ServiceMonitor,PodMonitor',
      f,
    ];
    const { yaml } = render('default-values.yaml');
    const good = path.join(dir, 'good.yaml');
    writeFileSync(good, yaml);
    const ok = spawnSync(tools.KUBECONFORM_BIN, args(good), { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /Invalid: 0, Errors: 0, Skipped: 0/, 'every kind of the default render has a schema');
    // A misspelt field and a wrong type, as a template slip would make them.
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, yaml.replace('readinessProbe:', 'readinesProbe:').replace(/replicas: 2/, 'replicas: "two"'));
    const r = spawnSync(tools.KUBECONFORM_BIN, args(bad), { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stdout, /readinesProbe/);
  });

  it('mTLS on the gRPC ports: certificates mounted on both sides (cert-manager or existing Secrets), a NetworkPolicy, plaintext only on request', (t) => {
    if (!needHelm(t)) return;
    const secretOf = (pod: any, mountPath: string) => {
      const c = pod.spec.containers[0];
      const m = c.volumeMounts.find((v: any) => v.mountPath === mountPath);
      assert.ok(m, `a volume at ${mountPath}`);
      return pod.spec.volumes.find((v: any) => v.name === m.name).secret.secretName as string;
    };
    for (const [file, cpSecret, envoySecret, certManager] of [
      ['default-values.yaml', 'portico-control-plane-tls', 'portico-envoy-tls', false],
      ['existing-secret-values.yaml', 'portico-control-plane-tls', 'portico-envoy-tls', false],
      ['full-values.yaml', 'portico-control-plane-tls', 'portico-envoy-tls', true],
    ] as const) {
      const { manifests } = render(file);
      const cp = find(manifests, 'Deployment', 'portico-control-plane').spec.template;
      const env = Object.fromEntries(cp.spec.containers[0].env.filter((e: any) => 'value' in e).map((e: any) => [e.name, e.value]));
      const settings = loadSettings(env);
      assert.deepEqual(settings.tls, { certFile: '/etc/portico/tls/tls.crt', keyFile: '/etc/portico/tls/tls.key', caFile: '/etc/portico/tls/ca.crt' }, file);
      assert.equal(settings.grpcHost, '0.0.0.0', 'a non-loopback bind, which only TLS makes acceptable');
      assert.equal(secretOf(cp, '/etc/portico/tls'), cpSecret);
      const envoy = find(manifests, 'Deployment', 'portico-envoy').spec.template;
      assert.equal(secretOf(envoy, '/etc/portico/tls'), envoySecret);
      assert.equal(envoy.spec.securityContext.fsGroup, envoy.spec.securityContext.runAsGroup, 'the node key is readable by the Envoy user');
      assert.equal(
        settings.envoyChannelSdsDir,
        envoy.spec.containers[0].volumeMounts.find((m: any) => m.name === 'bootstrap').mountPath,
        'the callout/ALS clusters name the SDS files where the Envoys have them',
      );
      const certs = manifests.filter((m) => m.kind === 'Certificate');
      if (!certManager) {
        assert.deepEqual(certs, [], `${file}: no cert-manager resources unless asked`);
        continue;
      }
      const group = YAML.parse(readFileSync(path.join(CHART, 'ci', file), 'utf8')).envoy.gatewayGroup;
      const td = settings.trustDomain;
      const cpCert = find(manifests, 'Certificate', 'portico-control-plane');
      assert.equal(cpCert.spec.secretName, cpSecret);
      assert.deepEqual(cpCert.spec.uris, [`spiffe://${td}/control-plane`]);
      assert.ok(cpCert.spec.dnsNames.includes('portico-control-plane-pods.gw.svc.cluster.local'), 'the name Envoys dial');
      assert.ok(cpCert.spec.usages.includes('server auth'));
      const nodeCert = find(manifests, 'Certificate', 'portico-envoy');
      assert.equal(nodeCert.spec.secretName, envoySecret);
      assert.deepEqual(nodeCert.spec.uris, [`spiffe://${td}/gateway-group/${group}`], 'the node may serve its group only');
      assert.ok(nodeCert.spec.usages.includes('client auth'));
      for (const c of [cpCert, nodeCert]) assert.equal(c.spec.issuerRef.name, 'portico-ca', "signed by the chart's CA Issuer");
      assert.equal(find(manifests, 'Issuer', 'portico-ca').spec.ca.secretName, find(manifests, 'Certificate', 'portico-ca').spec.secretName);
      assert.equal(find(manifests, 'Certificate', 'portico-ca').spec.isCA, true);
    }
    // The NetworkPolicy: gRPC ports from the chart's Envoys (and listed peers), admin from listed peers.
    const full = render('full-values.yaml').manifests;
    const np = find(full, 'NetworkPolicy', 'portico-control-plane');
    const cpPod = find(full, 'Deployment', 'portico-control-plane').spec.template;
    const envoyPod = find(full, 'Deployment', 'portico-envoy').spec.template;
    assert.ok(selects(np.spec.podSelector.matchLabels, cpPod.metadata.labels));
    assert.deepEqual(np.spec.policyTypes, ['Ingress']);
    const rule = (port: number) => np.spec.ingress.find((r: any) => r.ports.some((p: any) => p.port === port));
    const grpc = rule(18000);
    assert.equal(rule(18001), grpc, 'xDS and callouts: one rule');
    assert.ok(
      grpc.from.some((f: any) => f.podSelector && selects(f.podSelector.matchLabels, envoyPod.metadata.labels)),
      'Envoys reach the gRPC ports',
    );
    assert.ok(!grpc.from.some((f: any) => f.podSelector && selects(f.podSelector.matchLabels, { 'app.kubernetes.io/component': 'something-else' })));
    const admin = rule(8081);
    assert.notEqual(admin, grpc);
    assert.ok(admin.from.some((f: any) => f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'monitoring'));
    assert.ok(!admin.from.some((f: any) => f.podSelector && selects(f.podSelector.matchLabels, envoyPod.metadata.labels)), 'Envoys do not reach the admin API');
    // Plaintext only when asked for, and then said so.
    assert.throws(() => render('default-values.yaml', ['tls.enabled=false']), /tls\.insecure=true/);
    const plain = render('default-values.yaml', ['tls.enabled=false', 'tls.insecure=true']).manifests;
    const plainEnv = Object.fromEntries(
      find(plain, 'Deployment', 'portico-control-plane')
        .spec.template.spec.containers[0].env.filter((e: any) => 'value' in e)
        .map((e: any) => [e.name, e.value]),
    );
    assert.equal(loadSettings(plainEnv).grpcInsecure, true);
    assert.equal(YAML.parse(find(plain, 'ConfigMap', 'portico-envoy-bootstrap').data!['envoy.yaml']!).static_resources.clusters[0].transport_socket, undefined);
  });
});
