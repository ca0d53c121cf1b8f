// Who called, in a mixed gateway group (routes Envoy decides natively beside routes the ext_authz
// callout decides), through the admin API, xDS and a real Envoy: every stdout access-log line names
// its caller (a native caller, a callout caller, a partner the callout refused, a partner the access
// RBAC refused), each request is logged once, and the quota ledger counts native callers of the group
// from the access-log stream until Envoy refuses them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { apiKeyProduct, assertGatewayError, assertUnauthorized, authzDecisions, createApiKey, startAuthzGateway } from '../support/authz-gateway.ts';
import type { GatewayResponse } from '../support/seed003.ts';

const NODE = 'edge-mixed-log';

type LogLine = Record<string, unknown>;

describe('access logs and quotas in a mixed group', () => {
  it('names native and callout callers in every access-log line, and counts native callers against their quota', { timeout: 300_000 }, async (t) => {
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      // Unstated rate-limit mode: the group chooses product by product (an exact plan moves only its product to the callout).
      modes: 'native',
      mutate: (doc) => {
        doc.plans.push(
          // A quota Envoy cannot count: the control plane counts it from the access logs.
          { name: 'daily', quotas: [{ requests: 3, per: 'day' }], countBy: { kind: 'partner' } },
          { name: 'counted', limits: [{ requests: 100, per: 'minute' }], countBy: { kind: 'partner' }, exact: true },
        );
        doc.products.push(apiKeyProduct('metered'), apiKeyProduct('strict'));
        doc.partners.push(
          {
            name: 'acme',
            kind: 'service_account',
            subscriptions: [
              { product: 'metered', plan: 'daily' },
              { product: 'strict', plan: 'counted' },
            ],
          },
          // Subscribed to neither: the access RBAC refuses it on metered, the callout on strict.
          { name: 'umbrella', kind: 'service_account', subscriptions: [{ product: 'catalog', plan: 'unlimited' }] },
        );
        if (!doc.plans.some((p: { name: string }) => p.name === 'unlimited')) doc.plans.push({ name: 'unlimited' });
      },
    });
    if (!g) return;
    const { api, portico, envoy } = g;
    const keys = { acme: await createApiKey(api, 'acme', 'primary'), umbrella: await createApiKey(api, 'umbrella', 'primary') };
    await g.inSync();
    const withKey = (key: string) => ({ headers: { 'x-api-key': key } });

    /** The stdout access-log lines Envoy wrote for one request id (it writes a line when the request ends). */
    const linesOf = async (r: GatewayResponse): Promise<LogLine[]> => {
      const id = r.headers.get('x-request-id');
      assert.ok(id, 'Envoy returns the request id');
      const find = () =>
        envoy
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{') && l.includes(id))
          .map((l) => JSON.parse(l) as LogLine)
          .filter((l) => l.request_id === id);
      const deadline = Date.now() + 10_000;
      let found = find();
      while (found.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        found = find();
      }
      return found;
    };
    /** Who the one line of a request names. */
    const who = async (r: GatewayResponse) => {
      const lines = await linesOf(r);
      assert.equal(lines.length, 1, `one line per request, got ${JSON.stringify(lines)}`);
      const l = lines[0]!;
      return { partner: l.partner, plan: l.plan, credential: l.credential, authz_error: l.authz_error, product: l.product };
    };

    try {
      await t.test('the group is mixed: metered is native, strict goes to the callout', async () => {
        const edge = await api.get('/api/v1/gateway-groups/edge');
        assert.deepEqual(edge.body.enforcement.rateLimit.calloutProducts, { strict: 'plan counted asks for exact counting (exact: true)' });
        const dump = JSON.stringify(await envoy.configDump('dynamic_listeners'));
        assert.ok(dump.includes('envoy.filters.http.ext_authz') && dump.includes('envoy.filters.http.api_key_auth'), 'both ext_authz and api_key_auth in the chain');
      });

      await t.test('a native caller is named from the identity headers, with no callout', async () => {
        const r = await g.call('/metered/items/1', withKey(keys.acme));
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(await who(r), { partner: 'acme', plan: 'daily', credential: 'api_key', authz_error: null, product: 'metered' });
        assert.equal(await authzDecisions(portico.adminUrl, { product: 'metered' }), 0, 'Envoy decided metered alone');
      });

      await t.test('a callout caller is named as before, allowed or refused (the refusal from the callout metadata)', async () => {
        const r = await g.call('/strict/items/1', withKey(keys.acme));
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(await who(r), { partner: 'acme', plan: 'counted', credential: 'api_key', authz_error: null, product: 'strict' });
        const refused = await g.call('/strict/items/1', withKey(keys.umbrella));
        assertGatewayError(refused, 403, 'no_subscription', 'strict refuses umbrella through the callout');
        assert.deepEqual(await who(refused), { partner: 'umbrella', plan: null, credential: 'api_key', authz_error: 'no_subscription', product: 'strict' });
        assert.ok((await authzDecisions(portico.adminUrl, { product: 'strict' })) >= 2, 'the callout decided strict');
      });

      await t.test('a native refusal names the partner the key belongs to; an unknown key names nobody', async () => {
        const refused = await g.call('/metered/items/1', withKey(keys.umbrella));
        assertGatewayError(refused, 403, 'no_subscription', 'the access RBAC refuses umbrella on metered');
        assert.deepEqual(await who(refused), { partner: 'umbrella', plan: null, credential: null, authz_error: null, product: 'metered' });
        const unknown = await g.call('/metered/items/1', withKey(`ptk_zzzzzzzz_${'A'.repeat(43)}`));
        assertUnauthorized(unknown, 'invalid_api_key', 'unknown key');
        assert.deepEqual(await who(unknown), { partner: null, plan: null, credential: null, authz_error: null, product: 'metered' });
        assert.equal(await authzDecisions(portico.adminUrl, { product: 'metered' }), 0, 'still no callout for metered');
      });

      await t.test("the quota ledger counts the group's native callers: acme is refused after its 3 a day", async () => {
        // One 200 above already counted. Requests one after another until the refusal (after one push).
        const started = Date.now();
        let admitted = 1;
        let refusal: GatewayResponse | undefined;
        while (!refusal && Date.now() - started < 60_000) {
          const r = await g.call('/metered/items/2', withKey(keys.acme));
          if (r.status === 429) refusal = r;
          else {
            assert.equal(r.status, 200, r.text);
            admitted++;
          }
        }
        assert.ok(refusal, `never refused after ${admitted} admitted`);
        t.diagnostic(`quota 3/day in a mixed group: ${admitted} admitted before the refusal`);
        assert.ok(admitted >= 3, 'the quota itself is admitted');
        assert.equal(refusal.json?.error, 'quota_exceeded', refusal.text);
        assert.equal(refusal.headers.get('x-ratelimit-limit'), '3');
        assert.deepEqual(await who(refusal), { partner: 'acme', plan: null, credential: null, authz_error: null, product: 'metered' });
        assert.equal(await authzDecisions(portico.adminUrl, { product: 'metered' }), 0, 'Envoy refused it alone');
        assert.equal((await g.call('/strict/items/1', withKey(keys.acme))).status, 200, 'the callout product is not touched');
      });
    } catch (e) {
      t.diagnostic(envoy.output().slice(-3000));
      throw e;
    }
  });
});
