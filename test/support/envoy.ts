// A real Envoy for e2e tests: bootstrap rendered by src/xds/bootstrap.ts (so tests run what users
// run), admin on a free loopback port, helpers for config_dump, stats and waiting on listeners, and
// for reading whether a node in fleet status holds the current config.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { renderBootstrap, type BootstrapOptions } from '../../src/xds/bootstrap.ts';
import { typeSnapshot, type SnapshotCache } from '../../src/xds/cache.ts';
import type { FleetNode, FleetView } from '../../src/xds/fleet.ts';
import { TYPE_URLS } from '../../src/proto/index.ts';
import { freePort, requireComponent, startProcess, waitFor, type RunningProcess } from './components.ts';
import type { TestPortico } from './portico.ts';

export interface EnvoyOptions {
  /** Control-plane replicas as host:port. */
  xdsAddresses: string[];
  /** node.cluster: the gateway group. */
  group: string;
  nodeId: string;
  /** GRPC (state of the world, default) or DELTA_GRPC. */
  apiType?: BootstrapOptions['apiType'];
  role?: BootstrapOptions['role'];
  /** Envoy's log level (default warning: access logs still go to stdout). */
  logLevel?: 'trace' | 'debug' | 'info' | 'warning' | 'error';
  /** Seconds Envoy drains listeners it replaces or removes (default 1: tests should not wait long). */
  drainTimeS?: number;
  extraArgs?: string[];
  /** mTLS to the control plane: the channel SDS file naming this node's certificate files. */
  channelSdsDir?: string;
}

/** A dynamic resource Envoy holds, with the version it was received at. */
export interface DumpedResource {
  name: string;
  version: string;
}

export interface TestEnvoy {
  nodeId: string;
  group: string;
  adminPort: number;
  adminUrl: string;
  process: RunningProcess;
  /** GET /config_dump (optionally ?resource=…), parsed. */
  configDump(resource?: string): Promise<Record<string, unknown>>;
  /** Dynamic resources of one kind (e.g. dynamic_active_clusters, dynamic_listeners) with their versions. */
  dumped(resource: string): Promise<DumpedResource[]>;
  /** Counters and gauges whose name matches `filter` (a regex, as Envoy's /stats?filter= takes it). */
  stats(filter: string): Promise<Map<string, number>>;
  /** One stat by exact name (0 when Envoy does not have it yet). */
  stat(name: string): Promise<number>;
  /** Waits until Envoy has the dynamic listener `name` active (warmed: its routes arrived). */
  waitForListener(name: string, timeoutMs?: number): Promise<void>;
  /** Everything Envoy printed (the tail when long). */
  output(): string;
  stop(): Promise<void>;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Starts Envoy with only the bootstrap. Returns undefined when Envoy is missing outside CI (the
 * test is skipped); under CI=true a missing Envoy fails the test. Stopped when the test ends.
 */
export async function startEnvoy(t: TestContext, o: EnvoyOptions): Promise<TestEnvoy | undefined> {
  const bin = requireComponent(t, 'envoy');
  if (!bin) return undefined;
  const envoy = await launchEnvoy(bin, o);
  t.after(() => envoy.stop());
  return envoy;
}

/** Starts Envoy outside a test (benchmarks): the caller stops it. */
export async function launchEnvoy(bin: string, o: EnvoyOptions): Promise<TestEnvoy> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-envoy-'));
  const adminPort = await freePort();
  const file = path.join(dir, 'bootstrap.json');
  writeFileSync(
    file,
    JSON.stringify(
      renderBootstrap({
        role: o.role ?? 'edge',
        nodeId: o.nodeId,
        group: o.group,
        xdsAddresses: o.xdsAddresses,
        adminPort,
        ...(o.apiType ? { apiType: o.apiType } : {}),
        ...(o.channelSdsDir ? { channelSdsDir: o.channelSdsDir } : {}),
      }),
    ),
  );
  const proc = startProcess(bin, ['-c', file, '--use-dynamic-base-id', '-l', o.logLevel ?? 'warning', '--drain-time-s', String(o.drainTimeS ?? 1), ...(o.extraArgs ?? [])]);
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await proc.stop('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };

  const admin = async (p: string): Promise<string> => {
    const res = await fetch(`${adminUrl}${p}`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`Envoy admin ${p}: ${res.status}`);
    return res.text();
  };
  // EDS is only in the dump when asked for (include_eds).
  const configDump = async (resource?: string) =>
    JSON.parse(await admin(`/config_dump${resource ? `?resource=${resource}${resource.includes('endpoint') ? '&include_eds' : ''}` : ''}`)) as Record<string, unknown>;
  const dumped = async (resource: string): Promise<DumpedResource[]> => {
    const configs = ((await configDump(resource)).configs ?? []) as Record<string, unknown>[];
    return configs.map((c) => {
      const state = (c.active_state ?? c.warming_state ?? {}) as Record<string, unknown>;
      const inner = (c.cluster ?? state.listener ?? c.route_config ?? c.endpoint_config ?? {}) as Record<string, unknown>;
      return { name: String(inner.name ?? inner.cluster_name ?? ''), version: String(c.version_info ?? state.version_info ?? '') };
    });
  };
  const stats = async (filter: string) => {
    const out = new Map<string, number>();
    for (const line of (await admin(`/stats?filter=${encodeURIComponent(filter)}`)).split('\n')) {
      const m = /^([^:]+): (\d+)$/.exec(line.trim());
      if (m) out.set(m[1]!, Number(m[2]));
    }
    return out;
  };

  const env: TestEnvoy = {
    nodeId: o.nodeId,
    group: o.group,
    adminPort,
    adminUrl,
    process: proc,
    configDump,
    dumped,
    stats,
    stat: async (name) => (await stats(`^${escapeRegex(name)}$`)).get(name) ?? 0,
    waitForListener: async (name, timeoutMs = 30_000) => {
      await waitFor(
        `Envoy listener '${name}' to be active`,
        async () => {
          if (proc.child.exitCode !== null) throw new Error(`Envoy exited (${proc.child.exitCode}): ${proc.output().slice(-2000)}`);
          const configs = ((await configDump('dynamic_listeners')).configs ?? []) as Array<{ name?: string; active_state?: unknown }>;
          return configs.some((c) => c.name === name && c.active_state) ? true : undefined;
        },
        timeoutMs,
        100,
      );
    },
    output: () => proc.output(),
    stop,
  };
  // Up when the admin answers (the listeners come later, from xDS).
  try {
    await waitFor(
      'Envoy admin to answer',
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`Envoy exited (${proc.child.exitCode}): ${proc.output().slice(-2000)}`);
        return (await admin('/server_info')) ? true : undefined;
      },
      30_000,
      100,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return env;
}

// ── fleet status (GET /api/v1/fleet, or FleetStatus.status() in process) ─────────────────────────
export const XDS_TYPES = ['clusters', 'endpoints', 'listeners', 'routes'] as const;
export type XdsType = (typeof XDS_TYPES)[number];
const TYPE_URL_OF: Record<XdsType, string> = {
  clusters: TYPE_URLS.cluster,
  endpoints: TYPE_URLS.endpoint,
  listeners: TYPE_URLS.listener,
  routes: TYPE_URLS.route,
};

/** The per-type versions a group's current snapshot would have an Envoy ACK. */
export function snapshotVersions(cache: SnapshotCache, group: string): Record<XdsType, string> {
  const s = cache.getSnapshot(group);
  return Object.fromEntries(XDS_TYPES.map((t) => [t, typeSnapshot(s, TYPE_URL_OF[t]).version])) as Record<XdsType, string>;
}

/**
 * The node when it holds what it was sent: every type ACKed and nothing pending (and, given
 * `expected`, ACKed at exactly those versions); otherwise undefined (for waitFor).
 */
export function settledNode(view: FleetView, nodeId: string, expected?: Record<XdsType, string>): FleetNode | undefined {
  const n = view.nodes.find((x) => x.nodeId === nodeId);
  if (!n) return undefined;
  for (const t of XDS_TYPES) {
    const ts = n.types.find((x) => x.type === t);
    if (!ts || ts.pending || !ts.ackedVersion) return undefined;
    if (expected ? ts.ackedVersion !== expected[t] : ts.ackedVersion !== ts.pushedVersion && ts.pushedVersion !== undefined) return undefined;
  }
  return n;
}

/**
 * The node when it holds the group's current snapshot: nothing left to publish, and every type
 * ACKed at the cache's version as GET /api/v1/fleet reports it; otherwise undefined.
 */
export async function nodeInSync(portico: TestPortico, group: string, nodeId: string): Promise<FleetNode | undefined> {
  if (portico.xds.cache.hasPending()) return undefined;
  return settledNode((await portico.api.get<FleetView>('/api/v1/fleet')).body, nodeId, snapshotVersions(portico.xds.cache, group));
}

/** Waits until nodeInSync (after a write that changes Envoy config) and returns the node. */
export function waitInSync(portico: TestPortico, group: string, nodeId: string, timeoutMs = 60_000, what = `Envoy ${nodeId} to ACK the current snapshot`): Promise<FleetNode> {
  return waitFor(what, () => nodeInSync(portico, group, nodeId), timeoutMs);
}

/** The ACKed version of each type for a node. */
export function ackedVersions(n: FleetNode): Record<XdsType, string | undefined> {
  return Object.fromEntries(XDS_TYPES.map((t) => [t, n.types.find((x) => x.type === t)?.ackedVersion])) as Record<XdsType, string | undefined>;
}
