// docker-compose.yml, checked without a Docker engine: its structure (every service has an image or
// a build, ports and volumes are well formed, depends_on names defined services, every mounted file
// exists), the control plane's environment is valid for loadSettings, the mounted files agree with
// each other (model, Envoy bootstrap, Prometheus targets, Grafana provisioning), and each service's
// command runs as a plain process: the control plane (compose environment, localhost, a test
// PostgreSQL) with the container health check against it, the demo upstreams, and Envoy's stats
// listener.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { composeBootstrap, composeBootstrapYaml, composeChannelSdsYaml, DEFAULT_STATS_PORT, withStatsListener } from '../../deploy/envoy/bootstrap.ts';
import { CHANNEL_SDS_FILES, FLOW_NAMES } from '../../src/contract/index.ts';
import { composeModelYaml } from '../../deploy/generate.ts';
import { parseDocumentText, parseModelDocument } from '../../src/model/declarative.ts';
import { KINDS } from '../../src/model/model.ts';
import { validateModel } from '../../src/model/validate.ts';
import { loadSettings } from '../../src/settings.ts';
import { loadKeyRing } from '../../src/store/secrets.ts';
import { translate, validateTranslation } from '../../src/translate/index.ts';
import { renderBootstrap } from '../../src/xds/bootstrap.ts';
import { freePort, requireComponent, serveListenEnv, startPostgres, startProcess, waitFor } from '../support/components.ts';
import { startTestPortico } from '../support/portico.ts';
import { childEnv, composeEnvironment, exists, interpolate, repoPath, ROOT, startPorticoProcess, stopWithCode } from './support.ts';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: unknown;
  ports?: string[];
  volumes?: string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test: string[] | string };
}

// Compose honours YAML merge keys (<<: *anchor).
const compose = YAML.parse(readFileSync(repoPath('docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
const services = compose.services;
const dependsOn = (s: Service): Record<string, { condition?: string }> => (Array.isArray(s.depends_on) ? Object.fromEntries(s.depends_on.map((d) => [d, {}])) : (s.depends_on ?? {}));
/** Bind mounts of a service: repository path → container path. */
const binds = (s: Service) =>
  (s.volumes ?? [])
    .filter((v) => v.startsWith('./'))
    .map((v) => {
      const [src, dst, mode] = v.split(':');
      return { src: src!.slice(2), dst: dst!, mode };
    });
const porticoEnv = () => composeEnvironment(services.portico!.environment, {});
const hostPort = (addr: string) => Number(addr.slice(addr.lastIndexOf(':') + 1));
const ENVOY_VERSION = /ENVOY_VERSION=(\S+)/.exec(readFileSync(repoPath('scripts/setup.sh'), 'utf8'))![1]!;

function parseModelFile(file: string) {
  const parsed = parseModelDocument(parseDocumentText(readFileSync(file, 'utf8')), { hashApiKey: () => ({ prefix: 'offline0', hash: 'offline'.padEnd(43, '0') }) });
  assert.deepEqual(parsed.errors, [], file);
  return parsed.model;
}

describe('docker-compose.yml: structure', () => {
  it('has the whole stack, each service with an image or a build', () => {
    assert.deepEqual(Object.keys(services).sort(), ['certs', 'envoy', 'grafana', 'portico', 'postgres', 'prometheus', 'redis', 'upstreams']);
    for (const [name, s] of Object.entries(services)) {
      assert.ok(s.image || s.build, `${name}: image or build`);
      if (s.image) assert.match(interpolate(s.image, {}), /^[a-z0-9./-]+(:[A-Za-z0-9._-]+)?$/, `${name}: image reference`);
      if (s.build) assert.ok(exists((s.build as { dockerfile?: string }).dockerfile ?? 'Dockerfile'), `${name}: the Dockerfile exists`);
      if (s.image && !s.build) assert.doesNotMatch(s.image, /:latest$|^[^:]+$/, `${name}: a pinned tag`);
    }
    assert.equal(services.envoy!.image, `envoyproxy/envoy:v${ENVOY_VERSION}`, 'the Envoy the tests run (scripts/setup.sh)');
  });

  it('has well-formed ports, volumes and depends_on', () => {
    const named = new Set(Object.keys(compose.volumes ?? {}));
    for (const [name, s] of Object.entries(services)) {
      for (const p of s.ports ?? []) {
        const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(p);
        assert.ok(m, `${name}: port '${p}' is [ip:]host:container`);
        for (const n of [m![2], m![3]]) assert.ok(Number(n) >= 1 && Number(n) <= 65535, `${name}: port ${n}`);
      }
      for (const v of s.volumes ?? []) {
        const parts = v.split(':');
        assert.ok(parts.length === 2 || (parts.length === 3 && ['ro', 'rw'].includes(parts[2]!)), `${name}: volume '${v}' is source:target[:ro|rw]`);
        assert.ok(parts[1]!.startsWith('/'), `${name}: '${v}' targets an absolute path`);
        if (parts[0]!.startsWith('./')) assert.ok(exists(parts[0]!.slice(2)), `${name}: mounted '${parts[0]}' exists in the repository`);
        else assert.ok(named.has(parts[0]!), `${name}: named volume '${parts[0]}' is declared`);
      }
      for (const [dep, how] of Object.entries(dependsOn(s))) {
        assert.ok(services[dep], `${name}: depends_on '${dep}' is a service`);
        assert.notEqual(dep, name);
        if (how.condition === 'service_healthy') {
          // The control plane's health check comes from its Dockerfile's HEALTHCHECK.
          const healthy = services[dep]!.healthcheck || (services[dep]!.build && /^HEALTHCHECK /m.test(readFileSync(repoPath('Dockerfile'), 'utf8')));
          assert.ok(healthy, `${name}: waits for '${dep}' to be healthy, which needs a health check`);
        }
      }
    }
  });

  it('gives the control plane an environment loadSettings accepts, with a usable master key', () => {
    const env = porticoEnv();
    const settings = loadSettings(env);
    assert.match(settings.databaseUrl!, /^postgresql:\/\/portico:[^@]+@postgres:5432\/portico$/);
    assert.equal(settings.redisUrl, 'redis://redis:6379');
    assert.equal(settings.adminHost, '0.0.0.0', 'reachable from Prometheus and the host port');
    assert.equal(settings.calloutAddress, `portico:${settings.calloutListenPort}`, 'Envoy reaches the callouts by service name');
    assert.equal(settings.accessLogAddress, `portico:${settings.grpcPort}`, 'and streams access logs to the service (the same on every replica)');
    assert.equal(loadKeyRing(settings).current.key.length, 32);
    assert.ok(settings.adminToken);
    // Published admin port is loopback-only on the host.
    assert.deepEqual(services.portico!.ports, [`127.0.0.1:${settings.adminPort}:${settings.adminPort}`]);
    // Variables given by the user win over the defaults.
    assert.equal(loadSettings(composeEnvironment(services.portico!.environment, { POSTGRES_PASSWORD: 'hunter2' })).databaseUrl, 'postgresql://portico:hunter2@postgres:5432/portico');
    assert.equal(composeEnvironment(services.postgres!.environment, { POSTGRES_PASSWORD: 'hunter2' }).POSTGRES_PASSWORD, 'hunter2');
  });

  it('applies the example model at start: the compose copy of examples/gateway.yaml, valid and translatable', () => {
    const command = services.portico!.command as string[];
    assert.equal(command[0], 'serve');
    const file = command[command.indexOf('--apply') + 1]!;
    const mount = binds(services.portico!).find((b) => b.dst === file);
    assert.ok(mount, `${file} is mounted from the repository`);
    assert.equal(mount!.src, 'deploy/compose/gateway.yaml');
    // The same model as the example, with the upstreams reached by service name.
    assert.equal(
      readFileSync(repoPath(mount!.src), 'utf8'),
      composeModelYaml(),
      'deploy/compose/gateway.yaml is examples/gateway.yaml with 127.0.0.1 → upstreams; regenerate with: npx tsx deploy/generate.ts',
    );
    const model = parseModelFile(repoPath(mount!.src));
    const errors = [...validateModel(model), ...validateTranslation(model)].map((e) => `${KINDS[e.kind].singular} '${e.key}' ${e.field} ${e.message}`);
    assert.deepEqual(errors, []);
    const groups = translate(model, { calloutAddress: loadSettings(porticoEnv()).calloutAddress! });
    // The Envoy service's --service-cluster is a group of the model, and its listener ports are published.
    const envoyCmd = services.envoy!.command as string[];
    const group = envoyCmd[envoyCmd.indexOf('--service-cluster') + 1]!;
    assert.ok(groups.has(group), `gateway group '${group}'`);
    // Every listener is published except the flow runtime's step listener, which authenticates nobody
    // and is for the flow runtime on compose's private network only.
    const listeners = groups.get(group)!.listeners as Array<{ name: string; address: { socket_address: { port_value: number } } }>;
    const published = (port: number) => (services.envoy!.ports ?? []).some((x) => x.endsWith(`:${port}`));
    for (const l of listeners) {
      const port = l.address.socket_address.port_value;
      if (l.name === FLOW_NAMES.stepListener) assert.ok(!published(port), `the flow step listener's port ${port} is not published`);
      else assert.ok(published(port), `listener port ${port} is published`);
    }
    // The services point at the upstreams container's ports.
    const upstreamPorts = model.services.size ? [...model.services.values()].flatMap((s) => (s.endpoints ?? []).map((e) => `${e.host}:${e.port}`)) : [];
    assert.deepEqual(upstreamPorts.sort(), ['upstreams:3001', 'upstreams:3002', 'upstreams:3003'].sort());
  });

  it("runs Envoy with deploy/envoy/edge.yaml: renderBootstrap's edge bootstrap for the compose network plus the stats listener", () => {
    const mount = binds(services.envoy!).find((b) => b.dst === '/etc/envoy/envoy.yaml');
    assert.equal(mount?.src, 'deploy/envoy/edge.yaml');
    const cmd = services.envoy!.command as string[];
    assert.equal(cmd[cmd.indexOf('-c') + 1], '/etc/envoy/envoy.yaml');
    assert.equal(readFileSync(repoPath(mount!.src), 'utf8'), composeBootstrapYaml(), 'regenerate with: npx tsx deploy/generate.ts');
    const b = composeBootstrap() as any;
    const grpc = hostPort(porticoEnv().PORTICO_GRPC_ADDR!);
    assert.deepEqual(
      b.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints.map((e: any) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}`),
      [`portico:${grpc}`],
      'ADS to the control plane service',
    );
    assert.equal(b.static_resources.clusters[0].type, 'STRICT_DNS', 'every replica behind the name');
    assert.equal(b.admin.address.socket_address.address, '127.0.0.1', 'admin stays on loopback');
  });

  it('Envoy accepts the compose bootstrap (envoy --mode validate, its SDS files where the container mounts them)', (t) => {
    const envoy = requireComponent(t, 'envoy');
    if (!envoy) return;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-compose-envoy-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const f of Object.values(CHANNEL_SDS_FILES)) writeFileSync(path.join(dir, f), readFileSync(repoPath(`deploy/envoy/${f}`), 'utf8'));
    const file = path.join(dir, 'envoy.yaml');
    writeFileSync(file, readFileSync(repoPath('deploy/envoy/edge.yaml'), 'utf8').replaceAll('/etc/envoy/portico-', `${dir}/portico-`));
    const r = spawnSync(envoy, ['--mode', 'validate', '-c', file, '--service-node', 'edge-1', '--service-cluster', 'edge', '--use-dynamic-base-id'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr || r.stdout);
  });

  it('mTLS between Envoy and the control plane: a one-shot certs service makes a development CA on first start, both sides mount it', async () => {
    const certs = services.certs!;
    const cmd = certs.command as string[];
    assert.deepEqual(cmd.slice(0, 2), ['certs', 'dev']);
    assert.ok(cmd.includes('--if-missing'), 'an existing CA is kept across restarts');
    const out = cmd[cmd.indexOf('--out') + 1]!;
    const volume = (s: Service) => ((s.volumes ?? []) as string[]).find((v) => v.startsWith('portico-certs:'));
    assert.equal(volume(certs), `portico-certs:${out}`, 'writes into the named volume');
    assert.ok(compose.volumes && 'portico-certs' in compose.volumes);
    assert.equal(dependsOn(services.portico!).certs?.condition, 'service_completed_successfully');
    assert.equal(volume(services.portico!), `portico-certs:${out}:ro`);
    assert.equal(volume(services.envoy!), `portico-certs:${out}:ro`);
    // The control plane serves mTLS with what the service wrote (names as `portico certs dev` lays them out).
    const settings = loadSettings(porticoEnv());
    assert.deepEqual(settings.tls, { certFile: `${out}/control-plane/tls.crt`, keyFile: `${out}/control-plane/tls.key`, caFile: `${out}/control-plane/ca.crt` });
    // The Envoy reads the node certificate of its group through the SDS files, mounted where the control plane says.
    const envoyCmd = services.envoy!.command as string[];
    const group = envoyCmd[envoyCmd.indexOf('--service-cluster') + 1]!;
    assert.ok(cmd.join(' ').includes(`--group ${group}`), `a node certificate for group '${group}'`);
    assert.ok(cmd.join(' ').includes('--host portico'), 'the control plane certificate names the service Envoy dials');
    for (const [f, text] of Object.entries(composeChannelSdsYaml())) {
      assert.equal(readFileSync(repoPath(`deploy/envoy/${f}`), 'utf8'), text, 'regenerate with: npx tsx deploy/generate.ts');
      assert.equal(binds(services.envoy!).find((b) => b.src === `deploy/envoy/${f}`)?.dst, `${settings.envoyChannelSdsDir}/${f}`);
      assert.ok(text.includes(`${out}/nodes/${group}/`), `${f} names files under ${out}/nodes/${group}`);
    }
    // And the command really lays the files out so (run here as a process, into a temporary directory).
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-compose-certs-'));
    try {
      const args = cmd.map((a) => (a === out ? dir : a));
      const r = spawnSync(repoPath('bin/portico'), args, { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      for (const f of ['control-plane/tls.crt', 'control-plane/tls.key', 'control-plane/ca.crt', `nodes/${group}/tls.crt`, `nodes/${group}/tls.key`, `nodes/${group}/ca.crt`])
        assert.ok(existsSync(path.join(dir, f)), f);
      const again = spawnSync(repoPath('bin/portico'), args, { encoding: 'utf8' });
      assert.match(again.stdout, /a CA exists; nothing written/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('scrapes the control plane and every Envoy with Prometheus, and provisions Grafana', () => {
    const promMount = binds(services.prometheus!).find((b) => b.dst === '/etc/prometheus/prometheus.yml');
    assert.ok(promMount, 'prometheus.yml is mounted');
    const prom = YAML.parse(readFileSync(repoPath(promMount!.src), 'utf8')) as {
      scrape_configs: Array<{ job_name: string; metrics_path: string; dns_sd_configs?: Array<{ names: string[]; port: number }>; static_configs?: Array<{ targets: string[] }> }>;
    };
    const targets = (job: string) => {
      const j = prom.scrape_configs.find((s) => s.job_name === job)!;
      assert.ok(j, `job ${job}`);
      return { path: j.metrics_path, hosts: [...(j.dns_sd_configs ?? []).flatMap((d) => d.names.map((n) => `${n}:${d.port}`)), ...(j.static_configs ?? []).flatMap((s) => s.targets)] };
    };
    assert.deepEqual(targets('portico'), { path: '/metrics', hosts: [`portico:${hostPort(porticoEnv().PORTICO_ADMIN_ADDR!)}`] });
    assert.deepEqual(targets('envoy'), { path: '/stats/prometheus', hosts: [`envoy:${DEFAULT_STATS_PORT}`] });

    const grafanaBinds = binds(services.grafana!);
    const provisioning = grafanaBinds.find((b) => b.dst === '/etc/grafana/provisioning')!;
    assert.ok(provisioning, 'provisioning is mounted');
    const ds = YAML.parse(readFileSync(repoPath(provisioning.src, 'datasources/prometheus.yml'), 'utf8')) as { datasources: Array<{ url: string; type: string; uid: string }> };
    assert.equal(ds.datasources[0]!.type, 'prometheus');
    assert.equal(ds.datasources[0]!.url, 'http://prometheus:9090');
    assert.ok((services.prometheus!.ports ?? []).some((p) => p.endsWith(':9090')));
    const providers = YAML.parse(readFileSync(repoPath(provisioning.src, 'dashboards/portico.yml'), 'utf8')) as { providers: Array<{ options: { path: string } }> };
    const dashboards = grafanaBinds.find((b) => b.dst === providers.providers[0]!.options.path);
    assert.equal(dashboards?.src, 'deploy/grafana/dashboards', 'the provider reads the mounted dashboards folder');
    for (const f of readdirSync(repoPath('deploy/grafana/dashboards')).filter((x) => x.endsWith('.json'))) {
      assert.doesNotThrow(() => JSON.parse(readFileSync(repoPath('deploy/grafana/dashboards', f), 'utf8')), `${f} is JSON`);
    }
  });
});

describe('docker-compose.yml: each service command as a plain process', () => {
  it('the control plane: compose environment on localhost with a test PostgreSQL, --apply, health check, SIGTERM', async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    const env = porticoEnv();
    const ports = { admin: await freePort(), grpc: await freePort(), callouts: await freePort() };
    // What changes between the container and this machine: addresses and the database.
    const local: Record<string, string> = {
      ...env,
      ...(await serveListenEnv()),
      DATABASE_URL: pg.url,
      PORTICO_ADMIN_ADDR: `127.0.0.1:${ports.admin}`,
      PORTICO_GRPC_ADDR: `127.0.0.1:${ports.grpc}`,
      PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${ports.callouts}`,
      PORTICO_DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'portico-compose-')),
    };
    // The certs service's command, into the data directory; the TLS settings follow it there.
    const certsCmd = services.certs!.command as string[];
    const certsOut = certsCmd[certsCmd.indexOf('--out') + 1]!;
    const made = spawnSync(
      repoPath('bin/portico'),
      certsCmd.map((a) => (a === certsOut ? path.join(local.PORTICO_DATA_DIR!, 'certs') : a)),
      { encoding: 'utf8' },
    );
    assert.equal(made.status, 0, made.stderr);
    for (const k of ['PORTICO_TLS_CERT_FILE', 'PORTICO_TLS_KEY_FILE', 'PORTICO_TLS_CLIENT_CA_FILE']) local[k] = local[k]!.replace(certsOut, path.join(local.PORTICO_DATA_DIR!, 'certs'));
    delete local.REDIS_URL; // counters in memory: this test is about the process, not Redis
    const args = [...(services.portico!.command as string[])];
    args[args.indexOf('--apply') + 1] = repoPath('deploy/compose/gateway.yaml');
    const adminUrl = `http://127.0.0.1:${ports.admin}`;
    const proc = await startPorticoProcess(args, local, adminUrl);
    t.after(async () => {
      await proc.stop('SIGKILL');
      await pg.stop();
      rmSync(local.PORTICO_DATA_DIR!, { recursive: true, force: true });
    });
    const auth = { authorization: `Bearer ${env.PORTICO_ADMIN_TOKEN}` };
    type Exported = { gatewayGroups?: Array<{ name: string }>; services: Array<{ endpoints: Array<{ host: string }> }> };
    // --apply commits right after the servers start (readiness can come first).
    const exported = await waitFor(
      'the example applied at start',
      async () => {
        const res = await fetch(`${adminUrl}/api/v1/config?format=json`, { headers: auth });
        assert.equal(res.status, 200);
        const doc = (await res.json()) as Exported;
        return doc.gatewayGroups ? doc : undefined;
      },
      60_000,
      200,
    );
    assert.deepEqual(
      exported.gatewayGroups!.map((g) => g.name),
      ['edge'],
    );
    assert.ok(exported.services.every((s) => s.endpoints.every((e) => e.host === 'upstreams')));
    // The container's HEALTHCHECK command, against this process.
    const health = (addr: string) => spawnSync(process.execPath, [repoPath('deploy/docker/healthcheck.mjs')], { env: childEnv({ PORTICO_ADMIN_ADDR: addr }), encoding: 'utf8' });
    assert.equal(health(`0.0.0.0:${ports.admin}`).status, 0, 'a wildcard bind is probed on loopback');
    assert.equal(health(`127.0.0.1:${ports.admin}`).status, 0);
    // SIGTERM (docker stop) drains and exits 0; the health check then fails.
    assert.equal(await stopWithCode(proc, 'SIGTERM'), 0, proc.output().slice(-2000));
    const down = health(`127.0.0.1:${ports.admin}`);
    assert.equal(down.status, 1);
    assert.match(down.stderr, /healthcheck: .*ECONNREFUSED/);
  });

  it('the demo upstreams: echo services and the token issuer the example points at', async (t) => {
    const s = services.upstreams!;
    const entry = s.entrypoint as string[];
    assert.deepEqual(entry.slice(0, 3), ['node', '--import', 'tsx']);
    assert.ok(exists(entry[3]!), `${entry[3]} exists`);
    const env = composeEnvironment(s.environment, {});
    assert.equal(env.DEMO_HOST, '0.0.0.0', 'reachable from the other containers');
    const proc = startProcess(entry[0] === 'node' ? process.execPath : entry[0]!, entry.slice(1), {
      cwd: ROOT,
      env: childEnv({ ...env, DEMO_HOST: '127.0.0.1', DEMO_USERS_PORT: '0', DEMO_ORDERS_PORT: '0', DEMO_PRODUCTS_PORT: '0', DEMO_ISSUER_PORT: '0' }),
    });
    t.after(() => proc.stop('SIGKILL'));
    const bound = await waitFor(
      'the upstreams to print their ports',
      () => {
        if (proc.child.exitCode !== null) throw new Error(proc.output());
        const lines = proc
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as { service: string; port: number; issuer?: string });
        return lines.length === 4 ? Object.fromEntries(lines.map((l) => [l.service, l])) : undefined;
      },
      60_000,
    );
    const model = parseModelFile(repoPath('deploy/compose/gateway.yaml'));
    for (const name of ['users', 'orders', 'products']) {
      const r = await fetch(`http://127.0.0.1:${bound[name]!.port}/${name}/1`);
      assert.equal(((await r.json()) as { service: string }).service, name);
    }
    // By default they listen where the example's services and JWKS point (3001–3003, 3009).
    assert.deepEqual([...model.services.values()].map((x) => `${x.name}:${x.endpoints![0]!.port}`).sort(), ['orders:3002', 'products:3003', 'users:3001']);
    const issuer = [...model.jwtIssuers.values()][0]!;
    assert.equal(bound.issuer!.issuer, issuer.issuer);
    assert.match(issuer.jwksUri!, /^http:\/\/upstreams:3009\//);
    const token = (await (await fetch(`http://127.0.0.1:${bound.issuer!.port}/token`, { method: 'POST', body: JSON.stringify({ sub: 'u1', team: 'web-app' }) })).json()) as { token: string };
    assert.match(token.token, /^ey[\w-]+\.[\w-]+\.[\w-]+$/);
    const jwks = (await (await fetch(`http://127.0.0.1:${bound.issuer!.port}${new URL(issuer.jwksUri!).pathname}`)).json()) as { keys: unknown[] };
    assert.equal(jwks.keys.length, 1);
    // The compose health check's command.
    const hc = (s.healthcheck!.test as string[]).slice(1);
    assert.equal(hc[0], 'node');
    const probe = spawnSync(process.execPath, [hc[1]!, hc[2]!.replace('127.0.0.1:3001', `127.0.0.1:${bound.users!.port}`)], { encoding: 'utf8' });
    assert.equal(probe.status, 0, probe.stderr);
    assert.equal(await stopWithCode(proc, 'SIGTERM'), 0);
  });

  it("Envoy's stats listener publishes only GET /stats/prometheus and /ready (the admin stays on loopback)", async (t) => {
    const bin = requireComponent(t, 'envoy');
    if (!bin) return;
    // A control plane to initialise from (Envoy opens its listeners once CDS and LDS have answered).
    const portico = await startTestPortico();
    t.after(() => portico.close());
    const applied = await portico.api.post('/api/v1/config', { portico: 'v1', gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: await freePort(), address: '127.0.0.1' }] }] });
    assert.equal(applied.status, 200, applied.text);
    const adminPort = await freePort();
    const statsPort = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-stats-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // The compose bootstrap with free ports and this control plane.
    const file = path.join(dir, 'envoy.json');
    writeFileSync(file, JSON.stringify(withStatsListener(renderBootstrap({ role: 'edge', xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], adminPort }), { adminPort, statsPort })));
    const proc = startProcess(bin, ['-c', file, '--use-dynamic-base-id', '--service-node', 'stats-1', '--service-cluster', 'edge', '-l', 'warning']);
    t.after(() => proc.stop('SIGKILL'));
    const stats = `http://127.0.0.1:${statsPort}`;
    const metrics = await waitFor(
      'the stats listener',
      async () => {
        assert.equal(proc.child.exitCode, null, proc.output());
        const r = await fetch(`${stats}/stats/prometheus`).catch(() => undefined);
        return r?.status === 200 ? r.text() : undefined;
      },
      60_000,
      100,
    );
    assert.match(metrics, /^# TYPE envoy_\w+ (counter|gauge)/m);
    assert.match(metrics, /envoy_cluster_manager_cds_update_success/);
    const ready = await fetch(`${stats}/ready`);
    assert.equal(ready.status, 200, 'initialised from the control plane');
    assert.match(await ready.text(), /LIVE/);
    for (const [method, p] of [
      ['GET', '/config_dump'],
      ['GET', '/clusters'],
      ['POST', '/quitquitquit'],
      ['POST', '/logging?level=trace'],
      ['POST', '/stats/prometheus'],
      ['GET', '/'],
    ] as const) {
      assert.equal((await fetch(`${stats}${p}`, { method })).status, 404, `${method} ${p} is not published`);
    }
    assert.equal(proc.child.exitCode, null, 'Envoy still running: /quitquitquit never reached the admin');
  });
});
