// Route ordering and the strip-prefix rewrite: the two path rules that decide which route serves a
// request and which path the upstream sees.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { modelOf } from '../support/ratelimit-fixtures.ts';
import type { PathMatchIR } from '../../src/translate/ir.ts';
import { applyRewrite, comparePaths, compareRoutes, prefixMatches, stripPrefixRewrite, type RouteOrderKey } from '../../src/translate/paths.ts';
import { groupToIr } from '../../src/translate/to-ir/group.ts';

const p = (kind: PathMatchIR['kind'], value: string): PathMatchIR => ({ kind, value });

function sortPaths(paths: PathMatchIR[]): string[] {
  return [...paths].sort(comparePaths).map((x) => `${x.kind} ${x.value}`);
}

describe('route ordering', () => {
  it('puts exact before template before regex before prefix, prefixes longest first', () => {
    assert.deepEqual(sortPaths([p('prefix', '/a'), p('regex', '/a/.*'), p('prefix', '/a/b/c'), p('template', '/a/{x}'), p('exact', '/a/b'), p('prefix', '/a/b')]), [
      'exact /a/b',
      'template /a/{x}',
      'regex /a/.*',
      'prefix /a/b/c',
      'prefix /a/b',
      'prefix /a',
    ]);
  });

  it('ranks both kinds of prefix together, longest first; on the same characters the segment prefix (matching less) first', () => {
    assert.deepEqual(sortPaths([p('prefix', '/a'), p('segment_prefix', '/a'), p('prefix', '/a/b/c'), p('segment_prefix', '/a/b'), p('prefix', '/a/'), p('regex', '/a(/.*)?')]), [
      'regex /a(/.*)?',
      'prefix /a/b/c',
      'segment_prefix /a/b',
      'prefix /a/',
      'segment_prefix /a',
      'prefix /a',
    ]);
    assert.equal(comparePaths(p('segment_prefix', '/a'), p('segment_prefix', '/a')), 0);
  });

  it('matches a segment prefix exactly or up to a slash, a plain prefix on any character', () => {
    for (const [path, request, match] of [
      [p('segment_prefix', '/api/orders'), '/api/orders', true],
      [p('segment_prefix', '/api/orders'), '/api/orders/', true],
      [p('segment_prefix', '/api/orders'), '/api/orders/o_1', true],
      [p('segment_prefix', '/api/orders'), '/api/ordersXYZ', false],
      [p('segment_prefix', '/api/orders'), '/api/order', false],
      [p('prefix', '/api/orders'), '/api/ordersXYZ', true],
    ] as const) {
      assert.equal(prefixMatches(path, request), match, `${path.kind} ${path.value} ${request}`);
    }
  });

  it('orders templates literal segments first, then single-segment variables, then **', () => {
    assert.deepEqual(sortPaths([p('template', '/u/**'), p('template', '/u/{id}'), p('template', '/u/me'), p('template', '/u/{id}/**'), p('template', '/u/*/x')]), [
      'template /u/me',
      'template /u/{id}',
      'template /u/*/x',
      'template /u/{id}/**',
      'template /u/**',
    ]);
  });

  it('breaks ties on the same path by constraints, then fewer methods, then host specificity, then name', () => {
    const key = (name: string, constraints: number, methodCount: number, hostRank: number): RouteOrderKey => ({ path: p('prefix', '/x'), constraints, methodCount, hostRank, name });
    const keys = [key('a/any', 0, Infinity, 2), key('b/get', 1, 1, 2), key('c/getpost', 1, 2, 2), key('d/hdr+get', 2, 1, 2), key('e/exacthost', 1, 1, 0), key('a/get', 1, 1, 2)];
    assert.deepEqual(
      keys.sort(compareRoutes).map((k) => k.name),
      ['d/hdr+get', 'e/exacthost', 'a/get', 'b/get', 'c/getpost', 'a/any'],
    );
  });

  it('orders a virtual host most-specific-first regardless of product and route names', () => {
    const m = modelOf([
      ['gatewayGroups', { name: 'g', listeners: [{ name: 'http', port: 80 }] }],
      ['services', { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
      ['products', { name: 'a', gatewayGroups: ['g'], auth: { accept: ['none'] } }],
      ['products', { name: 'b', gatewayGroups: ['g'], basePath: '/api', auth: { accept: ['none'] } }],
      ['routes', { product: 'a', name: 'a1-root', match: { path: { type: 'prefix', value: '/' } }, service: 's' }],
      ['routes', { product: 'a', name: 'a2-api-regex', match: { path: { type: 'regex', value: '/api/v[0-9]+' } }, service: 's' }],
      ['routes', { product: 'b', name: 'b1-all', match: { path: { type: 'prefix', value: '/' } }, service: 's' }],
      ['routes', { product: 'b', name: 'b2-user', match: { path: { type: 'template', value: '/users/{id}' } }, service: 's' }],
      ['routes', { product: 'b', name: 'b3-me', match: { path: { type: 'exact', value: '/users/me' } }, service: 's' }],
      ['routes', { product: 'b', name: 'b4-users', match: { path: { type: 'prefix', value: '/users' } }, service: 's' }],
      ['routes', { product: 'b', name: 'b5-users-hdr', match: { path: { type: 'prefix', value: '/users' }, headers: [{ name: 'x-v', exact: '2' }] }, service: 's' }],
    ]);
    const ir = groupToIr(m, m.gatewayGroups.get('g')!, { calloutAddress: '127.0.0.1:1' });
    const vh = ir.routeTables[0]!.virtualHosts;
    assert.deepEqual(
      vh.map((v) => v.name),
      ['any_host'],
    );
    assert.deepEqual(
      vh[0]!.routes.map((r) => r.name),
      ['b/b3-me', 'b/b2-user', 'a/a2-api-regex', 'b/b5-users-hdr', 'b/b4-users', 'b/b1-all', 'a/a1-root', 'portico/not-found'],
    );
  });
});

describe('strip-prefix rewrite', () => {
  const cases: Array<[PathMatchIR, string, string, string]> = [
    // [route path, stripPrefix, request path, upstream path]
    [p('prefix', '/api/orders'), '/api', '/api/orders', '/orders'],
    [p('prefix', '/api/orders'), '/api', '/api/orders/12', '/orders/12'],
    [p('prefix', '/api'), '/api', '/api', '/'],
    [p('prefix', '/api'), '/api', '/api/orders', '/orders'],
    [p('prefix', '/api'), '/api', '/apix', '/x'],
    [p('prefix', '/api/'), '/api', '/api/', '/'],
    [p('prefix', '/api/'), '/api', '/api/x', '/x'],
    [p('prefix', '/api/orders'), '/api/', '/api/orders/1', '/orders/1'],
    [p('prefix', '/api/'), '/api/', '/api/x', '/x'],
    [p('segment_prefix', '/api/orders'), '/api', '/api/orders', '/orders'],
    [p('segment_prefix', '/api/orders'), '/api', '/api/orders/12', '/orders/12'],
    [p('segment_prefix', '/api'), '/api', '/api', '/'],
    [p('segment_prefix', '/api'), '/api', '/api/orders', '/orders'],
    [p('segment_prefix', '/api/orders'), '/api/orders', '/api/orders/12', '/12'],
    [p('exact', '/api/auth/login'), '/api', '/api/auth/login', '/auth/login'],
    [p('exact', '/api'), '/api', '/api', '/'],
    [p('template', '/api/items/{id}'), '/api', '/api/items/7', '/items/7'],
    [p('regex', '/api/v[0-9]+/find'), '/api', '/api/v2/find', '/v2/find'],
  ];
  for (const [path, strip, request, expected] of cases) {
    it(`${path.kind} ${path.value} − ${strip}: ${request} → ${expected}`, () => {
      const rw = stripPrefixRewrite(path, strip);
      assert.ok(rw, 'a rewrite is produced');
      assert.equal(applyRewrite(path, rw, request), expected);
    });
  }

  it('uses prefix_rewrite for prefix matches whenever that is exact, a regex otherwise', () => {
    assert.deepEqual(stripPrefixRewrite(p('prefix', '/api/orders'), '/api'), { kind: 'prefix', value: '/orders' });
    assert.deepEqual(stripPrefixRewrite(p('prefix', '/api/'), '/api'), { kind: 'prefix', value: '/' });
    // '/api' + '/orders' would become '//orders' with prefix_rewrite '/'.
    assert.deepEqual(stripPrefixRewrite(p('prefix', '/api'), '/api'), { kind: 'regex', pattern: '^/api/?', substitution: '/' });
    assert.deepEqual(stripPrefixRewrite(p('exact', '/a.b/c'), '/a.b'), { kind: 'regex', pattern: '^/a\\.b/?', substitution: '/' });
    assert.deepEqual(stripPrefixRewrite(p('segment_prefix', '/api/orders'), '/api'), { kind: 'prefix', value: '/orders' });
    assert.deepEqual(stripPrefixRewrite(p('segment_prefix', '/api'), '/api'), { kind: 'regex', pattern: '^/api/?', substitution: '/' });
  });

  it('never produces an empty path', () => {
    for (const [path, strip] of [
      [p('prefix', '/v1'), '/v1'],
      [p('segment_prefix', '/v1'), '/v1'],
      [p('exact', '/v1'), '/v1'],
      [p('prefix', '/v1/'), '/v1/'],
    ] as const) {
      const rw = stripPrefixRewrite(path, strip)!;
      assert.equal(applyRewrite(path, rw, path.value), '/');
      if (rw.kind === 'prefix') assert.notEqual(rw.value, '');
    }
  });

  it("is a no-op for '/'", () => {
    assert.equal(stripPrefixRewrite(p('prefix', '/x'), '/'), undefined);
  });
});
