// Proxyless gRPC groups in the translator: API listeners per product host with the router only,
// per-host route tables without direct responses, HTTP/2 EDS clusters with a weighted locality, and
// validateTranslation refusing what gRPC clients cannot do, each named by resource and field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KindName } from '../../src/model/model.ts';
import { validateModel } from '../../src/model/validate.ts';
import { modelOf } from '../support/ratelimit-fixtures.ts';
import { TranslationError, translate, validateTranslation } from '../../src/translate/index.ts';
import type { JsonObject } from '../../src/translate/envoy/common.ts';

const OPTIONS = { calloutAddress: '127.0.0.1:18001' };
const group: [KindName, object] = ['gatewayGroups', { name: 'mesh', kind: 'proxyless-grpc' }];
const svc: [KindName, object] = ['services', { name: 'echo', endpoints: [{ host: '10.0.0.1', port: 50051 }] }];
const product = (extra: object = {}): [KindName, object] => ['products', { name: 'p', gatewayGroups: ['mesh'], hosts: ['echo.internal'], auth: { accept: ['none'] }, ...extra }];
const route = (extra: object = {}, name = 'r'): [KindName, object] => ['routes', { product: 'p', name, match: { path: { type: 'prefix', value: '/portico.Echo/' } }, service: 'echo', ...extra }];

function problems(entries: Array<[KindName, object]>): string[] {
  const m = modelOf(entries);
  assert.deepEqual(validateModel(m), [], 'the model itself is valid: only the translator objects');
  return validateTranslation(m).map((e) => `${e.kind} ${e.key} ${e.field}: ${e.message}`);
}

function only(list: string[], re: RegExp): void {
  assert.equal(list.length, 1, list.join('\n'));
  assert.match(list[0]!, re);
}

describe('proxyless gRPC translation', () => {
  const m = modelOf([
    group,
    ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 8080 }] }],
    [
      'services',
      {
        name: 'echo',
        endpoints: [
          { host: '10.0.0.1', port: 50051 },
          { host: '10.0.0.2', port: 50051 },
        ],
        healthCheck: { path: '/healthz' },
        retries: { attempts: 2, retryOn: ['reset', 'unavailable'] },
      },
    ],
    ['products', { name: 'p', gatewayGroups: ['mesh', 'edge'], hosts: ['b.internal', 'a.internal'], auth: { accept: ['none'] } }],
    ['products', { name: 'q', gatewayGroups: ['mesh'], hosts: ['a.internal'], auth: { accept: ['none'] } }],
    route(),
    ['routes', { product: 'q', name: 'exact', match: { path: { type: 'exact', value: '/portico.Echo/Say' } }, service: 'echo', timeoutMs: 1500 }],
  ]);
  const out = translate(m, OPTIONS);
  const mesh = out.get('mesh')!;

  it('emits one API listener per product host, named as the host, with RDS over ADS and the router only', () => {
    assert.deepEqual(
      mesh.listeners.map((l) => l.name),
      ['a.internal', 'b.internal'],
    );
    const l = mesh.listeners[0]! as JsonObject;
    assert.equal(l.address, undefined);
    assert.equal(l.filter_chains, undefined);
    const hcm = (l.api_listener as JsonObject).api_listener as JsonObject;
    assert.deepEqual(hcm.rds, { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: 'a.internal' });
    assert.deepEqual(
      (hcm.http_filters as JsonObject[]).map((f) => (f.typed_config as JsonObject)['@type']),
      ['type.googleapis.com/envoy.extensions.filters.http.router.v3.Router'],
    );
    for (const field of ['access_log', 'local_reply_config', 'stat_prefix']) assert.equal(hcm[field], undefined, field);
  });

  it('serves each host its own route table, most specific route first, with no direct responses', () => {
    assert.deepEqual(
      mesh.routes.map((r) => r.name),
      ['a.internal', 'b.internal'],
    );
    const vhosts = mesh.routes[0]!.virtual_hosts as JsonObject[];
    assert.equal(vhosts.length, 1);
    assert.deepEqual(vhosts[0]!.domains, ['a.internal']);
    const routes = vhosts[0]!.routes as JsonObject[];
    assert.deepEqual(
      routes.map((r) => r.name),
      ['q/exact', 'p/r'],
    );
    assert.ok(routes.every((r) => r.route && !r.direct_response));
    // b.internal only carries p's route.
    assert.deepEqual(
      ((mesh.routes[1]!.virtual_hosts as JsonObject[])[0]!.routes as JsonObject[]).map((r) => r.name),
      ['p/r'],
    );
  });

  it('turns explicit timeouts into the RPC deadline and keeps only gRPC retry conditions', () => {
    const routes = (mesh.routes[0]!.virtual_hosts as JsonObject[])[0]!.routes as JsonObject[];
    const exact = routes[0]!.route as JsonObject;
    assert.deepEqual(exact.max_stream_duration, { max_stream_duration: '1.500s' });
    assert.equal(exact.timeout, undefined);
    assert.deepEqual(exact.retry_policy, { retry_on: 'unavailable', num_retries: 2 });
    // No explicit timeout: the caller's deadline rules (no 15s default that would cut streams).
    assert.equal((routes[1]!.route as JsonObject).max_stream_duration, undefined);
  });

  it('emits HTTP/2 EDS clusters without health checks and endpoints in a weighted locality; no callout cluster', () => {
    assert.deepEqual(
      mesh.clusters.map((c) => c.name),
      ['echo'],
    );
    const c = mesh.clusters[0]!;
    assert.equal(c.type, 'EDS');
    assert.equal(c.health_checks, undefined);
    assert.ok(JSON.stringify(c.typed_extension_protocol_options).includes('http2_protocol_options'));
    const cla = mesh.endpoints[0]!;
    const locality = (cla.endpoints as JsonObject[])[0]!;
    assert.deepEqual(locality.locality, {});
    assert.equal(locality.load_balancing_weight, 1);
    assert.equal((locality.lb_endpoints as JsonObject[]).length, 2);
    assert.deepEqual(mesh.secrets, []);
  });

  it('leaves the same product in an Envoy group translated the Envoy way', () => {
    const edge = out.get('edge')!;
    assert.deepEqual(
      edge.listeners.map((l) => l.name),
      ['http'],
    );
    const routes = (edge.routes[0]!.virtual_hosts as JsonObject[]).flatMap((v) => v.routes as JsonObject[]);
    assert.ok(routes.some((r) => r.name === 'portico/not-found'));
    const r = routes.find((x) => x.name === 'p/r')!.route as JsonObject;
    assert.equal(r.timeout, '15s');
    assert.equal((r.retry_policy as JsonObject).retry_on, 'reset,unavailable');
    assert.ok(edge.clusters.find((c) => c.name === 'echo')!.health_checks);
    assert.equal((edge.endpoints[0]!.endpoints as JsonObject[])[0]!.locality, undefined);
  });

  it('an empty proxyless group serves nothing', () => {
    const g = translate(modelOf([group]), OPTIONS).get('mesh')!;
    assert.deepEqual(g, { clusters: [], endpoints: [], listeners: [], routes: [], secrets: [] });
  });
});

describe('validateTranslation for proxyless gRPC products', () => {
  it('accepts a plain gRPC product', () => {
    assert.deepEqual(
      problems([
        group,
        svc,
        product(),
        route({ retries: { attempts: 2, retryOn: ['unavailable'] }, match: { path: { type: 'regex', value: '^/a\\.B/.*$' }, headers: [{ name: 'x-tenant', exact: 'a' }] } }),
      ]),
      [],
    );
  });

  it('needs exact hosts', () => {
    only(problems([group, svc, product({ hosts: undefined }), route()]), /^products p hosts: is required in proxyless-grpc gateway group 'mesh'/);
    only(problems([group, svc, product({ hosts: ['*.internal'] }), route()]), /^products p hosts\[0\]: must be an exact host/);
    only(problems([group, svc, product({ hosts: ['*'] }), route()]), /^products p hosts\[0\]: must be an exact host/);
  });

  it('refuses credentials gRPC clients cannot present to ext_authz, including the secure default', () => {
    only(
      problems([group, svc, product({ auth: undefined }), route(), route({ match: { path: { type: 'prefix', value: '/other.Svc/' } } }, 's')]),
      /^products p auth\.accept: must be \[none\].*defaults to \[api_key, jwt\]/,
    );
    only(problems([group, svc, product(), route({ auth: { accept: ['jwt'] } })]), /^routes p\/r auth\.accept: must be \[none\]/);
    // A route opting out of the product's credentials is fine.
    assert.deepEqual(problems([group, svc, product({ auth: { accept: ['api_key'] } }), route({ auth: { accept: ['none'] } })]), []);
  });

  it('refuses route features gRPC clients ignore or reject', () => {
    const cases: Array<[object, RegExp]> = [
      [{ match: { path: { type: 'prefix', value: '/x' }, methods: ['POST'] } }, /^routes p\/r match\.methods: /],
      [{ match: { path: { type: 'prefix', value: '/x' }, query: [{ name: 'a', present: true }] } }, /^routes p\/r match\.query: /],
      [{ match: { path: { type: 'template', value: '/x/{a}' } } }, /^routes p\/r match\.path\.type: template is not supported/],
      [{ match: { path: { type: 'prefix', value: '/x' }, headers: [{ name: 'host', exact: 'a' }] } }, /^routes p\/r match\.headers\[0\]\.name: /],
      [{ match: { path: { type: 'prefix', value: '/x' }, headers: [{ name: 'trace-bin', present: true }] } }, /^routes p\/r match\.headers\[0\]\.name: /],
      [{ service: undefined, directResponse: { status: 200 } }, /^routes p\/r directResponse: .*refuse route tables with direct responses/],
      [{ rewrite: { prefix: '/y' } }, /^routes p\/r rewrite: /],
      [{ requestHeaders: { set: { 'x-a': 'b' } } }, /^routes p\/r requestHeaders: /],
      [{ responseHeaders: { remove: ['x-a'] } }, /^routes p\/r responseHeaders: /],
      [{ localRateLimit: { requests: 10, per: 'second' } }, /^routes p\/r localRateLimit: /],
      [{ retries: { attempts: 2 } }, /^routes p\/r retries\.retryOn: is required/],
      [{ retries: { attempts: 2, retryOn: ['5xx', 'unavailable'] } }, /^routes p\/r retries\.retryOn: 5xx mean nothing to gRPC clients/],
    ];
    for (const [extra, re] of cases) only(problems([group, svc, product(), route(extra)]), re);
    assert.deepEqual(problems([group, svc, product(), route({ retries: { attempts: 1, retryOn: ['unavailable', 'retriable-status-codes'], retriableStatusCodes: [503] } })]), [
      "routes p/r retries.retryOn: retriable-status-codes mean nothing to gRPC clients in proxyless-grpc gateway group 'mesh'; use cancelled, deadline-exceeded, resource-exhausted, unavailable",
      "routes p/r retries.retriableStatusCodes: is not supported in proxyless-grpc gateway group 'mesh': gRPC clients retry on gRPC status codes only",
    ]);
  });

  it('refuses product and group features that need Envoy', () => {
    only(problems([group, svc, product({ cors: { allowOrigins: ['*'] } }), route()]), /^products p cors: /);
    only(problems([group, svc, ['plans', { name: 'free' }], product({ publicPlan: 'free' }), route()]), /^products p publicPlan: /);
    only(problems([['gatewayGroups', { name: 'mesh', kind: 'proxyless-grpc', localRateLimit: { requests: 1, per: 'second' } }], svc, product(), route()]), /^gatewayGroups mesh localRateLimit: /);
  });

  it('refuses services gRPC clients cannot reach the way they are described, naming the route that uses them', () => {
    only(problems([group, ['services', { name: 'echo', endpoints: [{ host: 'echo.svc', port: 1 }] }], product(), route()]), /^services echo endpoints: must be IP addresses .*route 'p\/r'/);
    only(
      problems([group, ['services', { name: 'echo', endpoints: [{ host: '10.0.0.1', port: 1 }], lbPolicy: 'least_request' }], product(), route()]),
      /^services echo lbPolicy: must be round_robin or ring_hash/,
    );
    only(problems([group, ['services', { name: 'echo', endpoints: [{ host: '10.0.0.1', port: 1 }], tls: { verify: false } }], product(), route()]), /^services echo tls: is not supported/);
    // Backends count too; a service only Envoy groups use is not checked.
    const canary: [KindName, object] = ['services', { name: 'canary', endpoints: [{ host: 'canary.svc', port: 1 }] }];
    only(
      problems([
        group,
        svc,
        canary,
        product(),
        route({
          service: undefined,
          backends: [
            { service: 'echo', weight: 1 },
            { service: 'canary', weight: 1 },
          ],
        }),
      ]),
      /^services canary endpoints: /,
    );
    assert.deepEqual(
      problems([['gatewayGroups', { name: 'edge', listeners: [{ name: 'h', port: 80 }] }], canary, ['products', { name: 'p', gatewayGroups: ['edge'] }], route({ service: 'canary' })]),
      [],
    );
  });

  it('translate refuses such a model outright', () => {
    const m = modelOf([group, svc, product({ hosts: undefined }), route()]);
    assert.throws(
      () => translate(m, OPTIONS),
      (e: unknown) => e instanceof TranslationError && /hosts: is required/.test(e.message),
    );
  });
});
