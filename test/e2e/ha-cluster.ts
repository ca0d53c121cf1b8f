// Helpers for the high-availability e2e tests (test/e2e/ha-*.test.ts): control-plane replicas as
// real `bin/portico serve` processes on one PostgreSQL, a TCP balancer standing in for the
// Kubernetes Service in front of the callouts, and fleet look-ups across replicas.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FleetNode, FleetView } from '../../src/xds/fleet.ts';
import { freePort, startProcess, waitFor, type RunningProcess } from '../support/components.ts';
import { settledNode } from '../support/envoy.ts';
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
  api: ApiClient;
  /** The current process (a new one after restart()). */
  process(): RunningProcess;
  running(): boolean;
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
    PORTICO_RECONCILE_MS: '500',
    PORTICO_LOG_LEVEL: 'info',
    ...o.env,
  };
  const replicas: Replica[] = [];
  const history: string[] = [];
  for (const name of o.names) {
    const adminPort = await freePort();
    const grpcPort = await freePort();
    const calloutPort = await freePort();
    const api = new ApiClient(`http://127.0.0.1:${adminPort}`, HA_TOKEN);
    let proc: RunningProcess | undefined;
    const env = { ...shared, PORTICO_ADMIN_ADDR: `127.0.0.1:${adminPort}`, PORTICO_GRPC_ADDR: `127.0.0.1:${grpcPort}`, PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${calloutPort}` };
    const running = () => !!proc && proc.child.exitCode === null && proc.child.signalCode === null;
    replicas.push({
      name,
      adminPort,
      grpcPort,
      grpcAddress: `127.0.0.1:${grpcPort}`,
      calloutPort,
      api,
      process: () => proc!,
      running,
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
          if (ready) return;
          if (Date.now() > deadline) throw new Error(`replica ${name} not ready after 180 s: ${p.output().slice(-3000)}`);
          await new Promise((r) => setTimeout(r, 200));
        }
      },
      async stop(signal) {
        const p = proc;
        if (!p || !running()) return p?.child.exitCode ?? null;
        const exited = new Promise<number | null>((r) => p.child.once('exit', (code) => r(code)));
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
 * A TCP balancer (what a Kubernetes Service does for the callouts): each new connection goes to the
 * next backend that accepts it, round robin; a backend that refuses is skipped. Established
 * connections are spliced byte for byte, so gRPC GOAWAYs and resets reach Envoy unchanged.
 */
export async function startBalancer(backends: () => number[]): Promise<Balancer> {
  const sockets = new Set<net.Socket>();
  let next = 0;
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const list = backends();
    const start = next++;
    const attempt = (i: number) => {
      if (i >= list.length || client.destroyed) return void client.destroy();
      const up = net.connect(list[(start + i) % list.length]!, '127.0.0.1');
      sockets.add(up);
      let connected = false;
      // An orderly close (FIN) is passed on as one, after the bytes in flight: pipe() ends the other
      // side. Only an abortive close (reset, error) destroys the other side at once.
      up.on('close', (hadError) => {
        sockets.delete(up);
        if (connected && hadError) client.destroy();
      });
      up.on('error', () => {
        up.destroy();
        if (!connected) attempt(i + 1);
      });
      up.once('connect', () => {
        connected = true;
        client.on('close', (hadError) => (hadError ? up.destroy() : up.end()));
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
