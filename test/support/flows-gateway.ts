// Flows through the whole pipeline: the authenticated seed-003 gateway (real JWKS, real Envoy) plus
// a `flows` product whose routes are flows and body transforms over upstreams of their own: seed
// 003's three services (answering after a delay), one that always fails, and one that echoes bodies
// and can hold a request until the test releases it, and one that fails each request's first attempt
// (its service has retries, which only Envoy applies: its step calls go through Envoy, the others straight).
import type { TestContext } from 'node:test';
import { homeFlow, SEED_ORDERS, SEED_RECOMMENDATIONS, SEED_USER } from '../../src/flows/fixtures.ts';
import type { FlowSpec, FlowStepSpec } from '../../src/flows/index.ts';
import { startAuthzGateway, type AuthzGateway } from './authz-gateway.ts';
import { listenHttp, type LoopbackServer } from './servers.ts';

export interface FlowUpstreams {
  servers: Record<string, LoopbackServer>;
  /** Requests each service received: path with query, headers and body. */
  seen: Record<string, Array<{ path: string; headers: Record<string, string | string[] | undefined>; body: string }>>;
  /** Requests to the echo service's /gate wait here until release(). */
  gate: { arrived: number; release(): void };
  close(): Promise<void>;
}

/** A second user the users service knows: a token of this subject gets this user from a flow reading the claim. */
export const OTHER_USER = { ...SEED_USER, id: 'usr_51c2', name: 'Bo Lindqvist', avatar_url: 'https://cdn.example.com/avatars/usr_51c2.jpg', membership: 'basic' };

const json = (res: import('node:http').ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
};

/** The upstreams; the seed's three answer after `delayMs`. */
export async function startFlowUpstreams(delayMs: number): Promise<FlowUpstreams> {
  const seen: FlowUpstreams['seen'] = { users: [], orders: [], products: [], broken: [], echo: [], flaky: [] };
  const attempted = new Set<string>();
  let waiting: Array<() => void> = [];
  const gate = {
    arrived: 0,
    release() {
      for (const w of waiting) w();
      waiting = [];
    },
  };
  const server = (name: string, answer: (path: string, url: URL, body: string, res: import('node:http').ServerResponse, req: import('node:http').IncomingMessage) => void) =>
    listenHttp((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        seen[name]!.push({ path: req.url ?? '', headers: req.headers, body });
        const url = new URL(req.url ?? '/', 'http://x');
        answer(url.pathname, url, body, res, req);
      });
    });
  const later = (fn: () => void) => setTimeout(fn, delayMs);
  const servers: Record<string, LoopbackServer> = {
    users: await server('users', (path, _u, _b, res) =>
      later(() => {
        const user = [SEED_USER, OTHER_USER].find((u) => path === `/users/${u.id}`);
        return user ? json(res, 200, user) : json(res, 404, { error: 'not_found', message: 'no such user' });
      }),
    ),
    orders: await server('orders', (path, url, _b, res) =>
      later(() => {
        if (path === '/orders') return json(res, 200, SEED_ORDERS.slice(0, Number(url.searchParams.get('limit') ?? 3)));
        if (path === '/orders/summary') return json(res, 200, { user: url.searchParams.get('user'), membership: url.searchParams.get('membership') });
        json(res, 404, { error: 'not_found', message: path });
      }),
    ),
    products: await server('products', (path, _u, _b, res) => later(() => (path === '/recommendations' ? json(res, 200, SEED_RECOMMENDATIONS) : json(res, 404, {})))),
    broken: await server('broken', (_p, _u, _b, res) => json(res, 500, { error: 'internal', message: 'always fails' })),
    flaky: await server('flaky', (_p, _u, _b, res, req) => {
      const id = String(req.headers['x-request-id']);
      if (attempted.has(id)) return json(res, 200, { attempt: 2 });
      attempted.add(id);
      json(res, 503, { error: 'unavailable', message: 'first attempts fail' });
    }),
    echo: await server('echo', (path, _u, body, res, req) => {
      if (path === '/gate') {
        gate.arrived++;
        waiting.push(() => json(res, 200, { gate: 'open' }));
        return;
      }
      json(res, 200, { path, contentType: req.headers['content-type'] ?? null, body });
    }),
  };
  return {
    servers,
    seen,
    gate,
    close: async () => {
      gate.release();
      await Promise.all(Object.values(servers).map((s) => s.close()));
    },
  };
}

/** Seed 003's home flow over the test's services. */
export function testHomeFlow(): FlowSpec {
  const flow = homeFlow();
  const rename = (steps: FlowStepSpec[]) => {
    for (const s of steps) {
      if (s.call) s.call.service = `f-${s.call.service}`;
      if (s.parallel) rename(s.parallel.steps);
    }
  };
  rename(flow.steps);
  return flow;
}

const route = (name: string, path: string, methods: string[], action: Record<string, unknown>) => ({
  name,
  match: { path: { type: path.endsWith('*') ? 'prefix' : 'exact', value: path.replace(/\*$/, '') }, methods },
  ...action,
});

/** The `flows` product's routes, one per behaviour under test. */
export function flowRoutes(): Array<Record<string, unknown>> {
  return [
    route('home', '/home', ['GET'], { flow: testHomeFlow() }),
    route('greet', '/greet', ['GET'], {
      flow: {
        steps: [
          {
            name: 'pick',
            switch: {
              cases: [
                { when: 'request.identity.claims.role = "admin"', steps: [{ name: 'admin', respond: { body: '{"greeting": "welcome back, administrator", "partner": request.identity.partner}' } }] },
              ],
              default: [{ name: 'other', respond: { body: '{"greeting": "hello " & request.identity.claims.sub, "partner": request.identity.partner}' } }],
            },
          },
        ],
      },
    }),
    route('order', '/order', ['POST'], {
      flow: {
        steps: [
          {
            name: 'route',
            switch: {
              cases: [{ when: 'request.body.total > 100', steps: [{ name: 'review', respond: { status: 202, body: '{"queue": "manual-review", "total": request.body.total}' } }] }],
              default: [{ name: 'accept', respond: { status: 201, body: '{"queue": "automatic", "total": request.body.total}' } }],
            },
          },
        ],
      },
    }),
    route('chain', '/chain', ['GET'], {
      flow: {
        steps: [
          { name: 'user', call: { service: 'f-users', path: '/users/{request.identity.claims.sub}' } },
          { name: 'summary', call: { service: 'f-orders', path: '/orders/summary', query: { user: '{steps.user.body.id}', membership: '{steps.user.body.membership}' } } },
          { name: 'reply', respond: { body: '{"name": steps.user.body.name, "summary": steps.summary.body}' } },
        ],
      },
    }),
    route('teapot', '/teapot', ['GET'], {
      flow: {
        steps: [
          {
            name: 'reply',
            respond: { status: 418, headers: { 'X-Brewed-For': '{request.identity.partner}' }, body: '{"tea": {"kind": request.query.kind, "cups": 2}}', format: 'accept' },
          },
        ],
      },
    }),
    route('strict', '/strict', ['GET'], {
      flow: {
        steps: [
          { name: 'audit', call: { service: 'f-broken', path: '/audit' } },
          { name: 'reply', respond: { body: '{"audited": true}' } },
        ],
      },
    }),
    route('lenient', '/lenient', ['GET'], {
      flow: {
        steps: [
          { name: 'audit', call: { service: 'f-broken', path: '/audit' }, onError: 'continue', fallback: { audited: false } },
          { name: 'reply', respond: { body: '{"audit": steps.audit.body, "error": steps.audit.error.kind}' } },
        ],
      },
    }),
    route('profile', '/users*', ['GET'], {
      service: 'f-users',
      rewrite: { stripPrefix: '/flows' },
      transform: { response: { remove: ['internal_id', 'db_shard', 'feature_flags', 'created_by_admin'], rename: { email_address: 'email' }, format: 'accept' } },
    }),
    route('xml-in', '/xml-in', ['POST'], { service: 'f-echo', rewrite: { stripPrefix: '/flows' }, transform: { request: { format: 'json' } } }),
    route('loop', '/loop', ['GET'], {
      flow: { steps: [{ name: 'spin', code: { source: 'while (true) {}', timeMs: 50 } }] },
    }),
    route('retried', '/retried', ['GET'], {
      flow: { steps: [{ name: 'flaky', call: { service: 'f-flaky', path: '/flaky' } }] },
    }),
    route('gated', '/gated', ['GET'], {
      flow: {
        steps: [
          { name: 'wait', call: { service: 'f-echo', path: '/gate' } },
          { name: 'reply', respond: { body: '{"version": 1, "upstream": steps.wait.body}' } },
        ],
      },
    }),
  ];
}

export interface FlowGateway extends AuthzGateway {
  upstreams: FlowUpstreams;
}

/** The gateway with the `flows` product (JWT, partner web-app subscribed) applied. */
export async function startFlowGateway(t: TestContext, nodeId: string, delayMs: number): Promise<FlowGateway | undefined> {
  const upstreams = await startFlowUpstreams(delayMs);
  t.after(() => upstreams.close());
  const g = await startAuthzGateway(t, {
    nodeId,
    mutate: (doc) => {
      for (const [name, s] of Object.entries(upstreams.servers))
        doc.services.push({
          name: `f-${name}`,
          endpoints: [{ host: '127.0.0.1', port: s.port }],
          ...(name === 'flaky' ? { retries: { attempts: 1, retryOn: ['5xx'] } } : {}),
        });
      doc.products.push({ name: 'flows', gatewayGroups: ['edge'], basePath: '/flows', auth: { accept: ['jwt'] }, routes: flowRoutes() });
      doc.plans.push({ name: 'flows-unlimited' });
      doc.partners.find((p: { name: string }) => p.name === 'web-app').subscriptions.push({ product: 'flows', plan: 'flows-unlimited' });
    },
  });
  return g ? Object.assign(g, { upstreams }) : undefined;
}
