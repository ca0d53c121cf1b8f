// Demo upstreams for the quick start: small echo services standing in for users, orders and
// products (answering seed 003's data on the paths its /api/home aggregation calls), and a
// development token issuer (JWKS + token minting) standing in for an IdP.
// Loopback-only by default; never part of a production deployment.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';

export interface EchoService {
  name: string;
  port: number;
}

/** Headers worth showing in an echo: what the gateway adds or forwards. */
function interestingHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (/^(x-portico-|x-user-|x-request-id$|x-gateway$|x-forwarded-for$|authorization$|x-api-key$)/.test(k) && typeof v === 'string') {
      out[k] = k === 'authorization' || k === 'x-api-key' ? '[present]' : v;
    }
  }
  return out;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/**
 * An echo service: answers every request with what it received (method, path, identity headers),
 * except GETs of the paths in `data` (the query aside), answered with their value.
 */
export async function startEchoService(name: string, port: number, host = '127.0.0.1', data: Readonly<Record<string, unknown>> = {}): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.url === '/healthz') return sendJson(res, 200, { status: 'ok', service: name });
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && Object.hasOwn(data, path)) {
      req.resume();
      return sendJson(res, 200, data[path]);
    }
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => sendJson(res, 200, { service: name, method: req.method, path: req.url, bodyBytes: bytes, headers: interestingHeaders(req) }));
  });
  server.keepAliveTimeout = 65_000;
  const bound = await listen(server, host, port);
  // Envoy keeps upstream connections open: drop them, or close() waits for Envoy to let go.
  return {
    port: bound,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface DevIssuer {
  port: number;
  issuer: string;
  audience: string;
  /** Mints a token for a subject in a team (the team claim names the partner). */
  mint(claims: { sub: string; team: string; role?: string }, ttlSeconds?: number): Promise<string>;
  close(): Promise<void>;
}

/**
 * A development identity provider: serves its JWKS and mints RS256 tokens on POST /token
 * (body {"sub","team","role"}). The key pair lives in memory and changes on every start.
 */
export async function startDevIssuer(opts: { port: number; host?: string; issuer: string; audience: string }): Promise<DevIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'demo-1', alg: 'RS256', use: 'sig' };
  const mint = async (claims: { sub: string; team: string; role?: string }, ttlSeconds = 3600) =>
    new SignJWT({ team: claims.team, ...(claims.role ? { role: claims.role } : {}) })
      .setProtectedHeader({ alg: 'RS256', kid: 'demo-1' })
      .setIssuer(opts.issuer)
      .setAudience(opts.audience)
      .setSubject(claims.sub)
      .setIssuedAt()
      .setExpirationTime(`${ttlSeconds}s`)
      .sign(privateKey);
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/.well-known/jwks.json') return sendJson(res, 200, { keys: [jwk] });
    if (req.method === 'POST' && req.url === '/token') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        let claims: { sub?: unknown; team?: unknown; role?: unknown };
        try {
          claims = JSON.parse(body || '{}') as typeof claims;
        } catch {
          return sendJson(res, 400, { error: 'bad_request', message: 'body must be JSON: {"sub":"…","team":"…","role":"…"}' });
        }
        if (typeof claims.sub !== 'string' || typeof claims.team !== 'string') {
          return sendJson(res, 400, { error: 'bad_request', message: 'sub and team are required strings' });
        }
        mint({ sub: claims.sub, team: claims.team, ...(typeof claims.role === 'string' ? { role: claims.role } : {}) }).then(
          (token) => sendJson(res, 200, { token, token_type: 'Bearer', expires_in: 3600 }),
          () => sendJson(res, 500, { error: 'internal', message: 'could not sign' }),
        );
      });
      return;
    }
    sendJson(res, 404, { error: 'not_found', message: 'GET /.well-known/jwks.json or POST /token' });
  });
  const port = await listen(server, opts.host ?? '127.0.0.1', opts.port);
  return { port, issuer: opts.issuer, audience: opts.audience, mint, close: () => new Promise((r) => server.close(() => r())) };
}
