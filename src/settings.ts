// Process settings: environment variables (and CLI flags, which override them), validated once
// at start, with embedded defaults so `portico serve` runs with nothing configured.
import { isIPv4 } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isTrustDomain } from './grpc/index.ts';

/** Where `cargo build --release --target wasm32-wasip1` in flows-wasm/ leaves the module (src/ and dist/ are both one level down). */
export const DEFAULT_FLOWS_WASM_MODULE = fileURLToPath(new URL('../flows-wasm/target/wasm32-wasip1/release/portico_flows.wasm', import.meta.url));

export type ServerRole = 'all' | 'xds' | 'callouts' | 'flows' | 'idempotency';

export interface Settings {
  /** Where embedded PGlite keeps its files and where a generated master key is written; memory:// keeps nothing. */
  dataDir: string;
  /** PostgreSQL connection string; unset means embedded PGlite in dataDir. */
  databaseUrl: string | undefined;
  /** Apply pending migrations at start. */
  migrate: boolean;
  adminHost: string;
  adminPort: number;
  /** gRPC listener for ADS, ext_authz and rate limit. */
  grpcHost: string;
  grpcPort: number;
  role: ServerRole;
  /** Where the callout listener (ext_authz, rate limit) binds. */
  calloutListenHost: string;
  calloutListenPort: number;
  /** Address Envoys use to reach the callouts (host:port); default: the callout listener's bound address. */
  calloutAddress: string | undefined;
  /** Bootstrap admin token: accepted with the admin role; created in the store on first start. */
  adminToken: string | undefined;
  /** Master key (32 bytes, base64) sealing stored secrets; previous keys still decrypt during rotation. */
  masterKey: string | undefined;
  masterKeyFile: string | undefined;
  previousMasterKeys: string[];
  redisUrl: string | undefined;
  /** When the rate-limit counters (Redis) are unreachable: allow (open) or refuse with 429 (closed). */
  rateLimitFailureMode: 'open' | 'closed';
  rateLimitRedisTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Quiet period and maximum wait when coalescing bursts of writes into one xDS push. */
  debounceMs: number;
  debounceMaxMs: number;
  /** gRPC connection age after which clients are asked to reconnect (with ±10% jitter); 0 = never. */
  maxConnectionAgeMs: number;
  /** How often a replica compares its model with the database besides LISTEN/NOTIFY (PostgreSQL only). */
  reconcileMs: number;
  /** Milliseconds to wait for in-flight work at shutdown. */
  shutdownGraceMs: number;
  /**
   * Milliseconds a stopping replica keeps serving (readiness already 503) before it stops accepting:
   * load balancers drop a replica asynchronously (Kubernetes endpoints, health-checking balancers).
   */
  shutdownDelayMs: number;
  /**
   * When `portico serve` first translates the model: on the first Envoy's stream (nothing held
   * before it), or at start (a replica is ready to take over Envoys without translating first).
   */
  translateOn: 'first-stream' | 'start';
  /** Body size limit for admin API requests. */
  adminBodyLimitBytes: number;
  /** The built web console served at /console; unset: console/dist of this installation. */
  consoleDir: string | undefined;
  /** A console session ends after this long without a request. */
  consoleSessionIdleMs: number;
  /** Envoys stream access logs to the control plane (per product × partner request metrics). */
  accessLog: boolean;
  /** host:port Envoys use to reach the access-log service (the gRPC/xDS listener); default: its bound address. */
  accessLogAddress: string | undefined;
  /** Distinct partner label values in request, authz and rate-limit metrics before folding into "other". */
  metricsMaxPartners: number;
  /** OpenTelemetry collector (OTLP/gRPC host:port) Envoys send traces to; unset: no tracing. */
  otelCollectorAddress: string | undefined;
  /** Percentage of requests traced when a collector is set. */
  otelSamplePercent: number;
  /**
   * mTLS on every gRPC listener (xDS + access logs, callouts): the server certificate and key, and the
   * CA bundle Envoys' client certificates must chain to. Unset: plaintext (loopback, or grpcInsecure).
   */
  tls: { certFile: string; keyFile: string; caFile: string } | undefined;
  /** Trust domain of node identities (URI SAN spiffe://<trust domain>/gateway-group/<group>). */
  trustDomain: string;
  /** How often the certificate files are re-read; a rotation on disk reaches new connections without a restart. */
  tlsReloadMs: number;
  /** Accept plaintext gRPC on a non-loopback address (anyone who reaches the port gets config and secrets). */
  grpcInsecure: boolean;
  /**
   * Under mTLS: the directory on every Envoy host holding the channel's file-based SDS files (beside the
   * bootstrap); the callout and access-log clusters pushed to Envoys read their client certificate through them.
   */
  envoyChannelSdsDir: string;
  /** Where the flow runtime binds (roles all and flows). */
  flowsListenHost: string;
  flowsListenPort: number;
  /** host:port Envoys use to reach the flow runtime; default: its bound address. */
  flowsAddress: string | undefined;
  /** host:port each Envoy of a group with flows binds for the runtime's step calls. */
  flowsStepAddress: string;
  /** Where the runtime sends step calls; default the step port of the Envoy that sent the request. */
  flowsEnvoyAddress: string | undefined;
  /** Flow runs at once per runtime; past it, 503. */
  flowsMaxConcurrent: number;
  /** Worker threads that run code steps (each with its own QuickJS), started on first use. */
  flowsCodeWorkers: number;
  /** auto: step calls to services that need nothing only Envoy gives go straight to them; off: all through Envoy. */
  flowsDirectCalls: 'auto' | 'off';
  /** The flows Wasm filter Envoy runs `execution: envoy` flows with (flows-wasm/, built by scripts/setup.sh). */
  flowsWasmModule: string;
  /** Where the idempotency processor (Envoy's ext_proc service) binds (roles all and idempotency). */
  idempotencyListenHost: string;
  idempotencyListenPort: number;
  /** host:port Envoys use to reach the idempotency processor; the bound address when unset. */
  idempotencyAddress: string | undefined;
}

export class SettingsError extends Error {}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new SettingsError(`${name} must be an integer between ${min} and ${max}, got '${raw}'`);
  }
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new SettingsError(`${name} must be true or false, got '${env[name]}'`);
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, allowed: readonly T[]): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new SettingsError(`${name} must be one of ${allowed.join(', ')}, got '${raw}'`);
  }
  return raw as T;
}

function hostPort(env: Env, name: string, fallback: string): { host: string; port: number } {
  const raw = env[name] || fallback;
  const m = /^(.*):(\d{1,5})$/.exec(raw);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new SettingsError(`${name} must be host:port, got '${raw}'`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port };
}

/** Loopback addresses: only processes on this host can reach a listener bound there. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || (isIPv4(h) && h.startsWith('127.'));
}

/** The TLS files, all three or none. */
function tlsFiles(env: Env): Settings['tls'] {
  const names = ['PORTICO_TLS_CERT_FILE', 'PORTICO_TLS_KEY_FILE', 'PORTICO_TLS_CLIENT_CA_FILE'] as const;
  const set = names.filter((n) => env[n]);
  if (set.length === 0) return undefined;
  if (set.length < names.length) throw new SettingsError(`mTLS needs ${names.join(', ')} together; missing ${names.filter((n) => !env[n]).join(', ')}`);
  return { certFile: env.PORTICO_TLS_CERT_FILE!, keyFile: env.PORTICO_TLS_KEY_FILE!, caFile: env.PORTICO_TLS_CLIENT_CA_FILE! };
}

/**
 * The channels carry every Envoy's config and its TLS private keys (and, with native decisions, API
 * keys): plaintext is allowed on loopback only, unless explicitly accepted.
 */
function checkChannelSecurity(settings: Settings): void {
  if (settings.tls) {
    if (settings.grpcInsecure) throw new SettingsError('PORTICO_GRPC_INSECURE=true and PORTICO_TLS_* are both set: choose mTLS or plaintext');
    return;
  }
  if (settings.grpcInsecure) return;
  const binds = [
    ...(settings.role === 'all' || settings.role === 'xds' ? [['PORTICO_GRPC_ADDR', settings.grpcHost] as const] : []),
    ...(settings.role === 'all' || settings.role === 'callouts' ? [['PORTICO_CALLOUT_LISTEN_ADDR', settings.calloutListenHost] as const] : []),
    ...(settings.role === 'all' || settings.role === 'idempotency' ? [['PORTICO_IDEMPOTENCY_LISTEN_ADDR', settings.idempotencyListenHost] as const] : []),
  ].filter(([, host]) => !isLoopback(host));
  if (binds.length === 0) return;
  throw new SettingsError(
    `${binds.map(([name, host]) => `${name} binds ${host}`).join(' and ')}, which is not loopback, without TLS: anyone who reaches the port ` +
      "would receive every Envoy's configuration and TLS private keys. Set PORTICO_TLS_CERT_FILE, PORTICO_TLS_KEY_FILE and " +
      'PORTICO_TLS_CLIENT_CA_FILE (`portico certs` creates them), or set PORTICO_GRPC_INSECURE=true to accept plaintext.',
  );
}

/** Every setting, its environment variable and default; the README's configuration table mirrors this. */
export function loadSettings(env: Env = process.env): Settings {
  const admin = hostPort(env, 'PORTICO_ADMIN_ADDR', '127.0.0.1:8081');
  const grpc = hostPort(env, 'PORTICO_GRPC_ADDR', '127.0.0.1:18000');
  const calloutListen = hostPort(env, 'PORTICO_CALLOUT_LISTEN_ADDR', '127.0.0.1:18001');
  if (env.PORTICO_CALLOUT_ADDR) hostPort(env, 'PORTICO_CALLOUT_ADDR', '');
  if (env.PORTICO_ACCESS_LOG_ADDR) hostPort(env, 'PORTICO_ACCESS_LOG_ADDR', '');
  if (env.PORTICO_OTEL_COLLECTOR_ADDR) hostPort(env, 'PORTICO_OTEL_COLLECTOR_ADDR', '');
  const flowsListen = hostPort(env, 'PORTICO_FLOWS_LISTEN_ADDR', '127.0.0.1:18002');
  if (env.PORTICO_FLOWS_ADDR) hostPort(env, 'PORTICO_FLOWS_ADDR', '');
  if (env.PORTICO_FLOWS_ENVOY_ADDR) hostPort(env, 'PORTICO_FLOWS_ENVOY_ADDR', '');
  hostPort(env, 'PORTICO_FLOWS_STEP_ADDR', '127.0.0.1:18003');
  const idempotencyListen = hostPort(env, 'PORTICO_IDEMPOTENCY_LISTEN_ADDR', '127.0.0.1:18004');
  if (env.PORTICO_IDEMPOTENCY_ADDR) hostPort(env, 'PORTICO_IDEMPOTENCY_ADDR', '');
  const settings: Settings = {
    dataDir: (env.PORTICO_DATA_DIR || '.data').startsWith('memory://') ? env.PORTICO_DATA_DIR! : path.resolve(env.PORTICO_DATA_DIR || '.data'),
    databaseUrl: env.DATABASE_URL || undefined,
    migrate: bool(env, 'PORTICO_MIGRATE', true),
    adminHost: admin.host,
    adminPort: admin.port,
    grpcHost: grpc.host,
    grpcPort: grpc.port,
    role: oneOf(env, 'PORTICO_ROLE', 'all', ['all', 'xds', 'callouts', 'flows', 'idempotency'] as const),
    calloutListenHost: calloutListen.host,
    calloutListenPort: calloutListen.port,
    calloutAddress: env.PORTICO_CALLOUT_ADDR || undefined,
    adminToken: env.PORTICO_ADMIN_TOKEN || undefined,
    masterKey: env.PORTICO_MASTER_KEY || undefined,
    masterKeyFile: env.PORTICO_MASTER_KEY_FILE || undefined,
    previousMasterKeys: (env.PORTICO_PREVIOUS_MASTER_KEYS || '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    redisUrl: env.REDIS_URL || undefined,
    rateLimitFailureMode: oneOf(env, 'PORTICO_RATELIMIT_FAILURE_MODE', 'open', ['open', 'closed'] as const),
    rateLimitRedisTimeoutMs: int(env, 'PORTICO_RATELIMIT_REDIS_TIMEOUT_MS', 250, 1, 60_000),
    logLevel: oneOf(env, 'PORTICO_LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
    debounceMs: int(env, 'PORTICO_DEBOUNCE_MS', 50, 0, 10_000),
    debounceMaxMs: int(env, 'PORTICO_DEBOUNCE_MAX_MS', 250, 0, 60_000),
    maxConnectionAgeMs: int(env, 'PORTICO_MAX_CONNECTION_AGE_MS', 30 * 60_000, 0, 86_400_000),
    shutdownGraceMs: int(env, 'PORTICO_SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    shutdownDelayMs: int(env, 'PORTICO_SHUTDOWN_DELAY_MS', 0, 0, 600_000),
    translateOn: oneOf(env, 'PORTICO_TRANSLATE_ON', 'first-stream', ['first-stream', 'start'] as const),
    reconcileMs: int(env, 'PORTICO_RECONCILE_MS', 10_000, 100, 3_600_000),
    adminBodyLimitBytes: int(env, 'PORTICO_ADMIN_BODY_LIMIT', 64 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    consoleDir: env.PORTICO_CONSOLE_DIR ? path.resolve(env.PORTICO_CONSOLE_DIR) : undefined,
    consoleSessionIdleMs: int(env, 'PORTICO_CONSOLE_SESSION_IDLE_MS', 30 * 60_000, 1000, 7 * 86_400_000),
    accessLog: bool(env, 'PORTICO_ACCESS_LOG', true),
    accessLogAddress: env.PORTICO_ACCESS_LOG_ADDR || undefined,
    metricsMaxPartners: int(env, 'PORTICO_METRICS_MAX_PARTNERS', 200, 0, 100_000),
    otelCollectorAddress: env.PORTICO_OTEL_COLLECTOR_ADDR || undefined,
    otelSamplePercent: int(env, 'PORTICO_OTEL_SAMPLE_PERCENT', 10, 0, 100),
    tls: tlsFiles(env),
    trustDomain: env.PORTICO_TRUST_DOMAIN || 'portico',
    tlsReloadMs: int(env, 'PORTICO_TLS_RELOAD_MS', 5_000, 0, 3_600_000),
    grpcInsecure: bool(env, 'PORTICO_GRPC_INSECURE', false),
    envoyChannelSdsDir: env.PORTICO_ENVOY_CHANNEL_SDS_DIR || '/etc/portico/envoy',
    flowsListenHost: flowsListen.host,
    flowsListenPort: flowsListen.port,
    flowsAddress: env.PORTICO_FLOWS_ADDR || undefined,
    flowsStepAddress: env.PORTICO_FLOWS_STEP_ADDR || '127.0.0.1:18003',
    flowsEnvoyAddress: env.PORTICO_FLOWS_ENVOY_ADDR || undefined,
    flowsMaxConcurrent: int(env, 'PORTICO_FLOWS_MAX_CONCURRENT', 1000, 1, 1_000_000),
    flowsCodeWorkers: int(env, 'PORTICO_FLOWS_CODE_WORKERS', 2, 1, 64),
    flowsDirectCalls: oneOf(env, 'PORTICO_FLOWS_DIRECT_CALLS', 'auto', ['auto', 'off'] as const),
    flowsWasmModule: env.PORTICO_FLOWS_WASM_MODULE ? path.resolve(env.PORTICO_FLOWS_WASM_MODULE) : DEFAULT_FLOWS_WASM_MODULE,
    idempotencyListenHost: idempotencyListen.host,
    idempotencyListenPort: idempotencyListen.port,
    idempotencyAddress: env.PORTICO_IDEMPOTENCY_ADDR || undefined,
  };
  if (!isTrustDomain(settings.trustDomain)) {
    throw new SettingsError(`PORTICO_TRUST_DOMAIN must be a lower-case DNS-like name, got '${settings.trustDomain}'`);
  }
  if (!path.isAbsolute(settings.envoyChannelSdsDir)) throw new SettingsError(`PORTICO_ENVOY_CHANNEL_SDS_DIR must be an absolute path on the Envoy hosts, got '${settings.envoyChannelSdsDir}'`);
  checkChannelSecurity(settings);
  // The idempotency processor needs no model (each route's settings arrive with its requests): it runs on Redis alone.
  if (settings.role !== 'all' && settings.role !== 'idempotency' && !settings.databaseUrl) {
    throw new SettingsError(`PORTICO_ROLE=${settings.role} needs DATABASE_URL: split roles share one PostgreSQL (embedded PGlite serves one process)`);
  }
  // A role that does not run a listener still names it in Envoy's config (every role's writes are
  // translated): with port 0 (any free port, tests) only the process that binds it knows the port.
  for (const [runs, listenPort, listenVar, addr, addrVar] of [
    ['callouts', settings.calloutListenPort, 'PORTICO_CALLOUT_LISTEN_ADDR', settings.calloutAddress, 'PORTICO_CALLOUT_ADDR'],
    ['flows', settings.flowsListenPort, 'PORTICO_FLOWS_LISTEN_ADDR', settings.flowsAddress, 'PORTICO_FLOWS_ADDR'],
  ] as const) {
    if (settings.role !== 'all' && settings.role !== runs && listenPort === 0 && !addr) {
      throw new SettingsError(`PORTICO_ROLE=${settings.role} needs ${addrVar}: this role does not run the ${runs} listener, and ${listenVar}'s port 0 names no address Envoy can reach`);
    }
  }
  if (settings.debounceMaxMs < settings.debounceMs) {
    throw new SettingsError('PORTICO_DEBOUNCE_MAX_MS must be at least PORTICO_DEBOUNCE_MS');
  }
  return settings;
}
