// The ext_authz service shell: holds the current credential index (swapped whole on each model
// snapshot), verifies tokens, asks decide(), and serves envoy.service.auth.v3.Authorization/Check.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { ModelSnapshot } from '../model/model.ts';
import type { SecretHasher } from '../store/secrets.ts';
import { decodeMessage, encodeMessage, lookupService } from '../xds/protos.ts';
import { buildCredentialIndex, type CredentialIndex } from './credential-index.ts';
import { decide, jwtToVerify, type AuthzRequest, type Decision } from './decide.ts';
import { JwtVerifier, type JwtSettings } from './jwt.ts';
import { AuthzMetrics } from './metrics.ts';
import { CheckRequestDecodeError, decodeCheckRequest, encodeCheckResponse } from './wire.ts';

export const AUTHZ_SERVICE = 'envoy.service.auth.v3.Authorization';
/** Envoy files CheckResponse.dynamic_metadata under the ext_authz filter's name. */
export const AUTHZ_METADATA_NAMESPACE = 'envoy.filters.http.ext_authz';

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
  /** Distinct partner label values in metrics before folding into "other" (default 100). */
  maxPartnerLabels?: number;
  /** For JWKS fetches (tests may wrap it); global fetch by default. */
  fetch?: typeof fetch;
}

export class AuthzService {
  readonly metrics: AuthzMetrics;
  readonly verifier: JwtVerifier;
  private current: CredentialIndex | undefined;
  private readonly now: () => number;
  private readonly log: Logger | undefined;

  constructor(private readonly opts: AuthzServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
    this.metrics = new AuthzMetrics({ registry: opts.registry ?? new Registry(), maxPartnerLabels: opts.maxPartnerLabels });
    this.verifier = new JwtVerifier(opts.jwt, { logger: opts.logger, observer: this.metrics, now: this.now, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
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
      this.current = next;
      this.log?.debug({ revision: next.revision, products: next.products.size, apiKeys: next.apiKeys.size }, 'authz: credential index updated');
      return next;
    } catch (e) {
      // Keep answering from the last good index rather than failing every Check.
      this.log?.error({ revision: snapshot.revision, reason: (e as Error).message }, 'authz: credential index build failed; keeping the previous one');
      return undefined;
    }
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

  /** The gRPC implementation of Authorization (add with registerAuthzService). */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      Check: (call: grpc.ServerUnaryCall<AuthzRequest | CheckRequestDecodeError, Decision>, callback: grpc.sendUnaryData<Decision>) => {
        const started = performance.now();
        const req = call.request;
        if (req instanceof CheckRequestDecodeError) {
          this.log?.warn({ peer: call.getPeer() }, 'authz: undecodable CheckRequest');
          callback({ code: grpc.status.INVALID_ARGUMENT, details: 'the request is not an envoy.service.auth.v3.CheckRequest' });
          return;
        }
        let result: Decision | Promise<Decision> | undefined;
        try {
          result = this.check(req);
        } catch (e) {
          this.fail(e, callback);
          return;
        }
        if (result === undefined) {
          // A gRPC error (not a deny) so Envoy applies the group's failure mode.
          callback({ code: grpc.status.UNAVAILABLE, details: 'the credential index is not loaded yet' });
          return;
        }
        if (result instanceof Promise) result.then((d) => this.answer(d, started, callback), (e: unknown) => this.fail(e, callback));
        else this.answer(result, started, callback);
      },
    };
  }

  private answer(d: Decision, started: number, callback: grpc.sendUnaryData<Decision>): void {
    const outcome = d.allowed ? 'allow' : 'deny';
    this.metrics.decision(d.product, d.partner, outcome, d.credential, d.allowed ? 'ok' : d.error);
    this.metrics.checkDuration((performance.now() - started) / 1000, outcome);
    if (this.log?.isLevelEnabled('debug')) {
      this.log.debug(
        { product: d.product, route: d.route, partner: d.partner, credential: d.credential, outcome, ...(d.allowed ? {} : { status: d.status, error: d.error }) },
        'authz: decision',
      );
    }
    callback(null, d);
  }

  private fail(e: unknown, callback: grpc.sendUnaryData<Decision>): void {
    // Only the message: an exception object could hold request data.
    this.log?.error({ reason: (e as Error)?.message }, 'authz: Check failed');
    callback({ code: grpc.status.INTERNAL, details: 'authorization failed internally' });
  }
}

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
 * Server side of Authorization/Check: requests decode straight to AuthzRequest (an undecodable one
 * becomes a CheckRequestDecodeError the handler answers with INVALID_ARGUMENT), decisions encode
 * straight to CheckResponse.
 */
export function authzServiceDefinition(): grpc.ServiceDefinition {
  return methodDefinition<AuthzRequest | CheckRequestDecodeError, Decision>({
    requestSerialize: () => {
      throw new Error('server-side definition');
    },
    requestDeserialize: (b) => {
      try {
        return decodeCheckRequest(b);
      } catch (e) {
        return e instanceof CheckRequestDecodeError ? e : new CheckRequestDecodeError(String(e));
      }
    },
    responseSerialize: encodeCheckResponse,
    responseDeserialize: () => {
      throw new Error('server-side definition');
    },
  });
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
