// Building blocks for flow tests and benchmarks: seed 003's /api/home aggregation as a flow, the
// bodies its three services answer with, and an in-memory caller standing in for the transport.
// Not used by the running service.
import { parse as parseYaml } from 'yaml';
import type { FlowSpec } from '../model/index.ts';
import type { FlowIO, FlowRequest, StepCall, StepResponse } from './types.ts';

/** Seed 003's GET /api/home: user, recent orders and recommendations fetched in parallel, then stitched. */
export const HOME_FLOW_YAML = `
timeoutMs: 2000
steps:
  - name: fetch
    parallel:
      steps:
        - name: user
          call:
            service: users
            path: /users/{request.identity.claims.sub}
            timeoutMs: 1000
        - name: orders
          call:
            service: orders
            path: /orders
            query: { user: '{request.identity.claims.sub}', limit: '3' }
            timeoutMs: 1000
          onError: continue
          fallback: []
        - name: recommendations
          call:
            service: products
            path: /recommendations
            query: { user: '{request.identity.claims.sub}', limit: '2' }
            timeoutMs: 1000
          onError: continue
          fallback: []
  - name: profile
    transform:
      from: steps.user.body
      pick: [id, name, avatar_url, membership]
  - name: reply
    respond:
      body: |
        {
          "user": steps.profile.body,
          "recent_orders": steps.orders.body,
          "recommendations": steps.recommendations.body
        }
`;

export const homeFlow = (): FlowSpec => parseYaml(HOME_FLOW_YAML) as FlowSpec;

/** What the users service knows, internal fields included (the flow must not leak them). */
export const SEED_USER = {
  id: 'usr_8a3f',
  name: 'Alice Chen',
  avatar_url: 'https://cdn.example.com/avatars/usr_8a3f.jpg',
  membership: 'premium',
  email_address: 'alice@example.com',
  internal_id: 88123,
  db_shard: 'eu-3',
  feature_flags: ['beta-checkout'],
  created_by_admin: false,
};

export const SEED_ORDERS = [
  { order_id: 'ord_x7k9', status: 'shipped', total: 49.98, created_at: '2026-04-10T14:32:00Z' },
  { order_id: 'ord_w2m1', status: 'delivered', total: 129.0, created_at: '2026-04-05T09:15:00Z' },
  { order_id: 'ord_p4n8', status: 'delivered', total: 34.5, created_at: '2026-03-28T18:42:00Z' },
];

export const SEED_RECOMMENDATIONS = [
  { product_id: 'prod_k3j7', name: 'Wireless Keyboard Pro', price: 79.99, score: 0.94 },
  { product_id: 'prod_m9r2', name: 'USB-C Hub 7-in-1', price: 45.0, score: 0.87 },
];

/** The body seed 003 shows for GET /api/home. */
export const SEED_HOME_BODY = {
  user: { id: 'usr_8a3f', name: 'Alice Chen', avatar_url: 'https://cdn.example.com/avatars/usr_8a3f.jpg', membership: 'premium' },
  recent_orders: SEED_ORDERS,
  recommendations: SEED_RECOMMENDATIONS,
};

export function homeRequest(sub = 'usr_8a3f'): FlowRequest {
  return {
    method: 'GET',
    path: '/api/home',
    headers: { accept: 'application/json' },
    identity: { partner: 'mobile-app', plan: 'standard', credential: 'example-auth', claims: { sub, team: 'mobile-app' } },
  };
}

export type Handler = (call: StepCall, signal: AbortSignal) => StepResponse | Promise<StepResponse>;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): StepResponse {
  return { status, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

/** The seed's three services, answering from memory. */
export const seedServices: Record<string, Handler> = {
  users: (c) => (c.path === `/users/${SEED_USER.id}` ? json(SEED_USER) : json({ error: 'not_found' }, 404)),
  orders: () => json(SEED_ORDERS),
  products: () => json(SEED_RECOMMENDATIONS),
};

/** An in-memory transport: each service is a handler; records every call it is given. */
export function memoryIO(services: Record<string, Handler>, extra: Partial<FlowIO> = {}): FlowIO & { calls: StepCall[] } {
  const calls: StepCall[] = [];
  return {
    calls,
    call: async (call, signal) => {
      calls.push(call);
      const h = services[call.service];
      if (!h) throw new Error(`no service ${call.service}`);
      return h(call, signal);
    },
    ...extra,
  };
}

/** A handler that answers after `ms` (or never, when aborted first, which it reports). */
export function delayed(ms: number, respond: Handler, onAbort?: () => void): Handler {
  return (call, signal) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => resolve(respond(call, signal)), ms);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        onAbort?.();
        reject(new Error('aborted'));
      });
    });
}
