// The translator's observability output: off by default (no extra cluster or logger), the gRPC
// access logger and its cluster when an access-log address is set, OpenTelemetry tracing and its
// collector cluster when a collector is set, every resource strict-valid for Envoy's protos, and
// route stat prefixes / stat-safe names that Envoy's tag extraction can split.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ModelSnapshot } from '../../src/model/model.ts';
import type { JsonObject } from '../../src/translate/envoy/common.ts';
import { virtualHostName } from '../../src/translate/envoy/observability.ts';
import { OTEL_CLUSTER, TELEMETRY_CLUSTER } from '../../src/translate/to-ir/telemetry.ts';
import { translate, type TranslateOptions } from '../../src/translate/index.ts';
import { STATS_TAGS } from '../../src/xds/bootstrap.ts';
import { checkGroupResources } from '../../src/xds/index.ts';
import { jsonAt, validModel } from '../support/translate.ts';

/** One product with one route on group edge. */
function model(): ModelSnapshot {
  return validModel([
    ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 10000 }] }],
    ['services', { name: 'orders', endpoints: [{ host: '127.0.0.1', port: 3000 }] }],
    ['products', { name: 'orders', gatewayGroups: ['edge'], hosts: ['api.example.com'], basePath: '/orders' }],
    ['routes', { product: 'orders', name: 'list', match: { path: { type: 'prefix', value: '/' } }, service: 'orders' }],
  ]);
}

function edge(options: TranslateOptions) {
  const g = translate(model(), options).get('edge')!;
  assert.deepEqual(checkGroupResources(g), [], 'strict-valid for Envoy');
  const listener = g.listeners[0] as JsonObject;
  const hcm = jsonAt(listener, 'filter_chains', 0, 'filters', 0, 'typed_config') as JsonObject;
  return { g, hcm, clusters: g.clusters as JsonObject[], routes: g.routes as JsonObject[] };
}

describe('translator observability', () => {
  it('adds nothing when telemetry is off', () => {
    const { hcm, clusters } = edge({ calloutAddress: '127.0.0.1:9001' });
    assert.deepEqual(
      (hcm.access_log as JsonObject[]).map((a) => a.name),
      // Two lines' shapes (ext_authz runs here: who called comes from headers or its metadata), one per request.
      ['envoy.access_loggers.stdout', 'envoy.access_loggers.stdout'],
    );
    assert.equal(hcm.tracing, undefined);
    assert.deepEqual(
      clusters.map((c) => c.name),
      ['orders', 'portico.callouts'],
    );
  });

  it('streams access logs to the telemetry cluster with group, product, route and partner tags', () => {
    const { hcm, clusters } = edge({ calloutAddress: '127.0.0.1:9001', telemetry: { accessLogAddress: 'portico.svc:18000' } });
    const loggers = hcm.access_log as JsonObject[];
    assert.deepEqual(
      loggers.map((a) => a.name),
      ['envoy.access_loggers.stdout', 'envoy.access_loggers.stdout', 'envoy.access_loggers.http_grpc'],
    );
    const common = jsonAt(loggers[2], 'typed_config', 'common_config') as JsonObject;
    assert.equal(jsonAt(common, 'grpc_service', 'envoy_grpc', 'cluster_name'), TELEMETRY_CLUSTER);
    assert.equal(common.transport_api_version, 'V3');
    assert.deepEqual(
      (common.custom_tags as JsonObject[]).map((t) => [t.tag, jsonAt(t, 'literal', 'value') ?? jsonAt(t, 'metadata', 'metadata_key', 'path', 0, 'key') ?? jsonAt(t, 'request_header', 'name')]),
      [
        ['group', 'edge'],
        ['product', 'product'],
        ['route', 'route'],
        ['partner', 'x-portico-partner'],
      ],
    );
    const c = clusters.find((x) => x.name === TELEMETRY_CLUSTER)!;
    assert.equal(c.type, 'STRICT_DNS', 'a name is resolved');
    assert.equal(c.alt_stat_name, 'portico_telemetry');
    assert.ok(jsonAt(c, 'typed_extension_protocol_options'), 'HTTP/2 (gRPC)');
    // The JSON stdout log names the caller and the decision.
    const fields = jsonAt(loggers[0], 'typed_config', 'log_format', 'json_format') as JsonObject;
    for (const k of ['partner', 'plan', 'credential', 'authz_error', 'response_code_details', 'product', 'route', 'request_id', 'status', 'duration_ms', 'upstream_host']) assert.ok(k in fields, k);
    assert.ok(!JSON.stringify(fields).includes('x-api-key') && !JSON.stringify(fields).toLowerCase().includes('authorization'), 'no credential header is logged');
  });

  it('traces with OpenTelemetry to the collector cluster, sampling as set', () => {
    const { hcm, clusters } = edge({ calloutAddress: '127.0.0.1:9001', telemetry: { otelCollectorAddress: '10.0.0.9:4317', otelSamplePercent: 25 } });
    assert.equal(jsonAt(hcm, 'tracing', 'provider', 'name'), 'envoy.tracers.opentelemetry');
    assert.equal(jsonAt(hcm, 'tracing', 'provider', 'typed_config', 'grpc_service', 'envoy_grpc', 'cluster_name'), OTEL_CLUSTER);
    assert.equal(jsonAt(hcm, 'tracing', 'provider', 'typed_config', 'service_name'), 'portico-edge');
    assert.equal(jsonAt(hcm, 'tracing', 'random_sampling', 'value'), 25);
    assert.equal(clusters.find((x) => x.name === OTEL_CLUSTER)?.type, 'STATIC');
    assert.ok(!(hcm.access_log as JsonObject[]).some((a) => a.name === 'envoy.access_loggers.http_grpc'), 'no access-log streaming unless asked');
  });

  it('gives model routes a product/route stat prefix and virtual hosts dot-free names the bootstrap tag splits', () => {
    const { routes } = edge({ calloutAddress: '127.0.0.1:9001' });
    const vhosts = jsonAt(routes[0], 'virtual_hosts') as JsonObject[];
    assert.deepEqual(
      vhosts.map((v) => v.name),
      ['api_example_com', 'any_host'],
    );
    const rs = jsonAt(vhosts[0], 'routes') as JsonObject[];
    assert.equal(rs.find((r) => r.name === 'orders/list')?.stat_prefix, 'orders/list');
    assert.equal(rs.find((r) => r.name === 'portico/not-found')?.stat_prefix, undefined, "the gateway's own routes have none");
    // The stat name Envoy builds, and what the bootstrap's portico_product tag extracts from it.
    const stat = `vhost.${virtualHostName('api.example.com')}.route.orders/list.upstream_rq_200`;
    const tag = STATS_TAGS.find((t) => t.tag_name === 'portico_product')!;
    const m = new RegExp(String(tag.regex)).exec(stat);
    assert.equal(m?.[2], 'orders');
  });

  it('logs who called from the identity headers where no ext_authz runs; with ext_authz, identified requests from the headers, the rest from its metadata', () => {
    const loggers = (mode: 'native' | 'exact' | 'mixed') => {
      const m = validModel([
        ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 10000 }], authz: { mode: mode === 'exact' ? 'exact' : 'native' } }],
        ['services', { name: 'orders', endpoints: [{ host: '127.0.0.1', port: 3000 }] }],
        ['products', { name: 'orders', gatewayGroups: ['edge'], basePath: '/orders', auth: { accept: ['api_key'] } }],
        ['routes', { product: 'orders', name: 'list', match: { path: { type: 'prefix', value: '/' } }, service: 'orders' }],
        // mixed: a second product whose plan asks for exact counting goes to the callout, orders stays native.
        ...(mode === 'mixed'
          ? ([
              ['products', { name: 'billing', gatewayGroups: ['edge'], basePath: '/billing', auth: { accept: ['api_key'] } }],
              ['routes', { product: 'billing', name: 'list', match: { path: { type: 'prefix', value: '/' } }, service: 'orders' }],
              ['plans', { name: 'strict', limits: [{ requests: 5, per: 'minute' }], countBy: { kind: 'partner' }, exact: true }],
              ['subscriptions', { partner: 'acme', product: 'billing', plan: 'strict' }],
            ] as const)
          : []),
        ['plans', { name: 'free' }],
        ['partners', { name: 'acme' }],
        ['subscriptions', { partner: 'acme', product: 'orders', plan: 'free' }],
        ['apiKeys', { partner: 'acme', name: 'k', prefix: 'aaaaaaaa', hash: 'h'.repeat(43), secret: `ptk_aaaaaaaa_${'A'.repeat(43)}` }],
      ] as Parameters<typeof validModel>[0]);
      const g = translate(m, { calloutAddress: '127.0.0.1:9001' }).get('edge')!;
      assert.deepEqual(checkGroupResources(g), [], 'strict-valid for Envoy');
      const hcm = jsonAt(g.listeners[0] as JsonObject, 'filter_chains', 0, 'filters', 0, 'typed_config') as JsonObject;
      const names = (hcm.http_filters as JsonObject[]).map((f) => f.name);
      return {
        filters: ['envoy.filters.http.ext_authz', 'envoy.filters.http.api_key_auth'].filter((f) => names.includes(f)),
        loggers: (hcm.access_log as JsonObject[]).map((a) => {
          const json = jsonAt(a, 'typed_config', 'log_format', 'json_format') as JsonObject;
          return { who: [json.partner, json.plan, json.credential, json.authz_error], filter: a.filter };
        }),
      };
    };
    const headers = ['%REQ(x-portico-partner)%', '%REQ(x-portico-plan)%', '%REQ(x-portico-credential)%', null];
    const metadata = ['partner', 'plan', 'credential', 'error'].map((k) => `%DYNAMIC_METADATA(envoy.filters.http.ext_authz:${k})%`);
    const present = (p: boolean) => ['x-portico-partner', 'x-portico-credential'].map((name) => ({ header_filter: { header: { name, present_match: p } } }));
    // Every route native: the headers api_key_auth and the route set (the edge strips a client's own);
    // no ext_authz error can exist, so that field is a literal null.
    assert.deepEqual(loggers('native'), { filters: ['envoy.filters.http.api_key_auth'], loggers: [{ who: headers, filter: undefined }] });
    // With ext_authz: a request carrying an identity header was identified (natively, or allowed by the
    // callout, which sets the same headers); one carrying neither is logged from the callout's
    // metadata, which names the partner it refused. Exactly one line per request.
    const split = [
      { who: headers, filter: { or_filter: { filters: present(true) } } },
      { who: metadata, filter: { and_filter: { filters: present(false) } } },
    ];
    assert.deepEqual(loggers('exact'), { filters: ['envoy.filters.http.ext_authz'], loggers: split });
    assert.deepEqual(loggers('mixed'), { filters: ['envoy.filters.http.ext_authz', 'envoy.filters.http.api_key_auth'], loggers: split }, 'native routes beside callout routes');
  });

  it("tags spans with the partner from the identity header where Envoy identifies callers, from ext_authz's metadata where only the callout does", () => {
    const tag = (mode: 'native' | 'exact') => {
      const m = validModel([
        ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 10000 }], authz: { mode } }],
        ['services', { name: 'orders', endpoints: [{ host: '127.0.0.1', port: 3000 }] }],
        ['products', { name: 'orders', gatewayGroups: ['edge'], basePath: '/orders', auth: { accept: ['api_key'] } }],
        ['routes', { product: 'orders', name: 'list', match: { path: { type: 'prefix', value: '/' } }, service: 'orders' }],
        ['plans', { name: 'free' }],
        ['partners', { name: 'acme' }],
        ['subscriptions', { partner: 'acme', product: 'orders', plan: 'free' }],
        ['apiKeys', { partner: 'acme', name: 'k', prefix: 'aaaaaaaa', hash: 'h'.repeat(43), secret: `ptk_aaaaaaaa_${'A'.repeat(43)}` }],
      ]);
      const g = translate(m, { calloutAddress: '127.0.0.1:9001', telemetry: { otelCollectorAddress: '10.0.0.9:4317' } }).get('edge')!;
      assert.deepEqual(checkGroupResources(g), [], 'strict-valid for Envoy');
      const hcm = jsonAt(g.listeners[0] as JsonObject, 'filter_chains', 0, 'filters', 0, 'typed_config') as JsonObject;
      return (jsonAt(hcm, 'tracing', 'custom_tags') as JsonObject[]).find((t) => t.tag === 'portico.partner');
    };
    // api_key_auth sets the header; metadata would be empty for every native caller.
    assert.deepEqual(tag('native'), { tag: 'portico.partner', request_header: { name: 'x-portico-partner' } });
    // The callout identifies everybody: its metadata names refused partners too.
    assert.deepEqual(tag('exact'), { tag: 'portico.partner', metadata: { kind: { request: {} }, metadata_key: { key: 'envoy.filters.http.ext_authz', path: [{ key: 'partner' }] } } });
  });
});
