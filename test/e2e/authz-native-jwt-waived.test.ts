// A JWT-excluded path whose product's public plan limits it, decided by Envoy alone (native
// authorization and limits, through the admin API, xDS and a real Envoy): anonymous callers there
// are counted on the public plan by Envoy's own buckets and refused with the 429 contract, a token
// there is never read, and the product's other paths still take tokens, on the subscriber's plan.
// An issuer naming no partner (neither partner nor partnerClaim) on the same route: Envoy verifies its
// tokens and refuses them as the callout does (403 unknown_partner), with no callout. A route the group's
// cheap no_subscription filter decides: the same answers in native and exact mode, a token without the
// partner claim refused as unknown_partner.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertGatewayError, assertUnauthorized, authzDecisions, identityHeadersOf, startAuthzGateway, upstreamHeaders } from '../support/authz-gateway.ts';
import { assertSameInBothModes } from '../support/authz-parity.ts';
import { startTestIssuer } from '../support/jwks.ts';
import type { GatewayResponse } from '../support/seed003.ts';
import { assert429 } from './ratelimit-envoy-fixture.ts';

const NODE = 'edge-native-jwt-waived';

describe('authz native mode: a JWT-excluded path limited by the public plan', () => {
  it("counts anonymous callers of an excluded path on the public plan in Envoy's buckets, with no callout", { timeout: 300_000 }, async (t) => {
    const anonIdp = await startTestIssuer({ issuer: 'https://anon.example.com', audience: 'reports.example.com', keys: [{ kid: 'a-ec', alg: 'ES256' }] });
    t.after(() => anonIdp.close());
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      modes: 'native',
      mutate: (doc) => {
        const issuer = doc.jwtIssuers.find((i: { name: string }) => i.name === 'example-auth');
        issuer.excludedPaths.push('/reports/daily/open');
        doc.jwtIssuers.push({ name: 'anon-idp', issuer: anonIdp.issuer, audiences: [anonIdp.audience], jwksUri: anonIdp.jwksUri, algorithms: ['ES256'] });
        doc.plans.push({ name: 'trickle', limits: [{ requests: 2, per: 'hour' }], countBy: { kind: 'client_ip' } }, { name: 'unlimited' });
        doc.products.push({
          name: 'reports',
          gatewayGroups: ['edge'],
          basePath: '/reports',
          jwtIssuers: ['anon-idp', 'example-auth'],
          auth: { accept: ['jwt'] },
          publicPlan: 'trickle',
          routes: [{ name: 'daily', match: { path: { type: 'prefix', value: '/daily' } }, service: 'orders' }],
        });
        doc.partners.find((p: { name: string }) => p.name === 'web-app').subscriptions.push({ product: 'reports', plan: 'unlimited' }, { product: 'digest', plan: 'unlimited' });
        // One plan, one subscriber, no suspended partner in the model: the access decision is the group's cheap no_subscription filter.
        doc.products.push({
          name: 'digest',
          gatewayGroups: ['edge'],
          basePath: '/digest',
          jwtIssuers: ['example-auth'],
          auth: { accept: ['jwt'] },
          routes: [{ name: 'latest', match: { path: { type: 'prefix', value: '/latest' } }, service: 'orders' }],
        });
        doc.partners.push({ name: 'hooli', kind: 'service_account', subscriptions: [] });
      },
    });
    if (!g) return;
    const reportsChecks = () => authzDecisions(g.portico.adminUrl, { product: 'reports' });
    const bearer = async () => ({ headers: { authorization: `Bearer ${await g.issuer.token({ sub: 'user-7', claims: { team: 'web-app' } })}` } });

    try {
      await t.test('the excluded path: anonymous, on the public plan, 2 an hour per client address, then the contract 429', async () => {
        const first = await g.call('/reports/daily/open', await bearer());
        assert.equal(first.status, 200, first.text);
        assert.deepEqual(identityHeadersOf(upstreamHeaders(first)), {
          'x-portico-credential': 'none',
          'x-portico-plan': 'trickle',
          'x-portico-product': 'reports',
          'x-portico-route': 'daily',
        });
        assert.equal(upstreamHeaders(first).authorization, '[present]', 'the token is not read there: it reaches the upstream as sent');
        assert.equal((await g.call('/reports/daily/open?page=2')).status, 200, 'the query is no part of the path');
        assert429(await g.call('/reports/daily/open'), { limit: 2, maxRetryAfter: 1800, minRetryAfter: 1800 }, 'the third call from this address');
      });

      await t.test("the route's other paths take tokens as before: a subscriber on its own plan, nobody anonymous", async () => {
        for (let i = 0; i < 4; i++) {
          const r: GatewayResponse = await g.call('/reports/daily/1', await bearer());
          assert.equal(r.status, 200, r.text);
          assert.equal(upstreamHeaders(r)['x-portico-partner'], 'web-app');
        }
        assertUnauthorized(await g.call('/reports/daily/1'), 'missing_credentials', 'no token on an ordinary path');
        assert.equal(await reportsChecks(), 0, 'Envoy decided and counted every request of reports alone');
      });

      await t.test('an issuer naming no partner: verified by Envoy, its tokens refused as unknown_partner, as the callout does', async () => {
        const issuer = await g.api.get('/api/v1/jwt-issuers/anon-idp');
        assert.deepEqual(issuer.body.nativeVerification, { envoy: true });
        const r = await g.call('/reports/daily/1', { headers: { authorization: `Bearer ${await anonIdp.token({ sub: 'user-9', claims: { team: 'web-app' } })}` } });
        assertGatewayError(r, 403, 'unknown_partner', 'a token of an issuer that names no partner (a partner-like claim is ignored)');
        assert.equal(r.json.message, 'Tokens from this issuer are not mapped to a partner.');
        assert.equal(r.headers.get('www-authenticate'), null, 'a 403 carries no challenge');
        assert.equal(await reportsChecks(), 0, 'no callout');
      });

      await t.test("a route decided by the group's no_subscription filter answers as exact mode does (a token without the partner claim: unknown_partner)", async () => {
        const token = (claims: Record<string, unknown>) => g.issuer.token({ sub: 'user-7', claims });
        const cases: Array<[string, string]> = [
          ['subscriber', await token({ team: 'web-app' })],
          ['no partner claim', await token({})],
          ['an empty partner claim', await token({ team: '' })],
          ['a partner with no subscription', await token({ team: 'hooli' })],
        ];
        const exact = await assertSameInBothModes(
          g,
          'digest',
          cases.map(([what, tok]) => ({ what, call: () => g.call('/digest/latest', { headers: { authorization: `Bearer ${tok}` } }) })),
        );
        assert.equal(exact.get('subscriber')?.identity?.['x-portico-plan'], 'unlimited');
        assert.deepEqual(exact.get('no partner claim')?.body, { error: 'unknown_partner', message: 'The token has no team claim naming a partner.' });
        assert.deepEqual(exact.get('a partner with no subscription')?.body, { error: 'no_subscription', message: 'The partner has no subscription to the digest API.' });
        const configs = (await g.envoy.configDump('dynamic_route_configs')).configs as Array<{
          route_config: { virtual_hosts: Array<{ routes: Array<{ name: string; typed_per_filter_config?: Record<string, unknown> }> }> };
        }>;
        const digest = configs.flatMap((c) => c.route_config.virtual_hosts.flatMap((v) => v.routes)).find((r) => r.name === 'digest/latest');
        const filters = Object.keys(digest?.typed_per_filter_config ?? {});
        assert.ok(filters.includes('portico.access.no_subscription') && !filters.includes('envoy.filters.http.rbac'), `decided by the skip matcher, not a per-route RBAC: ${filters}`);
      });

      await t.test('config_dump: the excluded copy carries the route limits, before the route', async () => {
        type Route = { name: string; match: { headers?: Array<{ name: string }> }; route?: { rate_limits?: unknown[] } };
        const configs = (await g.envoy.configDump('dynamic_route_configs')).configs as Array<{ route_config: { virtual_hosts: Array<{ routes: Route[] }> } }>;
        const hosts = configs
          .flatMap((c) => c.route_config.virtual_hosts)
          .map((v) => v.routes.filter((r) => r.name === 'reports/daily'))
          .filter((rs) => rs.length > 0);
        assert.ok(hosts.length > 0, 'reports/daily is served');
        const routes = hosts[0]!;
        assert.equal(routes.length, 2, `the excluded copy and the route: ${JSON.stringify(routes.map((r) => r.match))}`);
        assert.ok(
          routes[0]!.match.headers?.some((h) => h.name === ':path'),
          'the copy comes first and matches the excluded path',
        );
        assert.ok(
          routes.every((r) => (r.route?.rate_limits?.length ?? 0) > 0),
          'both count with Envoy',
        );
      });
    } catch (e) {
      t.diagnostic(g.envoy.output().slice(-3000));
      throw e;
    }
  });
});
