// The partner portal's usage in native mode through a real Envoy: the quota is counted from the
// access logs Envoy streams (the quota ledger), so what the portal shows is what the gateway
// enforces — requests counted there appear, and at the quota Envoy refuses; Envoy's own rate
// buckets report nothing back, and the portal says so instead of inventing a figure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, waitFor } from '../support/components.ts';
import { startEnvoy } from '../support/envoy.ts';
import { startTestPortico } from '../support/portico.ts';
import { listenHttp } from '../support/servers.ts';

test('portal usage in native mode comes from the access-log quota ledger', { timeout: 180_000 }, async (t) => {
  const portico = await startTestPortico();
  t.after(() => portico.close());
  const upstream = await listenHttp((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  t.after(() => upstream.close());
  const port = await freePort();
  const applied = await portico.api.post(
    '/api/v1/config',
    `portico: v1
gatewayGroups:
  - { name: native, listeners: [{ name: http, port: ${port} }], rateLimit: { mode: native } }
services:
  - { name: orders, endpoints: [{ host: 127.0.0.1, port: ${upstream.port} }] }
plans:
  - { name: small, limits: [{ requests: 100, per: minute }], quotas: [{ requests: 4, per: day }] }
products:
  - name: shop
    gatewayGroups: [native]
    basePath: /shop
    routes: [{ name: all, match: { path: { type: prefix, value: / } }, service: orders }]
partners:
  - { name: acme, subscriptions: [{ product: shop, plan: small }] }
`,
    { 'content-type': 'application/yaml' },
  );
  assert.equal(applied.status, 200, applied.text);
  const key = (await portico.api.post('/api/v1/partners/acme/api-keys', { name: 'k' })).body.key as string;
  const partner = portico.api.withToken((await portico.api.post('/api/v1/partners/acme/portal-tokens', { name: 'acme-portal' })).body.token);
  const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: 'native', nodeId: 'portal-native' });
  assert.ok(envoy, 'Envoy is installed');
  await envoy.waitForListener('http');
  const call = async () => (await fetch(`http://127.0.0.1:${port}/shop/x`, { headers: { 'x-api-key': key } })).status;
  await waitFor('Envoy to serve the key', async () => ((await call()) === 200 ? true : undefined));

  const quota = async () => (await partner.get('/api/v1/portal/usage')).body.budgets.find((b: { budget: string }) => b.budget === 'small:shop:*:day');
  // The first request was counted once its access-log batch arrived.
  const first = await waitFor('the first request in the ledger', async () => ((await quota())?.used === 1 ? await quota() : undefined));
  assert.deepEqual([first.source, first.group, first.limit, first.remaining], ['quota-ledger', 'native', 4, 3]);
  assert.equal((await call()) + (await call()), 400);
  await waitFor('three requests in the ledger', async () => ((await quota())?.used === 3 ? true : undefined));

  // The quota used up: the ledger says 0 remaining, and Envoy refuses after the push it triggers.
  assert.equal(await call(), 200);
  const used = await waitFor('the quota used up in the ledger', async () => {
    const q = await quota();
    return q?.remaining === 0 ? q : undefined;
  });
  assert.equal(used.used, 4);
  await waitFor('Envoy to refuse past the quota', async () => ((await call()) === 429 ? true : undefined));

  const rate = (await partner.get('/api/v1/portal/usage')).body.budgets.find((b: { budget: string }) => b.budget === 'small:shop:*:minute');
  assert.equal(rate.source, 'envoy');
  assert.equal(rate.used, undefined);
  assert.match(rate.note, /token bucket/);
});
