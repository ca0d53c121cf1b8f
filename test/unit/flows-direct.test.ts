// Step calls straight from the flow runtime to a service (src/flows/direct-pools.ts), against real
// HTTP and HTTPS upstreams: the model's request timeout, circuit breaker and upstream TLS (its CA and
// SNI) hold as Envoy would apply them, and a service with retries still goes to the step listener.
// Also what the runtime reads of a service's answer (headers, the response limit) and of the request's query.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { FLOW_HEADERS } from '../../src/contract/index.ts';
import { FlowRuntime } from '../../src/flows/index.ts';
import { needsEnvoy } from '../../src/flows/direct-pools.ts';
import { createLogger } from '../../src/telemetry/index.ts';
import { selfSigned, signedBy } from '../support/certs.ts';
import { listenHttp, type LoopbackServer } from '../support/servers.ts';
import { validModel } from '../support/translate.ts';

/** Waits for a condition (no time limit of its own: the runner's per-test timeout bounds it). */
async function until(ok: () => Promise<boolean>): Promise<void> {
  while (!(await ok())) await new Promise((r) => setTimeout(r, 5));
}

type Seen = { service: string; url: string; headers: http.IncomingHttpHeaders };

/** A flow that calls one service and answers what the call gave (status, body, error kind). */
const callRoute = (name: string, service: string) => [
  'routes',
  {
    product: 'p',
    name,
    match: { path: { type: 'exact', value: `/${name}` } },
    flow: {
      steps: [
        { name: 'c', call: { service, path: `/${name}`, timeoutMs: 20_000 }, onError: 'continue', fallback: 'failed' },
        { name: 'reply', respond: { body: '{"status": steps.c.status, "body": steps.c.body, "error": steps.c.error.kind}' } },
      ],
    },
  },
];

describe('direct step calls', { timeout: 60_000 }, () => {
  const seen: Seen[] = [];
  const held: Record<string, http.ServerResponse[]> = { slow: [], narrow: [], hang: [] };
  const registry = new Registry();
  const servers: Array<LoopbackServer | { close(): Promise<void> }> = [];
  let runtime: FlowRuntime;
  let port = 0;
  let goneServer: LoopbackServer;
  /** Settles when the huge service's response closes. */
  let hugeClosed: Promise<unknown> = Promise.resolve();

  before(async () => {
    const record = (service: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
      seen.push({ service, url: req.url ?? '', headers: req.headers });
      req.resume();
      if (held[service]) return held[service].push(res);
      const body = JSON.stringify({ from: service });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    };
    const plain = await listenHttp(record('plain'));
    const slow = await listenHttp(record('slow'));
    const narrow = await listenHttp(record('narrow'));
    const hang = await listenHttp(record('hang'));
    // Streams a body far past the flow's response limit and would never end it on its own.
    const huge = await listenHttp((req, res) => {
      req.resume();
      hugeClosed = new Promise((r) => res.on('close', r));
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = 'x'.repeat(16 * 1024);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    // Answers with a header repeated, one in mixed case, and one named __proto__.
    const tagged = await listenHttp((req, res) => {
      req.resume();
      res.writeHead(200, ['Content-Type', 'application/json', 'X-Tag', 'a', 'x-tag', 'b', 'X-Mixed-Case', 'M', '__proto__', 'p']).end('{"tagged": true}');
    });
    // Stands in for Envoy's step listener: the runtime sends calls it cannot make itself here.
    const step = await listenHttp(record('step-listener'));
    goneServer = await listenHttp(record('gone'));
    await goneServer.close(); // its port now refuses connections
    const ca = await selfSigned('Upstream CA');
    const leaf = await signedBy(ca, 'upstream.test');
    const tlsServer = https.createServer({ cert: leaf.certificate, key: leaf.privateKey }, record('secure'));
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    const tlsPort = (tlsServer.address() as AddressInfo).port;
    servers.push(plain, slow, narrow, hang, tagged, huge, step, {
      close: () =>
        new Promise<void>((r) => {
          tlsServer.closeAllConnections();
          tlsServer.close(() => r());
        }),
    });
    const at = (s: { port: number }) => [{ host: '127.0.0.1', port: s.port }];
    const model = validModel([
      ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 8080 }] }],
      ['certificates', { name: 'upstream-ca', certificate: ca.certificate }],
      ['services', { name: 'plain', endpoints: at(plain) }],
      ['services', { name: 'slow', endpoints: at(slow), requestTimeoutMs: 300 }],
      ['services', { name: 'gone', endpoints: at(goneServer) }],
      ['services', { name: 'narrow', endpoints: at(narrow), circuitBreaker: { maxConnections: 1, maxPendingRequests: 1 } }],
      ['services', { name: 'secure', endpoints: [{ host: '127.0.0.1', port: tlsPort }], tls: { ca: 'upstream-ca', sni: 'upstream.test' } }],
      ['services', { name: 'wrong-name', endpoints: [{ host: '127.0.0.1', port: tlsPort }], tls: { ca: 'upstream-ca', sni: 'other.test' } }],
      ['services', { name: 'retrying', endpoints: at(plain), retries: { attempts: 2, retryOn: ['5xx'] } }],
      ['services', { name: 'hang', endpoints: at(hang), requestTimeoutMs: 600_000 }],
      ['services', { name: 'tagged', endpoints: at(tagged) }],
      ['services', { name: 'huge', endpoints: at(huge) }],
      ['products', { name: 'p', gatewayGroups: ['edge'], basePath: '/' }],
      callRoute('plain', 'plain'),
      callRoute('slow', 'slow'),
      callRoute('gone', 'gone'),
      callRoute('narrow', 'narrow'),
      callRoute('secure', 'secure'),
      callRoute('wrong-name', 'wrong-name'),
      callRoute('retrying', 'retrying'),
      [
        'routes',
        {
          product: 'p',
          name: 'huge',
          match: { path: { type: 'exact', value: '/huge' } },
          flow: { maxResponseBytes: 100_000, steps: [{ name: 'c', call: { service: 'huge', path: '/huge', timeoutMs: 20_000 } }] },
        },
      ],
      [
        'routes',
        {
          product: 'p',
          name: 'query',
          match: { path: { type: 'exact', value: '/query' } },
          flow: { steps: [{ name: 'reply', respond: { body: 'request.query' } }] },
        },
      ],
      [
        'routes',
        {
          product: 'p',
          name: 'tagged',
          match: { path: { type: 'exact', value: '/tagged' } },
          flow: {
            steps: [
              { name: 'c', call: { service: 'tagged', path: '/tagged' } },
              { name: 'reply', respond: { body: '{"status": steps.c.status, "body": steps.c.body, "headers": steps.c.headers}' } },
            ],
          },
        },
      ],
      // Every timeout past the test's own: only the caller going away can end this call.
      [
        'routes',
        {
          product: 'p',
          name: 'hang',
          match: { path: { type: 'exact', value: '/hang' } },
          flow: { timeoutMs: 120_000, steps: [{ name: 'c', call: { service: 'hang', path: '/hang', timeoutMs: 60_000 } }] },
        },
      ],
    ] as never);
    runtime = new FlowRuntime({ registry, logger: createLogger('silent'), stepPort: 0, stepAddress: `127.0.0.1:${step.port}`, maxConcurrent: 100, directCalls: true });
    runtime.update(model);
    port = await runtime.listen('127.0.0.1', 0);
  });

  after(async () => {
    for (const r of [...held.slow!, ...held.narrow!, ...held.hang!]) r.destroy();
    await runtime.close(0);
    await Promise.all(servers.map((s) => s.close()));
  });

  const flow = (route: string): Promise<{ status: number; body: { status: number; body: unknown; error?: string } }> =>
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: `/${route}`, headers: { [FLOW_HEADERS.flow]: `p/${route}`, host: 'api.example', 'x-request-id': `req-${route}` }, agent: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        })
        .on('error', reject);
    });

  it('which services need Envoy, and why', () => {
    const base = { name: 's', endpoints: [{ host: '10.0.0.1', port: 80 }] };
    assert.equal(needsEnvoy(base as never), undefined);
    assert.equal(needsEnvoy({ ...base, retries: { attempts: 1 } } as never), 'retries');
    assert.equal(needsEnvoy({ ...base, retries: { attempts: 0 } } as never), undefined);
    assert.equal(needsEnvoy({ ...base, healthCheck: { path: '/h' } } as never), 'health checks');
    assert.equal(needsEnvoy({ ...base, outlierDetection: {} } as never), 'outlier detection');
    assert.equal(needsEnvoy({ ...base, protocol: 'http2' } as never), 'HTTP/2');
    assert.equal(needsEnvoy({ ...base, lbPolicy: 'ring_hash' } as never), 'ring_hash load balancing');
    assert.equal(needsEnvoy({ ...base, endpoints: [base.endpoints[0], { host: '10.0.0.2', port: 80, weight: 3 }] } as never), 'weighted endpoints');
  });

  it('calls a plain service itself, with the caller Host and request id, without the step routing headers', async () => {
    const r = await flow('plain');
    assert.deepEqual(r.body, { status: 200, body: { from: 'plain' } });
    const call = seen.find((s) => s.service === 'plain')!;
    assert.equal(call.url, '/plain');
    assert.equal(call.headers.host, 'api.example');
    assert.equal(call.headers['x-request-id'], 'req-plain');
    assert.equal(call.headers[FLOW_HEADERS.service], undefined);
    assert.equal(seen.filter((s) => s.service === 'step-listener').length, 0);
  });

  it("gives the step the service's headers: names lower-cased, a repeated one's values joined", async () => {
    const r = await flow('tagged');
    const headers = (r.body as unknown as { headers: Record<string, string> }).headers;
    assert.equal(r.body.status, 200);
    assert.deepEqual(r.body.body, { tagged: true });
    assert.equal(headers['content-type'], 'application/json');
    assert.equal(headers['x-tag'], 'a, b');
    assert.equal(headers['x-mixed-case'], 'M');
    assert.equal(Object.getOwnPropertyDescriptor(headers, '__proto__')?.value, 'p', '__proto__ is a field like any other');
  });

  it("stops reading a service's answer past the flow's response limit, and drops the connection", async () => {
    const r = await new Promise<{ status: number; body: { error: string; step: string; message: string } }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/huge', headers: { [FLOW_HEADERS.flow]: 'p/huge' }, agent: false }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        })
        .on('error', reject);
    });
    assert.equal(r.status, 502);
    assert.equal(r.body.step, 'c');
    assert.match(r.body.message, /more than 100000 bytes/);
    await hugeClosed; // the service sees its connection close: the runtime holds nothing more of it
  });

  it('reads the query string as URLSearchParams does, with and without escapes', async () => {
    const query = (qs: string): Promise<unknown> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: `/query?${qs}`, headers: { [FLOW_HEADERS.flow]: 'p/query' }, agent: false }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve(JSON.parse(text)));
          })
          .on('error', reject);
      });
    for (const qs of ['a=1&a=2&a=3&b=&c&&d=x=y', 'a=1&a=%32&b=x+y&c=%E2%82%AC&d=%zz']) {
      const expected: Record<string, string | string[]> = {};
      for (const [k, v] of new URLSearchParams(qs)) {
        const prev = expected[k];
        expected[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
      assert.deepEqual(await query(qs), expected, qs);
    }
    assert.deepEqual(await query('a=1&a=2&b=&c&&d=x=y'), { a: ['1', '2'], b: '', c: '', d: 'x=y' });
  });

  it('sends a service with retries to the step listener, naming the service', async () => {
    const r = await flow('retrying');
    assert.deepEqual(r.body, { status: 200, body: { from: 'step-listener' } });
    const call = seen.find((s) => s.service === 'step-listener')!;
    assert.equal(call.headers[FLOW_HEADERS.service], 'retrying');
  });

  it("answers 504 past the service's request timeout, as Envoy's route timeout does", async () => {
    const r = await flow('slow');
    assert.deepEqual(r.body, { status: 504, body: 'failed', error: 'status' });
  });

  it('answers 503 when the service cannot be reached', async () => {
    const r = await flow('gone');
    assert.deepEqual(r.body, { status: 503, body: 'failed', error: 'status' });
  });

  it("answers 503 past the service's circuit breaker (one connection, one pending)", async () => {
    const before = seen.filter((s) => s.service === 'narrow').length;
    const calls = [flow('narrow'), flow('narrow')];
    // Both runs are in the runtime (one call held by the upstream, one waiting for the connection).
    await until(async () => (await registry.getSingleMetric('portico_flow_in_progress')!.get()).values[0]?.value === 2 && held.narrow!.length === 1);
    const third = await flow('narrow');
    assert.deepEqual(third.body, { status: 503, body: 'failed', error: 'status' });
    assert.equal(seen.filter((s) => s.service === 'narrow').length - before <= 1, true, 'one connection: at most one request reached the upstream');
    for (const res of held.narrow!.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end('{"late": true}');
    // The held call answers; the pending one then takes the connection and is held in turn.
    const first = await calls[0]!;
    assert.deepEqual(first.body, { status: 200, body: { late: true } });
    await until(async () => held.narrow!.length === 1);
    for (const res of held.narrow!.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end('{"late": 2}');
    assert.deepEqual((await calls[1]!).body, { status: 200, body: { late: 2 } });
  });

  it('cancels the call to the service when the caller goes away', async () => {
    const req = http.get({ host: '127.0.0.1', port, path: '/hang', headers: { [FLOW_HEADERS.flow]: 'p/hang' }, agent: false });
    req.on('error', () => undefined);
    await until(async () => held.hang!.length === 1);
    const upstream = held.hang![0]!;
    const cancelled = new Promise((r) => upstream.on('close', r));
    req.destroy();
    // The runtime drops the call (the service sees its connection close) and ends the run.
    await cancelled;
    await until(async () => (await registry.getSingleMetric('portico_flow_in_progress')!.get()).values[0]?.value === 0);
  });

  it("verifies the upstream's certificate against the model's CA and the SNI name", async () => {
    assert.deepEqual((await flow('secure')).body, { status: 200, body: { from: 'secure' } });
    const wrong = await flow('wrong-name');
    assert.deepEqual(wrong.body, { status: 503, body: 'failed', error: 'status' }, 'a certificate for another name is refused');
  });
});
