// Step calls straight from the runtime to a service, for services whose model asks for nothing only
// Envoy gives: one undici pool per service with the model's connect timeout, request timeout,
// circuit-breaker limits and upstream TLS (its CA, client certificate, SNI). Services with retries,
// health checks, outlier detection, hash or weighted load balancing, or HTTP/2 keep going back
// through Envoy's step listener. Why: each call through Envoy crosses it twice (bench/flows.ts:
// ~0.45 ms of Envoy CPU per three-call aggregation, more than the runtime's own work).
import { checkServerIdentity } from 'node:tls';
import { BalancedPool, Pool, type Dispatcher } from 'undici';
import type { ModelSnapshot } from '../model/index.ts';

type Service = NonNullable<ReturnType<ModelSnapshot['services']['get']>>;

/** What Envoy's cluster defaults are (translate's DEFAULTS and Envoy's circuit-breaker defaults). */
const CONNECT_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 15_000;
const ENVOY_CB_DEFAULT = 1024;

export interface DirectService {
  dispatcher: Dispatcher;
  /** The origin of the first endpoint (a pool answers for all of its own). */
  origin: string;
  /** The service's request timeout: past it the call is answered 504, as Envoy's route timeout does. */
  requestTimeoutMs: number;
  /** Calls at once (connections plus pending): past it a call is answered 503, as Envoy's circuit breaker does. */
  maxInFlight: number;
  inFlight: number;
}

/** Why a service's calls must go through Envoy, or undefined when the runtime can call it itself. */
export function needsEnvoy(s: Service): string | undefined {
  if (s.protocol === 'http2' || s.grpc) return 'HTTP/2';
  if (s.retries && s.retries.attempts > 0) return 'retries';
  if (s.healthCheck) return 'health checks';
  if (s.outlierDetection) return 'outlier detection';
  if (s.lbPolicy === 'ring_hash' || s.lbPolicy === 'maglev') return `${s.lbPolicy} load balancing`;
  if (new Set(s.endpoints.map((e) => e.weight ?? 1)).size > 1) return 'weighted endpoints';
  return undefined;
}

export class DirectPools {
  private readonly services = new Map<string, DirectService & { key: string }>();

  /** Pools for a new model: unchanged services keep theirs (and their connections); others close gracefully. */
  update(model: ModelSnapshot): void {
    const seen = new Set<string>();
    for (const [name, s] of model.services) {
      if (needsEnvoy(s)) continue;
      const tlsMaterial = s.tls ? [s.tls.ca && model.certificates.get(s.tls.ca)?.certificate, s.tls.clientCertificate && model.certificates.get(s.tls.clientCertificate)?.certificate] : [];
      const key = JSON.stringify([s.endpoints, s.tls, s.connectTimeoutMs, s.requestTimeoutMs, s.circuitBreaker, tlsMaterial]);
      seen.add(name);
      const old = this.services.get(name);
      if (old?.key === key) continue;
      if (old) void old.dispatcher.close().catch(() => undefined);
      this.services.set(name, { ...build(s, model), key });
    }
    for (const [name, d] of this.services) {
      if (seen.has(name)) continue;
      this.services.delete(name);
      void d.dispatcher.close().catch(() => undefined);
    }
  }

  get(service: string): DirectService | undefined {
    return this.services.get(service);
  }

  async close(): Promise<void> {
    const all = [...this.services.values()];
    this.services.clear();
    await Promise.all(all.map((d) => d.dispatcher.destroy().catch(() => undefined)));
  }
}

function build(s: Service, model: ModelSnapshot): DirectService {
  const tls = s.tls;
  const scheme = tls ? 'https' : 'http';
  const origins = s.endpoints.map((e) => `${scheme}://${e.host.includes(':') && !e.host.startsWith('[') ? `[${e.host}]` : e.host}:${e.port}`);
  const cb = s.circuitBreaker ?? {};
  const connections = cb.maxConnections ?? ENVOY_CB_DEFAULT;
  const connect: Record<string, unknown> = { timeout: s.connectTimeoutMs ?? CONNECT_TIMEOUT_MS };
  if (tls) {
    // As the cluster Envoy is given: SNI from the model, or the one DNS name all endpoints share;
    // the certificate's name is checked against it only when there is one (chain always, unless verify: false).
    const names = [...new Set(s.endpoints.map((e) => e.host).filter((h) => !/^[\d.]+$|:/.test(h)))];
    const sni = tls.sni ?? (names.length === 1 && s.endpoints.every((e) => e.host === names[0]) ? names[0] : undefined);
    if (sni) connect.servername = sni;
    connect.rejectUnauthorized = tls.verify !== false;
    connect.checkServerIdentity = sni ? (_host: string, cert: Parameters<typeof checkServerIdentity>[1]) => checkServerIdentity(sni, cert) : () => undefined;
    const ca = tls.ca ? model.certificates.get(tls.ca)?.certificate : undefined;
    if (ca) connect.ca = ca;
    const client = tls.clientCertificate ? model.certificates.get(tls.clientCertificate) : undefined;
    if (client) {
      connect.cert = client.certificate;
      if (client.privateKey) connect.key = client.privateKey;
    }
  }
  // The engine enforces each step's timeout and the flow's deadline; the service's request timeout
  // is the step client's; so undici's own timers are off. Idle connections are kept a while.
  const options = { connections, connect, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000, headersTimeout: 0, bodyTimeout: 0 } as Pool.Options;
  const dispatcher = origins.length === 1 ? new Pool(origins[0]!, options) : new BalancedPool(origins, options);
  return {
    dispatcher,
    origin: origins[0]!,
    requestTimeoutMs: s.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
    maxInFlight: Math.min(cb.maxRequests ?? ENVOY_CB_DEFAULT, connections * origins.length) + (cb.maxPendingRequests ?? ENVOY_CB_DEFAULT),
    inFlight: 0,
  };
}
