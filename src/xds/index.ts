// Public surface of src/xds for the composition root: build the cache, fleet status and gRPC server
// from settings, then feed GroupResources in and serve fleet status out.
import type { Registry } from 'prom-client';
import type { ChannelGuard } from '../grpc/index.ts';
import { SnapshotCache } from './cache.ts';
import { FleetStatus } from './fleet.ts';
import { XdsMetrics } from './metrics.ts';
import { XdsServer } from './server.ts';
import type { XdsLogger } from './stream.ts';

export { SnapshotCache, type Snapshot } from './cache.ts';
export { FleetStatus, type FleetView, type FleetNode } from './fleet.ts';
export { XdsServer, type XdsServerOptions } from './server.ts';
export { serviceDefinition, discoveryServiceDefinition } from './services.ts';
export { checkGroupResources, GroupResourcesError, type ResourceProblem } from './check.ts';
export { typeLabel } from './fleet.ts';
export { XdsMetrics } from './metrics.ts';
export { nullObserver, observers, type StreamInfo, type StreamObserver } from './stream.ts';
export { renderBootstrap, type BootstrapOptions } from './bootstrap.ts';

export interface XdsOptions {
  /** Metrics registry (prom-client's default when omitted). */
  registry?: Registry;
  logger?: XdsLogger;
  orderingTimeoutMs?: number;
  sendBudgetBytes?: number;
  /** Host the discovery services (false for a callouts-only replica); default true. */
  serveAds?: boolean;
  /** Who may use the channels; its refusals are counted and listed in fleet status. Default: plaintext. */
  guard?: ChannelGuard;
}

export interface Xds {
  cache: SnapshotCache;
  fleet: FleetStatus;
  server: XdsServer;
}

/** The xDS stack wired from settings; call server.addService(…) for callouts, then server.listen(…). */
/** The settings createXds reads (a part of src/settings.ts's Settings). */
export interface XdsSettings {
  debounceMs: number;
  debounceMaxMs: number;
  maxConnectionAgeMs: number;
}

export function createXds(settings: XdsSettings, options: XdsOptions = {}): Xds {
  const cache = new SnapshotCache({ debounceMs: settings.debounceMs, debounceMaxMs: settings.debounceMaxMs });
  const fleet = new FleetStatus({ cache, ...(options.guard ? { guard: options.guard } : {}) });
  const metrics = new XdsMetrics(options.registry);
  options.guard?.onRefusal((r) => metrics.onRefusal(r));
  const server = new XdsServer({
    cache,
    fleet,
    ...(options.guard ? { guard: options.guard } : {}),
    observer: metrics,
    logger: options.logger,
    maxConnectionAgeMs: settings.maxConnectionAgeMs,
    orderingTimeoutMs: options.orderingTimeoutMs,
    sendBudgetBytes: options.sendBudgetBytes,
    serveAds: options.serveAds,
  });
  return { cache, fleet, server };
}
