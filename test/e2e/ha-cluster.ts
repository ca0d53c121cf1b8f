// Helpers for the high-availability e2e tests (test/e2e/ha-*.test.ts): control-plane replicas as
// real `bin/portico serve` processes on one PostgreSQL, a TCP balancer standing in for the
// Kubernetes Service in front of the callouts, and fleet look-ups across replicas.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetNode, FleetView } from '../../src/xds/fleet.ts';
import { freePort, startProcess, waitFor, type RunningProcess } from '../support/components.ts';
import { settledNode, type TestEnvoy } from '../support/envoy.ts';
import { ApiClient } from '../support/portico.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const HA_TOKEN = 'ha-test-admin-token';

export interface Replica {
  name: string;
  adminPort: number;
  grpcPort: number;
  grpcAddress: string;
  /** The callout listener (ext_authz, rate limit). */
  calloutPort: number;
  /** The flow runtime's listener. */
  flowsPort: number;
  api: ApiClient;
  /** The current process (a new one after restart()). */
  process(): RunningProcess;
  running(): boolean;
  /**
   * Whether a Service routes new connections to it (Kubernetes endpoints): from ready (start()
   * resolved) until a moment after stop() is called, as endpoint removal reaches kube-proxy
   * asynchronously. A replica must keep accepting meanwhile (PORTICO_SHUTDOWN_DELAY_MS).
   */
  inService(): boolean;
  /** Starts the process (again) on the same ports and waits for /readyz 200. */
  start(): Promise<void>;
  /** Sends a signal and waits for the exit; returns the exit code (null when killed by a signal). */
  stop(signal: NodeJS.Signals): Promise<number | null>;
  fleet(): Promise<FleetView>;
}

export interface ClusterOptions {
  names: string[];
  databaseUrl: string;
  redisUrl?: string;
  /** What every replica puts in the Envoy config for the callouts and the access-log stream: one shared
   * address each (a Service), or the replicas' translations (and versions) would differ. */
  calloutAddress: string;
  accessLogAddress: string;
  /** Likewise for the flow runtime (a Service in front of every replica's flow listener). */
  flowsAddress: string;
  /** How long after stop() a replica still gets new connections from the balancers (default 300 ms). */
  endpointLagMs?: number;
  env?: Record<string, string>;
}

export interface Cluster {
  replicas: Replica[];
  byName(name: string): Replica;
  /** Stops every process still running (SIGTERM) and removes the data directory. */
  close(): Promise<void>;
  /** The last lines each replica printed (for failure diagnostics). */
  outputs(): string;
}

/** Replicas of one control plane: same database, master key, admin token and callout address; own ports. */
export async function createCluster(o: ClusterOptions): Promise<Cluster> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'portico-ha-'));
  // Nothing inherited from the CI environment's PORTICO_ settings.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(PORTICO_|DATABASE_URL$|REDIS_URL$)/.test(k)));
  const shared = {
    ...inherited,
    DATABASE_URL: o.databaseUrl,
    ...(o.redisUrl ? { REDIS_URL: o.redisUrl } : {}),
    PORTICO_DATA_DIR: dataDir,
    PORTICO_MASTER_KEY: randomBytes(32).toString('base64'),
    PORTICO_ADMIN_TOKEN: HA_TOKEN,
    PORTICO_CALLOUT_ADDR: o.calloutAddress,
    PORTICO_ACCESS_LOG_ADDR: o.accessLogAddress,
    PORTICO_FLOWS_ADDR: o.flowsAddress,
    // The step listener the Envoys bind is in the configuration every replica publishes: one for all.
    PORTICO_FLOWS_STEP_ADDR: `127.0.0.1:${await freePort()}`,
    PORTICO_RECONCILE_MS: '500',
    PORTICO_LOG_LEVEL: 'info',
    // Readiness turns 503 at SIGTERM; the replica keeps serving until the balancers have dropped it.
    PORTICO_SHUTDOWN_DELAY_MS: String((o.endpointLagMs ?? 300) + 1_200),
    ...o.env,
  };
  const replicas: Replica[] = [];
  const history: string[] = [];
  for (const name of o.names) {
    const adminPort = await freePort();
    const grpcPort = await freePort();
    const calloutPort = await freePort();
    const flowsPort = await freePort();
    const api = new ApiClient(`http://127.0.0.1:${adminPort}`, HA_TOKEN);
    let proc: RunningProcess | undefined;
    let inService = false;
    let leaving: NodeJS.Timeout | undefined;
    const env = {
      ...shared,
      PORTICO_ADMIN_ADDR: `127.0.0.1:${adminPort}`,
      PORTICO_GRPC_ADDR: `127.0.0.1:${grpcPort}`,
      PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${calloutPort}`,
      PORTICO_FLOWS_LISTEN_ADDR: `127.0.0.1:${flowsPort}`,
      PORTICO_IDEMPOTENCY_LISTEN_ADDR: `127.0.0.1:${await freePort()}`,
    };
    const running = () => !!proc && proc.child.exitCode === null && proc.child.signalCode === null;
    replicas.push({
      name,
      adminPort,
      grpcPort,
      grpcAddress: `127.0.0.1:${grpcPort}`,
      calloutPort,
      flowsPort,
      api,
      process: () => proc!,
      running,
      inService: () => inService,
      async start() {
        if (proc) history.push(`── ${name} (previous run) ──\n${proc.output().slice(-4000)}`);
        const p = startProcess(path.join(ROOT, 'bin/portico'), ['serve'], { env, cwd: ROOT });
        proc = p;
        // Not waitFor: an exit must end the wait at once, not count as one more failed attempt.
        const deadline = Date.now() + 180_000;
        for (;;) {
          if (p.child.exitCode !== null || p.child.signalCode !== null) {
            throw new Error(`replica ${name} exited (${p.child.exitCode ?? p.child.signalCode}): ${p.output().slice(-3000)}`);
          }
          const ready = await api.get('/readyz').then(
            (r) => r.status === 200,
            () => false,
          );
          if (ready) {
            clearTimeout(leaving);
            inService = true;
            return;
          }
          if (Date.now() > deadline) throw new Error(`replica ${name} not ready after 180 s: ${p.output().slice(-3000)}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      },
      async stop(signal) {
        const p = proc;
        if (!p || !running()) return p?.child.exitCode ?? null;
        const exited = new Promise<number | null>((r) => p.child.once('exit', (code) => r(code)));
        leaving = setTimeout(() => (inService = false), o.endpointLagMs ?? 300);
        p.child.kill(signal);
        return exited;
      },
      fleet: async () => (await api.get<FleetView>('/api/v1/fleet')).body,
    });
  }
  return {
    replicas,
    byName: (n) => replicas.find((r) => r.name === n)!,
    async close() {
      await Promise.all(replicas.map((r) => (r.running() ? r.process().stop('SIGTERM') : undefined)));
      rmSync(dataDir, { recursive: true, force: true });
    },
    outputs: () =>
      [
        ...history,
        ...replicas.map(
          (r) =>
            `── ${r.name} ──\n${(() => {
              try {
                return r.process().output().slice(-4000);
              } catch {
                return '(not started)';
              }
            })()}`,
        ),
      ].join('\n'),
  };
}

/** The replica a node's ADS stream is on, and its fleet entry, among the running replicas. */
export async function whereIs(replicas: readonly Replica[], nodeId: string): Promise<{ replica: Replica; node: FleetNode; view: FleetView } | undefined> {
  for (const r of replicas) {
    if (!r.running()) continue;
    const view = await r.fleet().catch(() => undefined);
    const node = view?.nodes.find((n) => n.nodeId === nodeId);
    if (view && node) return { replica: r, node, view };
  }
  return undefined;
}

/** Waits until the node is connected to a running replica and holds everything it was sent. */
export async function waitSettled(replicas: readonly Replica[], nodeId: string, what = `${nodeId} connected and in sync`, timeoutMs = 90_000) {
  return waitFor(
    what,
    async () => {
      const at = await whereIs(replicas, nodeId);
      return at && settledNode(at.view, nodeId) ? at : undefined;
    },
    timeoutMs,
    100,
  );
}

/** Each running replica's current config version per gateway group. */
export async function snapshotVersions(replicas: readonly Replica[]): Promise<Record<string, Record<string, string | undefined>>> {
  const out: Record<string, Record<string, string | undefined>> = {};
  for (const r of replicas) {
    if (!r.running()) continue;
    const view = await r.fleet();
    out[r.name] = Object.fromEntries(view.groups.map((g) => [g.group, g.snapshotVersion]));
  }
  return out;
}

/** Resolves when every running replica reports the same (defined) version for every listed group. */
export async function waitIdenticalVersions(replicas: readonly Replica[], groups: readonly string[], timeoutMs = 30_000) {
  return waitFor(
    'every replica to hold the same snapshot versions',
    async () => {
      const v = await snapshotVersions(replicas);
      const rows = Object.values(v);
      if (rows.length === 0) return undefined;
      for (const g of groups) {
        const first = rows[0]![g];
        if (!first || rows.some((row) => row[g] !== first)) return undefined;
      }
      return v;
    },
    timeoutMs,
    100,
  );
}

export interface Balancer {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/**
 * A TCP balancer (what a Kubernetes Service does for the callouts) in its own process
 * (ha-balancer.ts): each new connection goes to the next of `backends()` round robin, a refused one
 * is reset. `backends()` is read every 20 ms, so a change reaches the balancer a little later, as
 * endpoint changes reach kube-proxy. Established connections are spliced byte for byte, so gRPC
 * GOAWAYs and resets reach Envoy unchanged.
 */
export async function startBalancer(backends: () => number[]): Promise<Balancer> {
  const child = fork(path.join(path.dirname(fileURLToPath(import.meta.url)), 'ha-balancer.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let accepted = 0;
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`balancer exited (${code}) before listening`)));
    child.on('message', (m: { port?: number; accepted?: number }) => {
      if (m.port !== undefined) resolve(m.port);
      if (m.accepted !== undefined) accepted = m.accepted;
    });
  });
  let sent = '';
  const push = () => {
    const list = JSON.stringify(backends());
    if (list === sent || !child.connected) return;
    sent = list;
    child.send({ backends: JSON.parse(list) });
  };
  push();
  const timer = setInterval(push, 20);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    port,
    accepted: () => accepted,
    async close() {
      clearInterval(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

// ── evidence: what the callouts did, and how loaded the machine was ─────────────────────────────
/** Each Envoy's counters of the callouts (the portico.callouts cluster, the ext_authz filters), by node id. */
export async function calloutCounters(envoys: readonly TestEnvoy[]): Promise<Record<string, Map<string, number>>> {
  const out: Record<string, Map<string, number>> = {};
  for (const e of envoys) out[e.nodeId] = await e.stats('^(cluster\\.portico_callouts\\.(upstream_rq|upstream_cx|retry)|http\\..*ext_authz)');
  return out;
}

/** The counters that changed between two readings, by node id (gauges, timings and successes left out). */
export function changedCounters(before: Record<string, Map<string, number>>, after: Record<string, Map<string, number>>): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [node, now] of Object.entries(after)) {
    const changed: Record<string, number> = {};
    for (const [name, v] of now) {
      const delta = v - (before[node]?.get(name) ?? 0);
      if (delta !== 0 && !/_ms$|bucket|active|buffered|total$|_2xx$|_200$|_completed$|ext_authz\.(ok|denied)$/.test(name)) changed[name.replace(/^cluster\.portico_callouts\./, '')] = delta;
    }
    out[node] = changed;
  }
  return out;
}

/** Envoy's callout latency quantiles (ms, every callout since Envoy started), by node id. */
export async function calloutLatency(envoys: readonly TestEnvoy[]): Promise<Record<string, Record<string, number | null>>> {
  const out: Record<string, Record<string, number | null>> = {};
  for (const e of envoys) {
    const res = await fetch(`${e.adminUrl}/stats?format=json&filter=${encodeURIComponent('^cluster\\.portico_callouts\\.upstream_rq_time$')}`);
    type Histograms = { supported_quantiles: number[]; computed_quantiles: Array<{ values: Array<{ cumulative: number | null }> }> };
    const h = ((await res.json()) as { stats: Array<{ histograms?: Histograms }> }).stats.find((x) => x.histograms)?.histograms;
    const values = h?.computed_quantiles[0]?.values ?? [];
    out[e.nodeId] = Object.fromEntries((h?.supported_quantiles ?? []).flatMap((q, i) => ([50, 99, 99.9, 100].includes(q) ? [[`p${q}`, values[i]?.cumulative ?? null]] : [])));
  }
  return out;
}

/** Each running replica's longest event-loop delay (ms) since the previous call (prom-client resets it per scrape). */
export async function replicaLoopLag(replicas: readonly Replica[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of replicas) {
    if (!r.running()) continue;
    const m = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec((await r.api.get('/metrics')).text);
    if (m) out[r.name] = Math.round(Number(m[1]) * 1000);
  }
  return out;
}
