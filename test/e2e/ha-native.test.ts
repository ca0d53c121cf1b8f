// The control plane SIGKILLed under load in native mode (authz.mode native, rateLimit.mode native):
// a real `bin/portico serve` on PostgreSQL, a real Envoy, clients sending API-key traffic on a route a
// native limit counts. Envoy keeps its config and decides alone: zero failed requests while the
// control plane is dead, keys still checked (a wrong key still 401, a partner's limit still
// counted), and when the control plane is back the Envoy reconnects to the same versions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { createDatabase, freePort, startPostgres, waitFor } from '../support/components.ts';
import { ackedVersions, startEnvoy } from '../support/envoy.ts';
import { describeFailures, startLoad } from '../support/load.ts';
import { call, echo } from '../support/seed003.ts';
import { createCluster, waitSettled, type Cluster } from './ha-cluster.ts';

const GROUP = 'edge';
const NODE = 'ha-native-1';

describe('HA, native mode: the control plane killed under load', () => {
  it('keeps serving API-key traffic with native limits through Envoy alone: zero failed requests', { timeout: 600_000 }, async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    const upstream = await echo('orders');
    let cluster: Cluster | undefined;
    const stops: Array<() => Promise<unknown>> = [];
    t.after(async () => {
      for (const s of stops.splice(0)) await s().catch(() => undefined);
      await cluster?.close();
      await upstream.close();
      await pg.stop();
    });
    // Unused by native routes, but every replica's config names them: nothing listens there.
    const [calloutPort, accessLogPort, flowsPort] = [await freePort(), await freePort(), await freePort()];
    cluster = await createCluster({
      names: ['solo'],
      databaseUrl: createDatabase(pg, 'portico_ha_native'),
      calloutAddress: `127.0.0.1:${calloutPort}`,
      accessLogAddress: `127.0.0.1:${accessLogPort}`,
      flowsAddress: `127.0.0.1:${flowsPort}`,
    });
    const cp = cluster.replicas[0]!;
    await cp.start();
    const port = await freePort();
    const doc = {
      portico: 'v1',
      gatewayGroups: [
        { name: GROUP, listeners: [{ name: 'http', port, address: '127.0.0.1' }], authz: { mode: 'native', failureMode: 'closed' }, rateLimit: { mode: 'native', failureMode: 'closed' } },
      ],
      services: [{ name: 'orders', endpoints: [{ host: '127.0.0.1', port: upstream.port }] }],
      products: [
        { name: 'api', gatewayGroups: [GROUP], basePath: '/api', auth: { accept: ['api_key'] }, routes: [{ name: 'all', match: { path: { type: 'prefix', value: '/' } }, service: 'orders' }] },
      ],
      // A native limit per partner that every request draws from and none reaches; a tiny one for the
      // partner whose refusals show the buckets still count while the control plane is gone.
      plans: [
        { name: 'big', limits: [{ requests: 1_000_000, per: 'second' }], countBy: { kind: 'partner' } },
        { name: 'tiny', limits: [{ requests: 1, per: 'hour' }], countBy: { kind: 'partner' } },
      ],
      partners: [
        { name: 'acme', kind: 'service_account', subscriptions: [{ product: 'api', plan: 'big' }] },
        { name: 'globex', kind: 'service_account', subscriptions: [{ product: 'api', plan: 'tiny' }] },
      ],
    };
    const applied = await cp.api.post('/api/v1/config', YAML.stringify(doc), { 'content-type': 'application/yaml' });
    assert.equal(applied.status, 200, applied.text);
    const mint = async (partner: string) => {
      const r = await cp.api.post(`/api/v1/partners/${partner}/api-keys`, { name: 'main' });
      assert.equal(r.status, 201, r.text);
      return r.body.key as string;
    };
    const acme = await mint('acme');
    const globex = await mint('globex');
    const envoy = await startEnvoy(t, { xdsAddresses: [cp.grpcAddress], group: GROUP, nodeId: NODE });
    if (!envoy) return;
    await envoy.waitForListener('http', 60_000);
    const before = await waitSettled(cluster.replicas, NODE);
    const url = `http://127.0.0.1:${port}/api/orders/1`;
    await waitFor('the native route to admit acme', async () => ((await call(url, { headers: { 'x-api-key': acme } })).status === 200 ? true : undefined), 60_000);
    assert.equal((await call(url, { headers: { 'x-api-key': globex } })).status, 200, "globex's one request of the hour");
    assert.equal((await call(url, { headers: { 'x-api-key': globex } })).status, 429, 'then its native bucket refuses');
    const dump = JSON.stringify(await envoy.configDump());
    assert.match(dump, /ApiKeyAuthPerRoute/, 'keys are checked by Envoy');
    assert.match(dump, /portico_plan_limit/, 'limits are counted by Envoy');

    const load = startLoad({
      concurrency: 6,
      targets: [
        { name: 'acme (key + native limit)', url, headers: { 'x-api-key': acme }, expect: [200] },
        { name: 'globex (limit used up)', url, headers: { 'x-api-key': globex }, expect: [429] },
        { name: 'wrong key', url, headers: { 'x-api-key': `ptk_zzzzzzzz_${'Z'.repeat(43)}` }, expect: [401] },
        { name: 'no key', url, expect: [401] },
      ],
    });
    stops.push(() => load.stop());
    await load.waitForRequests(300);
    load.mark('SIGKILL the control plane');
    assert.equal(await cp.stop('SIGKILL'), null, 'killed by the signal');
    await waitFor('Envoy to notice the control plane is gone', async () => ((await envoy.stat('control_plane.connected_state')) === 0 ? true : undefined), 60_000);
    const duringOutage = load.completed();
    await load.waitForRequests(1_000);
    assert.equal(cp.running(), false, 'the requests above were served with no control plane');
    load.mark('control plane restarted');
    await cp.start();
    const after = await waitSettled(cluster.replicas, NODE, `${NODE} to reconnect`);
    assert.deepEqual(ackedVersions(after.node), ackedVersions(before.node), 'the restarted control plane serves the versions Envoy kept');
    await load.waitForRequests(300);
    const report = await load.stop();
    assert.equal(report.failures.length, 0, describeFailures(report.failures, report.marks));
    for (const [name, s] of Object.entries(report.targets)) assert.ok(s.requests >= 50, `${name}: only ${s.requests} requests`);
    t.diagnostic(`${report.requests} requests in ${report.durationMs} ms (≥ 1,000 from ${duringOutage} on with the control plane dead), 0 failed`);
  });
});
