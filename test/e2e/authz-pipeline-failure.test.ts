// Fail-closed and fail-open with the callouts in a process of their own: `bin/portico serve` as
// PORTICO_ROLE=xds (admin API + ADS) and as PORTICO_ROLE=callouts (ext_authz), both on one real
// PostgreSQL, Envoy reaching the callouts through PORTICO_CALLOUT_ADDR. Stopping the callouts makes
// protected routes 503 `authorization_unavailable` while public routes keep working; switching the
// group to `open` through the admin API lets protected routes through with no identity headers;
// restarting the callouts brings normal decisions back. Decisions are counted by the process that
// made them (GET /metrics), by product, partner and outcome.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { createDatabase, freePort, serveListenEnv, startPostgres, startProcess, waitFor, type RunningProcess } from '../support/components.ts';
import { assertGatewayError, assertUnauthorized, authzDecisions, identityHeadersOf, upstreamHeaders } from '../support/authz-gateway.ts';
import { startEnvoy } from '../support/envoy.ts';
import { startTestIssuer } from '../support/jwks.ts';
import { ApiClient } from '../support/portico.ts';
import { call, seed003 } from '../support/seed003.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NODE = 'edge-authz-failure';
const TOKEN = 'failure-test-admin-token';

describe('authz pipeline: the callouts in their own process, stopped and restarted', () => {
  it('fails closed, fails open when told to, and resumes', { timeout: 600_000 }, async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    t.after(() => pg.stop());
    const databaseUrl = createDatabase(pg, 'portico_authz_failure');
    const issuer = await startTestIssuer();
    const seed = await seed003({ keepAuth: true, jwksUri: issuer.jwksUri });
    const [xdsAdmin, grpcPort, calloutsAdmin, calloutPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(PORTICO_|DATABASE_URL$|REDIS_URL$)/.test(k)));
    const common = {
      ...inherited,
      ...(await serveListenEnv()),
      DATABASE_URL: databaseUrl,
      PORTICO_MASTER_KEY: randomBytes(32).toString('base64'),
      PORTICO_ADMIN_TOKEN: TOKEN,
      PORTICO_LOG_LEVEL: 'warn',
      PORTICO_RECONCILE_MS: '1000',
      PORTICO_SHUTDOWN_GRACE_MS: '2000',
    };
    const roles = {
      xds: {
        ...common,
        PORTICO_ROLE: 'xds',
        PORTICO_ADMIN_ADDR: `127.0.0.1:${xdsAdmin}`,
        PORTICO_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
        PORTICO_CALLOUT_ADDR: `127.0.0.1:${calloutPort}`,
      },
      callouts: {
        ...common,
        PORTICO_ROLE: 'callouts',
        PORTICO_ADMIN_ADDR: `127.0.0.1:${calloutsAdmin}`,
        PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${calloutPort}`,
      },
    };
    const xdsApi = new ApiClient(`http://127.0.0.1:${xdsAdmin}`, TOKEN);
    const calloutsUrl = `http://127.0.0.1:${calloutsAdmin}`;
    const procs: RunningProcess[] = [];
    const start = async (role: keyof typeof roles): Promise<RunningProcess> => {
      const proc = startProcess(path.join(ROOT, 'bin/portico'), ['serve'], { env: roles[role], cwd: ROOT });
      procs.push(proc);
      const api = role === 'xds' ? xdsApi : new ApiClient(calloutsUrl, TOKEN);
      await waitFor(
        `the ${role} process to be ready`,
        async () => {
          if (proc.child.exitCode !== null) throw new Error(`portico (${role}) exited (${proc.child.exitCode}): ${proc.output().slice(-3000)}`);
          return (await api.get('/readyz')).status === 200 ? true : undefined;
        },
        180_000,
        250,
      );
      return proc;
    };
    t.after(async () => {
      for (const p of procs) await p.stop('SIGTERM');
      await seed.close();
      await issuer.close();
    });

    // xDS first (it applies the migrations), then the callouts on the same database.
    await start('xds');
    let callouts = await start('callouts');
    const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${grpcPort}`], group: 'edge', nodeId: NODE });
    if (!envoy) return;
    const gw = (p: string, init?: RequestInit) => call(`${seed.gatewayUrl}${p}`, init);
    const doc = seed.document;
    doc.plans.push({ name: 'unlimited' });
    doc.partners.push({ name: 'acme', kind: 'service_account', subscriptions: [{ product: 'orders', plan: 'unlimited' }] });
    assert.equal(doc.gatewayGroups[0].authz.failureMode, 'closed', 'seed 003 fails closed');
    const spoof = { 'x-portico-partner': 'evil', 'x-portico-plan': 'platinum', 'x-user-id': 'root', 'x-user-role': 'admin' };

    try {
      const applied = await xdsApi.post('/api/v1/config', YAML.stringify(doc), { 'content-type': 'application/yaml' });
      assert.equal(applied.status, 200, applied.text);
      const created = await xdsApi.post('/api/v1/partners/acme/api-keys', { name: 'primary' });
      assert.equal(created.status, 201, created.text);
      const key = created.body.key as string;
      const withKey = { headers: { 'x-api-key': key, ...spoof } };
      /** Waits (up to 60 s) for a request with the key to reach the upstream, and returns it. */
      const keyedRequestPasses = (what: string) =>
        waitFor(
          what,
          async () => {
            const r = await gw('/api/orders/o_1', withKey);
            return r.status === 200 ? r : undefined;
          },
          60_000,
          200,
        );
      await envoy.waitForListener('http', 60_000);

      await t.test('the callouts process follows the model written through the xds process and decides', async () => {
        // The key was written through the other process: the callouts replica learns it from PostgreSQL.
        const ok = await keyedRequestPasses('the callouts process to accept the new key');
        assert.deepEqual(identityHeadersOf(upstreamHeaders(ok)), {
          'x-portico-credential': 'api_key',
          'x-portico-partner': 'acme',
          'x-portico-plan': 'unlimited',
          'x-portico-product': 'orders',
          'x-portico-route': 'orders',
        });
        assertUnauthorized(await gw('/api/orders/o_1'), 'missing_credentials', 'no key');
        const token = await issuer.token({ sub: 'user-1', claims: { team: 'web-app', role: 'buyer' } });
        const byJwt = upstreamHeaders(await gw('/api/orders/o_1', { headers: { authorization: `Bearer ${token}` } }));
        assert.deepEqual([byJwt['x-portico-partner'], byJwt['x-user-id'], byJwt['x-user-role']], ['web-app', 'user-1', 'buyer']);
      });

      await t.test('decisions are counted by the callouts process, by product, partner and outcome', async () => {
        const allow = { product: 'orders', partner: 'acme', outcome: 'allow' };
        const deny = { product: 'orders', partner: 'none', outcome: 'deny', reason: 'missing_credentials' };
        const before = [await authzDecisions(calloutsUrl, allow), await authzDecisions(calloutsUrl, deny)];
        for (let i = 0; i < 4; i++) assert.equal((await gw(`/api/orders/o_${i}`, withKey)).status, 200);
        for (let i = 0; i < 3; i++) assert.equal((await gw(`/api/orders/o_${i}`)).status, 401);
        assert.deepEqual([(await authzDecisions(calloutsUrl, allow)) - before[0]!, (await authzDecisions(calloutsUrl, deny)) - before[1]!], [4, 3]);
        assert.equal(await authzDecisions(`http://127.0.0.1:${xdsAdmin}`, {}), 0, 'the xds process answers no Checks');
      });

      await t.test('callouts stopped, failure mode closed: protected routes 503 authorization_unavailable, public routes keep working', async () => {
        await callouts.stop('SIGTERM');
        for (const [what, init] of [
          ['with a key', withKey],
          ['without credentials', {}],
        ] as const) {
          assertGatewayError(await gw('/api/orders/o_1', init), 503, 'authorization_unavailable', what);
          assertGatewayError(await gw('/api/users/u_1', init), 503, 'authorization_unavailable', `${what}, users`);
        }
        const health = await gw('/api/health');
        assert.equal(health.status, 200, health.text);
        assert.deepEqual(health.json, { status: 'ok' });
        const login = await gw('/api/auth/login', { method: 'POST', body: '{}', headers: spoof });
        assert.deepEqual(identityHeadersOf(upstreamHeaders(login)), {}, 'public route, no identity, spoofed copies stripped');
      });

      await t.test('switched to open through the admin API: protected routes pass, with no identity headers', async () => {
        const patched = await xdsApi.patch('/api/v1/gateway-groups/edge', { authz: { failureMode: 'open' } });
        assert.equal(patched.status, 200, patched.text);
        const passed = await keyedRequestPasses('Envoy to fail open');
        assert.equal(passed.json.service, 'orders');
        assert.deepEqual(identityHeadersOf(upstreamHeaders(passed)), {}, 'nothing was verified, so nothing is asserted upstream');
        const anonymous = await gw('/api/users/u_1', { headers: spoof });
        assert.deepEqual(identityHeadersOf(upstreamHeaders(anonymous)), {});
        assert.equal((await gw('/api/health')).status, 200);
      });

      await t.test('failing open does not hand the API key to the upstream (the router drops it)', async () => {
        const r = await gw('/api/orders/o_1', withKey);
        assert.equal(upstreamHeaders(r)['x-api-key'], undefined, 'the API key reached the upstream');
      });

      await t.test('callouts restarted: normal decisions resume (still in open mode)', async () => {
        callouts = await start('callouts');
        await waitFor('ext_authz to answer again', async () => ((await gw('/api/orders/o_1')).status === 401 ? true : undefined), 60_000, 200);
        assertUnauthorized(await gw('/api/orders/o_1'), 'missing_credentials', 'no key');
        assertUnauthorized(await gw('/api/orders/o_1', { headers: { 'x-api-key': `ptk_zzzzzzzz_${'A'.repeat(43)}` } }), 'invalid_api_key', 'unknown key');
        const ok = upstreamHeaders(await gw('/api/orders/o_1', withKey));
        assert.equal(ok['x-portico-partner'], 'acme');
        assert.equal(ok['x-user-id'], undefined);
        // The new process counts from zero: exactly what it decided since it started.
        const allow = await authzDecisions(calloutsUrl, { product: 'orders', partner: 'acme', outcome: 'allow' });
        assert.equal(allow, 1);
        assert.ok((await authzDecisions(calloutsUrl, { product: 'orders', outcome: 'deny', reason: 'invalid_api_key' })) === 1);
      });

      await t.test('back to closed: a stopped callouts process is 503 again', async () => {
        const patched = await xdsApi.patch('/api/v1/gateway-groups/edge', { authz: { failureMode: 'closed' } });
        assert.equal(patched.status, 200, patched.text);
        // Let Envoy take the change while the callouts still answer, then stop them.
        await waitFor(
          'Envoy to ACK the closed config',
          async () => {
            const configs = ((await envoy.configDump('dynamic_listeners')).configs ?? []) as Array<{ name?: string; active_state?: unknown; draining_state?: unknown }>;
            const http = configs.find((c) => c.name === 'http');
            return http?.active_state && !http.draining_state && !JSON.stringify(http.active_state).includes('"failure_mode_allow":true') ? true : undefined;
          },
          60_000,
          200,
        );
        await callouts.stop('SIGTERM');
        assertGatewayError(await gw('/api/orders/o_1', withKey), 503, 'authorization_unavailable', 'closed again');
        assert.equal((await gw('/api/health')).status, 200);
      });
    } catch (e) {
      t.diagnostic(envoy.output().slice(-3000));
      for (const p of procs) t.diagnostic(p.output().slice(-2000));
      throw e;
    }
  });
});
