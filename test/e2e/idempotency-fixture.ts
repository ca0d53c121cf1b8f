// Shared parts of the Idempotency-Key tests through real Envoys: an upstream that counts the
// requests it receives (and can hold one in flight, or fail), the model with protected routes, and
// a client sending POSTs with a key.
import { randomUUID } from 'node:crypto';
import { listenHttp, type LoopbackServer } from '../support/servers.ts';
import { call, type GatewayResponse } from '../support/seed003.ts';

export interface CountingUpstream extends LoopbackServer {
  /** Requests received on paths ending with this (e.g. /orders/new). */
  count(path: string): number;
  total(): number;
  /** Answers every request to a path ending in /slow only once this is called (requests until then wait). */
  releaseSlow(): void;
}

export async function countingUpstream(): Promise<CountingUpstream> {
  const counts = new Map<string, number>();
  let total = 0;
  let release: () => void = () => undefined;
  let released = new Promise<void>((r) => (release = r));
  const server = await listenHttp((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const path = req.url ?? '';
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      total++;
      if (path.endsWith('/slow')) await released;
      // A server error the first time: the key must not keep it.
      const status = path.endsWith('/flaky') && n === 1 ? 500 : 201;
      // A response over Envoy's 1 MiB buffer limit for paths ending in /large.
      const body = JSON.stringify({
        id: `ord-${total}`,
        seen: n,
        method: req.method,
        path,
        partner: req.headers['x-portico-partner'] ?? null,
        body: Buffer.concat(chunks).toString(),
        ...(path.endsWith('/large') ? { padding: 'p'.repeat(1_500_000) } : {}),
      });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-order-id': `ord-${total}`, location: `/orders/ord-${total}` }).end(body);
    });
  });
  return {
    ...server,
    count: (suffix) => [...counts].reduce((n, [p, c]) => (p.endsWith(suffix) ? n + c : n), 0),
    total: () => total,
    releaseSlow: () => {
      release();
      released = Promise.resolve();
    },
  };
}

/** The products both Envoy groups serve: `shop` (API keys, per-partner keys) and `open` (anonymous callers). */
/** `native`: Envoy checks API keys and limits itself (no callout), so requests survive the control plane. */
export function idempotencyDocument(o: { groups: Array<{ name: string; port: number }>; upstreamPort: number; keys: Record<string, string>; native?: boolean }): Record<string, unknown> {
  const groups = o.groups.map((g) => g.name);
  const route = (name: string, value: string, extra: Record<string, unknown> = {}) => ({ name, match: { path: { type: 'prefix', value } }, service: 'orders', ...extra });
  return {
    portico: 'v1',
    gatewayGroups: o.groups.map((g) => ({
      name: g.name,
      listeners: [{ name: 'http', port: g.port, address: '127.0.0.1' }],
      authz: { failureMode: 'closed', timeoutMs: 5000, ...(o.native ? { mode: 'native' } : {}) },
      ...(o.native ? { rateLimit: { mode: 'native' } } : {}),
    })),
    services: [{ name: 'orders', endpoints: [{ host: '127.0.0.1', port: o.upstreamPort }], requestTimeoutMs: 60_000 }],
    products: [
      {
        name: 'shop',
        gatewayGroups: groups,
        basePath: '/shop',
        auth: { accept: ['api_key'] },
        routes: [
          route('orders', '/orders', { idempotency: { enabled: true } }),
          route('payments', '/payments', { idempotency: { required: true, methods: ['POST', 'PUT'] } }),
          route('quick', '/quick', { idempotency: { ttlSeconds: 1 } }),
          route('plain', '/plain'),
        ],
      },
      { name: 'open', gatewayGroups: groups, basePath: '/open', auth: { accept: ['none'] }, routes: [route('orders', '/orders', { idempotency: {} })] },
    ],
    plans: [{ name: 'free', limits: [{ requests: 100_000, per: 'hour' }] }],
    partners: Object.entries(o.keys).map(([name, key]) => ({ name, apiKeys: [{ name: 'k', key }], subscriptions: [{ product: 'shop', plan: 'free' }] })),
  };
}

export const newKey = (): string => `"${randomUUID()}"`;

/** A POST through a gateway, with an API key and (when given) an Idempotency-Key. */
export function post(gw: string, path: string, o: { apiKey?: string; key?: string; body?: string; method?: string } = {}): Promise<GatewayResponse> {
  return call(`${gw}${path}`, {
    method: o.method ?? 'POST',
    headers: { 'content-type': 'application/json', ...(o.apiKey ? { 'x-api-key': o.apiKey } : {}), ...(o.key !== undefined ? { 'idempotency-key': o.key } : {}) },
    ...(o.method === 'GET' ? {} : { body: o.body ?? '{"item":"book","qty":1}' }),
  });
}

/** The value of portico_idempotency_requests_total for a product, route and outcome, from a Prometheus text page. */
export function requestsCounted(metrics: string, product: string, route: string, outcome: string): number {
  const line = metrics
    .split('\n')
    .find((l) => l.startsWith('portico_idempotency_requests_total{') && l.includes(`product="${product}"`) && l.includes(`route="${route}"`) && l.includes(`outcome="${outcome}"`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}
