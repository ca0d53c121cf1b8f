// A highly available control plane, as real processes: three `bin/portico serve` replicas on one
// PostgreSQL (and Redis), two Envoys whose bootstraps list all three replicas, the seed-003 example
// on two gateway groups (one per Envoy), the callouts and the access-log stream behind TCP balancers
// standing in for Kubernetes Services (own processes; a replica joins when ready and leaves a moment
// after SIGTERM, while it keeps serving for its shutdown delay). Under constant load:
//   - the replicas start together on an empty database and build identical snapshot versions;
//   - a write on one replica reaches an Envoy connected to another (timed, in a bench-style line);
//   - SIGKILL of a replica: zero failed requests, its Envoys reconnect to a survivor that has
//     nothing to re-send (per-type versions are identical across replicas);
//   - a rolling restart (SIGTERM, then start, one replica at a time) with API-key traffic through
//     ext_authz: zero failed requests, every replica exits 0 (drained, not forced); the callouts'
//     Envoy stats per step (retries, timeouts) and each replica's event-loop lag are printed;
//   - PostgreSQL stopped and started: traffic (and ext_authz) keep answering, admin writes get 503
//     problem+json, and writes work and reach every Envoy again once the database is back (the
//     callouts' counters and event-loop lag printed per phase too).
// A failed step prints the replicas' and Envoys' last output.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createDatabase, freePort, startPostgres, startRedis, waitFor } from '../support/components.ts';
import { ackedVersions, startEnvoy, XDS_TYPES, type TestEnvoy } from '../support/envoy.ts';
import { describeFailures, startLoad, type LoadTarget } from '../support/load.ts';
import { call, seed003 } from '../support/seed003.ts';
import {
  calloutCounters,
  calloutLatency,
  changedCounters,
  createCluster,
  replicaLoopLag,
  snapshotVersions,
  startBalancer,
  waitIdenticalVersions,
  waitSettled,
  whereIs,
  type Cluster,
  type Replica,
} from './ha-cluster.ts';

const GROUPS = ['edge', 'edge-b'] as const;

describe('HA: three control-plane replicas on one PostgreSQL', () => {
  it('serve one fleet with identical versions, survive a kill, a rolling restart and a database outage', async (t) => {
    const pg = await startPostgres(t);
    if (!pg) return;
    const redis = await startRedis(t);
    if (!redis) {
      await pg.stop();
      return;
    }
    const seed = await seed003({ exactModes: true });
    let cluster: Cluster | undefined;
    let balancer: Awaited<ReturnType<typeof startBalancer>> | undefined;
    let grpcBalancer: Awaited<ReturnType<typeof startBalancer>> | undefined;
    let flowsBalancer: Awaited<ReturnType<typeof startBalancer>> | undefined;
    const stops: Array<() => Promise<unknown>> = [];
    const envoys: TestEnvoy[] = [];
    t.after(async () => {
      // Envoys first (their own hooks run later): nothing of theirs may hold an upstream or a
      // balancer connection open while the rest closes.
      for (const e of envoys) await e.stop().catch(() => undefined);
      for (const s of stops.splice(0)) await s().catch(() => undefined);
      await cluster?.close();
      await balancer?.close();
      await grpcBalancer?.close();
      await flowsBalancer?.close();
      await seed.close();
      await redis.stop();
      await pg.stop();
    });

    // The model: seed 003 on two gateway groups (one listener each, so each Envoy can be addressed),
    // the users product behind API keys (ext_authz on the hot path), plans without limits (these
    // tests are about availability, not budgets).
    const doc = seed.document;
    const edgeB = { ...doc.gatewayGroups.find((g: { name: string }) => g.name === 'edge'), name: 'edge-b', description: 'second edge fleet' };
    const portB = await freePort();
    edgeB.listeners = [{ ...edgeB.listeners[0], port: portB, address: '127.0.0.1' }];
    doc.gatewayGroups.push(edgeB);
    for (const p of doc.products) {
      p.gatewayGroups = [...GROUPS];
      if (p.name === 'users') p.auth = { accept: ['api_key'] };
    }
    doc.plans = doc.plans.map((p: { name: string; description?: string }) => ({ name: p.name, ...(p.description ? { description: 'no limits in the HA test' } : {}) }));
    const gateway = { edge: seed.gatewayUrl, 'edge-b': `http://127.0.0.1:${portB}` } as const;

    const databaseUrl = createDatabase(pg, 'portico_ha');
    const names = ['a', 'b', 'c'];
    let replicas: Replica[] = [];
    // Two Services, as Kubernetes would have them: the callouts, and the gRPC listener (access logs).
    balancer = await startBalancer(() => replicas.filter((r) => r.inService()).map((r) => r.calloutPort));
    grpcBalancer = await startBalancer(() => replicas.filter((r) => r.inService()).map((r) => r.grpcPort));
    flowsBalancer = await startBalancer(() => replicas.filter((r) => r.inService()).map((r) => r.flowsPort));
    cluster = await createCluster({
      names,
      databaseUrl,
      redisUrl: redis.url,
      calloutAddress: `127.0.0.1:${balancer.port}`,
      accessLogAddress: `127.0.0.1:${grpcBalancer.port}`,
      flowsAddress: `127.0.0.1:${flowsBalancer.port}`,
      // Replicas behind a shared callout Service translate before they are ready (README,
      // PORTICO_TRANSLATE_ON): with the default, a replica no Envoy had reached translated while
      // answering callouts when a rolling restart moved Envoys to it (loop lag 0.5-0.7 s, Checks
      // past their timeout), and every replica's version is compared here, Envoys or not.
      env: { PORTICO_TRANSLATE_ON: 'start' },
    });
    replicas = cluster.replicas;
    const [a, b, c] = replicas as [Replica, Replica, Replica];

    // A failed step does not throw out of t.test: remember it, to print the processes' output below.
    let failedStep = false;
    const step = (name: string, fn: () => Promise<void>) =>
      t.test(name, async () => {
        try {
          await fn();
        } catch (e) {
          failedStep = true;
          throw e;
        }
      });
    const printOutputs = () => {
      t.diagnostic(cluster!.outputs());
      for (const env of envoys) t.diagnostic(`envoy ${env.nodeId}: ${env.output().slice(-2000)}`);
    };

    try {
      await step('replicas started together on an empty database all become ready', async () => {
        await Promise.all(replicas.map((r) => r.start()));
        for (const r of replicas) {
          const ready = await r.api.get('/readyz');
          assert.equal(ready.status, 200, ready.text);
          assert.equal(ready.body.database, 'postgresql');
          assert.equal(ready.body.migrations.pending, 0, `${r.name}: ${ready.text}`);
        }
      });

      const applied = await a.api.post('/api/v1/config', seed.yaml(), { 'content-type': 'application/yaml' });
      assert.equal(applied.status, 200, applied.text);
      // B follows A's write (LISTEN/NOTIFY) before it can take a write that depends on it.
      await waitFor('replica b to see the applied model', async () => ((await b.api.get('/api/v1/partners/web-app')).status === 200 ? true : undefined), 30_000);
      const key = await b.api.post('/api/v1/partners/web-app/api-keys', { name: 'ha-test' });
      assert.equal(key.status, 201, key.text);
      const apiKey = key.body.key as string;

      // Each Envoy's bootstrap lists every replica; which one it lands on is Envoy's choice.
      const all = replicas.map((r) => r.grpcAddress);
      for (const [i, group] of GROUPS.entries()) {
        const envoy = await startEnvoy(t, { xdsAddresses: i === 0 ? all : [...all].reverse(), group, nodeId: `${group}-1` });
        if (!envoy) return;
        envoys.push(envoy);
      }
      for (const e of envoys) await e.waitForListener('http', 60_000);
      for (const e of envoys) await waitSettled(replicas, e.nodeId);

      await step('every replica builds the same snapshot version for every gateway group', async () => {
        const versions = await waitIdenticalVersions(replicas, GROUPS);
        assert.deepEqual(Object.keys(versions).sort(), names);
        for (const g of GROUPS) assert.match(versions.a![g]!, /\S/, `group ${g} has a version`);
        assert.notEqual(versions.a!.edge, versions.a!['edge-b'], 'the two groups differ (their listeners do)');
        // And what the Envoys ACKed is that version's content, wherever they are connected.
        for (const e of envoys) {
          const at = (await whereIs(replicas, e.nodeId))!;
          assert.equal(at.view.groups.find((g) => g.group === e.group)!.snapshotVersion, versions.a![e.group]);
        }
        for (const [group, url] of Object.entries(gateway)) {
          const r = await call(`${url}/api/orders/ord_1`);
          assert.equal(r.status, 200, `${group}: ${r.text}`);
          assert.equal(r.json?.service, 'orders');
          assert.equal((await call(`${url}/api/users/u_1`, { headers: { 'x-api-key': apiKey } })).status, 200, `${group}: API key accepted`);
          assert.equal((await call(`${url}/api/users/u_1`)).status, 401, `${group}: ext_authz on the path`);
        }
      });

      await step('a write on one replica reaches an Envoy connected to another', async () => {
        for (const [i, e] of envoys.entries()) {
          const at = (await whereIs(replicas, e.nodeId))!;
          const writer = replicas.find((r) => r !== at.replica)!;
          const body = JSON.stringify({ status: 'ok', write: i + 1, via: writer.name });
          const started = performance.now();
          const res = await writer.api.patch('/api/v1/products/accounts/routes/health', { directResponse: { body } });
          assert.equal(res.status, 200, res.text);
          const written = performance.now();
          await waitFor(
            `${e.nodeId} (on replica ${at.replica.name}) to serve the write made on ${writer.name}`,
            async () => ((await call(`${gateway[e.group as keyof typeof gateway]}/api/health`)).text === body ? true : undefined),
            30_000,
            10,
          );
          const ms = Math.round(performance.now() - written);
          // Bench-style line (not asserted: timing depends on the machine): the target is < 1 s.
          t.diagnostic(JSON.stringify({ bench: 'ha-write-propagation', writer: writer.name, envoyReplica: at.replica.name, writeMs: Math.round(written - started), propagationMs: ms }));
          const now = (await whereIs(replicas, e.nodeId))!;
          assert.notEqual(now.replica, writer, 'the Envoy is on another replica than the writer');
        }
        await waitIdenticalVersions(replicas, GROUPS);
      });

      const publicTargets = (): LoadTarget[] =>
        Object.entries(gateway).flatMap(([g, url]) => [
          { name: `${g} orders`, url: `${url}/api/orders/ord_x7k9`, expect: [200] },
          { name: `${g} products`, url: `${url}/api/search?q=x`, expect: [200] },
          { name: `${g} health`, url: `${url}/api/health`, expect: [200] },
          { name: `${g} not-found`, url: `${url}/api/nope`, expect: [404] },
        ]);
      const keyedTargets = (): LoadTarget[] =>
        Object.entries(gateway).flatMap(([g, url]) => [
          { name: `${g} users (API key)`, url: `${url}/api/users/u_1`, headers: { 'x-api-key': apiKey }, expect: [200] },
          { name: `${g} users (no key)`, url: `${url}/api/users/u_1`, expect: [401] },
        ]);
      const runLoad = (targets: LoadTarget[]) => {
        const load = startLoad({ concurrency: 6, targets });
        stops.push(() => load.stop());
        return load;
      };
      // Evidence per step, printed whatever the outcome: what the callouts did (retries, refusals,
      // timeouts, ext_authz errors) and how long each replica's event loop waited at worst.
      const evidence = async (load: ReturnType<typeof runLoad>) => {
        let before = await calloutCounters(envoys);
        await replicaLoopLag(replicas);
        return async (what: string) => {
          const now = await calloutCounters(envoys);
          t.diagnostic(
            `${what} (at ${load.report().durationMs} ms; replicas' max event-loop lag ms ${JSON.stringify(await replicaLoopLag(replicas))}): callouts ${JSON.stringify(changedCounters(before, now))}`,
          );
          before = now;
        };
      };
      const assertNoFailures = (report: Awaited<ReturnType<ReturnType<typeof startLoad>['stop']>>, what: string) => {
        assert.equal(report.failures.length, 0, `${what}:\n${describeFailures(report.failures, report.marks)}`);
        for (const [name, s] of Object.entries(report.targets)) assert.ok(s.requests >= 20, `${what}: ${name} only ${s.requests} requests`);
        t.diagnostic(`${what}: ${report.requests} requests in ${report.durationMs} ms, 0 failed`);
      };

      await step('SIGKILL of a replica under load: zero failed requests, its Envoys move to a survivor', async () => {
        // Public routes only: a SIGKILLed replica takes the ext_authz Checks in flight on it down
        // with it (Envoy does not retry them); graceful stops are covered with API keys below.
        const load = runLoad(publicTargets());
        await load.waitForRequests(300);
        // Every Envoy in sync first; the victim is the replica the first Envoy is on.
        const where = new Map<string, Awaited<ReturnType<typeof waitSettled>>>();
        for (const e of envoys) where.set(e.nodeId, await waitSettled(replicas, e.nodeId));
        const victim = where.get(envoys[0]!.nodeId)!.replica;
        const moved = envoys.filter((e) => where.get(e.nodeId)!.replica === victim);
        const versionsBefore = new Map(moved.map((e) => [e.nodeId, ackedVersions(where.get(e.nodeId)!.node)]));
        load.mark(`SIGKILL ${victim.name}`);
        assert.equal(await victim.stop('SIGKILL'), null, 'killed by the signal');
        for (const e of moved) {
          const at = await waitSettled(replicas, e.nodeId, `${e.nodeId} to reconnect to a survivor`);
          assert.notEqual(at.replica, victim);
          assert.deepEqual(ackedVersions(at.node), versionsBefore.get(e.nodeId), `${e.nodeId}: the same versions on the survivor`);
          for (const type of XDS_TYPES) assert.equal(at.node.types.find((x) => x.type === type)!.pushedVersion, undefined, `${e.nodeId}: ${type} re-sent by the survivor`);
          await waitFor(`${e.nodeId} connected`, async () => ((await e.stat('control_plane.connected_state')) === 1 ? true : undefined), 30_000);
        }
        await load.waitForRequests(600);
        load.mark(`restart ${victim.name}`);
        await victim.start();
        await waitIdenticalVersions(replicas, GROUPS);
        await load.waitForRequests(300);
        assertNoFailures(await load.stop(), 'kill');
      });

      await step('rolling restart under load: zero failed requests, clean exits', async () => {
        const load = runLoad([...publicTargets(), ...keyedTargets()]);
        await load.waitForRequests(300);
        for (const r of replicas) {
          const phase = await evidence(load);
          load.mark(`SIGTERM ${r.name}`);
          const code = await r.stop('SIGTERM');
          await phase(`SIGTERM ${r.name} → exit`);
          assert.equal(code, 0, `${r.name} exits 0 after draining (not the forced exit): ${r.process().output().slice(-2000)}`);
          for (const e of envoys) await waitSettled(replicas, e.nodeId, `${e.nodeId} on a running replica while ${r.name} is down`);
          await load.waitForRequests(300);
          await phase(`${r.name} down`);
          load.mark(`start ${r.name}`);
          await r.start();
          await phase(`${r.name} starting`);
          await load.waitForRequests(300);
          await phase(`${r.name} started`);
        }
        const versions = await waitIdenticalVersions(replicas, GROUPS);
        for (const e of envoys) {
          const at = await waitSettled(replicas, e.nodeId);
          assert.equal(at.view.groups.find((g) => g.group === e.group)!.snapshotVersion, versions[at.replica.name]![e.group]);
        }
        const report = await load.stop();
        t.diagnostic(`callout latency ms (Envoy's upstream_rq_time, every callout so far): ${JSON.stringify(await calloutLatency(envoys))}`);
        // API-key routes included: a stopping replica keeps serving until the balancer has dropped it
        // (PORTICO_SHUTDOWN_DELAY_MS); a Check sent while its final GOAWAY is on its way is refused,
        // and the callouts' grpc_service retry_policy (translator) sends it to another replica within
        // the same timeout, however many are refused at once (the cluster's max_retries).
        assertNoFailures(report, 'rolling restart (public and API-key routes)');
        for (const e of envoys) assert.equal(await e.stat('cluster.portico_callouts.upstream_rq_retry_overflow'), 0, `${e.nodeId}: no refused callout left without a retry`);
        assert.ok(balancer!.accepted() >= 2, 'Envoy reconnected its callouts through the balancer');
      });

      await step('PostgreSQL stopped and started: traffic keeps flowing, writes get 503, then recover', async () => {
        const load = runLoad([...publicTargets(), ...keyedTargets()]);
        await load.waitForRequests(200);
        const phase = await evidence(load);
        load.mark('PostgreSQL stopped');
        await pg.pause();
        for (const r of replicas) {
          const w = await r.api.put('/api/v1/partners/during-outage', { name: 'during-outage' });
          assert.equal(w.status, 503, `${r.name}: ${w.text}`);
          assert.match(w.headers.get('content-type') ?? '', /^application\/problem\+json/);
          assert.equal((await r.api.get('/readyz')).status, 200, `${r.name} stays ready: it serves the last model`);
        }
        await phase('PostgreSQL stopped, writes refused');
        await load.waitForRequests(600);
        await phase('PostgreSQL down');
        load.mark('PostgreSQL started');
        await pg.start();
        const body = JSON.stringify({ status: 'ok', after: 'outage' });
        const writer = c;
        await waitFor(
          'writes to work again',
          async () => ((await writer.api.patch('/api/v1/products/accounts/routes/health', { directResponse: { body } })).status === 200 ? true : undefined),
          60_000,
          250,
        );
        for (const [g, url] of Object.entries(gateway)) {
          await waitFor(`${g} to serve the write made after the outage`, async () => ((await call(`${url}/api/health`)).text === body ? true : undefined), 60_000, 50);
        }
        await waitIdenticalVersions(replicas, GROUPS, 60_000);
        for (const r of replicas) assert.equal((await r.api.get('/api/v1/partners/during-outage')).status, 404, `${r.name}: the refused write changed nothing`);
        await load.waitForRequests(200);
        await phase('PostgreSQL back, writes served');
        const report = await load.stop();
        t.diagnostic(`callout latency ms (Envoy's upstream_rq_time, every callout so far): ${JSON.stringify(await calloutLatency(envoys))}`);
        assertNoFailures(report, 'database outage');
        t.diagnostic(JSON.stringify(await snapshotVersions(replicas)));
      });
      if (failedStep) printOutputs();
    } catch (e) {
      printOutputs();
      throw e;
    }
  });
});
