// Dynamic header values: the ${variable} syntax (parsing, escapes, refusals naming the variable), the
// whole-model rules (JWT claims the product's issuers forward, renames, reserved names) and the
// translation to Envoy's formatters (literal % escaped, product rules merged with a route's own).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHeaderValue } from '../../src/model/header-values.ts';
import type { KindName } from '../../src/model/model.ts';
import { validateModel } from '../../src/model/validate.ts';
import { modelToIr, validateTranslation } from '../../src/translate/index.ts';
import { modelOf } from '../support/ratelimit-fixtures.ts';

const base: Array<[KindName, object]> = [
  ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 8080 }] }],
  ['services', { name: 'svc', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
  ['jwtIssuers', { name: 'a', issuer: 'https://a', audiences: ['x'], jwksUri: 'https://a/jwks', partnerClaim: 'team', forwardClaims: { sub: 'X-User-Id', email: 'X-Email' } }],
  ['jwtIssuers', { name: 'b', issuer: 'https://b', audiences: ['x'], jwksUri: 'https://b/jwks', partnerClaim: 'team', forwardClaims: { sub: 'x-user-id' } }],
];

function modelWith(product: object, route: object = {}) {
  return modelOf([
    ...base,
    ['products', { name: 'p', gatewayGroups: ['edge'], basePath: '/api', ...product }],
    ['routes', { product: 'p', name: 'r', match: { path: { type: 'prefix', value: '/' } }, service: 'svc', ...route }],
  ]);
}

function errors(product: object, route: object = {}): string[] {
  return validateModel(modelWith(product, route)).map((e) => `${e.kind} ${e.key} ${e.field}: ${e.message}`);
}

describe('header values: parsing', () => {
  it('splits text and variables; $${ is a literal ${; a lone $ and % are text', () => {
    assert.deepEqual(parseHeaderValue('id=${uuid};p=$${x}$5%', 'request'), [
      { kind: 'text', text: 'id=' },
      { kind: 'var', name: 'uuid' },
      { kind: 'text', text: ';p=${x}$5%' },
    ]);
    assert.deepEqual(parseHeaderValue('${jwt.claim.realm_access.roles}${request.header.X-Trace}', 'request'), [
      { kind: 'var', name: 'jwt.claim.', arg: 'realm_access.roles' },
      { kind: 'var', name: 'request.header.', arg: 'x-trace' },
    ]);
    assert.deepEqual(parseHeaderValue('', 'request'), []);
  });

  it('refuses unknown variables, naming them, and unterminated ones', () => {
    assert.match(String(parseHeaderValue('a ${uuidd} b', 'request')), /^unknown variable \$\{uuidd\} \(known: uuid, request_id/);
    assert.match(String(parseHeaderValue('${}', 'request')), /^unknown variable \$\{\}/);
    assert.match(String(parseHeaderValue('${UUID}', 'request')), /unknown variable \$\{UUID\}/);
    assert.match(String(parseHeaderValue('x ${uuid', 'request')), /^unterminated \$\{ at character 3/);
    assert.match(String(parseHeaderValue('${response.header.server}', 'request')), /not known in request headers/);
    assert.ok(Array.isArray(parseHeaderValue('${response.header.server}', 'response')));
    assert.match(String(parseHeaderValue('${request.header.}', 'request')), /names no valid header/);
    assert.match(String(parseHeaderValue('${jwt.claim.a b}', 'request')), /names no valid claim/);
  });
});

describe('header values: model validation', () => {
  it('accepts every variable', () => {
    const all = '${uuid} ${request_id} ${partner} ${plan} ${credential_type} ${client_address} ${route} ${product} ${time} ${jwt.claim.sub} ${request.header.a}';
    assert.deepEqual(errors({ requestHeaders: { set: { 'x-all': all } } }, { responseHeaders: { add: { 'x-all': `${all} \${response.header.server}` } } }), []);
  });

  it('names the field and the unknown variable, on routes and products', () => {
    assert.deepEqual(errors({ responseHeaders: { set: { 'X-A': 'x ${nope}' } } }, { requestHeaders: { add: { 'X-B': '${partner_id}' } } }), [
      'products p responseHeaders.set.X-A: unknown variable ${nope} (known: uuid, request_id, partner, plan, credential_type, client_address, route, product, time, jwt.claim.<name>, request.header.<name>, response.header.<name>; write $${ for a literal ${)',
      'routes p/r requestHeaders.add.X-B: unknown variable ${partner_id} (known: uuid, request_id, partner, plan, credential_type, client_address, route, product, time, jwt.claim.<name>, request.header.<name>, response.header.<name>; write $${ for a literal ${)',
    ]);
  });

  it('a JWT claim must be forwarded to one header by every issuer the product accepts', () => {
    assert.deepEqual(errors({}, { requestHeaders: { set: { 'x-s': '${jwt.claim.sub}' } } }), []);
    assert.deepEqual(errors({}, { requestHeaders: { set: { 'x-e': '${jwt.claim.email}' } } }), [
      "routes p/r requestHeaders.set.x-e: ${jwt.claim.email}: every JWT issuer of product 'p' must forward claim 'email' to one header (JwtIssuer.forwardClaims)",
    ]);
    // Only issuer a: its forwarded email is enough.
    assert.deepEqual(errors({ jwtIssuers: ['a'] }, { requestHeaders: { set: { 'x-e': '${jwt.claim.email}' } } }), []);
  });

  it('renames: not to itself, not two to one name, never onto a reserved request header or host', () => {
    assert.deepEqual(errors({ requestHeaders: { rename: { 'X-A': 'x-a', 'X-B': 'x-c', 'X-D': 'X-C', 'X-E': 'x-portico-partner' } } }), [
      "products p requestHeaders.rename.X-A: renames 'X-A' to itself",
      "products p requestHeaders.rename.X-D: 'X-C' is already the new name of 'X-B'",
      "products p requestHeaders.rename.X-E: 'x-portico-partner': request headers starting with x-portico- are reserved for the gateway's own (clients' copies are removed at the edge)",
    ]);
    assert.deepEqual(errors({ requestHeaders: { set: { 'X-Portico-Plan': 'gold' } } }).length, 1);
    const m = modelWith({}, { requestHeaders: { rename: { 'x-forwarded-host': 'Host' } } });
    assert.deepEqual(
      validateTranslation(m).map((e) => `${e.field}: ${e.message}`),
      ['requestHeaders.rename.x-forwarded-host: the host header cannot be changed by header rules; use rewrite.host'],
    );
  });
});

describe('header values: translation', () => {
  it("escapes literal % and merges the product's rules with the route's own", () => {
    const m = modelWith(
      { requestHeaders: { set: { 'X-Cost': '100% ${product}', 'X-Keep': 'k' }, add: { 'X-Tag': 'p' }, remove: ['x-old'] } },
      { requestHeaders: { set: { 'x-cost': '${route} 5%' }, remove: ['x-tag'], rename: { 'X-In': 'X-Out' } } },
    );
    assert.deepEqual(validateModel(m), []);
    const [g] = modelToIr(m, { calloutAddress: '127.0.0.1:1' });
    const r = g!.routeTables[0]!.virtualHosts.flatMap((vh) => vh.routes).find((x) => x.name === 'p/r')!;
    assert.deepEqual(r.requestHeaders.set, [
      ['x-cost', 'r 5%%'],
      ['x-keep', 'k'],
    ]);
    assert.deepEqual(r.requestHeaders.add, []);
    assert.deepEqual(r.requestHeaders.remove, ['x-api-key', 'x-old', 'x-tag']);
    assert.deepEqual(r.requestHeaders.rename, [['x-in', 'x-out']]);
    assert.equal(g!.filters.headerRename, true);
    assert.equal(g!.correlationHeaders, undefined);
  });
});
