// Dynamic header values and renames through the whole pipeline (admin API → xDS → a real Envoy →
// ext_authz → an upstream that reports what it received): a correlation id distinct on every request,
// the same in the upstream's view, the response and the access log; each other ${variable} as Envoy
// resolves it; renames on requests and responses; an unknown variable refused with 422.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createApiKey, mirroredHeaders, startAuthzGateway, startMirror } from '../support/authz-gateway.ts';
import { waitFor } from '../support/components.ts';
import type { GatewayResponse } from '../support/seed003.ts';

const NODE = 'edge-headers';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('dynamic header values through a real Envoy', () => {
  it('resolves every variable, renames headers, records correlation ids, refuses unknown variables', { timeout: 300_000 }, async (t) => {
    // An upstream that reports the headers it received and answers with one of its own.
    const upstream = await startMirror({ 'x-upstream-secret': 'internal-1' });
    t.after(() => upstream.close());
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      mutate: (doc) => {
        doc.plans.push({ name: 'unlimited' });
        doc.services.push({ name: 'reporter', endpoints: [{ host: '127.0.0.1', port: upstream.port }] });
        doc.products.push({
          name: 'hdr',
          gatewayGroups: ['edge'],
          basePath: '/hdr',
          auth: { accept: ['api_key', 'jwt'] },
          requestHeaders: { set: { 'X-Correlation-ID': '${uuid}' } },
          responseHeaders: { set: { 'X-Correlation-ID': '${request.header.x-correlation-id}' } },
          routes: [
            // The same rules on a route open to anonymous callers.
            {
              name: 'open',
              match: { path: { type: 'exact', value: '/open' } },
              service: 'reporter',
              auth: { accept: ['none'] },
              requestHeaders: { set: { 'X-Partner': '${partner}', 'X-Plan': '${plan}', 'X-Credential': '${credential_type}', 'X-Subject': '${jwt.claim.sub}' } },
            },
            {
              name: 'all',
              match: { path: { type: 'prefix', value: '/' } },
              service: 'reporter',
              requestHeaders: {
                set: {
                  'X-Partner': '${partner}',
                  'X-Plan': '${plan}',
                  'X-Credential': '${credential_type}',
                  'X-Subject': '${jwt.claim.sub}',
                  'X-Client': '${client_address}',
                  'X-Where': '${product}/${route}',
                  'X-Started': '${time}',
                  'X-Req': '${request_id}',
                  'X-Literal': '100% $${uuid} $5',
                },
                add: { 'X-Trace-Copy': 'trace=${request.header.traceparent}' },
                rename: { 'X-Legacy': 'X-Modern' },
              },
              responseHeaders: { set: { 'X-Upstream-Type': '${response.header.content-type}' }, rename: { 'X-Upstream-Secret': 'X-Upstream-Info' } },
            },
          ],
        });
        doc.partners.push({ name: 'spy', subscriptions: [{ product: 'hdr', plan: 'unlimited' }] });
        doc.partners.find((p: { name: string }) => p.name === 'web-app').subscriptions.push({ product: 'hdr', plan: 'unlimited' });
      },
    });
    if (!g) return;
    const key = await createApiKey(g.api, 'spy', 'primary');
    const token = await g.issuer.token({ sub: 'user-9', claims: { team: 'web-app', role: 'reader' } });
    const accessLines = () =>
      g.envoy
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, any>);

    await t.test('a fresh correlation id per request: in the upstream view, the response and the access log', async () => {
      const seen = new Map<string, string>();
      for (let i = 0; i < 6; i++) {
        const r: GatewayResponse = await g.call('/hdr/x', { headers: { 'x-api-key': key } });
        const id: string[] | undefined = mirroredHeaders(r).get('x-correlation-id');
        assert.equal(id?.length, 1, r.text);
        assert.match(id![0]!, UUID);
        assert.equal(r.headers.get('x-correlation-id'), id![0], 'the response carries the id the upstream saw');
        assert.ok(!seen.has(id![0]!), `id ${id![0]} repeated`);
        seen.set(id![0]!, r.headers.get('x-request-id')!);
      }
      // A client cannot choose its own: the gateway overwrites it.
      const forced = mirroredHeaders(await g.call('/hdr/x', { headers: { 'x-api-key': key, 'x-correlation-id': 'mine' } })).get('x-correlation-id');
      assert.match(forced![0]!, UUID);
      const lines = await waitFor(
        'access-log lines of the six requests',
        () => {
          const byId = new Map(accessLines().map((l) => [l.request_id, l]));
          return [...seen.values()].every((r) => byId.has(r)) ? byId : undefined;
        },
        30_000,
        200,
      );
      for (const [correlation, requestId] of seen) assert.deepEqual(lines.get(requestId)!.correlation_ids, { 'x-correlation-id': correlation });
    });

    await t.test('the caller: partner, plan and credential type by API key and by JWT (with a claim); none when anonymous', async () => {
      const byKey = mirroredHeaders(await g.call('/hdr/x', { headers: { 'x-api-key': key } }));
      assert.deepEqual([byKey.get('x-partner'), byKey.get('x-plan'), byKey.get('x-credential'), byKey.get('x-subject')], [['spy'], ['unlimited'], ['api_key'], undefined]);
      const byToken = mirroredHeaders(await g.call('/hdr/x', { headers: { authorization: `Bearer ${token}` } }));
      assert.deepEqual([byToken.get('x-partner'), byToken.get('x-plan'), byToken.get('x-credential'), byToken.get('x-subject')], [['web-app'], ['unlimited'], ['jwt'], ['user-9']]);
      // Anonymous: the gateway knows no partner, so those headers are left out (a forged one is stripped at the edge).
      const anonymous = mirroredHeaders(await g.call('/hdr/open', { headers: { 'x-portico-partner': 'forged', 'x-user-id': 'forged' } }));
      assert.deepEqual([anonymous.get('x-partner'), anonymous.get('x-plan'), anonymous.get('x-subject')], [undefined, undefined, undefined]);
      assert.deepEqual(anonymous.get('x-credential'), ['none']);
    });

    await t.test('request id, client address, product and route, time, another header, literal text', async () => {
      const before = Date.now();
      const r = await g.call('/hdr/x', { headers: { 'x-api-key': key, traceparent: '00-abc-def-01' } });
      const v = mirroredHeaders(r);
      assert.deepEqual(v.get('x-req'), v.get('x-request-id'));
      assert.equal(v.get('x-req')![0], r.headers.get('x-request-id'));
      assert.deepEqual(v.get('x-client'), ['127.0.0.1']);
      assert.deepEqual(v.get('x-where'), ['hdr/all']);
      const started = v.get('x-started')![0]!;
      assert.match(started, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(Math.abs(Date.parse(started) - before) < 60_000, `${started} is about now`);
      assert.deepEqual(v.get('x-trace-copy'), ['trace=00-abc-def-01']);
      assert.deepEqual(v.get('x-literal'), ['100% ${uuid} $5']);
    });

    await t.test('renames: request header copied to its new name and removed; the same on responses; response variables', async () => {
      const r = await g.call('/hdr/x', { headers: { 'x-api-key': key, 'x-legacy': 'v1' } });
      const v = mirroredHeaders(r);
      assert.deepEqual([v.get('x-modern'), v.get('x-legacy')], [['v1'], undefined]);
      assert.equal(r.headers.get('x-upstream-info'), 'internal-1');
      assert.equal(r.headers.get('x-upstream-secret'), null);
      assert.equal(r.headers.get('x-upstream-type'), 'application/json');
      // Nothing to rename: no empty header appears.
      assert.equal(mirroredHeaders(await g.call('/hdr/x', { headers: { 'x-api-key': key } })).get('x-modern'), undefined);
    });

    await t.test('an unknown variable is a 422 naming it, and nothing changes', async () => {
      const route = await g.api.get('/api/v1/products/hdr/routes/all');
      assert.equal(route.status, 200, route.text);
      const body = { ...route.body, requestHeaders: { set: { 'X-Id': '${uuid} ${correlation_id}' } } };
      delete body.product;
      delete body.meta;
      const refused = await g.api.put('/api/v1/products/hdr/routes/all', body);
      assert.equal(refused.status, 422, refused.text);
      assert.equal(refused.headers.get('content-type'), 'application/problem+json; charset=utf-8');
      assert.equal(refused.body.errors[0].field, 'requestHeaders.set.X-Id');
      assert.match(refused.body.errors[0].message, /unknown variable \$\{correlation_id\}/);
      const product = await g.api.put('/api/v1/products/hdr', { name: 'hdr', gatewayGroups: ['edge'], basePath: '/hdr', responseHeaders: { add: { 'X-A': '${jwt.claim.email}' } } });
      assert.equal(product.status, 422, product.text);
      assert.match(product.body.errors[0].message, /must forward claim 'email'/);
      const after = mirroredHeaders(await g.call('/hdr/x', { headers: { 'x-api-key': key } }));
      assert.deepEqual(after.get('x-partner'), ['spy'], 'the route still works as before');
    });
  });
});
