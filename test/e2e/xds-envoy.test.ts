// Real Envoy against the xDS server, over SotW (GRPC) and Delta (DELTA_GRPC) ADS: traffic reaches the
// upstream, changes go live, a NACK is recorded once and the old config keeps serving, restarts resume.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { renderBootstrap } from '../../src/xds/bootstrap.ts';
import { SnapshotCache, typeSnapshot } from '../../src/xds/cache.ts';
import { httpGatewayResources, type SimpleRoute } from '../support/xds-fixtures.ts';
import { FleetStatus } from '../../src/xds/fleet.ts';
import { TYPE_URLS } from '../../src/proto/index.ts';
import type { GroupResources } from '../../src/contract/index.ts';
import { XdsServer } from '../../src/xds/server.ts';
import { freePort, requireComponent, startProcess, waitFor, type RunningProcess } from '../support/components.ts';

const GROUP = 'edge-e2e';

async function upstream(name: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`${name} ${req.url}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function get(port: number, p: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(3000) });
  return { status: res.status, body: await res.text() };
}

async function adminJson(adminPort: number, p: string): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${p}`);
  return (await res.json()) as Record<string, unknown>;
}

async function stat(adminPort: number, name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/stats?filter=^${name.replace(/\./g, '\\.')}$`);
  const m = /: (\d+)/.exec(await res.text());
  return m ? Number(m[1]) : 0;
}

interface DumpedResource {
  name: string;
  version: string;
}

/** Dynamic resources Envoy holds with the version it got them at (config_dump per resource type). */
async function dumped(adminPort: number, resource: string): Promise<DumpedResource[]> {
  const j = await adminJson(adminPort, `/config_dump?resource=${resource}`);
  const configs = (j.configs ?? []) as Record<string, unknown>[];
  return configs.map((c) => {
    const state = (c.active_state ?? {}) as Record<string, unknown>;
    const inner = (c.cluster ?? state.listener ?? c.route_config ?? c.endpoint_config ?? {}) as Record<string, unknown>;
    return { name: String(inner.name ?? inner.cluster_name ?? ''), version: String(c.version_info ?? state.version_info ?? '') };
  });
}

function fixture(listenerPort: number, upstreams: Record<string, number[]>, routes: SimpleRoute[]): GroupResources {
  return httpGatewayResources({ listenerPort, upstreams, routes });
}

async function scenario(t: TestContext, apiType: 'GRPC' | 'DELTA_GRPC'): Promise<void> {
  const envoyBin = requireComponent(t, 'envoy');
  if (!envoyBin) return;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'portico-xds-e2e-'));
  const a = await upstream('A');
  const b = await upstream('B');
  const listenerPort = await freePort();
  const adminPort = await freePort();
  const xdsPort = await freePort();
  let cache = new SnapshotCache({ debounceMs: 10, debounceMaxMs: 50 });
  let fleet = new FleetStatus({ cache });
  let server = new XdsServer({ cache, fleet });
  let envoy: RunningProcess | undefined;
  const base = () => fixture(listenerPort, { 'svc-a': [a.port] }, [{ prefix: '/', cluster: 'svc-a', tag: 'root' }]);
  const publish = (c: SnapshotCache, r: GroupResources) => {
    c.setGroupResources(GROUP, r);
    c.flush();
  };
  const cdsVersion = () => typeSnapshot(cache.getSnapshot(GROUP), TYPE_URLS.cluster);
  const node = () => fleet.node('envoy-1');
  const typeOf = (type: string) => node()?.types.find((x) => x.type === type);
  const delta = apiType === 'DELTA_GRPC';

  try {
    publish(cache, base());
    await server.listen('127.0.0.1', xdsPort);
    const bootstrap = path.join(tmp, 'envoy.json');
    writeFileSync(bootstrap, JSON.stringify(renderBootstrap({ nodeId: 'envoy-1', group: GROUP, xdsAddresses: [`127.0.0.1:${xdsPort}`], adminPort, apiType })));
    envoy = startProcess(envoyBin, ['-c', bootstrap, '--use-dynamic-base-id', '-l', 'info', '--drain-time-s', '1']);

    await t.test('a request through Envoy reaches the upstream', async () => {
      const r = await waitFor('traffic through Envoy', async () => {
        const x = await get(listenerPort, '/hello');
        return x.status === 200 ? x : undefined;
      });
      assert.equal(r.body, 'A /hello');
      assert.equal(node()?.protocol, delta ? 'delta' : 'sotw');
      assert.equal(node()?.group, GROUP);
      assert.match(node()?.userAgent ?? '', /^envoy\/1\.40/);
    });

    await t.test("Envoy's config_dump shows our versions", async () => {
      const ts = cdsVersion();
      const clusters = await waitFor('dynamic clusters', async () => {
        const d = await dumped(adminPort, 'dynamic_active_clusters');
        return d.length > 0 ? d : undefined;
      });
      const svc = clusters.find((c) => c.name === 'svc-a');
      assert.ok(svc, JSON.stringify(clusters));
      // SotW: the response's version_info (the type's content hash); Delta: the resource's own hash.
      assert.equal(svc.version, delta ? ts.resources.get('svc-a')!.version : ts.version);
      assert.equal(typeOf('clusters')?.ackedVersion, ts.version);
      for (const type of ['endpoints', 'listeners', 'routes']) assert.ok(typeOf(type)?.ackedVersion, `${type} ACKed`);
    });

    await t.test('new routes and changed endpoints go live without a restart', async () => {
      publish(
        cache,
        fixture(listenerPort, { 'svc-a': [a.port], 'svc-b': [b.port] }, [
          { prefix: '/b', cluster: 'svc-b', tag: 'to-b' },
          { prefix: '/', cluster: 'svc-a', tag: 'root' },
        ]),
      );
      const r = await waitFor('the new route', async () => {
        const x = await get(listenerPort, '/b/x');
        return x.body === 'B /b/x' ? x : undefined;
      });
      assert.equal(r.status, 200);
      // Endpoints of svc-a now point at B.
      publish(
        cache,
        fixture(listenerPort, { 'svc-a': [b.port], 'svc-b': [b.port] }, [
          { prefix: '/b', cluster: 'svc-b', tag: 'to-b' },
          { prefix: '/', cluster: 'svc-a', tag: 'root' },
        ]),
      );
      await waitFor('endpoint change', async () => ((await get(listenerPort, '/a')).body === 'B /a' ? true : undefined));
      await waitFor('fleet in sync', () => (typeOf('clusters')?.ackedVersion === cdsVersion().version && !typeOf('endpoints')?.pending ? true : undefined));
    });

    await t.test('a cluster Envoy rejects is NACKed once, recorded, and the old config keeps serving', async () => {
      const good = cdsVersion().version;
      const rejectedBefore = await stat(adminPort, 'cluster_manager.cds.update_rejected');
      const current = fixture(listenerPort, { 'svc-a': [b.port], 'svc-b': [b.port] }, [
        { prefix: '/b', cluster: 'svc-b', tag: 'to-b' },
        { prefix: '/', cluster: 'svc-a', tag: 'root' },
      ]);
      // Valid protobuf, invalid for Envoy: ORIGINAL_DST clusters cannot use ROUND_ROBIN.
      const bad = { name: 'svc-bad', type: 'ORIGINAL_DST', lb_policy: 'ROUND_ROBIN', connect_timeout: '1s' };
      publish(cache, { ...current, clusters: [...current.clusters, bad] });
      const nack = await waitFor('the NACK in fleet status', () => typeOf('clusters')?.lastNack);
      assert.match(nack.message, /ORIGINAL_DST/);
      assert.equal(nack.version, cdsVersion().version);
      assert.notEqual(nack.version, good);
      assert.equal(typeOf('clusters')?.ackedVersion, good, 'the node keeps its last good version');
      assert.equal((await get(listenerPort, '/b/still')).body, 'B /b/still');
      const pushes = typeOf('clusters')?.pushedAt;
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(await stat(adminPort, 'cluster_manager.cds.update_rejected'), rejectedBefore + 1, 'rejected exactly once: never re-sent');
      assert.equal(typeOf('clusters')?.pushedAt, pushes, 'no push since the NACK');
      assert.equal((await get(listenerPort, '/')).body, 'B /');
      // Fixing the config pushes the newer version, which is accepted.
      publish(cache, current);
      await waitFor('the fix ACKed', () => (typeOf('clusters')?.ackedVersion === cdsVersion().version && !typeOf('clusters')?.pending ? true : undefined));
      assert.equal(cdsVersion().version, good);
    });

    await t.test('a control-plane restart: Envoy keeps serving, reconnects and ends at the same versions', async () => {
      const before = {
        clusters: typeOf('clusters')!.ackedVersion,
        endpoints: typeOf('endpoints')!.ackedVersion,
        listeners: typeOf('listeners')!.ackedVersion,
        routes: typeOf('routes')!.ackedVersion,
      };
      const dumpBefore = await dumped(adminPort, 'dynamic_active_clusters');
      const current = fixture(listenerPort, { 'svc-a': [b.port], 'svc-b': [b.port] }, [
        { prefix: '/b', cluster: 'svc-b', tag: 'to-b' },
        { prefix: '/', cluster: 'svc-a', tag: 'root' },
      ]);
      await server.close(1000);
      cache.close();
      // Down: Envoy serves from what it has.
      for (let i = 0; i < 5; i++) assert.equal((await get(listenerPort, '/b/down')).body, 'B /b/down');
      await new Promise((r) => setTimeout(r, 500));
      // A new process would rebuild the same snapshot from the same model.
      cache = new SnapshotCache({ debounceMs: 10, debounceMaxMs: 50 });
      fleet = new FleetStatus({ cache });
      server = new XdsServer({ cache, fleet });
      publish(cache, current);
      await server.listen('127.0.0.1', xdsPort);
      await waitFor('Envoy to reconnect', () => (node() && ['clusters', 'endpoints', 'listeners', 'routes'].every((x) => typeOf(x)?.ackedVersion) ? true : undefined), 30_000);
      assert.deepEqual(
        {
          clusters: typeOf('clusters')!.ackedVersion,
          endpoints: typeOf('endpoints')!.ackedVersion,
          listeners: typeOf('listeners')!.ackedVersion,
          routes: typeOf('routes')!.ackedVersion,
        },
        before,
      );
      // Nothing had to be re-sent: Envoy reported what it holds and it matched.
      for (const x of ['clusters', 'endpoints', 'listeners', 'routes']) assert.equal(typeOf(x)!.pushedVersion, undefined, `${x} re-sent`);
      assert.deepEqual(await dumped(adminPort, 'dynamic_active_clusters'), dumpBefore);
      assert.equal((await get(listenerPort, '/b/up')).body, 'B /b/up');
    });
  } catch (e) {
    if (envoy) t.diagnostic(envoy.output().slice(-4000));
    throw e;
  } finally {
    await envoy?.stop();
    await server.close(500);
    cache.close();
    await a.close();
    await b.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

describe('xDS with a real Envoy', () => {
  it('state of the world (api_type GRPC)', (t) => scenario(t, 'GRPC'));
  it('incremental (api_type DELTA_GRPC)', (t) => scenario(t, 'DELTA_GRPC'));
});
