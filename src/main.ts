// Composition root: settings → store → model snapshot → servers (admin API, gRPC for xDS and
// the callouts), and an orderly shutdown of all of them.
import * as grpc from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { buildAdminServer } from './admin/index.ts';
import { ConfigPipeline } from './pipeline.ts';
import type { TranslateOptions } from './translate/index.ts';
import type { Settings } from './settings.ts';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { compileResourceSchemas, parseDocumentText } from './model/index.ts';
import { applyDocument, openDatabase, ChangeFeed, loadKeyRing, type Database, type ModelStore } from './store/index.ts';
import { createLogger, createRegistry, AccessLogService, registerAccessLogService, type Logger } from './telemetry/index.ts';
import { createXds, type Xds } from './xds/index.ts';
import { AuthzService, registerAuthzUnary } from './authz/index.ts';
import { ChannelGuard, TlsMaterial, UnaryGrpcServer } from './grpc/index.ts';
import { createRateLimiter, QuotaLedger, readPartnerUsage, registerRateLimitUnary, type RateLimiter } from './ratelimit/index.ts';
import { checkFlow, CodePool, codeSandbox, compileModelFlows, directCaller, FlowRuntime, tryFlow } from './flows/index.ts';
import { createProcessor } from './idempotency-role.ts';
import type { IdempotencyProcessor } from './idempotency/index.ts';

export interface Portico {
  settings: Settings;
  store: ModelStore;
  database: Database;
  admin: FastifyInstance;
  xds: Xds;
  pipeline: ConfigPipeline;
  authz: AuthzService;
  ratelimit: RateLimiter;
  /** Envoys' access-log streams → per product × partner request metrics. */
  accessLogs: AccessLogService;
  registry: Registry;
  /** Base URL of the admin API (with the port actually bound). */
  adminUrl: string;
  /** Port the gRPC server (ADS) is bound to; 0 for a callouts-only replica. */
  grpcPort: number;
  /** Port the callout listener (ext_authz, rate limit) is bound to; 0 for an xds-only replica. */
  calloutPort: number;
  /** The lean HTTP/2 server of the callouts. */
  callouts: UnaryGrpcServer;
  /** The flow runtime (roles all and flows), and the port it is bound to (0 when not running). */
  flows: FlowRuntime | undefined;
  flowsPort: number;
  /** The idempotency processor on the gRPC listener (role all; PORTICO_ROLE=idempotency runs it apart). */
  idempotency: IdempotencyProcessor | undefined;
  /** What the pipeline translates with (addresses Envoys are given): for tools that translate a model the same way. */
  translateOptions: TranslateOptions;
  /** How the gRPC channels are secured: the guard (refusals) and, under mTLS, the reloading certificate material. */
  channels: { guard: ChannelGuard; tls: TlsMaterial | undefined };
  /** Token printed at first start, when one was generated. */
  generatedAdminToken?: string;
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** A declarative document applied before anything is served (`portico serve --apply`). */
  applyFile?: string;
  /** Whether that apply deletes what the document leaves out. */
  prune?: boolean;
  /** Compile the resource schemas once the admin API listens (`portico serve`, except role xds; tests skip the cost). */
  compileSchemas?: boolean;
  /**
   * Translate the model when the first Envoy connects (or a write needs it), not at start
   * (`portico serve`): until then the process holds no translation, and it is ready sooner.
   */
  translateOnFirstStream?: boolean;
  /** Embedded memory:// database only: start from this dump of a migrated database (tests start hundreds). */
  embeddedImage?: Blob;
}

export { bind, StartupError } from './bind.ts';
import { bind } from './bind.ts';

/** The flows Wasm module Envoys are sent (bytes as base64, as the config carries them), or why there is none. */
function loadFlowsWasm(file: string): { module: { base64: string; sha256: string } } | { unavailable: string } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    return {
      unavailable: `the flows Wasm module ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); build it with scripts/setup.sh or set PORTICO_FLOWS_WASM_MODULE`,
    };
  }
  if (bytes.subarray(0, 4).toString('latin1') !== '\0asm') return { unavailable: `${file} is not a WebAssembly module` };
  return { module: { base64: bytes.toString('base64'), sha256: createHash('sha256').update(bytes).digest('hex') } };
}

/**
 * Full collections, a few apart: V8 drops a function's bytecode once it has not run for
 * --bytecode-old-age (5) full collections, and the start (store, migrations check, Prisma's first
 * queries, the first translation) leaves ~15 MB of bytecode that an idle process never runs again;
 * one collection only reclaims garbage. A function run later is compiled again on its first call.
 * Then one more, compacting, after a quiet spell longer than the 5 s over which V8 measures the
 * allocation rate: V8 shrinks the young generation only at a collection that finds that rate low
 * (none of the first ones does: the start is in the window), and compacts old space only where its
 * heuristics pick pages. Idle role xds at 10k routes: young generation 8.4 -> 1 MB committed, old
 * space 52 -> 44 MB committed for 43 MB used.
 */
function collectIdle(gc: () => void, rounds = 6): void {
  gc();
  if (rounds > 1) setTimeout(() => collectIdle(gc, rounds - 1), 200).unref();
  else setTimeout(() => compactingCollection(gc), 6_000).unref();
}
function compactingCollection(gc: () => void): void {
  setFlagsFromString('--compact-on-every-full-gc');
  try {
    gc();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
  }
}

/**
 * One full collection SETTLE_MS after the last of the events `watch` reports (publications, ACKs,
 * streams opening or closing), so a burst of them costs one collection; returns the detach function.
 */
const SETTLE_MS = 5_000;
function settleCollection(gc: () => void, watch: (fn: () => void) => Array<() => void>): () => void {
  let timer: NodeJS.Timeout | undefined;
  const detach = watch(() => {
    clearTimeout(timer);
    timer = setTimeout(gc, SETTLE_MS).unref();
  });
  return () => {
    clearTimeout(timer);
    for (const d of detach) d();
  };
}

export async function startPortico(settings: Settings, opts: StartOptions = {}): Promise<Portico> {
  const log = opts.logger ?? createLogger(settings.logLevel);
  const registry = createRegistry();
  // The gRPC channels' security first: bad certificate files stop the start before anything opens.
  const tls = settings.tls ? new TlsMaterial(settings.tls, { reloadMs: settings.tlsReloadMs, logger: log.child({ component: 'tls' }) }) : undefined;
  const guard = new ChannelGuard({ security: tls ? 'mtls' : 'plaintext', trustDomain: settings.trustDomain });
  if (tls) log.info({ serial: tls.current().serial, notAfter: tls.current().notAfter, trustDomain: settings.trustDomain }, 'gRPC channels: mTLS (node certificates must name their gateway group)');
  else if (settings.grpcInsecure) log.warn('gRPC channels: PLAINTEXT (PORTICO_GRPC_INSECURE=true): anyone who reaches the gRPC ports receives config and TLS private keys');
  const keys = loadKeyRing(settings, (msg) => log.warn(msg));
  const database = await openDatabase({
    databaseUrl: settings.databaseUrl,
    dataDir: settings.dataDir,
    migrate: settings.migrate,
    keys,
    log: (msg) => log.info(msg),
    ...(opts.embeddedImage ? { embeddedImage: opts.embeddedImage } : {}),
  });
  const store = database.store;
  log.info({ database: database.kind, revision: store.current().revision }, 'model loaded');
  // Replicas on one PostgreSQL follow each other's writes; embedded PGlite has one process.
  const feed = database.kind === 'postgresql' ? new ChangeFeed(store, { databaseUrl: database.url, reconcileMs: settings.reconcileMs, log: log.child({ component: 'feed' }) }) : undefined;
  feed?.start();

  if (opts.applyFile) {
    const file = opts.applyFile;
    // Keys made through the API are not in files (their secrets are shown once): keep them.
    const result = await applyDocument(store, parseDocumentText(readFileSync(file, 'utf8')), {
      actor: 'portico serve --apply',
      summary: `apply ${file} at start`,
      keepUnlistedApiKeys: true,
      prune: opts.prune === true,
    }).catch(async (e: Error) => {
      await database.close();
      throw new Error(`${file}: ${e.message}`);
    });
    log.info({ file, changes: result.changes.length, revision: result.snapshot.revision }, 'applied document at start');
  }
  // Every replica must hand Envoy the same addresses, or their snapshot versions differ.
  if (settings.databaseUrl && (!settings.calloutAddress || (settings.accessLog && !settings.accessLogAddress))) {
    log.warn('with DATABASE_URL (several replicas), set PORTICO_CALLOUT_ADDR and PORTICO_ACCESS_LOG_ADDR to addresses every replica shares (a Service), or replicas serve different config versions');
  }

  // Flows: every write is checked by the flow compiler (expressions, references, reachability,
  // limits, code that compiles in the sandbox); the runtime runs them for Envoy in roles all and flows.
  // Compiling a code step (the write-time check) stays on this thread; running one goes to a worker,
  // so a step spinning to its CPU limit never stalls what this thread serves.
  // The sandbox (QuickJS in WebAssembly: ~10 MB RSS, ~60 ms of CPU to load) is loaded at start where
  // the flow runtime checks code as models arrive; elsewhere (role xds) before the first write.
  const runsFlows = settings.role === 'all' || settings.role === 'flows';
  let sandbox = runsFlows ? await codeSandbox() : undefined;
  const loadSandbox = () =>
    sandbox
      ? undefined
      : codeSandbox().then((s) => {
          sandbox = s;
        });
  const withSandbox = async () => {
    await loadSandbox();
    return sandbox!;
  };
  // Only a write that skipped the store's loading could find it missing: it is refused, never passed unchecked.
  const checkCode = (src: string) => (sandbox ? sandbox.check(src) : 'the code sandbox is not loaded: try the write again');
  const codePool = new CodePool({
    size: settings.flowsCodeWorkers,
    onReplace: (reason) => log.warn({ reason }, 'code step worker replaced'),
  });
  // Flows marked execution: envoy run in the flows Wasm filter, whose module Envoys get in their
  // config: without it such a flow is refused at write time, never sent as a broken filter.
  const flowsWasm = loadFlowsWasm(settings.flowsWasmModule);
  if ('unavailable' in flowsWasm) log.info({ module: settings.flowsWasmModule }, `flows cannot run in Envoy: ${flowsWasm.unavailable}`);
  const envoyExecution = 'unavailable' in flowsWasm ? { unavailable: flowsWasm.unavailable } : {};
  store.addValidator((candidate) => compileModelFlows(candidate, { checkCode, envoyExecution }).errors, loadSandbox);
  const flows =
    runsFlows && sandbox
      ? new FlowRuntime({
          registry,
          logger: log.child({ component: 'flows' }),
          stepPort: Number(settings.flowsStepAddress.slice(settings.flowsStepAddress.lastIndexOf(':') + 1)),
          ...(settings.flowsEnvoyAddress ? { stepAddress: settings.flowsEnvoyAddress } : {}),
          maxConcurrent: settings.flowsMaxConcurrent,
          sandbox,
          codePool,
          // With tracing on, step spans come from Envoy's step listener: every call goes through it.
          directCalls: settings.flowsDirectCalls === 'auto' && !settings.otelCollectorAddress,
        })
      : undefined;
  flows?.update(store.current());
  const detachFlows = flows ? store.subscribe((s) => flows.update(s)) : () => undefined;
  // Bound first of the listeners, so a second Portico on the default ports meets this one first.
  const flowsPort = flows
    ? await bind('the flow runtime', 'PORTICO_FLOWS_LISTEN_ADDR', settings.flowsListenHost, settings.flowsListenPort, () => flows.listen(settings.flowsListenHost, settings.flowsListenPort)).catch(
        async (e) => {
          detachFlows();
          await flows.close(0).catch(() => undefined);
          tls?.close();
          await feed?.stop();
          await database.close();
          throw e;
        },
      )
    : 0;
  if (flowsPort) log.info({ address: `${settings.flowsListenHost}:${flowsPort}` }, 'flow runtime listening');
  const flowsAddress = settings.flowsAddress ?? `${['0.0.0.0', '::'].includes(settings.flowsListenHost) ? '127.0.0.1' : settings.flowsListenHost}:${flowsPort || settings.flowsListenPort}`;

  // Model → Envoy config → ADS. The pipeline also gates every write on the translation.
  // The callouts answer from indexes rebuilt per snapshot; nothing on their path touches the database.
  const ratelimit = createRateLimiter(
    { redisUrl: settings.redisUrl, failureMode: settings.rateLimitFailureMode, redisTimeoutMs: settings.rateLimitRedisTimeoutMs, maxPartnerLabels: settings.metricsMaxPartners },
    { registry, logger: log.child({ component: 'ratelimit' }), model: store.current() },
  );
  const authz = new AuthzService({ hasher: store.apiKeyHasher(), registry, logger: log.child({ component: 'authz' }), limiter: ratelimit, maxPartnerLabels: settings.metricsMaxPartners });
  authz.update(store.current());
  const accessLogs = new AccessLogService({ registry, logger: log.child({ component: 'access-log' }), maxPartnerLabels: settings.metricsMaxPartners, guard });
  accessLogs.setModel(store.current());
  const detachAuthz = store.subscribe((s) => {
    authz.update(s);
    ratelimit.setModel(s);
    accessLogs.setModel(s);
  });

  // grpc-js writes its own errors to stderr as raw lines; they belong in our log. A failed bind is
  // reported by bind() in one sentence, so its raw line is only worth a debug entry.
  grpc.setLogger({
    error: (...args: unknown[]) => {
      const line = args.map(String).join(' ');
      if (/No address added/.test(line)) log.debug({ component: 'grpc-js' }, line);
      else log.warn({ component: 'grpc-js' }, line);
    },
  } as unknown as Console);
  // ADS (streaming) on node:http2; streams opened before the first snapshot wait for it, so listening
  // before the pipeline publishes is safe.
  const xds = createXds(settings, { registry, logger: log.child({ component: 'xds' }), serveAds: settings.role === 'all' || settings.role === 'xds', guard });
  // Envoys stream access logs to the same gRPC port as xDS (the address the translator gives them).
  registerAccessLogService(xds.server, accessLogs);
  // A port in use fails the start before the admin API opens; what was opened is closed again.
  const closeEarly = async () => {
    await Promise.all([xds.server.close(0), callouts.close(0), accessLogs.close(), flows?.close(0), codePool.close()]).catch(() => undefined);
    await idempotency?.close();
    tls?.close();
    detachAuthz();
    await feed?.stop();
    xds.cache.close();
    authz.close();
    await ratelimit.close();
    await database.close();
  };
  const callouts = new UnaryGrpcServer({ logger: log.child({ component: 'callouts' }), ...(tls ? { tls: { material: tls, guard } } : {}) });
  // Duplicate-request protection: Envoy's ext_proc filter streams protected routes' requests to the
  // callout listener (role all; PORTICO_ROLE=idempotency serves it apart, on Redis alone).
  const idempotency = settings.role === 'all' ? createProcessor(settings, callouts, { registry, logger: log.child({ component: 'idempotency' }) }) : undefined;
  const grpcPort =
    settings.role === 'all' || settings.role === 'xds'
      ? await bind('gRPC for xDS', 'PORTICO_GRPC_ADDR', settings.grpcHost, settings.grpcPort, () => xds.server.listen(settings.grpcHost, settings.grpcPort, tls)).catch(async (e) => {
          await closeEarly();
          throw e;
        })
      : 0;
  if (grpcPort) log.info({ address: `${settings.grpcHost}:${grpcPort}`, role: settings.role }, 'gRPC (ADS) listening');
  // The callouts (unary: ext_authz Check, ShouldRateLimit) on the lean HTTP/2 listener: about half
  // of grpc-js's CPU per call, and these calls are on every request's path.
  registerAuthzUnary(callouts, authz);
  registerRateLimitUnary(callouts, ratelimit);
  const calloutPort =
    settings.role === 'all' || settings.role === 'callouts'
      ? await bind('the callouts', 'PORTICO_CALLOUT_LISTEN_ADDR', settings.calloutListenHost, settings.calloutListenPort, () =>
          callouts.listen(settings.calloutListenHost, settings.calloutListenPort),
        ).catch(async (e) => {
          await closeEarly();
          throw e;
        })
      : 0;
  if (calloutPort) log.info({ address: `${settings.calloutListenHost}:${calloutPort}` }, 'callouts (ext_authz, rate limit) listening');
  const calloutAddress = settings.calloutAddress ?? `${['0.0.0.0', '::'].includes(settings.calloutListenHost) ? '127.0.0.1' : settings.calloutListenHost}:${calloutPort || settings.calloutListenPort}`;
  // Telemetry in the Envoy config: access logs streamed to the gRPC listener (its advertised address), traces to a collector.
  const localGrpc = `${['0.0.0.0', '::'].includes(settings.grpcHost) ? '127.0.0.1' : settings.grpcHost}:${grpcPort || settings.grpcPort}`;
  const telemetry = {
    ...(settings.accessLog ? { accessLogAddress: settings.accessLogAddress ?? localGrpc } : {}),
    ...(settings.otelCollectorAddress ? { otelCollectorAddress: settings.otelCollectorAddress, otelSamplePercent: settings.otelSamplePercent } : {}),
  };
  // Under mTLS, the callout and access-log clusters Envoys get present the node certificate too.
  const channel = tls ? { channelSdsDir: settings.envoyChannelSdsDir } : {};
  // In role all the processor shares the callout listener; split roles name the processor's address.
  const idempotencyAddress = settings.idempotencyAddress ?? (idempotency ? calloutAddress : `127.0.0.1:${settings.idempotencyListenPort}`);
  const translateOptions: TranslateOptions = {
    calloutAddress,
    telemetry,
    flows: { address: flowsAddress, stepAddress: settings.flowsStepAddress, ...('module' in flowsWasm ? { wasmModule: flowsWasm.module } : {}) },
    idempotency: { address: idempotencyAddress },
    ...channel,
  };
  const pipeline = new ConfigPipeline(xds.cache, xds.fleet, translateOptions, log.child({ component: 'pipeline' }), registry);
  // Native JWT: the key sets the callout's verifier fetched are pushed to Envoy inline (one fetcher for the fleet).
  pipeline.useJwks(() => authz.fetchedKeySets());
  const detachKeySets = authz.onKeySets(() => pipeline.jwksChanged());
  const detach = pipeline.attach(store, { deferUntilStream: opts.translateOnFirstStream === true });
  // Native quotas: counted from the access logs Envoys stream, enforced by the next push.
  const quotas = new QuotaLedger();
  quotas.setModel(store.current());
  const detachQuotas = store.subscribe((s) => {
    quotas.setModel(s);
    pipeline.quotasChanged();
    // An issuer removed or pointed elsewhere: its old key set is no longer pushed.
    pipeline.jwksChanged();
  });
  pipeline.useQuotas(quotas);
  accessLogs.onEntries((group, entries) => {
    if (quotas.recordEntries(group, entries, Date.now())) pipeline.quotasChanged();
  });

  // Set at shutdown: /readyz turns 503 while xDS streams and callouts drain.
  let draining = false;
  const admin = await buildAdminServer({
    store,
    registry,
    ...(settings.adminToken ? { bootstrapToken: settings.adminToken } : {}),
    bodyLimitBytes: settings.adminBodyLimitBytes,
    ...(settings.consoleDir ? { consoleDir: settings.consoleDir } : {}),
    consoleSessions: { idleMs: settings.consoleSessionIdleMs },
    // The partner portal reads usage where it is counted: the limiter's counters, native quotas' ledger.
    portalUsage: (model, partner) => readPartnerUsage(model, partner, { limiter: ratelimit, ledger: quotas }, Date.now()),
    logger: log.child({ component: 'admin' }),
    readiness: {
      ready: () => pipeline.ready(),
      draining: () => draining,
      details: () => ({
        database: database.kind,
        migrations: { applied: database.migrations.applied.length, pending: database.migrations.pending.length },
        modelRevision: store.current().revision,
        servedRevision: pipeline.current().servedRevision,
        ...(pipeline.current().lastError ? { lastError: pipeline.current().lastError } : {}),
      }),
    },
    fleet: () => ({ ...xds.fleet.status(), pipeline: pipeline.current() }),
    // The console's flow designer: the write gate's own checks, and "try it" straight to the services.
    flowTools: {
      check: async (flow, model) => {
        const s = await withSandbox();
        return checkFlow(flow, model, { checkCode: (src) => s.check(src) });
      },
      run: async (flow, sample, model) => {
        const s = await withSandbox();
        return tryFlow(flow, sample, model, { call: directCaller(model), sandbox: codePool }, { checkCode: (src) => s.check(src) });
      },
    },
  });
  await bind('the admin API', 'PORTICO_ADMIN_ADDR', settings.adminHost, settings.adminPort, () => admin.listen({ host: settings.adminHost, port: settings.adminPort })).catch(async (e) => {
    detach();
    await admin.close();
    await closeEarly();
    throw e;
  });
  // First start without any way in: mint an admin token and show it once (only once every listener
  // is bound, so a start that fails on a port in use creates nothing).
  let generatedAdminToken: string | undefined;
  if (!settings.adminToken && store.adminTokens.count() === 0) {
    const { token } = await store.adminTokens.create({ name: 'initial-admin', role: 'admin', description: 'created at first start' }, 'portico');
    generatedAdminToken = token;
    process.stderr.write(`\nPortico created an admin token (shown only now; store it safely):\n\n    ${token}\n\n`);
  }
  const addr = admin.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : settings.adminPort;
  const adminUrl = `http://${settings.adminHost.includes(':') ? `[${settings.adminHost}]` : settings.adminHost}:${port}`;
  log.info({ url: adminUrl }, 'admin API listening');
  // Role xds replicas rarely take writes: a write compiles its kind's schema when it first needs
  // it (validatorFor), and the idle replica holds none of them (idle RSS -10 MB at 10k routes).
  if (opts.compileSchemas && settings.role !== 'xds') void compileResourceSchemas();
  // What the start left behind (the store's rows, the first translation's intermediates: ~45 MB of
  // heap at 10k routes) would wait for V8's memory reducer, which had not run 10 s after ready.
  // bin/portico gives production `--expose-gc`: one full collection once ready returns it (idle RSS
  // 321-325 -> 289-292 MB, PostgreSQL, 10k routes, bench/start.ts --node-flags).
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) setImmediate(() => collectIdle(gc));
  // Translated on the first Envoy's stream instead (translateOnFirstStream): that translation's
  // intermediates too, once its responses are sent.
  if (gc && !xds.cache.isReady()) xds.cache.onReady(() => setTimeout(() => collectIdle(gc), 2_000).unref());
  // Each publication and fan-out leaves dead ArrayBuffers (the superseded encodings, 7 MB a route
  // configuration at 10k routes; the responses written to every stream) whose memory V8 returns
  // only at a full collection, and a process that stops allocating once its Envoys are in sync
  // runs none: 1,000 streams held 20-55 MB more external memory than was live. One collection
  // once publications, ACKs and stream opens have been quiet for a few seconds returns it.
  const detachSettle = gc ? settleCollection(gc, (fn) => [xds.cache.watchAll(() => fn()), xds.fleet.onMembership(fn), xds.fleet.onAcked(() => fn())]) : () => undefined;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      log.info({ delayMs: settings.shutdownDelayMs }, 'shutting down');
      // Draining: /readyz answers 503 from now on. Load balancers drop a replica asynchronously
      // (Kubernetes endpoints and DNS, health-checking balancers), so it keeps serving everything
      // for the shutdown delay: a connection still sent here is answered, not refused. Then gRPC
      // stops accepting, ends every xDS stream cleanly (Envoys keep their config and reconnect to
      // another replica), sends the callout connections a GOAWAY (Envoy opens its next connection
      // elsewhere) and lets in-flight callouts finish (bounded by the grace period), while this
      // replica still follows the model.
      draining = true;
      if (settings.shutdownDelayMs > 0) await new Promise((r) => setTimeout(r, settings.shutdownDelayMs));
      // (the gRPC server stops accepting first; then open access-log streams end, Envoys reopen them elsewhere)
      await Promise.all([xds.server.close(settings.shutdownGraceMs), callouts.close(settings.shutdownGraceMs), accessLogs.close(), flows?.close(settings.shutdownGraceMs)]);
      await codePool.close();
      await idempotency?.close();
      detachFlows();
      tls?.close();
      detach();
      detachQuotas();
      detachKeySets();
      detachSettle();
      detachAuthz();
      await feed?.stop();
      await admin.close();
      xds.cache.close();
      authz.close();
      await ratelimit.close();
      await database.close();
    })());

  return {
    settings,
    store,
    database,
    admin,
    xds,
    pipeline,
    authz,
    ratelimit,
    accessLogs,
    registry,
    adminUrl,
    grpcPort,
    calloutPort,
    callouts,
    flows,
    flowsPort,
    idempotency: idempotency?.processor,
    translateOptions,
    channels: { guard, tls },
    ...(generatedAdminToken ? { generatedAdminToken } : {}),
    close,
  };
}
