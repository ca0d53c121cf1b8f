// Models for tests and benchmarks: modelOf (a snapshot from [kind, resource] entries, also used by
// the model and translator tests), and for rate limits the seed's limits (default 100/s burst 20
// by user, login 10/min by client IP, search 20/s by user) plus quota, shadow and subscription cases.
import { applyMutations, emptySnapshot, keyOf, type AnyResource, type KindName, type ModelSnapshot } from '../../src/model/index.ts';
import type { AccessLogRecord } from '../../src/telemetry/index.ts';

export type Entries = Array<[KindName, object]>;

/** An access-log entry of one request to a route of product `api`, as native quotas count them. */
export function accessLogEntry(route: string, partner: string | undefined, details = 'via_upstream'): AccessLogRecord {
  const tags = new Map([
    ['product', 'api'],
    ['route', route],
  ]);
  if (partner) tags.set('partner', partner);
  return {
    status: 200,
    durationSeconds: 0.001,
    gatewaySeconds: 0.0002,
    upstreamSeconds: 0.0007,
    flags: 0,
    routeName: `api/${route}`,
    upstreamCluster: 's',
    requestId: 'r',
    startMs: 0,
    authority: '',
    path: '',
    responseCodeDetails: details,
    tags,
    authz: new Map(),
  };
}

export function modelOf(entries: Entries, revision = 1): ModelSnapshot {
  const m = applyMutations(
    emptySnapshot(),
    entries.map(([kind, r]) => ({ kind, op: 'put' as const, key: keyOf(kind, r as AnyResource), resource: r as AnyResource })),
  );
  return { ...m, revision };
}

const route = (name: string, path: string): [KindName, object] => ['routes', { product: 'shop', name, match: { path: { type: 'prefix', value: path } }, service: 'svc' }];

/** Product `shop` (routes login, search, orders, health), plans, partners and subscriptions. */
export function seedEntries(): Entries {
  return [
    ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 8080 }] }],
    ['services', { name: 'svc', endpoints: [{ host: '10.0.0.1', port: 80 }] }],
    ['products', { name: 'shop', gatewayGroups: ['edge'], basePath: '/api', publicPlan: 'public' }],
    route('login', '/auth/login'),
    route('search', '/search'),
    route('orders', '/orders'),
    route('health', '/health'),
    // Seed 003, as a plan.
    [
      'plans',
      {
        name: 'standard',
        limits: [{ requests: 100, per: 'second', burst: 20 }],
        countBy: { kind: 'header', header: 'X-User-Id' },
        overrides: [
          { product: 'shop', route: 'login', limits: [{ requests: 10, per: 'minute' }], countBy: { kind: 'client_ip' } },
          { product: 'shop', route: 'search', limits: [{ requests: 20, per: 'second' }] },
        ],
      },
    ],
    [
      'plans',
      {
        name: 'gold',
        limits: [{ requests: 5, per: 'second', burst: 2 }],
        quotas: [
          { requests: 20, per: 'day' },
          { requests: 100, per: 'month' },
        ],
        overrides: [{ product: 'shop', route: 'health', countBy: { kind: 'route' } }],
      },
    ],
    ['plans', { name: 'trial', limits: [{ requests: 3, per: 'minute' }], shadow: true }],
    // Slow refill (one token per 2 minutes): what tests across processes and restarts count on.
    ['plans', { name: 'hourly', limits: [{ requests: 30, per: 'hour' }] }],
    ['plans', { name: 'public', limits: [{ requests: 2, per: 'second' }], countBy: { kind: 'client_ip' } }],
    ['partners', { name: 'acme' }],
    ['partners', { name: 'globex' }],
    ['partners', { name: 'initech' }],
    ['partners', { name: 'hooli' }],
    ['partners', { name: 'umbrella', suspended: true }],
    ['partners', { name: 'stark' }],
    ['partners', { name: 'wayne' }],
    ['subscriptions', { partner: 'acme', product: 'shop', plan: 'standard' }],
    ['subscriptions', { partner: 'globex', product: 'shop', plan: 'gold' }],
    ['subscriptions', { partner: 'initech', product: 'shop', plan: 'gold', status: 'suspended' }],
    ['subscriptions', { partner: 'hooli', product: 'shop', plan: 'gold', expiresAt: '2030-01-01T00:00:00Z' }],
    ['subscriptions', { partner: 'umbrella', product: 'shop', plan: 'gold' }],
    ['subscriptions', { partner: 'stark', product: 'shop', plan: 'trial' }],
    ['subscriptions', { partner: 'wayne', product: 'shop', plan: 'hourly' }],
  ];
}

export function seedModel(): ModelSnapshot {
  return modelOf(seedEntries());
}
