// The ext_authz service shell: holds the current credential index (swapped whole on each model
// snapshot), verifies tokens, asks decide(), and serves envoy.service.auth.v3.Authorization/Check.
// In combined mode (the route's context_extensions say `ratelimit: combined`) an allowed request is
// also counted by the rate limiter in process: one callout authenticates and counts.
import * as grpc from '@grpc/grpc-js';
import { COMBINED_CONTEXT_KEY, COMBINED_CONTEXT_VALUE } from '../contract/index.ts';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { ModelSnapshot } from '../model/index.ts';
import type { SecretHasher } from '../store/index.ts';
import { decodeMessage, encodeMessage, lookupService } from '../proto/index.ts';
import { buildCredentialIndex, type CredentialIndex } from './credential-index.ts';
import { decide, jwtToVerify, type Allow, type AuthzRequest, type Decision } from './decide.ts';
import type { JwtSettings } from './jwks.ts';
import { JwtVerifier } from './jwt.ts';
import { AuthzMetrics } from './metrics.ts';
import type { UnaryGrpcServer } from '../grpc/index.ts';
import { decodeCheckRequest, encodeCheckResponse, encodeLimitedCheckResponse, type LimitVerdict } from './wire.ts';
import type { Decision as LimitDecision, DecisionRequest as LimitRequest } from '../ratelimit/index.ts';

export const AUTHZ_SERVICE = 'envoy.service.auth.v3.Authorization';

export interface AuthzServiceOptions {
  /** The keyed hasher API keys are stored with (ModelStore.apiKeyHasher()). */
  hasher: SecretHasher;
  /** Metrics registry; a private one is used when omitted. */
  registry?: Registry;
  /** Never given a credential or token: only product, route, partner, outcome, reason. */
  logger?: Logger;
  /** Epoch milliseconds (tests move it). */
  now?: () => number;
  jwt?: Partial<JwtSettings>;
  /** Distinct partner label values in metrics before folding into "other" (default 200). */
  maxPartnerLabels?: number;
  /** For JWKS fetches (tests may wrap it); global fetch by default. */
  fetch?: typeof fetch;
  /**
   * The rate limiter (src/ratelimit's RateLimiter) for combined mode: requests allowed on routes
   * whose context_extensions carry `ratelimit: combined` are counted here, in the same callout.
   * Without it such requests are allowed uncounted (logged once).
   */
  limiter?: CombinedLimiter;
}

/** The part of src/ratelimit's RateLimiter combined mode uses. */
export interface CombinedLimiter {
  /** Never rejects: a counter outage becomes the limiter's failure-mode decision. */
  decide(req: LimitRequest): Promise<LimitDecision>;
}

/** Lower-case header names any plan (or override) counts by: the only headers the limiter may look up. */
export function countedHeaderNames(snapshot: ModelSnapshot): string[] {
  const names = new Set<string>();
  for (const p of snapshot.plans.values()) {
    if (p.countBy?.kind === 'header' && p.countBy.header) names.add(p.countBy.header.toLowerCase());
    for (const o of p.overrides ?? []) if (o.countBy?.kind === 'header' && o.countBy.header) names.add(o.countBy.header.toLowerCase());
  }
  return [...names].sort();
}

/**
 * The request as the limiter must see it: after ext_authz's header changes, which Envoy applies
 * before anything else counts (identity headers set from the verified credential, e.g. X-User-Id
 * from a JWT claim; the API key header removed). Only the counted headers are looked up.
 */
export function limiterRequest(a: Allow, req: AuthzRequest, counted: readonly string[]): LimitRequest {
  const out: LimitRequest = { product: a.product, route: a.route, partner: a.partner };
  if (req.sourceAddress) out.clientIp = req.sourceAddress;
  if (counted.length === 0) return out;
  const headers: Record<string, string> = {};
  let any = false;
  for (const name of counted) {
    let v: string | undefined;
    let set = false;
    for (const [k, value] of a.setHeaders) {
      if (k === name) {
        v = value;
        set = true;
        break;
      }
    }
    // Envoy's request_headers action reads `host` as :authority; so does this.
    if (!set && !a.removeHeaders.includes(name)) v = req.headers.get(name) ?? (name === 'host' ? req.headers.get(':authority') : undefined);
    if (v !== undefined) {
      headers[name] = v;
      any = true;
    }
  }
  if (any) out.headers = headers;
  return out;
}

export class AuthzService {
  readonly metrics: AuthzMetrics;
  readonly verifier: JwtVerifier;
  private current: CredentialIndex | undefined;
  private counted: readonly string[] = [];
  private readonly now: () => number;
  private readonly log: Logger | undefined;
  private readonly limiter: CombinedLimiter | undefined;
  private warnedNoLimiter = false;
  private readonly keySetListeners = new Set<() => void>();

  constructor(private readonly opts: AuthzServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
    this.limiter = opts.limiter;
    this.metrics = new AuthzMetrics({ registry: opts.registry ?? new Registry(), maxPartnerLabels: opts.maxPartnerLabels });
    // A key set loaded is also news for native mode, which pushes fetched key sets to Envoy.
    const observer = {
      tokenCache: (r: 'hit' | 'miss') => this.metrics.tokenCache(r),
      jwksFetch: (issuer: string, r: 'ok' | 'error') => this.metrics.jwksFetch(issuer, r),
      jwksKeys: (issuer: string, keys: number) => {
        this.metrics.jwksKeys(issuer, keys);
        for (const l of this.keySetListeners) l();
      },
    };
    this.verifier = new JwtVerifier(opts.jwt, { logger: opts.logger, observer, now: this.now, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
  }

  /** The index answering Checks now (undefined before the first snapshot). */
  get index(): CredentialIndex | undefined {
    return this.current;
  }

  /** Builds the index from a snapshot and swaps it in; key sources of new or changed issuers start fetching. */
  update(snapshot: ModelSnapshot): CredentialIndex | undefined {
    try {
      const next = buildCredentialIndex(snapshot, { hasher: this.opts.hasher });
      this.verifier.sync(next.issuers);
      this.metrics.setKnown(next.products.keys(), next.partners.keys());
      this.counted = countedHeaderNames(snapshot);
      this.current = next;
      this.log?.debug({ revision: next.revision, products: next.products.size, apiKeys: next.apiKeys.size }, 'authz: credential index updated');
      return next;
    } catch (e) {
      // Keep answering from the last good index rather than failing every Check.
      this.log?.error({ revision: snapshot.revision, reason: (e as Error).message }, 'authz: credential index build failed; keeping the previous one');
      return undefined;
    }
  }

  /** The key sets fetched for jwksUri issuers, by issuer name (native mode pushes them to Envoy inline). */
  fetchedKeySets(): Map<string, unknown> {
    const out = new Map<string, unknown>();
    for (const [name, i] of this.current?.issuers ?? []) {
      const doc = i.jwksUri !== undefined ? this.verifier.source(name)?.document : undefined;
      if (doc !== undefined) out.set(name, doc);
    }
    return out;
  }

  /** Calls `listener` whenever an issuer's keys were (re)loaded; returns the unsubscribe. */
  onKeySets(listener: () => void): () => void {
    this.keySetListeners.add(listener);
    return () => this.keySetListeners.delete(listener);
  }

  /** Every issuer's first JWKS load has settled (startup readiness, tests). */
  ready(): Promise<void> {
    return this.verifier.ready();
  }

  /** Stops JWKS refresh timers and in-flight fetches. */
  close(): void {
    this.verifier.close();
  }

  /** One decision; synchronous unless a token needs its signature checked. Never rejects. */
  check(req: AuthzRequest): Decision | Promise<Decision> | undefined {
    const index = this.current;
    if (!index) return undefined;
    const now = this.now();
    const jwt = jwtToVerify(index, req);
    if (!jwt) return decide(index, req, now);
    const outcome = this.verifier.verify(jwt.token, jwt.issuers, now);
    if (outcome instanceof Promise) return outcome.then((o) => decide(index, req, this.now(), o));
    return decide(index, req, now, outcome);
  }

  /**
   * One Check from its encoded CheckRequest to its encoded CheckResponse, or a gRPC status for
   * requests that cannot be answered (undecodable: INVALID_ARGUMENT; before the first snapshot:
   * UNAVAILABLE, so Envoy applies the group's failure mode). Transport-agnostic: grpc-js and the
   * lean HTTP/2 listener both call it. Synchronous unless a token needs its signature checked.
   */
  checkBytes(bytes: Uint8Array, peer: () => string = () => ''): CheckResult | Promise<CheckResult> {
    const started = performance.now();
    let req: AuthzRequest;
    try {
      req = decodeCheckRequest(bytes);
    } catch {
      this.log?.warn({ peer: peer() }, 'authz: undecodable CheckRequest');
      return { ok: false, code: grpc.status.INVALID_ARGUMENT, details: 'the request is not an envoy.service.auth.v3.CheckRequest' };
    }
    let result: Decision | Promise<Decision> | undefined;
    try {
      result = this.check(req);
    } catch (e) {
      return this.failed(e);
    }
    if (result === undefined) return { ok: false, code: grpc.status.UNAVAILABLE, details: 'the credential index is not loaded yet' };
    if (result instanceof Promise)
      return result.then(
        (d) => this.counting(d, req, started),
        (e: unknown) => this.failed(e),
      );
    return this.counting(result, req, started);
  }

  /** Combined mode: an allowed request on a counted route goes to the limiter before the answer. */
  private counting(d: Decision, req: AuthzRequest, started: number): CheckResult | Promise<CheckResult> {
    // Decision logs carry Envoy's request id (the access log's request_id): never a credential.
    const requestId = req.headers.get('x-request-id') || req.requestId;
    if (!d.allowed || req.context.get(COMBINED_CONTEXT_KEY) !== COMBINED_CONTEXT_VALUE) return this.answer(d, started, requestId);
    const limiter = this.limiter;
    if (!limiter) {
      if (!this.warnedNoLimiter) {
        this.warnedNoLimiter = true;
        this.log?.warn({ product: d.product, route: d.route }, 'authz: a route asks ext_authz to count requests (rate limit mode combined) but no limiter is configured; not counting');
      }
      return this.answer(d, started, requestId);
    }
    let pending: Promise<LimitDecision>;
    try {
      pending = limiter.decide(limiterRequest(d, req, this.counted));
    } catch (e) {
      return this.failed(e);
    }
    return pending.then(
      (l) => this.answerLimited(d, l, started, requestId),
      (e: unknown) => this.failed(e),
    );
  }

  private answerLimited(d: Allow, l: LimitDecision, started: number, requestId = ''): CheckResult {
    const verdict: LimitVerdict = l;
    let response: Buffer;
    try {
      response = encodeLimitedCheckResponse(d, verdict);
    } catch (e) {
      return this.failed(e);
    }
    const outcome = l.allowed ? 'allow' : 'deny';
    this.metrics.decision(d.product, d.partner, outcome, d.credential, l.allowed ? 'ok' : (l.error ?? 'rate_limited'));
    this.metrics.checkDuration((performance.now() - started) / 1000, outcome);
    if (this.log?.isLevelEnabled('debug')) {
      this.log.debug({ requestId, product: d.product, route: d.route, partner: d.partner, credential: d.credential, outcome, rateLimit: l.outcome }, 'authz: decision');
    }
    return { ok: true, response, decision: d };
  }

  /** The grpc-js implementation of Authorization (add with registerAuthzService). */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const reply = (r: CheckResult) => (r.ok ? callback(null, r.response) : callback({ code: r.code, details: r.details }));
        const r = this.checkBytes(call.request, () => call.getPeer());
        if (r instanceof Promise) void r.then(reply);
        else reply(r);
      },
    };
  }

  private answer(d: Decision, started: number, requestId = ''): CheckResult {
    let response: Buffer;
    try {
      response = encodeCheckResponse(d);
    } catch (e) {
      return this.failed(e);
    }
    const outcome = d.allowed ? 'allow' : 'deny';
    this.metrics.decision(d.product, d.partner, outcome, d.credential, d.allowed ? 'ok' : d.error);
    this.metrics.checkDuration((performance.now() - started) / 1000, outcome);
    if (this.log?.isLevelEnabled('debug')) {
      this.log.debug(
        { requestId, product: d.product, route: d.route, partner: d.partner, credential: d.credential, outcome, ...(d.allowed ? {} : { status: d.status, error: d.error }) },
        'authz: decision',
      );
    }
    return { ok: true, response, decision: d };
  }

  private failed(e: unknown): CheckResult {
    // Only the message: an exception object could hold request data.
    this.log?.error({ reason: (e as Error)?.message }, 'authz: Check failed');
    return { ok: false, code: grpc.status.INTERNAL, details: 'authorization failed internally' };
  }
}

/** What one Check produced: the encoded CheckResponse, or a gRPC status for the caller. */
export type CheckResult = { ok: true; response: Buffer; decision: Decision } | { ok: false; code: grpc.status; details: string };

function methodDefinition<Req, Res>(codec: {
  requestSerialize: (v: Req) => Buffer;
  requestDeserialize: (b: Buffer) => Req;
  responseSerialize: (v: Res) => Buffer;
  responseDeserialize: (b: Buffer) => Res;
}): grpc.ServiceDefinition {
  const svc = lookupService(AUTHZ_SERVICE);
  const check = svc.methods.Check;
  if (!check) throw new Error(`${AUTHZ_SERVICE} has no Check method`);
  return {
    Check: { path: `/${AUTHZ_SERVICE}/Check`, requestStream: false, responseStream: false, originalName: 'check', ...codec },
  } as grpc.ServiceDefinition;
}

const toBuffer = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));

/**
 * Server side of Authorization/Check: requests and responses stay bytes; the handler decodes only
 * what a decision needs and answers with a directly encoded CheckResponse (see checkBytes).
 */
export function authzServiceDefinition(): grpc.ServiceDefinition {
  const raw = (b: Buffer) => b;
  return methodDefinition<Buffer, Buffer>({ requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw });
}

/** A CheckResponse as proto3 JSON (what clients of authzClientDefinition receive). */
export type CheckResponseJson = ReturnType<typeof decodeMessage>;

/**
 * Client side (tests, benchmarks, tools): requests are CheckRequest proto3 JSON (encoded strictly)
 * or already-encoded bytes; responses decode to proto3 JSON.
 */
export function authzClientDefinition(): grpc.ServiceDefinition {
  return methodDefinition<unknown, CheckResponseJson>({
    requestSerialize: (v) => (Buffer.isBuffer(v) ? v : toBuffer(encodeMessage('envoy.service.auth.v3.CheckRequest', v))),
    requestDeserialize: (b) => decodeMessage('envoy.service.auth.v3.CheckRequest', b),
    responseSerialize: (v) => toBuffer(encodeMessage('envoy.service.auth.v3.CheckResponse', v)),
    responseDeserialize: (b) => decodeMessage('envoy.service.auth.v3.CheckResponse', b),
  });
}

/** Anything that hosts gRPC services: XdsServer (addService before listen) or a plain grpc.Server (callouts-only role). */
export interface ServiceHost {
  addService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void;
}

export function registerAuthzService(host: ServiceHost, service: AuthzService): void {
  host.addService(authzServiceDefinition(), service.handlers());
}

/**
 * Serves Check on the lean HTTP/2 listener (UnaryGrpcServer): the callouts-only role's fast path,
 * about half of grpc-js's CPU per call. Same answers as the grpc-js service.
 */
export function registerAuthzUnary(server: UnaryGrpcServer, service: AuthzService): void {
  server.handle(`/${AUTHZ_SERVICE}/Check`, (bytes, peer) => service.checkBytes(bytes, peer));
}
