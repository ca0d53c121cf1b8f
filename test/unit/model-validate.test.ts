// Whole-model validation rules: references, conflicts, certificates, and the schema messages.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KindName, ModelSnapshot } from '../../src/model/model.ts';
import { validateModel, resourceSchemaErrors, fullPath, segmentPrefix, re2Problem, serviceDiscovery } from '../../src/model/validate.ts';
import { modelOf } from '../support/ratelimit-fixtures.ts';
import { selfSigned } from '../support/certs.ts';

const base: Array<[KindName, object]> = [
  ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 8080 }] }],
  ['services', { name: 'svc', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
  ['products', { name: 'p', gatewayGroups: ['edge'], basePath: '/api' }],
];

function messages(m: ModelSnapshot): string[] {
  return validateModel(m).map((e) => `${e.kind} ${e.key} ${e.field}: ${e.message}`);
}

describe('validateModel', () => {
  it('accepts a consistent model', () => {
    assert.deepEqual(messages(modelOf([...base, ['routes', { product: 'p', name: 'r', match: { path: { type: 'prefix', value: '/x' } }, service: 'svc' }]])), []);
  });

  it('names every dangling reference with its field', () => {
    const m = modelOf([
      ['products', { name: 'lonely', gatewayGroups: ['nope'], jwtIssuers: ['ghost'] }],
      ['routes', { product: 'lonely', name: 'r', match: { path: { type: 'prefix', value: '/' } }, backends: [{ service: 'a', weight: 1 }] }],
      ['partners', { name: 'acme' }],
      ['subscriptions', { partner: 'acme', product: 'lonely', plan: 'missing' }],
    ]);
    assert.deepEqual(messages(m), [
      "products lonely gatewayGroups[0]: refers to gateway group 'nope', which does not exist",
      "products lonely jwtIssuers[0]: refers to JWT issuer 'ghost', which does not exist",
      "routes lonely/r backends[0].service: refers to service 'a', which does not exist",
      "subscriptions acme/lonely plan: refers to plan 'missing', which does not exist",
    ]);
  });

  it('finds two routes with the same match in one gateway group, across products', () => {
    const m = modelOf([
      ...base,
      ['products', { name: 'q', gatewayGroups: ['edge'] }],
      ['routes', { product: 'p', name: 'a', match: { path: { type: 'prefix', value: '/x' }, methods: ['POST', 'GET'] }, service: 'svc' }],
      ['routes', { product: 'q', name: 'b', match: { path: { type: 'prefix', value: '/api/x' }, methods: ['GET', 'POST'] }, service: 'svc' }],
      // Same path but different methods, or a different host, is not a conflict.
      ['routes', { product: 'q', name: 'c', match: { path: { type: 'prefix', value: '/api/x' }, methods: ['PUT'] }, service: 'svc' }],
    ]);
    const errors = validateModel(m);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.code, 'conflict');
    assert.equal(errors[0]!.key, 'q/b');
    assert.match(errors[0]!.message, /route 'p\/a' already matches GET\|POST prefix '\/api\/x' on host '\*' in gateway group 'edge'/);
  });

  it('takes segmentBoundary on prefix matches only; a segment prefix and a plain one on the same characters do not conflict', () => {
    const m = modelOf([
      ...base,
      ['routes', { product: 'p', name: 'exact', match: { path: { type: 'exact', value: '/e', segmentBoundary: true } }, service: 'svc' }],
      ['routes', { product: 'p', name: 'regex', match: { path: { type: 'regex', value: '/r.*', segmentBoundary: false } }, service: 'svc' }],
      ['routes', { product: 'p', name: 'orders', match: { path: { type: 'prefix', value: '/orders' } }, service: 'svc' }],
      ['routes', { product: 'p', name: 'orders-any', match: { path: { type: 'prefix', value: '/orders', segmentBoundary: false } }, service: 'svc' }],
      ['routes', { product: 'p', name: 'orders-again', match: { path: { type: 'prefix', value: '/orders', segmentBoundary: true } }, service: 'svc' }],
    ]);
    assert.deepEqual(messages(m), [
      'routes p/exact match.path.segmentBoundary: applies to prefix matches only, not exact',
      "routes p/orders-again match: route 'p/orders' already matches prefix '/api/orders' on host '*' in gateway group 'edge'",
      'routes p/regex match.path.segmentBoundary: applies to prefix matches only, not regex',
    ]);
  });

  it('refuses x-portico-* headers wherever the model would set, add, match or read one; removing one or counting by one is fine', () => {
    const m = modelOf([
      ...base,
      ['products', { name: 'k', gatewayGroups: ['edge'], basePath: '/k', apiKey: { header: 'X-Portico-Key' } }],
      [
        'routes',
        {
          product: 'p',
          name: 'r',
          match: {
            path: { type: 'prefix', value: '/r' },
            headers: [
              { name: 'x-portico-partner', exact: 'acme' },
              { name: 'x-tenant', present: true },
            ],
          },
          service: 'svc',
          requestHeaders: { set: { 'X-Portico-Partner': 'acme', 'x-ok': '1' }, add: { 'x-portico-extra': 'y' }, remove: ['x-portico-plan'] },
          responseHeaders: { set: { 'x-portico-served-by': 'edge' } },
        },
      ],
      ['jwtIssuers', { name: 'j', issuer: 'https://id.example', audiences: ['a'], jwksUri: 'https://id.example/jwks', forwardClaims: { sub: 'x-user-id', role: 'X-PORTICO-ROLE' } }],
      ['plans', { name: 'per-partner', limits: [{ requests: 1, per: 'second' }], countBy: { kind: 'header', header: 'x-portico-partner' } }],
    ]);
    const reserved = "request headers starting with x-portico- are reserved for the gateway's own (clients' copies are removed at the edge)";
    assert.deepEqual(messages(m).sort(), [
      `jwtIssuers j forwardClaims.role: 'X-PORTICO-ROLE': ${reserved}`,
      `products k apiKey.header: 'X-Portico-Key': ${reserved}`,
      `routes p/r match.headers[0].name: 'x-portico-partner': ${reserved}`,
      `routes p/r requestHeaders.add.x-portico-extra: 'x-portico-extra': ${reserved}`,
      `routes p/r requestHeaders.set.X-Portico-Partner: 'X-Portico-Partner': ${reserved}`,
    ]);
  });

  it('checks route actions, rewrites and path templates', () => {
    const m = modelOf([
      ...base,
      ['routes', { product: 'p', name: 'none', match: { path: { type: 'prefix', value: '/n' } } }],
      ['routes', { product: 'p', name: 'two', match: { path: { type: 'prefix', value: '/t' } }, service: 'svc', directResponse: { status: 200 } }],
      ['routes', { product: 'p', name: 'strip', match: { path: { type: 'prefix', value: '/s' } }, service: 'svc', rewrite: { stripPrefix: '/other' } }],
      ['routes', { product: 'p', name: 'tpl', match: { path: { type: 'template', value: '/u/{id}/**/x' } }, service: 'svc' }],
      ['routes', { product: 'p', name: 'zero', match: { path: { type: 'prefix', value: '/z' } }, backends: [{ service: 'svc', weight: 0 }] }],
    ]);
    assert.deepEqual(messages(m), [
      'routes p/none service: exactly one of service, backends, directResponse and flow must be set',
      "routes p/strip rewrite.stripPrefix: '/other' is not a prefix of the route path '/api/s'",
      'routes p/tpl match.path.value: ** may only appear in the last segment',
      'routes p/two service: exactly one of service, backends, directResponse and flow must be set',
      'routes p/zero backends: weights must not all be 0',
    ]);
  });

  it('checks listeners, TLS material and mTLS prerequisites', async () => {
    const cert = await selfSigned('edge.test');
    const other = await selfSigned('other.test');
    const m = modelOf([
      ['certificates', { name: 'good', certificate: cert.certificate, privateKey: cert.privateKey }],
      ['certificates', { name: 'mismatch', certificate: cert.certificate, privateKey: other.privateKey }],
      ['certificates', { name: 'ca-only', certificate: cert.certificate }],
      ['certificates', { name: 'junk', certificate: 'not a pem' }],
      [
        'gatewayGroups',
        {
          name: 'g',
          listeners: [
            { name: 'a', port: 443, protocol: 'https', tls: { certificate: 'ca-only' } },
            { name: 'a', port: 443, protocol: 'https' },
            { name: 'c', port: 80, tls: { certificate: 'good' } },
          ],
        },
      ],
      ['products', { name: 'needs-mtls', gatewayGroups: ['g'], auth: { accept: ['mtls'] } }],
    ]);
    assert.deepEqual(messages(m), [
      'certificates junk certificate: is not a PEM-encoded X.509 certificate',
      'certificates mismatch privateKey: does not match the certificate',
      "gatewayGroups g listeners[0].tls.certificate: certificate 'ca-only' has no private key",
      "gatewayGroups g listeners[1].name: listener name 'a' is used twice",
      "gatewayGroups g listeners[1].port: port 443 is already used by listener 'a'",
      'gatewayGroups g listeners[1].tls: is required when protocol is https',
      "gatewayGroups g listeners[2].tls: is only allowed when protocol is 'https'",
      "products needs-mtls auth.accept: accepts mtls but gateway group 'g' has no listener with tls.clientCa",
    ]);
  });

  it('checks services, issuers, plans and credential uniqueness', () => {
    const m = modelOf([
      ...base,
      ['services', { name: 'named', discovery: 'static', endpoints: [{ host: 'db.internal', port: 5432 }] }],
      ['services', { name: 'tls', endpoints: [{ host: '10.0.0.2', port: 443 }], tls: { sni: 'x.test' } }],
      ['jwtIssuers', { name: 'i1', issuer: 'https://a', audiences: ['x'] }],
      ['jwtIssuers', { name: 'i2', issuer: 'https://a', audiences: ['x'], jwksUri: 'https://a/j', jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }],
      [
        'plans',
        {
          name: 'pl',
          countBy: { kind: 'header' },
          limits: [
            { requests: 1, per: 'second' },
            { requests: 2, per: 'second' },
          ],
          overrides: [{ product: 'p', route: 'nope' }],
        },
      ],
      ['partners', { name: 'a' }],
      ['apiKeys', { partner: 'a', name: 'k1', prefix: 'aaaaaaaa', hash: 'h' }],
      ['apiKeys', { partner: 'a', name: 'k2', prefix: 'aaaaaaaa', hash: 'h' }],
      ['mtlsIdentities', { partner: 'a', name: 'm1', match: { type: 'fingerprint', value: 'AB:CD' } }],
    ]);
    assert.deepEqual(messages(m), [
      "services named endpoints[0].host: 'db.internal' is not an IP address; use discovery: dns for host names",
      'services tls tls.ca: is required to verify the upstream (or set verify: false)',
      'jwtIssuers i1 jwksUri: exactly one of jwksUri and jwks must be set',
      'jwtIssuers i2 jwksUri: exactly one of jwksUri and jwks must be set',
      'jwtIssuers i2 jwks.keys[0]: must be a public key (no private or symmetric material)',
      "jwtIssuers i2 issuer: issuer 'https://a' is already configured by JWT issuer 'i1'",
      "plans pl countBy.header: is required when kind is 'header'",
      "plans pl overrides[0].route: refers to route 'p/nope', which does not exist",
      'plans pl limits: has two entries for the same period',
      "apiKeys a/k2 prefix: prefix 'aaaaaaaa' is already used by API key 'a/k1'",
      'mtlsIdentities a/m1 match.value: must be a SHA-256 fingerprint (64 hex digits, colons allowed)',
    ]);
  });
});

describe('schema messages and helpers', () => {
  it('report each bad field once, with readable paths', () => {
    assert.deepEqual(resourceSchemaErrors('routes', { name: 'r', match: { path: { type: 'glob', value: '/x' } }, extra: 1, timeoutMs: 1.5 }), [
      { field: 'extra', message: 'is not a known field' },
      { field: 'match.path.type', message: 'must be one of prefix, exact, template, regex' },
      { field: 'timeoutMs', message: 'must be an integer' },
    ]);
  });

  it('compute full paths, RE2 compatibility and discovery defaults', () => {
    assert.equal(fullPath({ basePath: '/api/' }, { match: { path: { type: 'prefix', value: '/orders' } } }), '/api/orders');
    // The product's root: on a segment boundary '/api' (matching '/api' and '/api/…'), without one '/api/'.
    assert.equal(fullPath({ basePath: '/api' }, { match: { path: { type: 'prefix', value: '/' } } }), '/api');
    assert.equal(fullPath({ basePath: '/api' }, { match: { path: { type: 'prefix', value: '/', segmentBoundary: false } } }), '/api/');
    assert.equal(fullPath({ basePath: '/api' }, { match: { path: { type: 'exact', value: '/' } } }), '/api/');
    assert.equal(segmentPrefix({ basePath: '/api' }, { match: { path: { type: 'prefix', value: '/' } } }), true);
    assert.equal(segmentPrefix({}, { match: { path: { type: 'prefix', value: '/' } } }), false, "'/' is a plain prefix");
    assert.equal(segmentPrefix({}, { match: { path: { type: 'prefix', value: '/orders/' } } }), false, 'a trailing slash is a boundary already');
    assert.equal(segmentPrefix({}, { match: { path: { type: 'prefix', value: '/orders', segmentBoundary: false } } }), false);
    assert.equal(segmentPrefix({}, { match: { path: { type: 'exact', value: '/orders' } } }), false);
    assert.equal(fullPath({ basePath: '/v1.0' }, { match: { path: { type: 'regex', value: '^/items/[0-9]+$' } } }), '/v1\\.0/items/[0-9]+$');
    assert.equal(re2Problem('^/a(?!b)'), 'lookahead and lookbehind are not supported by RE2');
    assert.equal(re2Problem('(a)\\1'), 'backreferences are not supported by RE2');
    assert.equal(re2Problem('^/[a-z]+$'), undefined);
    assert.equal(serviceDiscovery({ endpoints: [{ host: '10.0.0.1' }, { host: '::1' }] }), 'static');
    assert.equal(serviceDiscovery({ endpoints: [{ host: 'users' }] }), 'dns');
  });
});
