// A limit global to a gateway group, natively: the control plane divides each plan limit among the
// group's connected Envoys, and re-divides (a push) when one goes. Two real Envoys share one
// listener port (SO_REUSEPORT: the kernel spreads connections between them, as a load balancer
// would), a client opens a new connection per request well above the limit, and the requests the
// fleet admits in steady state are counted against the limit.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freePort, waitFor } from '../support/components.ts';
import { startEnvoy, waitInSync, type TestEnvoy } from '../support/envoy.ts';
import { startTestPortico } from '../support/portico.ts';
import { echo } from '../support/seed003.ts';
import YAML from 'yaml';

const LIMIT = 20; // per second, for the whole group

/** The token bucket of the shared budget as one Envoy holds it. */
async function bucket(envoy: TestEnvoy): Promise<Record<string, unknown> | undefined> {
  const dump = JSON.stringify(await envoy.configDump('dynamic_listeners'));
  const m = /"portico_budget","value":"shared:api:\*:second:0"\}[^\]]*\],"token_bucket":(\{[^}]*\})/.exec(dump);
  return m ? JSON.parse(m[1]!) : undefined;
}

/** Sends requests on new connections from `workers` loops for `ms`; counts 200s and 429s by when they were sent. */
async function load(url: string, ms: number, workers: number): Promise<{ ok: number; limited: number; other: number; sent: number }> {
  const end = Date.now() + ms;
  const out = { ok: 0, limited: 0, other: 0, sent: 0 };
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (Date.now() < end) {
        out.sent++;
        try {
          const r = await fetch(url, { headers: { connection: 'close' } });
          await r.arrayBuffer();
          if (r.status === 200) out.ok++;
          else if (r.status === 429) out.limited++;
          else out.other++;
        } catch {
          out.other++;
        }
        // Well above the limit, without taking the CPU from the Envoys.
        await new Promise((r) => setTimeout(r, 20));
      }
    }),
  );
  return out;
}

describe('a plan limit shared by the Envoys of a group (native mode)', () => {
  it('is divided among the connected Envoys: the fleet admits the limit, within 10 %; one Envoy gone, the other gets it all', { timeout: 300_000 }, async (t) => {
    const portico = await startTestPortico();
    const upstream = await echo('echo');
    t.after(async () => {
      await portico.close();
      await upstream.close();
    });
    const xds = [`127.0.0.1:${portico.grpcPort}`];
    const a = await startEnvoy(t, { xdsAddresses: xds, group: 'edge', nodeId: 'fleet-a' });
    if (!a) return;
    const b = (await startEnvoy(t, { xdsAddresses: xds, group: 'edge', nodeId: 'fleet-b' }))!;
    const port = await freePort();
    const doc = {
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port, address: '127.0.0.1' }], rateLimit: { mode: 'native' } }],
      services: [{ name: 'echo', endpoints: [{ host: '127.0.0.1', port: upstream.port }] }],
      products: [
        {
          name: 'api',
          gatewayGroups: ['edge'],
          basePath: '/api',
          auth: { accept: ['none'] },
          publicPlan: 'shared',
          routes: [{ name: 'all', match: { path: { type: 'prefix', value: '/' } }, service: 'echo' }],
        },
      ],
      // Counted by route: one budget for every caller, so the fleet's admitted count is the limit's.
      plans: [{ name: 'shared', limits: [{ requests: LIMIT, per: 'second' }], countBy: { kind: 'route' } }],
    };
    const r = await portico.api.post('/api/v1/config', YAML.stringify(doc), { 'content-type': 'application/yaml' });
    assert.equal(r.status, 200, r.text);

    try {
      // Each Envoy: 10 per second (one token every 100 ms), capacity 10.
      const half = { max_tokens: LIMIT / 2, tokens_per_fill: 1, fill_interval: '0.100s' };
      for (const e of [a, b]) {
        await e.waitForListener('http', 60_000);
        await waitFor(`${e.nodeId} to hold its half of the limit`, async () => JSON.stringify(await bucket(e)) === JSON.stringify(half), 60_000);
        await waitInSync(portico, 'edge', e.nodeId);
      }
      const url = `http://127.0.0.1:${port}/api/x`;
      // Drain the buckets (they start full), then count a steady window.
      await load(url, 2_000, 6);
      const windowMs = 10_000;
      const s = await load(url, windowMs, 6);
      const expected = (LIMIT * windowMs) / 1000;
      t.diagnostic(`sent ${s.sent}, admitted ${s.ok}, refused ${s.limited}, other ${s.other}; limit ${expected} in the window`);
      assert.equal(s.other, 0, 'every request was admitted or refused with 429');
      assert.ok(s.sent > 2 * expected, `the load (${s.sent}) must exceed the limit for the count to mean anything`);
      // Both Envoys admitted: each served its share.
      for (const e of [a, b]) assert.ok((await e.stat('portico_plan_limit_1.http_local_rate_limit.ok')) > 0, `${e.nodeId} admitted requests`);
      assert.ok(Math.abs(s.ok - expected) <= expected * 0.1, `admitted ${s.ok}, expected ${expected} ± 10 %`);

      // One Envoy goes: the other is given the whole limit (a push), at the first fill after it.
      await b.stop();
      const whole = { max_tokens: LIMIT, tokens_per_fill: 1, fill_interval: '0.050s' };
      await waitFor('fleet-a to hold the whole limit', async () => JSON.stringify(await bucket(a)) === JSON.stringify(whole), 60_000);
    } catch (e) {
      t.diagnostic(a.output().slice(-2000));
      throw e;
    }
  });
});
