// The flow runtime in a process of its own: `bin/portico serve` as PORTICO_ROLE=xds (admin API +
// ADS, no runtime) and as PORTICO_ROLE=flows (the runtime only), on one real PostgreSQL, with a real
// Envoy sending the flow route to the flows process (PORTICO_FLOWS_ADDR) and the flow's step call
// coming back through Envoy's step listener to the upstream. A model change written through the
// xds process reaches the flows process (LISTEN/NOTIFY) and changes the answer; the runs are
// counted by the flows process alone.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { createDatabase, freePort, serveListenEnv, startPostgres, startProcess, waitFor, type RunningProcess } from '../support/components.ts';
import { startEnvoy } from '../support/envoy.ts';
import { ApiClient } from '../support/portico.ts';
import { listenHttp } from '../support/servers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TOKEN = 'flows-role-test-admin-token';

/** Flow runs the process at `adminUrl` counted for the route, any status. */
async function flowRuns(adminUrl: string, route: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith('portico_flow_requests_total{') && line.includes(`route="${route}"`)) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return n;
}

describe('flows role: the flow runtime as its own process behind a real Envoy', () => {
  it('serves flow routes, follows model changes written elsewhere, counts its runs', { timeout: 600_000 }, async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    t.after(() => pg.stop());
    const databaseUrl = createDatabase(pg, 'portico_flows_role');
    const seen: string[] = [];
    const users = await listenHttp((req, res) => {
      // Envoy's router tells the upstream its timeout: a call that came another way is marked.
      seen.push(`${req.url ?? ''}${req.headers['x-envoy-expected-rq-timeout-ms'] ? '' : ' (not through Envoy)'}`);
      const body = JSON.stringify({ id: 'usr_1', name: 'Alice Chen', internal_id: 88123 });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    t.after(() => users.close());
    const [xdsAdmin, flowsAdmin, grpcPort, flowsPort, stepPort, edgePort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
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
      // Both sides agree on the step listener Envoy binds and the runtime calls back.
      PORTICO_FLOWS_STEP_ADDR: `127.0.0.1:${stepPort}`,
    };
    const roles = {
      xds: { ...common, PORTICO_ROLE: 'xds', PORTICO_ADMIN_ADDR: `127.0.0.1:${xdsAdmin}`, PORTICO_GRPC_ADDR: `127.0.0.1:${grpcPort}`, PORTICO_FLOWS_ADDR: `127.0.0.1:${flowsPort}` },
      // Every step call through Envoy (the direct path is covered by flows-gateway): this test is about the hop back.
      flows: { ...common, PORTICO_ROLE: 'flows', PORTICO_ADMIN_ADDR: `127.0.0.1:${flowsAdmin}`, PORTICO_FLOWS_LISTEN_ADDR: `127.0.0.1:${flowsPort}`, PORTICO_FLOWS_DIRECT_CALLS: 'off' },
    };
    const procs: RunningProcess[] = [];
    t.after(async () => {
      for (const p of procs) await p.stop('SIGTERM');
    });
    const start = async (role: keyof typeof roles, admin: number): Promise<void> => {
      const proc = startProcess(path.join(ROOT, 'bin/portico'), ['serve'], { env: roles[role], cwd: ROOT });
      procs.push(proc);
      const api = new ApiClient(`http://127.0.0.1:${admin}`, TOKEN);
      await waitFor(
        `the ${role} process to be ready`,
        async () => {
          if (proc.child.exitCode !== null) throw new Error(`portico (${role}) exited (${proc.child.exitCode}): ${proc.output().slice(-3000)}`);
          return (await api.get('/readyz').catch(() => undefined))?.status === 200 ? true : undefined;
        },
        180_000,
        250,
      );
    };
    // xds first (it applies the migrations), then the runtime on the same database.
    await start('xds', xdsAdmin);
    await start('flows', flowsAdmin);
    const api = new ApiClient(`http://127.0.0.1:${xdsAdmin}`, TOKEN);
    const document = (greeting: string) => ({
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: edgePort, address: '127.0.0.1' }] }],
      services: [{ name: 'users', endpoints: [{ host: '127.0.0.1', port: users.port }] }],
      products: [
        {
          name: 'people',
          gatewayGroups: ['edge'],
          basePath: '/api',
          auth: { accept: ['none'] },
          routes: [
            {
              name: 'profile',
              match: { path: { type: 'prefix', value: '/profile/' }, methods: ['GET'] },
              flow: {
                steps: [
                  { name: 'user', call: { service: 'users', path: '/users/{request.query.id}' } },
                  { name: 'reply', respond: { body: `{"greeting": "${greeting}", "name": steps.user.body.name}` } },
                ],
              },
            },
          ],
        },
      ],
    });
    const apply = async (greeting: string) => {
      const r = await api.post('/api/v1/config', YAML.stringify(document(greeting)), { 'content-type': 'application/yaml' });
      assert.equal(r.status, 200, r.text);
    };
    await apply('hello');
    const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${grpcPort}`], group: 'edge', nodeId: 'edge-flows-role' });
    if (!envoy) return;
    await envoy.waitForListener('http', 60_000);
    const get = async () => {
      const r = await fetch(`http://127.0.0.1:${edgePort}/api/profile/x?id=usr_1`);
      return { status: r.status, body: await r.text() };
    };

    await t.test('a flow route is answered by the flows process, its call going back through Envoy', async () => {
      const r = await waitFor('the flow route to answer', async () => ((await get()).status === 200 ? get() : undefined), 60_000, 200);
      assert.deepEqual(JSON.parse(r.body), { greeting: 'hello', name: 'Alice Chen' });
      assert.ok(seen.includes('/users/usr_1'), `the upstream saw the step call (${seen.join(', ')})`);
      assert.ok((await flowRuns(`http://127.0.0.1:${flowsAdmin}`, 'profile')) >= 1, 'the flows process ran it');
      assert.equal(await flowRuns(`http://127.0.0.1:${xdsAdmin}`, 'profile'), 0, 'the xds process runs no flows');
    });

    await t.test('a model change written through the xds process reaches the flows process', async () => {
      await apply('welcome back');
      const r = await waitFor(
        'the new flow to answer',
        async () => {
          const a = await get();
          return a.status === 200 && JSON.parse(a.body).greeting === 'welcome back' ? a : undefined;
        },
        60_000,
        200,
      );
      assert.deepEqual(JSON.parse(r.body), { greeting: 'welcome back', name: 'Alice Chen' });
    });

    await t.test('with the flows process stopped, the route fails with 503 and nothing else changes', async () => {
      await procs[1]!.stop('SIGTERM');
      const r = await waitFor('Envoy to find the runtime gone', async () => ((await get()).status === 503 ? true : undefined), 30_000, 200);
      assert.equal(r, true);
      assert.equal((await api.get('/readyz')).status, 200, 'the xds process keeps serving');
    });
  });
});
