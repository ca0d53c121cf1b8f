// validateTranslation: what the schemas accept but Envoy would refuse or the translator cannot
// express, each named by resource and field; translate refuses such models outright.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KindName } from '../../src/model/model.ts';
import { validateModel } from '../../src/model/validate.ts';
import { applyMutations } from '../../src/model/index.ts';
import { modelOf } from '../support/ratelimit-fixtures.ts';
import { TranslationError, templateProblem, translate, validateTranslation } from '../../src/translate/index.ts';

const base: Array<[KindName, object]> = [
  ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 8080 }] }],
  ['services', { name: 'svc', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
  ['products', { name: 'p', gatewayGroups: ['edge'], basePath: '/api' }],
];

function problems(entries: Array<[KindName, object]>): string[] {
  const m = modelOf([...base, ...entries]);
  assert.deepEqual(validateModel(m), [], 'the model itself is valid: only the translator objects');
  return validateTranslation(m).map((e) => `${e.kind} ${e.key} ${e.field} [${e.code}]: ${e.message}`);
}

const route = (name: string, match: object, extra: object = {}): [KindName, object] => ['routes', { product: 'p', name, match, service: 'svc', ...extra }];

describe('validateTranslation', () => {
  it('accepts what it can express', () => {
    assert.deepEqual(
      problems([
        route('t', { path: { type: 'template', value: '/users/{id}/orders/{order=*}' } }),
        route('q', { path: { type: 'prefix', value: '/q' }, query: [{ name: 'debug', present: true, invert: true }] }),
      ]),
      [],
    );
  });

  it('refuses URI templates Envoy rejects, checked with the base path', () => {
    assert.deepEqual(
      problems([
        route('many', { path: { type: 'template', value: '/{a}/{b}/{c}/{d}/{e}/{f}' } }),
        route('long', { path: { type: 'template', value: '/{averyveryverylongname}' } }),
        route('dup', { path: { type: 'template', value: '/{a}/x/{a}' } }),
        route('huge', { path: { type: 'template', value: `/${'x'.repeat(260)}` } }),
      ]),
      [
        "routes p/dup match.path.value [invalid]: variable 'a' is bound twice",
        `routes p/huge match.path.value [invalid]: with the base path the template is 265 characters; Envoy allows 256`,
        "routes p/long match.path.value [invalid]: variable name 'averyveryverylongname' is longer than 16 characters",
        'routes p/many match.path.value [invalid]: binds 6 variables; Envoy allows 5',
      ],
    );
    assert.match(templateProblem('/a{b/{c}') ?? '', /segment 'a\{b'/);
  });

  it('refuses inverted query value matches (Envoy can only invert presence)', () => {
    assert.deepEqual(
      problems([
        route('q', {
          path: { type: 'prefix', value: '/q' },
          query: [
            { name: 'ok', present: true },
            { name: 'mode', exact: 'x', invert: true },
          ],
        }),
      ]),
      ['routes p/q match.query[1].invert [invalid]: Envoy cannot invert a query value match (only presence)'],
    );
  });

  it('refuses header rules that touch the host header', () => {
    assert.deepEqual(problems([route('h', { path: { type: 'prefix', value: '/h' } }, { requestHeaders: { set: { Host: 'x' }, remove: ['x-a', 'HOST'] } })]), [
      'routes p/h requestHeaders.set.Host [invalid]: the host header cannot be changed by header rules; use rewrite.host',
      'routes p/h requestHeaders.remove[1] [invalid]: the host header cannot be changed by header rules; use rewrite.host',
    ]);
  });

  it('refuses product hosts with ports and partial wildcard CORS origins', () => {
    assert.deepEqual(problems([['products', { name: 'w', gatewayGroups: ['edge'], hosts: ['a.example.com', 'b.example.com:8443'], cors: { allowOrigins: ['*', 'https://*.example.com'] } }]]), [
      'products w hosts[1] [invalid]: hosts are matched without their port; remove the port',
      "products w cors.allowOrigins[1] [invalid]: wildcards are not supported in origins; list each origin, or use '*' alone",
    ]);
  });

  it('refuses listener hostnames on plain HTTP and SNI names with ports', () => {
    assert.deepEqual(problems([['gatewayGroups', { name: 'more', listeners: [{ name: 'h', port: 81, hostnames: ['a.example.com'] }] }]]), [
      'gatewayGroups more listeners[0].hostnames[0] [invalid]: hostnames select the certificate by SNI, so they need protocol https',
    ]);
  });

  it('refuses upstream SNI wildcards and ports', () => {
    assert.deepEqual(problems([['services', { name: 'up', endpoints: [{ host: '10.0.0.2', port: 443 }], tls: { sni: '*.example.com', verify: false } }]]), [
      'services up tls.sni [invalid]: must be a plain DNS name (no wildcard, no port)',
    ]);
  });

  it('makes translate throw with the same errors', () => {
    const m = modelOf([...base, route('q', { path: { type: 'prefix', value: '/q' }, query: [{ name: 'mode', regex: 'a', invert: true }] })]);
    assert.throws(
      () => translate(m, { calloutAddress: '127.0.0.1:1' }),
      (e: unknown) => e instanceof TranslationError && e.errors.length === 1 && e.errors[0]!.field === 'match.query[0].invert',
    );
  });
});

describe('validateModel (route retries)', () => {
  it('needs retriable-status-codes in retryOn when a route lists status codes, as for services', () => {
    const m = modelOf([...base, route('r', { path: { type: 'prefix', value: '/r' } }, { retries: { attempts: 1, retryOn: ['5xx'], retriableStatusCodes: [503] } })]);
    assert.deepEqual(
      validateModel(m).map((e) => `${e.key} ${e.field}: ${e.message}`),
      ["p/r retries.retriableStatusCodes: needs 'retriable-status-codes' in retryOn"],
    );
  });
});

describe('validateTranslation across models', () => {
  it('re-checks a route when its product changes, though the route object stays the same (per-route results are kept)', () => {
    const m = modelOf([...base, route('t', { path: { type: 'template', value: `/${'x'.repeat(240)}/{id}` } })]);
    assert.deepEqual(validateTranslation(m), []);
    // Same route object, new product: the base path now makes the template too long for Envoy.
    const longer = applyMutations(m, [{ kind: 'products', op: 'put', key: 'p', resource: { ...m.products.get('p')!, basePath: '/a-longer-base-path' } }]);
    assert.equal(longer.routes.get('p/t'), m.routes.get('p/t'));
    assert.deepEqual(
      validateTranslation(longer).map((e) => `${e.key} ${e.field}`),
      ['p/t match.path.value'],
    );
    // A caller changing an error it was given does not change what the next validation says.
    const first = validateTranslation(longer)[0]!;
    first.message = 'changed by a caller';
    assert.match(validateTranslation(longer)[0]!.message, /with the base path the template is 265 characters/);
    assert.deepEqual(validateTranslation(m), []);
  });
});
