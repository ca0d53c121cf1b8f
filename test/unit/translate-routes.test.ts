// Route tables as Envoy receives them: virtual-host merging of host-specific and host-agnostic
// products, 405 fallbacks, the 404 catch-all, CORS preflights, per-route ext_authz and actions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KindName, ModelSnapshot } from '../../src/model/model.ts';
import type { Json, JsonObject } from '../../src/translate/envoy/common.ts';
import { translate, type GroupResources } from '../../src/translate/index.ts';
import { hostCovers } from '../../src/translate/to-ir/common.ts';
import { jsonAt, validModel } from '../support/translate.ts';

// The callout modes stated: these tests are about routes as ext_authz sees them (native: translate-native-*.test.ts).
const EXACT = { authz: { mode: 'exact' }, rateLimit: { mode: 'combined' } };
const base: Array<[KindName, object]> = [
  ['gatewayGroups', { name: 'g', listeners: [{ name: 'http', port: 80 }], ...EXACT }],
  ['gatewayGroups', { name: 'other', listeners: [{ name: 'http', port: 81 }], ...EXACT }],
  ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
  ['services', { name: 't', endpoints: [{ host: '10.0.0.2', port: 80 }], requestTimeoutMs: 2000, retries: { attempts: 2 } }],
];

function group(m: ModelSnapshot, name = 'g'): GroupResources {
  const out = translate(m, { calloutAddress: '127.0.0.1:9001' }).get(name);
  assert.ok(out, `group ${name} translated`);
  return out;
}

type VHost = { name: string; domains: string[]; routes: JsonObject[] };
function vhosts(r: GroupResources): VHost[] {
  return r.routes[0]!.virtual_hosts as Json[] as unknown as VHost[];
}
function names(vh: VHost): string[] {
  return vh.routes.map((x) => String(x.name));
}

describe('virtual hosts', () => {
  const m = validModel([
    ...base,
    ['products', { name: 'shop', gatewayGroups: ['g'], hosts: ['Shop.Example.com'], auth: { accept: ['none'] } }],
    ['products', { name: 'wild', gatewayGroups: ['g'], hosts: ['*.example.com'], auth: { accept: ['none'] } }],
    ['products', { name: 'any', gatewayGroups: ['g'], auth: { accept: ['none'] } }],
    ['products', { name: 'elsewhere', gatewayGroups: ['other'], hosts: ['elsewhere.example.com'], auth: { accept: ['none'] } }],
    ['routes', { product: 'shop', name: 'cart', match: { path: { type: 'prefix', value: '/cart' } }, service: 's' }],
    ['routes', { product: 'wild', name: 'docs', match: { path: { type: 'prefix', value: '/docs' } }, service: 's' }],
    ['routes', { product: 'any', name: 'health', match: { path: { type: 'exact', value: '/health' } }, service: 's' }],
    ['routes', { product: 'elsewhere', name: 'x', match: { path: { type: 'prefix', value: '/x' } }, service: 's' }],
  ]);
  const vh = vhosts(group(m));

  it('makes one virtual host per named host (lower-cased), exact before wildcard, then *; names are stat-safe (dots become _)', () => {
    assert.deepEqual(
      vh.map((v) => [v.name, v.domains]),
      [
        ['shop_example_com', ['shop.example.com']],
        ['*_example_com', ['*.example.com']],
        ['any_host', ['*']],
      ],
    );
  });

  it('puts host-agnostic routes, and wildcard routes that cover the host, into every named host', () => {
    assert.deepEqual(names(vh[0]!), ['any/health', 'shop/cart', 'wild/docs', 'portico/not-found']);
    assert.deepEqual(names(vh[1]!), ['any/health', 'wild/docs', 'portico/not-found']);
    assert.deepEqual(names(vh[2]!), ['any/health', 'portico/not-found']);
  });

  it('leaves out products of other gateway groups', () => {
    assert.ok(!JSON.stringify(vh).includes('elsewhere'));
    assert.deepEqual(names(vhosts(group(m, 'other'))[0]!), ['elsewhere/x', 'portico/not-found']);
  });

  it('ends every virtual host with a JSON 404 catch-all', () => {
    for (const v of vh) {
      const last = v.routes.at(-1)!;
      assert.deepEqual(last.match, { prefix: '/' });
      assert.equal(jsonAt(last, 'direct_response', 'status'), 404);
      assert.deepEqual(JSON.parse(String(jsonAt(last, 'direct_response', 'body', 'inline_string'))), { error: 'not_found', message: 'No route matches this request.' });
    }
  });

  it('knows which host patterns cover a virtual host (Envoy wildcards match one or more characters)', () => {
    assert.equal(hostCovers('*.example.com', 'api.example.com'), true);
    assert.equal(hostCovers('*.example.com', 'a.b.example.com'), true);
    assert.equal(hostCovers('*.example.com', '*.b.example.com'), true);
    assert.equal(hostCovers('*.example.com', '*.example.com'), true);
    assert.equal(hostCovers('*.example.com', 'example.com'), false);
    assert.equal(hostCovers('*.b.example.com', '*.example.com'), false);
    assert.equal(hostCovers('api.example.com', '*.example.com'), false);
  });

  it('matches hosts without their port', () => {
    assert.equal(group(m).routes[0]!.ignore_port_in_host_matching, true);
  });
});

describe('405 fallbacks', () => {
  const routes = (extra: Array<[KindName, object]>) =>
    vhosts(group(validModel([...base, ['products', { name: 'p', gatewayGroups: ['g'], basePath: '/api', auth: { accept: ['none'] } }], ...extra])))[0]!;

  it('follows a path whose routes all restrict methods, allowing their union', () => {
    const vh = routes([
      ['routes', { product: 'p', name: 'list', match: { path: { type: 'prefix', value: '/orders' }, methods: ['POST', 'GET'] }, service: 's' }],
      ['routes', { product: 'p', name: 'purge', match: { path: { type: 'prefix', value: '/orders' }, methods: ['DELETE'], headers: [{ name: 'x-admin', present: true }] }, service: 's' }],
      ['routes', { product: 'p', name: 'rest', match: { path: { type: 'prefix', value: '/' } }, service: 's' }],
    ]);
    assert.deepEqual(names(vh), ['p/purge', 'p/list', 'portico/method-not-allowed', 'p/rest', 'portico/not-found']);
    const fallback = vh.routes[2]!;
    assert.deepEqual(fallback.match, { path_separated_prefix: '/api/orders' });
    assert.equal(jsonAt(fallback, 'direct_response', 'status'), 405);
    const headers = Object.fromEntries((fallback.response_headers_to_add as JsonObject[]).map((h) => [jsonAt(h, 'header', 'key'), jsonAt(h, 'header', 'value')]));
    assert.deepEqual(headers, { allow: 'GET, POST, DELETE', 'content-type': 'application/json' });
    assert.deepEqual(JSON.parse(String(jsonAt(fallback, 'direct_response', 'body', 'inline_string'))), {
      error: 'method_not_allowed',
      message: 'This path accepts GET, POST, DELETE only.',
    });
    assert.deepEqual(jsonAt(fallback, 'metadata', 'filter_metadata', 'portico'), { product: 'p' });
  });

  it('is not added when a route on the path takes every method', () => {
    const vh = routes([
      ['routes', { product: 'p', name: 'get', match: { path: { type: 'exact', value: '/x' }, methods: ['GET'] }, service: 's' }],
      ['routes', { product: 'p', name: 'other', match: { path: { type: 'exact', value: '/x' } }, service: 't' }],
    ]);
    assert.deepEqual(names(vh), ['p/get', 'p/other', 'portico/not-found']);
  });

  it('is per path: an exact path and a prefix with the same text get their own', () => {
    const vh = routes([
      ['routes', { product: 'p', name: 'exact', match: { path: { type: 'exact', value: '/x' }, methods: ['PUT'] }, service: 's' }],
      ['routes', { product: 'p', name: 'prefix', match: { path: { type: 'prefix', value: '/x' }, methods: ['GET'] }, service: 's' }],
    ]);
    assert.deepEqual(names(vh), ['p/exact', 'portico/method-not-allowed', 'p/prefix', 'portico/method-not-allowed', 'portico/not-found']);
    assert.deepEqual(vh.routes[1]!.match, { path: '/api/x' });
    assert.deepEqual(vh.routes[3]!.match, { path_separated_prefix: '/api/x' });
  });

  it('matches methods on :method', () => {
    const vh = routes([['routes', { product: 'p', name: 'r', match: { path: { type: 'exact', value: '/x' }, methods: ['GET', 'HEAD'] }, service: 's' }]]);
    assert.deepEqual(jsonAt(vh.routes[0]!, 'match', 'headers'), [{ name: ':method', string_match: { safe_regex: { regex: '^(GET|HEAD)$' } } }]);
  });
});

describe('CORS', () => {
  const m = validModel([
    ...base,
    ['products', { name: 'web', gatewayGroups: ['g'], auth: { accept: ['api_key'] }, cors: { allowOrigins: ['https://app.example.com'], allowMethods: ['POST', 'GET'], maxAgeSeconds: 60 } }],
    ['products', { name: 'plain', gatewayGroups: ['g'], auth: { accept: ['api_key'] } }],
    ['routes', { product: 'web', name: 'save', match: { path: { type: 'exact', value: '/save' }, methods: ['POST'] }, service: 's' }],
    ['routes', { product: 'web', name: 'info', match: { path: { type: 'exact', value: '/info' } }, directResponse: { status: 200, body: 'hi' } }],
    ['routes', { product: 'web', name: 'all', match: { path: { type: 'prefix', value: '/web' } }, service: 's' }],
    ['routes', { product: 'plain', name: 'all', match: { path: { type: 'prefix', value: '/plain' } }, service: 's' }],
  ]);
  const r = group(m);
  const vh = vhosts(r)[0]!;

  it('puts the CORS filter first after identity-header stripping', () => {
    const filters = jsonAt(((r.listeners[0]!.filter_chains as JsonObject[])[0]!.filters as JsonObject[])[0]!, 'typed_config', 'http_filters') as JsonObject[];
    assert.deepEqual(
      filters.map((f) => f.name),
      ['envoy.filters.http.header_mutation', 'envoy.filters.http.cors', 'envoy.filters.http.ext_authz', 'envoy.filters.http.router'],
    );
  });

  it("sets the product's policy on its routes only", () => {
    const byName = new Map(vh.routes.map((x) => [String(x.name), x]));
    const policy = jsonAt(byName.get('web/all'), 'typed_per_filter_config', 'envoy.filters.http.cors') as JsonObject;
    assert.deepEqual(policy, {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
      allow_origin_string_match: [{ exact: 'https://app.example.com' }],
      allow_methods: 'GET, POST',
      max_age: '60',
      forward_not_matching_preflights: false,
    });
    assert.equal(jsonAt(byName.get('plain/all'), 'typed_per_filter_config', 'envoy.filters.http.cors'), undefined);
  });

  it('adds a forwarding preflight route before method-restricted and direct-response paths', () => {
    assert.deepEqual(names(vh), ['portico/cors-preflight', 'web/info', 'portico/cors-preflight', 'web/save', 'portico/method-not-allowed', 'plain/all', 'web/all', 'portico/not-found']);
    const pre = vh.routes[2]!;
    assert.deepEqual(pre.match, {
      path: '/save',
      headers: [
        { name: ':method', string_match: { exact: 'OPTIONS' } },
        { name: 'origin', present_match: true },
        { name: 'access-control-request-method', present_match: true },
      ],
    });
    assert.equal(jsonAt(pre, 'route', 'cluster'), 's');
    // The direct response has no cluster of its own: the callout cluster stands in (never contacted).
    assert.equal(jsonAt(vh.routes[0]!, 'route', 'cluster'), 'portico.callouts');
    assert.equal(jsonAt(pre, 'typed_per_filter_config', 'envoy.filters.http.ext_authz', 'disabled'), true);
    assert.ok(jsonAt(pre, 'typed_per_filter_config', 'envoy.filters.http.cors'));
  });
});

describe('route actions', () => {
  const m = validModel([
    ...base,
    ['products', { name: 'p', gatewayGroups: ['g'], auth: { accept: ['jwt', 'api_key'] } }],
    ['routes', { product: 'p', name: 'inherit', match: { path: { type: 'prefix', value: '/a' } }, service: 't' }],
    ['routes', { product: 'p', name: 'own', match: { path: { type: 'prefix', value: '/b' } }, service: 't', timeoutMs: 250, retries: { attempts: 0 } }],
    [
      'routes',
      {
        product: 'p',
        name: 'canary',
        match: { path: { type: 'prefix', value: '/c' } },
        backends: [
          { service: 's', weight: 5 },
          { service: 't', weight: 95 },
        ],
      },
    ],
    ['routes', { product: 'p', name: 'public', match: { path: { type: 'prefix', value: '/d' } }, service: 's', auth: { accept: ['none'] } }],
    [
      'routes',
      {
        product: 'p',
        name: 'hdrs',
        match: { path: { type: 'prefix', value: '/e' } },
        service: 's',
        requestHeaders: { set: { 'X-B': '50%', 'X-A': 'a' }, add: { Via: 'gw' }, remove: ['Cookie'] },
      },
    ],
  ]);
  const byName = new Map(vhosts(group(m))[0]!.routes.map((x) => [String(x.name), x]));

  it("inherits the service's timeout and retries unless the route sets its own", () => {
    assert.equal(jsonAt(byName.get('p/inherit'), 'route', 'timeout'), '2s');
    assert.deepEqual(jsonAt(byName.get('p/inherit'), 'route', 'retry_policy'), { retry_on: 'connect-failure,refused-stream', num_retries: 2 });
    assert.equal(jsonAt(byName.get('p/own'), 'route', 'timeout'), '0.250s');
    assert.equal(jsonAt(byName.get('p/own'), 'route', 'retry_policy'), undefined);
  });

  it('splits weighted backends and takes timeout and retries from the heaviest', () => {
    const canary = byName.get('p/canary');
    assert.deepEqual(jsonAt(canary, 'route', 'weighted_clusters'), {
      clusters: [
        { name: 's', weight: 5 },
        { name: 't', weight: 95 },
      ],
    });
    assert.equal(jsonAt(canary, 'route', 'timeout'), '2s');
  });

  it('sends product, route and accepted credentials to ext_authz, and disables it for public routes', () => {
    assert.deepEqual(jsonAt(byName.get('p/inherit'), 'typed_per_filter_config', 'envoy.filters.http.ext_authz'), {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute',
      check_settings: { context_extensions: { accept: 'jwt,api_key', product: 'p', route: 'inherit' } },
    });
    assert.equal(jsonAt(byName.get('p/public'), 'typed_per_filter_config', 'envoy.filters.http.ext_authz', 'disabled'), true);
  });

  it('writes header rules literally (% escaped), sorted, set overwriting and add appending', () => {
    const r = byName.get('p/hdrs')!;
    assert.deepEqual(r.request_headers_to_add, [
      { header: { key: 'x-a', value: 'a' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-b', value: '50%%' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'via', value: 'gw' }, append_action: 'APPEND_IF_EXISTS_OR_ADD' },
    ]);
    // The product takes API keys (the default accept): the router drops the key header too.
    assert.deepEqual(r.request_headers_to_remove, ['cookie', 'x-api-key']);
  });

  it('drops the API key header at the router on routes that take keys, whatever ext_authz answers (or fails to)', () => {
    const keyed = validModel([
      ...base,
      ['products', { name: 'h', gatewayGroups: ['g'], basePath: '/h', apiKey: { header: 'X-Team-Key' } }],
      ['products', { name: 'q', gatewayGroups: ['g'], basePath: '/q', apiKey: { queryParameter: 'key' } }],
      ['products', { name: 'j', gatewayGroups: ['g'], basePath: '/j', auth: { accept: ['jwt'] } }],
      ['routes', { product: 'h', name: 'keyed', match: { path: { type: 'prefix', value: '/a' } }, service: 's', requestHeaders: { remove: ['X-Team-Key'] } }],
      ['routes', { product: 'h', name: 'open', match: { path: { type: 'prefix', value: '/b' } }, service: 's', auth: { accept: ['none'] } }],
      ['routes', { product: 'h', name: 'either', match: { path: { type: 'prefix', value: '/c' } }, service: 's', auth: { accept: ['jwt', 'api_key'] } }],
      ['routes', { product: 'q', name: 'query', match: { path: { type: 'prefix', value: '/a' } }, service: 's' }],
      ['routes', { product: 'j', name: 'jwt', match: { path: { type: 'prefix', value: '/a' } }, service: 's' }],
    ]);
    const routes = new Map(vhosts(group(keyed))[0]!.routes.map((x) => [String(x.name), x]));
    assert.deepEqual(jsonAt(routes.get('h/keyed'), 'request_headers_to_remove'), ['x-team-key'], 'the product header, lower-cased, once');
    assert.equal(jsonAt(routes.get('h/open'), 'request_headers_to_remove'), undefined, 'a public route passes what it gets');
    assert.deepEqual(jsonAt(routes.get('h/either'), 'request_headers_to_remove'), ['x-team-key']);
    assert.equal(jsonAt(routes.get('q/query'), 'request_headers_to_remove'), undefined, 'keys in the query string: no header to drop');
    assert.equal(jsonAt(routes.get('j/jwt'), 'request_headers_to_remove'), undefined, "JWT only: the Authorization header is the upstream's business");
  });

  it('keeps a single backend weighted (it is a canary slot, not a plain service)', () => {
    const one = validModel([
      ...base,
      ['products', { name: 'q', gatewayGroups: ['g'], auth: { accept: ['none'] } }],
      ['routes', { product: 'q', name: 'solo', match: { path: { type: 'prefix', value: '/' } }, backends: [{ service: 's', weight: 7 }] }],
    ]);
    const solo = vhosts(group(one))[0]!.routes[0]!;
    assert.deepEqual(jsonAt(solo, 'route', 'weighted_clusters'), { clusters: [{ name: 's', weight: 7 }] });
    assert.equal(jsonAt(solo, 'route', 'cluster'), undefined);
  });

  it('raises the direct-response body limit only when a body needs it, counting bytes', () => {
    const withBody = (body: string) =>
      group(
        validModel([
          ...base,
          ['products', { name: 'q', gatewayGroups: ['g'], auth: { accept: ['none'] } }],
          ['routes', { product: 'q', name: 'big', match: { path: { type: 'exact', value: '/big' } }, directResponse: { status: 200, body } }],
        ]),
      ).routes[0]!;
    assert.equal(withBody('x'.repeat(4000)).max_direct_response_body_size_bytes, undefined);
    assert.equal(withBody('é'.repeat(2500)).max_direct_response_body_size_bytes, 5000);
    const big = withBody('x'.repeat(65_536));
    assert.equal(big.max_direct_response_body_size_bytes, 65_536);
    const route = ((big.virtual_hosts as JsonObject[])[0]!.routes as JsonObject[])[0]!;
    assert.deepEqual(route.response_headers_to_add, [{ header: { key: 'content-type', value: 'text/plain; charset=utf-8' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }]);
  });

  it('names routes <product>/<route> and records both in route metadata', () => {
    assert.deepEqual(jsonAt(byName.get('p/own'), 'metadata'), { filter_metadata: { portico: { product: 'p', route: 'own' } } });
  });
});
