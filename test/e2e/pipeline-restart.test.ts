// The control plane as a real process (`bin/portico serve`, embedded PGlite in a data directory) is
// SIGKILLed under load: Envoy keeps serving with zero failed requests while it is gone, reconnects
// to the restarted process and ACKs the very versions it held before (nothing is re-sent).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FleetView } from '../../src/xds/fleet.ts';
import { freePort, serveListenEnv, startProcess, waitFor, type RunningProcess } from '../support/components.ts';
import { ackedVersions, settledNode, startEnvoy, XDS_TYPES } from '../support/envoy.ts';
import { describeFailures, startLoad } from '../support/load.ts';
import { ApiClient } from '../support/portico.ts';
import { call, seed003 } from '../support/seed003.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const GROUP = 'edge';
const NODE = 'edge-restart';
const TOKEN = 'restart-test-admin-token';

describe('pipeline: control plane killed and restarted under load', () => {
  it('Envoy keeps serving while it is down and resynchronises to the same version', async (t) => {
    const seed = await seed003();
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portico-restart-'));
    const adminPort = await freePort();
    const grpcPort = await freePort();
    const calloutPort = await freePort();
    // Embedded PGlite in a directory that outlives the process; nothing inherited from the CI environment.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(PORTICO_|DATABASE_URL$|REDIS_URL$)/.test(k)));
    const env = {
      ...inherited,
      // One set of listen addresses for both starts: the flow runtime's is in the clusters Envoy receives.
      ...(await serveListenEnv()),
      PORTICO_DATA_DIR: dataDir,
      PORTICO_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      PORTICO_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
      PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${calloutPort}`,
      PORTICO_ADMIN_TOKEN: TOKEN,
      PORTICO_MASTER_KEY: randomBytes(32).toString('base64'),
      PORTICO_LOG_LEVEL: 'warn',
    };
    const api = new ApiClient(`http://127.0.0.1:${adminPort}`, TOKEN);
    let cp: RunningProcess | undefined;
    let stopLoad: (() => Promise<unknown>) | undefined;
    const startControlPlane = async () => {
      cp = startProcess(path.join(ROOT, 'bin/portico'), ['serve'], { env, cwd: ROOT });
      const proc = cp;
      await waitFor(
        'the control plane to be ready',
        async () => {
          if (proc.child.exitCode !== null) throw new Error(`portico exited (${proc.child.exitCode}): ${proc.output().slice(-3000)}`);
          return (await api.get('/readyz')).status === 200 ? true : undefined;
        },
        120_000,
        200,
      );
    };
    t.after(async () => {
      await stopLoad?.();
      await cp?.stop('SIGTERM');
      await seed.close();
      rmSync(dataDir, { recursive: true, force: true });
    });

    await startControlPlane();
    const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${grpcPort}`], group: GROUP, nodeId: NODE });
    if (!envoy) return;
    const gw = seed.gatewayUrl;
    const fleet = async () => (await api.get<FleetView>('/api/v1/fleet')).body;
    const settled = async () => settledNode(await fleet(), NODE);
    const envoyVersions = async () =>
      Object.fromEntries(
        await Promise.all(['dynamic_active_clusters', 'dynamic_listeners', 'dynamic_route_configs', 'dynamic_endpoint_configs'].map(async (r) => [r, await envoy.dumped(r)] as const)),
      );

    try {
      const applied = await api.post('/api/v1/config', seed.yaml(), { 'content-type': 'application/yaml' });
      assert.equal(applied.status, 200, applied.text);
      await envoy.waitForListener('http');
      const before = await waitFor('Envoy in sync', settled, 60_000);
      const versionsBefore = ackedVersions(before);
      const snapshotBefore = (await fleet()).groups.find((g) => g.group === GROUP)!.snapshotVersion;
      const dumpBefore = await envoyVersions();
      assert.ok(dumpBefore.dynamic_active_clusters!.length >= 3 && dumpBefore.dynamic_endpoint_configs!.length >= 3, JSON.stringify(dumpBefore));
      assert.equal((await call(`${gw}/api/orders/ord_x7k9`)).json?.path, '/orders/ord_x7k9');

      const load = startLoad({
        concurrency: 6,
        targets: [
          { name: 'orders', url: `${gw}/api/orders/ord_x7k9`, expect: [200] },
          { name: 'users', url: `${gw}/api/users/u_1`, expect: [200] },
          { name: 'products', url: `${gw}/api/search?q=x`, expect: [200] },
          { name: 'health', url: `${gw}/api/health`, expect: [200] },
          { name: 'not-found', url: `${gw}/api/nope`, expect: [404] },
          { name: 'wrong-method', url: `${gw}/api/orders/ord_1`, method: 'DELETE', expect: [405] },
        ],
      });
      stopLoad = () => load.stop();
      await load.waitForRequests(300);

      await t.test('SIGKILL: Envoy notices the control plane is gone and keeps serving', async () => {
        load.mark('SIGKILL');
        await cp!.stop('SIGKILL');
        assert.equal(cp!.child.signalCode, 'SIGKILL');
        await waitFor('Envoy to notice the disconnect', async () => ((await envoy.stat('control_plane.connected_state')) === 0 ? true : undefined), 60_000);
        await assert.rejects(api.get('/healthz'), 'the admin API is down too');
        const during = load.completed();
        await load.waitForRequests(1000);
        assert.ok(load.completed() >= during + 1000);
        assert.equal(await envoy.stat('control_plane.connected_state'), 0, 'still down while those requests were served');
      });

      await t.test('restart: Envoy reconnects and ACKs the same versions it held, with nothing re-sent', async () => {
        load.mark('restart');
        await startControlPlane();
        await waitFor('Envoy to reconnect', async () => ((await envoy.stat('control_plane.connected_state')) === 1 ? true : undefined), 60_000);
        const after = await waitFor('Envoy in sync again', settled, 60_000);
        assert.deepEqual(ackedVersions(after), versionsBefore);
        assert.equal((await fleet()).groups.find((g) => g.group === GROUP)!.snapshotVersion, snapshotBefore, 'the same model gives the same version');
        for (const type of XDS_TYPES) assert.equal(after.types.find((x) => x.type === type)!.pushedVersion, undefined, `${type} re-sent`);
        assert.deepEqual(await envoyVersions(), dumpBefore, "Envoy's config_dump: same resources at the same versions");
        await load.waitForRequests(500);
      });

      await t.test('the load saw zero failed requests across the kill and the restart', async () => {
        const report = await load.stop();
        stopLoad = undefined;
        assert.equal(report.failures.length, 0, describeFailures(report.failures, report.marks));
        for (const [name, s] of Object.entries(report.targets)) assert.ok(s.requests >= 100, `${name}: only ${s.requests} requests`);
        t.diagnostic(`${report.requests} requests in ${report.durationMs} ms`);
        // And the restarted control plane takes changes again.
        const r = await api.patch('/api/v1/services/orders', { connectTimeoutMs: 1500 });
        assert.equal(r.status, 200, r.text);
        await waitFor('the change ACKed', async () => {
          const n = await settled();
          return n && n.types.find((x) => x.type === 'clusters')!.ackedVersion !== versionsBefore.clusters ? true : undefined;
        });
      });
    } catch (e) {
      t.diagnostic(`control plane: ${cp?.output().slice(-3000)}`);
      t.diagnostic(`envoy: ${envoy.output().slice(-3000)}`);
      throw e;
    }
  });
});
