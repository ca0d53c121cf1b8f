// Response compression through the whole pipeline (admin API → xDS → a real Envoy → an upstream that
// answers uncompressed): brotli, zstd and gzip each decoded by the client, the algorithm the client's
// Accept-Encoding prefers, identity when it accepts none of them, nothing re-compressed that the
// upstream encoded already, small and unlisted media types left alone, a route's own settings.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { freePort, startGateway } from './ratelimit-envoy-fixture.ts';
import { listenHttp } from '../support/servers.ts';

/** A body that compresses well, with a recognisable start. */
const BIG = JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item-${i}`, text: 'lorem ipsum dolor sit amet' })) });
const SMALL = JSON.stringify({ ok: true, pad: 'x'.repeat(200) });

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request with node:http, which (unlike fetch) never decodes a body: the test sees the bytes Envoy sent. */
function get(port: number, path: string, headers: Record<string, string>): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { connection: 'close', ...headers }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const DECODERS: Record<string, (b: Buffer) => Buffer> = {
  br: (b) => brotliDecompressSync(b),
  zstd: (b) => Buffer.from(zstdDecompress(b)),
  gzip: (b) => gunzipSync(b),
};

describe('response compression through a real Envoy', () => {
  it('compresses with what the client accepts, decodes back to the original, and leaves the rest alone', { timeout: 300_000 }, async (t) => {
    const upstream = await listenHttp((req, res) => {
      const path = req.url ?? '';
      if (path.endsWith('/small')) return void res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(SMALL) }).end(SMALL);
      if (path.endsWith('/png')) return void res.writeHead(200, { 'content-type': 'image/png', 'content-length': Buffer.byteLength(BIG) }).end(BIG);
      if (path.endsWith('/csv')) return void res.writeHead(200, { 'content-type': 'text/csv', 'content-length': Buffer.byteLength(BIG) }).end(BIG);
      if (path.endsWith('/encoded')) {
        const gz = gzipSync(BIG);
        return void res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': gz.length }).end(gz);
      }
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(BIG) }).end(BIG);
    });
    t.after(() => upstream.close());
    const g = await startGateway(t, { nodeId: 'compression', upstream: { name: 'web', ...upstream } });
    if (!g) return;
    const port = await freePort();
    const route = (name: string, value: string, extra: Record<string, unknown> = {}) => ({ name, match: { path: { type: 'prefix', value } }, service: 'web', ...extra });
    await g.apply({
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port, address: '127.0.0.1' }] }],
      services: [{ name: 'web', endpoints: [{ host: '127.0.0.1', port: upstream.port }] }],
      products: [
        {
          name: 'site',
          gatewayGroups: ['edge'],
          basePath: '/site',
          auth: { accept: ['none'] },
          compression: { minSizeBytes: 1024 },
          routes: [
            route('pages', '/'),
            route('legacy', '/legacy', { compression: { algorithms: ['gzip'] } }),
            route('reports', '/reports', { compression: { contentTypes: ['text/csv'], minSizeBytes: 16 } }),
            route('raw', '/raw', { compression: { enabled: false } }),
          ],
        },
      ],
    });
    const original = Buffer.from(BIG);

    await t.test('each algorithm, decoded by the client to the upstream body', async () => {
      for (const alg of ['br', 'zstd', 'gzip']) {
        const r = await get(port, '/site/data', { 'accept-encoding': alg });
        assert.equal(r.status, 200);
        assert.equal(r.headers['content-encoding'], alg, `${alg}: ${JSON.stringify(r.headers)}`);
        assert.match(String(r.headers.vary), /accept-encoding/i);
        assert.ok(r.body.length < original.length / 3, `${alg}: ${r.body.length} bytes of ${original.length}`);
        assert.deepEqual(DECODERS[alg]!(r.body), original, `${alg} decodes to the original`);
      }
    });

    await t.test("Accept-Encoding decides: q-values, identity, none at all, a route's own list", async () => {
      assert.equal((await get(port, '/site/data', { 'accept-encoding': 'gzip;q=0.5, zstd;q=0.9, br;q=0.1' })).headers['content-encoding'], 'zstd');
      assert.equal((await get(port, '/site/data', { 'accept-encoding': 'gzip, br;q=0' })).headers['content-encoding'], 'gzip');
      for (const accept of [undefined, 'identity', 'deflate', 'br;q=0']) {
        const r = await get(port, '/site/data', accept === undefined ? {} : { 'accept-encoding': accept });
        assert.equal(r.headers['content-encoding'], undefined, `accept-encoding ${accept}`);
        assert.deepEqual(r.body, original, `accept-encoding ${accept}: the body as the upstream sent it`);
      }
      const legacy = await get(port, '/site/legacy/data', { 'accept-encoding': 'br, zstd' });
      assert.equal(legacy.headers['content-encoding'], undefined, 'the legacy route offers gzip only');
      const legacyGzip = await get(port, '/site/legacy/data', { 'accept-encoding': 'br, gzip' });
      assert.equal(legacyGzip.headers['content-encoding'], 'gzip');
      assert.deepEqual(gunzipSync(legacyGzip.body), original);
    });

    await t.test('never twice, never small or unlisted bodies, never where a route turns it off', async () => {
      const encoded = await get(port, '/site/encoded', { 'accept-encoding': 'br' });
      assert.equal(encoded.headers['content-encoding'], 'gzip', 'the upstream encoded it: passed through');
      assert.deepEqual(gunzipSync(encoded.body), original);
      assert.equal((await get(port, '/site/small', { 'accept-encoding': 'br' })).headers['content-encoding'], undefined, `${Buffer.byteLength(SMALL)} bytes < 1024`);
      assert.equal((await get(port, '/site/png', { 'accept-encoding': 'br' })).headers['content-encoding'], undefined, 'image/png is not a compressed type');
      assert.equal((await get(port, '/site/raw/data', { 'accept-encoding': 'br' })).headers['content-encoding'], undefined, 'compression: {enabled: false}');
      // The reports route's own profile: CSV compressed, JSON not.
      const csv = await get(port, '/site/reports/csv', { 'accept-encoding': 'br' });
      assert.equal(csv.headers['content-encoding'], 'br');
      assert.deepEqual(brotliDecompressSync(csv.body), original);
      assert.equal((await get(port, '/site/reports/json', { 'accept-encoding': 'br' })).headers['content-encoding'], undefined);
    });

    await t.test('a bad setting is refused with 422 naming the field', async () => {
      const r = await g.portico.api.put('/api/v1/products/site/routes/raw', {
        name: 'raw',
        match: { path: { type: 'prefix', value: '/raw' } },
        service: 'web',
        compression: { algorithms: ['deflate'] },
      });
      assert.equal(r.status, 422, r.text);
      assert.equal(r.body.errors[0].field, 'compression.algorithms[0]');
      const types = await g.portico.api.put('/api/v1/products/site/routes/raw', {
        name: 'raw',
        match: { path: { type: 'prefix', value: '/raw' } },
        service: 'web',
        compression: { contentTypes: ['json'] },
      });
      assert.equal(types.status, 422, types.text);
      assert.equal(types.body.errors[0].field, 'compression.contentTypes[0]');
    });
  });
});
