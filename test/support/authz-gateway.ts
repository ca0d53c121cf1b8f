// The authenticated seed-003 gateway for the authz pipeline tests: a test identity provider (real
// JWKS), the example applied through the admin API with its own auth kept, a control plane in
// this process and a real Envoy fed over xDS. Everything the tests change goes through the admin API.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type { TestContext } from 'node:test';
import type { TestCertificate } from './certs.ts';
import { parseScrape, sum } from '../e2e/observability-promql.ts';
import { requireComponent } from './components.ts';
import { launchEnvoy, waitInSync, type TestEnvoy } from './envoy.ts';
import { startTestIssuer, type KeyAlg, type TestIssuer } from './jwks.ts';
import { startTestPortico, type ApiClient, type TestPortico } from './portico.ts';
import { call, seed003, type GatewayResponse, type Seed003 } from './seed003.ts';
import { listenHttp, type LoopbackServer } from './servers.ts';

export const GROUP = 'edge';

export interface AuthzGateway {
  portico: TestPortico;
  envoy: TestEnvoy;
  seed: Seed003;
  issuer: TestIssuer;
  api: ApiClient;
  /** Base URL of the edge listener. */
  gw: string;
  /** Resolves once Envoy has ACKed the group's current snapshot (after writes that change Envoy config). */
  inSync(): Promise<void>;
  /** One request through the gateway (fresh connection). */
  call(path: string, init?: RequestInit): Promise<GatewayResponse>;
}

export interface AuthzGatewayOptions {
  nodeId: string;
  /**
   * The group's ext_authz timeout (seed 003 says 250 ms). Default 2000: these tests assert who gets
   * in, and a shared CI machine can stall the test process (which hosts the control plane) for a
   * quarter of a second; latency is what bench/authz-envoy.ts measures.
   */
  authzTimeoutMs?: number;
  /** Keys the identity provider starts with (default one RS256 key, 'rsa-1'). */
  issuerKeys?: Array<{ kid: string; alg: KeyAlg }>;
  /**
   * native: the group's authorization in native mode and its rate-limit mode unstated (the seed states
   * combined), so the group chooses product by product, as an operator's unstated group does.
   */
  modes?: 'native';
  /** Changes to the example document before it is applied (extra partners, plans…). */
  mutate?: (doc: Record<string, any>) => void;
  /** mTLS channels: the control plane's PORTICO_TLS_* settings and the Envoy's channel SDS file. */
  channel?: { env: Record<string, string>; envoySdsDir: string };
}

/**
 * Starts the whole pipeline. Undefined when Envoy is missing outside CI (the test is skipped);
 * everything is stopped when the test ends.
 */
export async function startAuthzGateway(t: TestContext, o: AuthzGatewayOptions): Promise<AuthzGateway | undefined> {
  const envoyBin = requireComponent(t, 'envoy');
  if (!envoyBin) return undefined;
  const issuer = await startTestIssuer(o.issuerKeys ? { keys: o.issuerKeys } : {});
  const seed = await seed003({ keepAuth: true, jwksUri: issuer.jwksUri });
  const portico = await startTestPortico(o.channel ? { env: { ...o.channel.env } } : {});
  let envoy: TestEnvoy | undefined;
  // One hook, in this order: Envoy first, so no stream or connection of it holds the rest open.
  t.after(async () => {
    await envoy?.stop();
    await portico.close();
    await seed.close();
    await issuer.close();
  });
  envoy = await launchEnvoy(envoyBin, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: GROUP, nodeId: o.nodeId, ...(o.channel ? { channelSdsDir: o.channel.envoySdsDir } : {}) });
  const api = portico.api;
  seed.document.gatewayGroups[0].authz.timeoutMs = o.authzTimeoutMs ?? 2000;
  if (o.modes === 'native') {
    seed.document.gatewayGroups[0].authz.mode = 'native';
    delete seed.document.gatewayGroups[0].rateLimit.mode;
  }
  o.mutate?.(seed.document);
  const applied = await api.post('/api/v1/config', seed.yaml(), { 'content-type': 'application/yaml' });
  assert.equal(applied.status, 200, applied.text);
  const inSync = async () => {
    await waitInSync(portico, GROUP, o.nodeId);
  };
  await envoy.waitForListener('http', 60_000);
  await inSync();
  // The issuer's first key fetch has settled (it starts when the issuer enters the model).
  await portico.authz.ready();
  return { portico, envoy, seed, issuer, api, gw: seed.gatewayUrl, inSync, call: (p, init) => call(`${seed.gatewayUrl}${p}`, init) };
}

/** Envoy's view of its ext_authz calls (for diagnostics when a request failed): errors, timeouts, resets. */
export async function calloutStats(envoy: TestEnvoy): Promise<string> {
  const stats = await envoy.stats(
    'ext_authz\\.|portico\\.callouts\\.(upstream_rq_timeout|upstream_cx_destroy|upstream_rq_pending_failure|upstream_cx_connect_fail|upstream_rq_5|upstream_cx_total|upstream_rq_total)',
  );
  return [...stats]
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/** portico_authz_decisions_total summed over the samples matching every given label, from one process's /metrics. */
export async function authzDecisions(adminUrl: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  return sum(parseScrape(text), 'portico_authz_decisions_total', labels);
}

/** A product of the seed group taking API keys, with one prefix route `/items` to orders (the native tests' plain product). */
export function apiKeyProduct(name: string): Record<string, unknown> {
  return {
    name,
    gatewayGroups: [GROUP],
    basePath: `/${name}`,
    auth: { accept: ['api_key'] },
    routes: [{ name: 'items', match: { path: { type: 'prefix', value: '/items' } }, service: 'orders' }],
  };
}

/** Creates an API key through the admin API; the secret comes back once, in this answer. */
export async function createApiKey(api: ApiClient, partner: string, name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await api.post(`/api/v1/partners/${partner}/api-keys`, { name, ...extra });
  assert.equal(r.status, 201, r.text);
  assert.match(r.body.key, /^ptk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$/, 'the secret is returned on creation');
  return r.body.key as string;
}

/** Asserts the gateway's JSON error shape and returns its code. */
export function assertGatewayError(r: GatewayResponse, status: number, error?: string, what = ''): void {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${what}: content-type`);
  assert.ok(r.json && typeof r.json === 'object', `${what}: JSON body, got ${r.text}`);
  assert.deepEqual(Object.keys(r.json).sort(), ['error', 'message'], `${what}: body ${r.text}`);
  assert.equal(typeof r.json.error, 'string', what);
  assert.equal(typeof r.json.message, 'string', what);
  if (error !== undefined) assert.equal(r.json.error, error, `${what}: ${r.text}`);
}

/** A 401 from the gateway: JSON error shape plus a WWW-Authenticate challenge. */
export function assertUnauthorized(r: GatewayResponse, error?: string, what = ''): void {
  assertGatewayError(r, 401, error, what);
  assert.match(r.headers.get('www-authenticate') ?? '', /realm="portico"/, `${what}: WWW-Authenticate`);
}

/** The echo upstream's view of a request: the identity headers it received. */
export function upstreamHeaders(r: GatewayResponse): Record<string, string> {
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json?.headers, `an echo answer, got ${r.text}`);
  return r.json.headers as Record<string, string>;
}

/** Identity headers (gateway-owned) among those an upstream saw. */
export function identityHeadersOf(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter(([k]) => /^(x-portico-|x-user-id$|x-user-role$)/.test(k)));
}

/** An upstream that echoes every request header it received (names and values, repeated ones too), answering with `responseHeaders` too. */
export function startMirror(responseHeaders: Record<string, string> = {}): Promise<LoopbackServer> {
  return listenHttp((req, res) => {
    const raw: Array<[string, string]> = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) raw.push([req.rawHeaders[i]!.toLowerCase(), req.rawHeaders[i + 1]!]);
    const body = JSON.stringify({ service: 'mirror', path: req.url, rawHeaders: raw });
    res.writeHead(200, { ...responseHeaders, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
}

/** What the mirror received (a 200 from startMirror's upstream): lower-case name → values. */
export function mirroredHeaders(r: GatewayResponse): Map<string, string[]> {
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json?.service, 'mirror', r.text);
  const m = new Map<string, string[]>();
  for (const [k, v] of r.json.rawHeaders as Array<[string, string]>) m.set(k, [...(m.get(k) ?? []), v]);
  return m;
}

/**
 * Sends bytes as they are (HTTP/1.1 over a fresh TCP connection) and parses the answer: for header
 * values no HTTP client would send (non-ASCII, control characters, huge).
 */
export async function rawRequest(port: number, head: Buffer | string, timeoutMs = 10_000): Promise<GatewayResponse & { raw: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('raw request timed out')), timeoutMs);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // Done once a Content-Length body is complete: Envoy may hold the connection open a while
      // after a local reply (delayed close), which need not slow the test down.
      const sofar = Buffer.concat(chunks).toString('latin1');
      const end = sofar.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: *(\d+)/i.exec(sofar.slice(0, end));
      if (end >= 0 && len && sofar.length - end - 4 >= Number(len[1])) {
        clearTimeout(timer);
        finish();
        socket.destroy();
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      // Envoy may reset after answering: keep what arrived.
      if (chunks.length) finish();
      else reject(e);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      finish();
    });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const raw = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(raw);
      if (!m) return reject(new Error(`no HTTP answer: ${JSON.stringify(raw.slice(0, 300))}`));
      const headers = new Headers();
      for (const line of m[2]!.split('\r\n')) {
        const i = line.indexOf(':');
        if (i > 0) headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
      }
      let text = m[3]!;
      if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
        let out = '';
        let rest = text;
        for (;;) {
          const nl = rest.indexOf('\r\n');
          if (nl < 0) break;
          const size = parseInt(rest.slice(0, nl), 16);
          if (!size) break;
          out += rest.slice(nl + 2, nl + 2 + size);
          rest = rest.slice(nl + 2 + size + 2);
        }
        text = out;
      } else if (headers.get('content-length')) text = text.slice(0, Number(headers.get('content-length')));
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ status: Number(m[1]), headers, text, json, raw });
    };
    socket.on('connect', () => {
      socket.write(head);
    });
  });
}

export interface Tls {
  client?: TestCertificate;
  headers?: Record<string, string>;
}

/** One HTTPS request to the mTLS listener (fresh connection, the test's server CA, SNI localhost). */
export function httpsCall(port: number, path: string, serverCa: string, o: Tls = {}): Promise<GatewayResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        servername: 'localhost',
        ca: serverCa,
        ...(o.client ? { cert: o.client.certificate, key: o.client.privateKey } : {}),
        headers: o.headers ?? {},
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => {
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
          resolve({ status: res.statusCode ?? 0, headers, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Adds an https listener named `mtls` on the edge group, with the server certificate and the client CA, through the admin API. */
export async function addMtlsListener(api: ApiClient, port: number, server: TestCertificate, clientCa: TestCertificate): Promise<void> {
  const ok = (r: { status: number; text: string }, what: string) => assert.ok([200, 201].includes(r.status), `${what}: ${r.status} ${r.text}`);
  ok(await api.post('/api/v1/certificates', { name: 'edge-server', certificate: server.certificate, privateKey: server.privateKey }), 'server certificate');
  ok(await api.post('/api/v1/certificates', { name: 'partner-ca', certificate: clientCa.certificate }), 'client CA');
  const edge = (await api.get(`/api/v1/gateway-groups/${GROUP}`)).body;
  const listeners = [...edge.listeners, { name: 'mtls', port, address: '127.0.0.1', protocol: 'https', tls: { certificate: 'edge-server', clientCa: 'partner-ca' } }];
  ok(await api.patch(`/api/v1/gateway-groups/${GROUP}`, { listeners }), 'mTLS listener');
}
