// OpenTelemetry tracing from the settings: with PORTICO_OTEL_COLLECTOR_ADDR set, a real Envoy sends
// spans (service portico-<group>, tagged with product and route, and with the partner Envoy's own
// api_key_auth identified) to the collector and passes the trace context upstream; with
// PORTICO_ACCESS_LOG=false it streams no access logs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freePort, waitFor } from '../support/components.ts';
import { startEnvoy, waitInSync } from '../support/envoy.ts';
import { startTestPortico } from '../support/portico.ts';
import { call } from '../support/seed003.ts';
import { listenHttp, startRawGrpcServer, type LoopbackServer } from '../support/servers.ts';
import { parseScrape, sum } from './observability-promql.ts';

const GROUP = 'edge';
const NODE = 'edge-tracing';
const KEY = `ptk_tracing1_${'T'.repeat(43)}`;
const EXPORT = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

/** An OTLP/gRPC trace collector that keeps the raw ExportTraceServiceRequest bytes it receives. */
async function startCollector(): Promise<LoopbackServer & { exports: Buffer[] }> {
  const exports: Buffer[] = [];
  const server = await startRawGrpcServer(EXPORT, (request) => {
    exports.push(request);
    return Buffer.alloc(0); // an empty ExportTraceServiceResponse
  });
  return { ...server, exports };
}

/** An upstream answering with the trace context it received. */
function startUpstream(): Promise<LoopbackServer> {
  return listenHttp((req, res) => {
    const body = JSON.stringify({ traceparent: req.headers.traceparent ?? null });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
}

describe('observability: OpenTelemetry tracing', () => {
  it('sends spans of real requests to the collector from the settings, and no access logs when they are off', async (t) => {
    const collector = await startCollector();
    const upstream = await startUpstream();
    const portico = await startTestPortico({
      env: { PORTICO_OTEL_COLLECTOR_ADDR: `127.0.0.1:${collector.port}`, PORTICO_OTEL_SAMPLE_PERCENT: '100', PORTICO_ACCESS_LOG: 'false' },
    });
    t.after(async () => {
      await portico.close();
      await upstream.close();
      await collector.close();
    });
    const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: GROUP, nodeId: NODE });
    if (!envoy) return;
    const listenerPort = await freePort();
    const doc = {
      portico: 'v1',
      gatewayGroups: [{ name: GROUP, listeners: [{ name: 'http', port: listenerPort, address: '127.0.0.1' }] }],
      services: [{ name: 'echo', endpoints: [{ host: '127.0.0.1', port: upstream.port }] }],
      products: [
        {
          name: 'catalog',
          gatewayGroups: [GROUP],
          basePath: '/catalog',
          auth: { accept: ['none'] },
          routes: [{ name: 'items', match: { path: { type: 'prefix', value: '/items' } }, service: 'echo' }],
        },
        // An API key checked by Envoy itself (native mode, the default): no callout sets metadata.
        {
          name: 'orders',
          gatewayGroups: [GROUP],
          basePath: '/orders',
          auth: { accept: ['api_key'] },
          routes: [{ name: 'list', match: { path: { type: 'prefix', value: '/list' } }, service: 'echo' }],
        },
      ],
      plans: [{ name: 'free' }],
      partners: [{ name: 'span-partner-7', apiKeys: [{ name: 'k', key: KEY }], subscriptions: [{ product: 'orders', plan: 'free' }] }],
    };
    const applied = await portico.api.post('/api/v1/config', doc);
    assert.equal(applied.status, 200, applied.text);
    await envoy.waitForListener('http', 60_000);
    await waitInSync(portico, GROUP, NODE);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await call(`http://127.0.0.1:${listenerPort}/catalog/items/${i}`);
        assert.equal(r.status, 200, r.text);
        assert.match(String(r.json.traceparent ?? ''), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/, 'the upstream receives the trace context');
      }
      const keyed = await call(`http://127.0.0.1:${listenerPort}/orders/list`, { headers: { 'x-api-key': KEY } });
      assert.equal(keyed.status, 200, keyed.text);
      // Envoy batches spans (every 5 s by default).
      const spans = await waitFor(
        'spans at the collector',
        () => (collector.exports.some((b) => b.includes('catalog/items')) && collector.exports.some((b) => b.includes('orders/list')) ? Buffer.concat(collector.exports) : undefined),
        30_000,
        200,
      );
      assert.ok(spans.includes('portico-edge'), 'service.name portico-<group>');
      assert.ok(spans.includes('portico.product') && spans.includes('catalog'), 'the product tag');
      assert.ok(spans.includes('portico.route'), 'the route tag');
      assert.ok(spans.includes('portico.partner') && spans.includes('span-partner-7'), 'the partner tag of a caller Envoy identified');

      // Access-log streaming is off: no gRPC logger in Envoy's config, no stream at the control plane.
      const listeners = JSON.stringify(await envoy.configDump('dynamic_listeners'));
      assert.ok(listeners.includes('envoy.tracers.opentelemetry'));
      assert.ok(!listeners.includes('envoy.access_loggers.http_grpc'));
      const cp = parseScrape((await portico.api.get('/metrics')).text);
      assert.equal(sum(cp, 'portico_access_log_streams'), 0);
      assert.equal(sum(cp, 'portico_http_requests_total'), 0);
    } catch (e) {
      t.diagnostic(envoy.output().slice(-4000));
      throw e;
    }
  });
});
