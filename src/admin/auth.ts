// Bearer-token authentication for the admin API: stored tokens (hashed) and the bootstrap token
// from the environment. Viewers may read; writes need the admin role; partner tokens reach only the
// routes marked for partners (the portal), and only here is that decided.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AdminRole } from '../model/index.ts';
import type { ModelStore, TokenRole } from '../store/index.ts';
import { problems } from './problem.ts';

export interface Principal {
  name: string;
  role: TokenRole;
  /** The partner a partner token acts for (role partner only). */
  partner?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** Public endpoints (health, docs) skip authentication. */
    public?: boolean;
    /** Minimum role; defaults to viewer for GET/HEAD and admin otherwise. */
    role?: AdminRole;
    /**
     * Partner tokens: 'only' for the partner portal (partner tokens only), 'also' for routes every
     * signed-in principal may use (the console session). Unset: partner tokens get 403.
     */
    partner?: 'only' | 'also';
    /** A read that goes to the database (the rest answer from the in-memory model): it can answer 503. */
    readsDatabase?: boolean;
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export interface AuthOptions {
  store: ModelStore;
  /** Accepted with the admin role as principal "bootstrap" (PORTICO_ADMIN_TOKEN). */
  bootstrapToken?: string;
  /** A browser session (the console's cookie) for a request without an Authorization header. */
  session?: (request: FastifyRequest) => Principal | undefined;
}

/** The bootstrap token's digest, computed once per token (requests then hash only what they present). */
const bootstrapDigests = new Map<string, Buffer>();

export function authenticate(header: string | undefined, opts: AuthOptions): Principal {
  if (!header) throw problems.unauthorized('send an admin token as Authorization: Bearer <token>');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw problems.unauthorized('the Authorization header must be Bearer <token>');
  const token = m[1]!;
  const info = opts.store.adminTokens.verify(token);
  if (info?.partner !== undefined) {
    // A deleted partner's tokens stop working with it (the rows stay until revoked, harmlessly).
    if (!opts.store.current().partners.has(info.partner)) throw problems.unauthorized(`partner '${info.partner}' no longer exists; its tokens are void`);
    return { name: info.name, role: 'partner', partner: info.partner };
  }
  if (info) return { name: info.name, role: info.role };
  if (opts.bootstrapToken) {
    let expected = bootstrapDigests.get(opts.bootstrapToken);
    if (!expected) bootstrapDigests.set(opts.bootstrapToken, (expected = digest(opts.bootstrapToken)));
    if (timingSafeEqual(digest(token), expected)) return { name: 'bootstrap', role: 'admin' };
  }
  throw problems.unauthorized('the admin token is invalid, expired or revoked');
}

export function registerAuth(app: FastifyInstance, opts: AuthOptions): void {
  app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const config = request.routeOptions.config;
    if (config?.public) return;
    const principal = opts.session?.(request) ?? authenticate(request.headers.authorization, opts);
    request.principal = principal;
    const scope = config?.partner;
    if (principal.role === 'partner') {
      if (!scope) throw problems.forbidden(`token '${principal.name}' is a partner token: it may call only the partner portal (/api/v1/portal/…)`);
      return;
    }
    if (scope === 'only') throw problems.forbidden('the partner portal answers partner tokens only (create one with POST /api/v1/partners/{partner}/portal-tokens)');
    const needed: AdminRole = config?.role ?? (request.method === 'GET' || request.method === 'HEAD' ? 'viewer' : 'admin');
    if (needed === 'admin' && principal.role !== 'admin') {
      throw problems.forbidden(`token '${principal.name}' has the viewer role; this needs admin`);
    }
  });
}
