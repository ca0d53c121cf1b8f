// Response-cache metrics from Envoy's access-log entries: hits and misses of Envoy's cache filter per
// gateway group, product and route. The filter marks each request it answered in the entry's response
// code details; labels are bounded by the current model (other names count as "unknown").
import { Counter, type Registry } from 'prom-client';
import { PARTNER_LABEL } from '../contract/index.ts';
import type { ModelSnapshot } from '../model/index.ts';
import type { AccessLogRecord } from './access-log-wire.ts';
import { registeredMetric } from './metrics.ts';

export const CACHE_METRIC = 'portico_cache_requests_total';

/**
 * hit: answered from the cache, including requests that waited for an identical one in flight
 * (Envoy 1.40 reports those exactly like hits); miss: fetched from the service and stored.
 * Other requests (not cacheable, or on routes without a cache) are not the cache's.
 */
export type CacheResult = 'hit' | 'miss';

/** The cache's part in one logged request (pure); undefined when the cache filter did not answer it. */
export function cacheResult(e: Pick<AccessLogRecord, 'responseCodeDetails'>): CacheResult | undefined {
  if (e.responseCodeDetails === 'cache.response_from_cache_filter') return 'hit';
  if (e.responseCodeDetails === 'cache.insert_via_upstream') return 'miss';
  return undefined;
}

export class CacheMetrics {
  private readonly requests: Counter<'group' | 'product' | 'route' | 'result'>;
  private routes: ReadonlySet<string> = new Set();
  private groups: ReadonlySet<string> = new Set();

  constructor(registry: Registry) {
    this.requests = registeredMetric(
      registry,
      CACHE_METRIC,
      () =>
        new Counter({
          name: CACHE_METRIC,
          help: "Requests Envoy's response cache answered, by gateway group, product, route and result (hit: from the cache, coalesced waiters included; miss: fetched and stored)",
          labelNames: ['group', 'product', 'route', 'result'],
          registers: [registry],
        }),
    );
  }

  setModel(model: ModelSnapshot): void {
    this.routes = new Set(model.routes.keys());
    this.groups = new Set(model.gatewayGroups.keys());
  }

  record(e: AccessLogRecord, streamGroup: string | undefined): void {
    const result = cacheResult(e);
    if (!result) return;
    const known = this.routes.has(e.routeName);
    const [product, route] = known ? e.routeName.split('/') : [PARTNER_LABEL.unknown, PARTNER_LABEL.unknown];
    const group = e.tags.get('group') ?? streamGroup;
    this.requests.inc({ group: group && this.groups.has(group) ? group : PARTNER_LABEL.unknown, product: product!, route: route!, result });
  }
}
