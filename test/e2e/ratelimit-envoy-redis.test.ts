// Shared counters through Envoy: two control planes on one Redis, each feeding its own Envoy, enforce
// one global limit, in combined and in service mode (switched live through the admin API). Redis is
// stopped mid-test: requests pass unlimited meanwhile (fail open, the default) and nothing is
// counted; once it is back (its data kept on disk) counting resumes exactly where it was.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startRedis, waitFor } from '../support/components.ts';
import type { GatewayResponse } from '../support/seed003.ts';
import { freePort, newApiKey, startGateway, withKey, type Gateway, type Mode } from './ratelimit-envoy-fixture.ts';

const PARTNERS = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'] as const;
type Partner = (typeof PARTNERS)[number];
const LIMIT = 4;

describe('rate limits through two Envoys and two control planes sharing Redis', () => {
  it('one global limit in both modes, and a Redis outage', { timeout: 600_000 }, async (t) => {
    const redis = await startRedis(t);
    if (!redis) return;
    t.after(() => redis.stop());
    const env = { REDIS_URL: redis.url };
    const a = await startGateway(t, { nodeId: 'rl-redis-a', group: 'edge-a', env });
    if (!a) return;
    const b = await startGateway(t, { nodeId: 'rl-redis-b', group: 'edge-b', env, upstream: a.upstream });
    if (!b) return;
    const pair: readonly Gateway[] = [a, b];
    const keys = Object.fromEntries(PARTNERS.map((p) => [p, newApiKey()])) as Record<Partner, string>;
    const ports = { 'edge-a': await freePort(), 'edge-b': await freePort() };
    const document = (mode: Mode) => ({
      portico: 'v1',
      gatewayGroups: (['edge-a', 'edge-b'] as const).map((name) => ({
        name,
        listeners: [{ name: 'http', port: ports[name], address: '127.0.0.1' }],
        authz: { failureMode: 'closed', timeoutMs: 5000 },
        rateLimit: { mode, failureMode: 'open', timeoutMs: 5000 },
      })),
      services: [{ name: 'echo', endpoints: [{ host: '127.0.0.1', port: a.upstream.port }] }],
      products: [
        {
          name: 'api',
          gatewayGroups: ['edge-a', 'edge-b'],
          basePath: '/api',
          auth: { accept: ['api_key'] },
          routes: [{ name: 'all', match: { path: { type: 'prefix', value: '/' } }, service: 'echo' }],
        },
      ],
      // Per hour: nothing refills during the test.
      plans: [{ name: 'shared', limits: [{ requests: LIMIT, per: 'hour' }], countBy: { kind: 'partner' } }],
      partners: PARTNERS.map((p) => ({ name: p, apiKeys: [{ name: 'k', key: keys[p] }], subscriptions: [{ product: 'api', plan: 'shared' }] })),
    });
    const both = async (mode: Mode) => {
      await Promise.all([a.apply(document(mode)), b.apply(document(mode))]);
      for (const g of pair) {
        const dump = JSON.stringify(await g.envoy.configDump('dynamic_listeners'));
        assert.equal(dump.includes('envoy.filters.http.ratelimit'), mode === 'service', `${g.nodeId} runs ${mode} mode`);
      }
    };
    const send = (g: Gateway, p: Partner): Promise<GatewayResponse> => g.call(`/api/${p}`, withKey(keys[p]));

    /** Alternating between the two Envoys: LIMIT allowed in total, then both refuse. */
    const globalLimit = async (p: Partner) => {
      const remaining: string[] = [];
      for (let i = 0; i < LIMIT; i++) {
        const r = await send(pair[i % 2]!, p);
        assert.equal(r.status, 200, `${p} request ${i + 1}: ${r.text}`);
        remaining.push(r.headers.get('x-ratelimit-remaining') ?? '');
      }
      assert.deepEqual(remaining, ['3', '2', '1', '0'], `${p}: one budget across both Envoys`);
      for (const g of pair) {
        const r = await send(g, p);
        assert.equal(r.status, 429, `${p} through ${g.nodeId}: ${r.text}`);
        assert.equal(r.json.error, 'rate_limit_exceeded');
      }
    };

    /** Redis stopped: requests pass unlimited (and uncounted); back: the kept counters apply again. */
    const outage = async (exhausted: Partner, fresh: Partner) => {
      await globalLimit(exhausted);
      await redis.pause();
      for (let i = 0; i < 3; i++) {
        for (const g of pair) {
          const r = await send(g, exhausted);
          assert.equal(r.status, 200, `during the outage, through ${g.nodeId}: ${r.text}`);
          assert.equal(r.headers.get('x-ratelimit-limit'), null, 'nothing was decided, so nothing is reported');
        }
      }
      await redis.start();
      // Each control plane reconnects on its own; until then requests still fail open.
      for (const g of pair) {
        await waitFor(`${g.nodeId}'s limiter to use Redis again`, async () => ((await send(g, exhausted)).status === 429 ? true : undefined), 60_000, 200);
      }
      await globalLimit(fresh);
    };

    try {
      await both('combined');
      await t.test('combined mode: one global limit across two control planes and two Envoys', () => globalLimit('p1'));
      await t.test('combined mode: Redis stopped and restarted', () => outage('p2', 'p3'));
      await both('service');
      await t.test('service mode: one global limit across two control planes and two Envoys', () => globalLimit('p4'));
      await t.test('service mode: Redis stopped and restarted', () => outage('p5', 'p6'));
    } catch (e) {
      t.diagnostic(a.envoy.output().slice(-2000));
      t.diagnostic(b.envoy.output().slice(-2000));
      throw e;
    }
  });
});
