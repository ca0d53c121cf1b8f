// gRPC upstreams for HTTP clients through the whole pipeline (admin API → xDS → a real Envoy → a real
// grpc-js server): JSON over HTTP/1.1 transcoded by google.api.http annotations and the default mapping,
// server streaming as a JSON array and as NDJSON, gRPC errors as HTTP statuses in the gateway's JSON error shape, a
// route narrowed to some methods, the same service through gRPC-Web (binary and base64 text), and a
// route naming a method the descriptor set lacks refused with 422.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { freePort, startGateway } from './ratelimit-envoy-fixture.ts';
import { decodeGrpcWebText, grpcWebFrame, ordersDescriptorSet, ordersType, ORDERS_SERVICE, parseGrpcWeb, startOrdersServer } from '../support/grpc-orders.ts';
import type { GatewayResponse } from '../support/seed003.ts';

describe('gRPC upstreams through a real Envoy: JSON transcoding and gRPC-Web', () => {
  it('transcodes JSON, streams, maps errors, serves gRPC-Web, refuses unknown methods', { timeout: 300_000 }, async (t) => {
    const upstream = await startOrdersServer();
    t.after(() => upstream.close());
    const g = await startGateway(t, { nodeId: 'grpc-json', upstream: { name: 'orders', ...upstream } });
    if (!g) return;
    const port = await freePort();
    const transcode = { services: [ORDERS_SERVICE] };
    await g.apply({
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port, address: '127.0.0.1' }] }],
      services: [{ name: 'orders-grpc', protocol: 'http2', endpoints: [{ host: '127.0.0.1', port: upstream.port }], grpc: { descriptorSet: ordersDescriptorSet } }],
      products: [
        {
          name: 'shop',
          gatewayGroups: ['edge'],
          auth: { accept: ['none'] },
          routes: [
            { name: 'json', match: { path: { type: 'prefix', value: '/v1' } }, service: 'orders-grpc', transcode },
            { name: 'default-mapping', match: { path: { type: 'exact', value: `/${ORDERS_SERVICE}/Ping` } }, service: 'orders-grpc', transcode },
            { name: 'web', match: { path: { type: 'prefix', value: `/${ORDERS_SERVICE}/` } }, service: 'orders-grpc', grpcWeb: true },
          ],
        },
        {
          name: 'shop-lean',
          gatewayGroups: ['edge'],
          hosts: ['lean.test'],
          auth: { accept: ['none'] },
          routes: [
            {
              name: 'json',
              match: { path: { type: 'prefix', value: '/v1' } },
              service: 'orders-grpc',
              transcode: { ...transcode, methods: [`${ORDERS_SERVICE}/GetOrder`, `${ORDERS_SERVICE}/ListOrders`], streaming: 'ndjson' },
            },
          ],
        },
      ],
    });
    /** A request to the lean product's host (fetch cannot set Host). */
    const lean = (path: string, method = 'GET', body?: string) =>
      new Promise<GatewayResponse>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, method, headers: { host: 'lean.test', connection: 'close', 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: new Headers(res.headers as Record<string, string>), text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const json = (r: GatewayResponse) => {
      assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${r.status} ${r.text}`);
      return r.json;
    };

    await t.test('unary methods: path and body bindings, the default mapping', async () => {
      const got = await g.call('/v1/orders/o-17');
      assert.equal(got.status, 200, got.text);
      assert.deepEqual(json(got), { id: 'o-17', item: 'item-of-o-17', quantity: 4, tags: ['a', 'b'] });
      const created = await g.call('/v1/orders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ item: 'lamp', quantity: 3 }) });
      assert.equal(created.status, 200, created.text);
      assert.deepEqual(json(created), { id: 'o-new', item: 'lamp', quantity: 3, tags: [] });
      const ping = await g.call(`/${ORDERS_SERVICE}/Ping`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(ping.status, 200, ping.text);
      assert.deepEqual(json(ping), {});
    });

    await t.test('server streaming: a JSON array, or NDJSON on the route that asks for it', async () => {
      const list = await g.call('/v1/customers/c9/orders?limit=3');
      assert.equal(list.status, 200, list.text);
      assert.deepEqual(
        (json(list) as Array<{ id: string }>).map((o) => o.id),
        ['c9-1', 'c9-2', 'c9-3'],
      );
      const ndjson = await lean('/v1/customers/c9/orders?limit=2');
      assert.equal(ndjson.status, 200, ndjson.text);
      const lines = ndjson.text.trim().split('\n');
      assert.deepEqual(
        lines.map((l) => JSON.parse(l).id),
        ['c9-1', 'c9-2'],
      );
    });

    await t.test("gRPC errors become HTTP statuses and the gateway's JSON error; a URL no method maps to is a 404", async () => {
      for (const [id, status, error] of [
        ['missing-1', 404, 'not_found'],
        ['bad-1', 400, 'invalid_argument'],
        ['boom-1', 500, 'internal'],
      ] as const) {
        const r = await g.call(`/v1/orders/${id}`);
        assert.equal(r.status, status, `${id}: ${r.status} ${r.text}`);
        // The gateway's JSON error shape: the code named, the upstream's message.
        assert.deepEqual(Object.keys(json(r)).sort(), ['error', 'message'], r.text);
        assert.equal(r.json.error, error, r.text);
        // grpc-message as sent: grpc-js percent-encodes spaces.
        assert.equal(decodeURIComponent(r.json.message), id.startsWith('boom') ? 'the order store failed' : id.startsWith('bad') ? `order id ${id} is malformed` : `order ${id} not found`);
      }
      const before = upstream.calls;
      const nothing = await g.call('/v1/nothing/here');
      assert.equal(nothing.status, 404);
      // The transcoder's own refusals in the gateway's JSON shape, like every other error.
      assert.equal(json(nothing).error, 'not_found', nothing.text);
      // The narrowed route exposes no CreateOrder.
      const create = await lean('/v1/orders', 'POST', '{}');
      assert.equal(create.status, 404, create.text);
      assert.equal(upstream.calls, before, 'neither reached the upstream');
      // A body that is not the method's message: a 400 in the same shape.
      const badBody = await g.call('/v1/orders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id": [' });
      assert.equal(badBody.status, 400, badBody.text);
      assert.equal(json(badBody).error, 'bad_request', badBody.text);
      assert.equal((await lean('/v1/orders/o-3')).status, 200, 'the narrowed route still has GetOrder');
    });

    await t.test('gRPC-Web: binary and base64 text, answers and errors in trailers', async () => {
      const req = ordersType('GetOrderRequest');
      const res = ordersType('Order');
      const body = grpcWebFrame(req.encode(req.fromObject({ id: 'w-1' })).finish());
      const call = async (id: string, text: boolean) => {
        const frame = grpcWebFrame(req.encode(req.fromObject({ id })).finish());
        const r = await fetch(`http://127.0.0.1:${port}/${ORDERS_SERVICE}/GetOrder`, {
          method: 'POST',
          headers: { 'content-type': text ? 'application/grpc-web-text' : 'application/grpc-web+proto', 'x-grpc-web': '1', accept: text ? 'application/grpc-web-text' : 'application/grpc-web+proto' },
          body: text ? frame.toString('base64') : new Uint8Array(frame),
        });
        const raw = Buffer.from(await r.arrayBuffer());
        const parsed = parseGrpcWeb(text ? decodeGrpcWebText(raw.toString()) : raw);
        // A trailers-only answer (an error without messages) carries its status as headers instead of a trailer frame.
        const status = parsed.trailers['grpc-status'] ?? r.headers.get('grpc-status') ?? undefined;
        return { status: r.status, type: r.headers.get('content-type'), messages: parsed.messages, grpcStatus: status, grpcMessage: parsed.trailers['grpc-message'] ?? r.headers.get('grpc-message') };
      };
      assert.ok(body.length > 5);
      for (const text of [false, true]) {
        const ok = await call('w-1', text);
        assert.equal(ok.status, 200);
        assert.match(ok.type ?? '', text ? /^application\/grpc-web-text/ : /^application\/grpc-web/);
        assert.equal(ok.grpcStatus, '0', JSON.stringify(ok));
        assert.equal(ok.messages.length, 1);
        assert.deepEqual(res.toObject(res.decode(ok.messages[0]!)), { id: 'w-1', item: 'item-of-w-1', quantity: 3, tags: ['a', 'b'] });
        const missing = await call('missing-2', text);
        assert.equal(missing.messages.length, 0);
        assert.equal(missing.status, 200, 'gRPC-Web errors are gRPC statuses, not HTTP ones');
        assert.equal(missing.grpcStatus, '5', JSON.stringify(missing));
        assert.match(decodeURIComponent(missing.grpcMessage ?? ''), /order missing-2 not found/);
      }
      // The JSON route does not take gRPC-Web: its filter is off there.
      const web = await fetch(`http://127.0.0.1:${port}/v1/orders/o-1`, { method: 'POST', headers: { 'content-type': 'application/grpc-web+proto' }, body: new Uint8Array(body) });
      assert.notEqual(web.headers.get('content-type'), 'application/grpc-web+proto');
    });

    await t.test('a route naming a method the descriptor set lacks is refused with 422 naming it', async () => {
      const r = await g.portico.api.put('/api/v1/products/shop-lean/routes/json', {
        name: 'json',
        match: { path: { type: 'prefix', value: '/v1' } },
        service: 'orders-grpc',
        transcode: { services: [ORDERS_SERVICE], methods: [`${ORDERS_SERVICE}/GetOrder`, `${ORDERS_SERVICE}/DeleteOrder`] },
      });
      assert.equal(r.status, 422, r.text);
      assert.deepEqual(r.body.errors[0].field, 'transcode.methods[1]');
      assert.match(r.body.errors[0].message, /method 'portico\.test\.shop\.Orders\/DeleteOrder' is not in the descriptor set of 'orders-grpc'/);
      const svc = await g.portico.api.put('/api/v1/products/shop-lean/routes/json', {
        name: 'json',
        match: { path: { type: 'prefix', value: '/v1' } },
        service: 'orders-grpc',
        transcode: { services: ['portico.test.shop.Nope'] },
      });
      assert.equal(svc.status, 422, svc.text);
      assert.equal(svc.body.errors[0].field, 'transcode.services[0]');
      const garbage = await g.portico.api.put('/api/v1/services/orders-grpc', {
        name: 'orders-grpc',
        protocol: 'http2',
        endpoints: [{ host: '127.0.0.1', port: upstream.port }],
        grpc: { descriptorSet: 'AAAA' },
      });
      assert.equal(garbage.status, 422, garbage.text);
      assert.equal(garbage.body.errors[0].field, 'grpc.descriptorSet');
      assert.equal((await g.call('/v1/orders/o-2')).status, 200, 'nothing changed');
    });
  });
});
