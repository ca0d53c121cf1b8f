// Browser sessions for the web console: an admin or viewer token is exchanged once for a random
// session id in an HttpOnly, SameSite=Strict cookie; unsafe methods also need the session's CSRF token.
import { randomBytes, timingSafeEqual } from 'node:crypto';
// cookie 1.x (parse/serialize): 2.x needs Node 22, and Portico runs on Node 20.
import { parse as parseCookie, serialize } from 'cookie';
import type { FastifyRequest } from 'fastify';
import type { Principal } from './auth.ts';
import { problems } from './problem.ts';

export const SESSION_COOKIE = 'portico_session';
export const CSRF_HEADER = 'x-portico-csrf';

export interface SessionOptions {
  /** A session ends after this long without a request (default 30 minutes). */
  idleMs?: number;
  /** …and at the latest this long after sign-in (default 12 hours). */
  absoluteMs?: number;
  /** Oldest sessions are dropped beyond this many (a flood of sign-ins cannot grow memory). */
  max?: number;
  now?: () => number;
}

interface Session {
  /**
   * The token signed in with, kept in memory only: every request re-verifies it, so a revoked or
   * expired token ends its sessions at once.
   */
  token: string;
  csrf: string;
  createdAt: number;
  lastSeen: number;
}

export interface SessionView {
  csrf: string;
  expiresAt: string;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Sessions live in this process's memory: a restart signs everyone out, and with several replicas
 * behind one address the balancer must keep a browser on one replica (or users sign in again).
 */
export class ConsoleSessions {
  private readonly sessions = new Map<string, Session>();
  private readonly idleMs: number;
  private readonly absoluteMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(
    private readonly verify: (token: string) => Principal,
    opts: SessionOptions = {},
  ) {
    this.idleMs = opts.idleMs ?? 30 * 60_000;
    this.absoluteMs = opts.absoluteMs ?? 12 * 3_600_000;
    this.max = opts.max ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** Verifies the token (throws 401 if it is not valid) and opens a session for it. */
  create(token: string): { id: string; principal: Principal; view: SessionView } {
    const principal = this.verify(token);
    const id = randomBytes(32).toString('base64url');
    const t = this.now();
    const session: Session = { token, csrf: randomBytes(24).toString('base64url'), createdAt: t, lastSeen: t };
    this.sessions.set(id, session);
    // Maps iterate in insertion order: the first keys are the oldest sessions.
    for (const old of this.sessions.keys()) {
      if (this.sessions.size <= this.max) break;
      this.sessions.delete(old);
    }
    return { id, principal, view: this.view(session) };
  }

  destroy(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }

  /** The session id a request's cookie names, if any. */
  idOf(request: FastifyRequest): string | undefined {
    const header = request.headers.cookie;
    if (!header) return undefined;
    return parseCookie(header)[SESSION_COOKIE] || undefined;
  }

  /**
   * The principal of a request that carries a session cookie and no Authorization header, or
   * undefined. Throws 401 for an expired or unknown session and 403 for an unsafe method without
   * the session's CSRF token or from another origin.
   */
  principal(request: FastifyRequest): Principal | undefined {
    if (request.headers.authorization !== undefined) return undefined;
    const id = this.idOf(request);
    if (!id) return undefined;
    const session = this.live(id);
    if (!session) throw problems.unauthorized('the console session has expired; sign in again');
    if (!SAFE_METHODS.has(request.method)) {
      const origin = request.headers.origin;
      if (origin !== undefined && !sameOrigin(origin, request)) throw problems.forbidden(`requests from origin ${origin} may not use a console session`);
      const presented = request.headers[CSRF_HEADER];
      if (typeof presented !== 'string' || !sameSecret(presented, session.csrf)) {
        throw problems.forbidden(`a console session needs its CSRF token in the ${CSRF_HEADER} header for ${request.method}`);
      }
    }
    // Throws 401 if the token was revoked or has expired since sign-in: the session ends with it.
    let principal: Principal;
    try {
      principal = this.verify(session.token);
    } catch (e) {
      this.sessions.delete(id);
      throw e;
    }
    session.lastSeen = this.now();
    return principal;
  }

  /** The session's CSRF token and expiry, for the console to pick up after a reload. */
  viewOf(id: string | undefined): SessionView | undefined {
    const session = id ? this.live(id) : undefined;
    return session ? this.view(session) : undefined;
  }

  cookie(id: string, secure: boolean): string {
    return serialize(SESSION_COOKIE, id, { httpOnly: true, sameSite: 'strict', path: '/', secure, maxAge: Math.floor(this.absoluteMs / 1000) });
  }

  clearCookie(secure: boolean): string {
    return serialize(SESSION_COOKIE, '', { httpOnly: true, sameSite: 'strict', path: '/', secure, maxAge: 0 });
  }

  private live(id: string): Session | undefined {
    const session = this.sessions.get(id);
    if (!session) return undefined;
    const t = this.now();
    if (t - session.lastSeen > this.idleMs || t - session.createdAt > this.absoluteMs) {
      this.sessions.delete(id);
      return undefined;
    }
    return session;
  }

  private view(session: Session): SessionView {
    const end = Math.min(session.lastSeen + this.idleMs, session.createdAt + this.absoluteMs);
    return { csrf: session.csrf, expiresAt: new Date(end).toISOString() };
  }
}

/** Whether an Origin header names the host the request was sent to (the console is same-origin). */
function sameOrigin(origin: string, request: FastifyRequest): boolean {
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}
