// The gRPC server Envoys connect to: ADS (SotW + Delta) and the per-type discovery services over the
// snapshot cache, keepalive and jittered connection age, graceful shutdown; other services can join it.
import * as grpc from '@grpc/grpc-js';
import { plaintextGuard, type Admission, type ChannelGuard } from '../grpc/index.ts';
import { setVersion, typeSnapshot, type SnapshotCache } from './cache.ts';
import { FleetStatus } from './fleet.ts';
import { DISCOVERY_SERVICES, discoveryServiceDefinition, encodeDeltaResponse, encodeSotwResponse, type DiscoveryServiceKey } from './services.ts';
import { DeltaStream } from './delta.ts';
import { SotwStream } from './sotw.ts';
import { observers, silentLogger, type StreamObserver, type DeltaRequest, type DeltaResponse, type SotwRequest, type SotwResponse, type XdsLogger } from './stream.ts';

export interface XdsServerOptions {
  cache: SnapshotCache;
  /** Fleet status; one is created when omitted. */
  fleet?: FleetStatus;
  /** Further observers of every stream (metrics, tests), told after the fleet status. */
  observer?: StreamObserver;
  logger?: XdsLogger;
  /** Streams and connections are ended after this age ±10% so Envoys rebalance across replicas; 0 = never. */
  maxConnectionAgeMs?: number;
  /** Server keepalive pings (detect dead Envoys behind NATs and load balancers). */
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  /** How long listeners/routes may wait for Envoy to subscribe to the EDS of new clusters. */
  orderingTimeoutMs?: number;
  /**
   * Bytes of responses handed to gRPC but not yet written out, across all streams. A change fanned out
   * to a thousand Envoys is paced by this instead of being buffered all at once (memory stays bounded).
   */
  sendBudgetBytes?: number;
  /** Extra grpc-js server options. */
  grpcOptions?: grpc.ServerOptions;
  /** Host the discovery services (false for a callouts-only replica); default true. */
  serveAds?: boolean;
  /**
   * Who may connect (mTLS: a node certificate from the CA, naming the group the node asks for);
   * default: plaintext, everyone. Pass the matching credentials to listen().
   */
  guard?: ChannelGuard;
}

type AnyCall = grpc.ServerDuplexStream<unknown, unknown>;
/** What every grpc-js server call offers: its peer, its TLS auth context, and ending it with a status. */
type Caller = Pick<AnyCall, 'getPeer' | 'getAuthContext' | 'emit'>;

/** Paces writes so that at most `limit` bytes are queued in gRPC/HTTP/2 at once (one oversized write may pass alone). */
export class SendBudget {
  private used = 0;
  private readonly queue: { call: AnyCall; produce: () => Buffer }[] = [];
  private readonly pending = new Map<AnyCall, Set<{ bytes: number }>>();

  constructor(private readonly limit: number) {}

  get queuedWrites(): number {
    return this.queue.length;
  }

  /** Serializes (lazily, when there is room) and writes one response on `call`. */
  write(call: AnyCall, produce: () => Buffer): void {
    this.queue.push({ call, produce });
    this.drain();
  }

  /** Forgets a call that ended: its queued writes are dropped and its bytes released. */
  release(call: AnyCall): void {
    const tokens = this.pending.get(call);
    if (tokens) {
      for (const t of tokens) this.used -= t.bytes;
      tokens.clear(); // a late write callback must not release them twice
    }
    this.pending.delete(call);
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.call === call) this.queue.splice(i, 1);
    this.drain();
  }

  private drain(): void {
    while (this.queue.length > 0 && (this.used < this.limit || this.used === 0)) {
      const { call, produce } = this.queue.shift()!;
      if (call.destroyed || call.writableEnded) continue;
      const buf = produce();
      const token = { bytes: buf.length };
      let tokens = this.pending.get(call);
      if (!tokens) this.pending.set(call, (tokens = new Set()));
      tokens.add(token);
      this.used += token.bytes;
      call.write(buf, () => {
        if (tokens.delete(token)) {
          this.used -= token.bytes;
          this.drain();
        }
      });
    }
  }
}

/** Adds ±10% jitter so replicas' Envoys do not all reconnect at once. */
export function jittered(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (0.9 + 0.2 * random()));
}

export class XdsServer {
  readonly grpc: grpc.Server;
  readonly fleet: FleetStatus;
  private readonly observer: StreamObserver;
  private readonly cache: SnapshotCache;
  private readonly log: XdsLogger;
  private readonly calls = new Map<AnyCall, { close(): void; timer?: NodeJS.Timeout }>();
  private readonly budget: SendBudget;
  readonly guard: ChannelGuard;
  private started = false;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: XdsServerOptions) {
    this.cache = opts.cache;
    this.log = opts.logger ?? silentLogger;
    this.guard = opts.guard ?? plaintextGuard();
    this.fleet = opts.fleet ?? new FleetStatus({ cache: opts.cache, guard: this.guard });
    this.observer = opts.observer ? observers(this.fleet, opts.observer) : this.fleet;
    this.budget = new SendBudget(opts.sendBudgetBytes ?? 16 * 1024 * 1024);
    const age = opts.maxConnectionAgeMs ?? 0;
    this.grpc = new grpc.Server({
      'grpc.keepalive_time_ms': opts.keepaliveTimeMs ?? 30_000,
      'grpc.keepalive_timeout_ms': opts.keepaliveTimeoutMs ?? 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      // grpc-js jitters the age by ±10% itself and then sends GOAWAY; the grace covers streams that
      // started late on an old connection (xDS streams end on their own timer, see below).
      ...(age > 0 ? { 'grpc.max_connection_age_ms': age, 'grpc.max_connection_age_grace_ms': age } : {}),
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': -1,
      // Per-call bookkeeping nobody reads here; it costs CPU on every message.
      'grpc.enable_channelz': 0,
      ...opts.grpcOptions,
    });
    if (opts.serveAds !== false) for (const key of Object.keys(DISCOVERY_SERVICES) as DiscoveryServiceKey[]) this.addDiscoveryService(key);
  }

  /** Hosts another service (ext_authz, rate limit, …) on the same port; call before listen(). */
  addService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    if (this.started) throw new Error('addService must be called before listen()');
    this.grpc.addService(definition, implementation);
  }

  /** Binds and serves; returns the bound port (pass port 0 for a free one). */
  async listen(host: string, port: number, credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    const addr = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
    const bound = await new Promise<number>((resolve, reject) => this.grpc.bindAsync(addr, credentials, (err, p) => (err ? reject(err) : resolve(p))));
    this.started = true;
    this.log.info({ address: `${host}:${bound}` }, 'xds: serving');
    return bound;
  }

  /** Connected xDS streams. */
  streamCount(): number {
    return this.calls.size;
  }

  /**
   * Graceful shutdown: stop accepting calls, end every xDS stream with OK (Envoys reconnect to another
   * replica and keep serving meanwhile), let other calls finish for up to graceMs, then force.
   */
  close(graceMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      const done = new Promise<void>((resolve) => this.grpc.tryShutdown(() => resolve()));
      for (const [call, s] of this.calls) {
        s.close();
        endCall(call);
      }
      this.calls.clear();
      let timer: NodeJS.Timeout | undefined;
      const forced = await Promise.race([done.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))]);
      clearTimeout(timer);
      if (forced) {
        this.log.warn({ graceMs }, 'xds: calls still open after the grace period; forcing shutdown');
        this.grpc.forceShutdown();
      }
    })();
    return this.closing;
  }

  private addDiscoveryService(key: DiscoveryServiceKey): void {
    const { service, typeUrl } = DISCOVERY_SERVICES[key];
    const def = discoveryServiceDefinition(service);
    const impl: grpc.UntypedServiceImplementation = {};
    for (const [name, m] of Object.entries(def)) {
      if (m.requestStream && name.startsWith('Delta')) impl[name] = (call: AnyCall) => this.serveDelta(call, key, typeUrl);
      else if (m.requestStream) impl[name] = (call: AnyCall) => this.serveSotw(call, key, typeUrl);
      else impl[name] = (call: grpc.ServerUnaryCall<SotwRequest, SotwResponse>, cb: grpc.sendUnaryData<SotwResponse>) => this.fetch(call, cb, typeUrl);
    }
    this.grpc.addService(def, impl);
  }

  private serveSotw(call: AnyCall, key: DiscoveryServiceKey, typeUrl: string | undefined): void {
    const admitted = this.authenticate(call, key);
    if (!admitted) return;
    const stream = new SotwStream(this.streamOptions(call, key, typeUrl, admitted), (r) => this.budget.write(call, () => encodeSotwResponse(r)));
    this.attach(call, stream, (req) => stream.handle(req as SotwRequest), admitted);
  }

  private serveDelta(call: AnyCall, key: DiscoveryServiceKey, typeUrl: string | undefined): void {
    const admitted = this.authenticate(call, key);
    if (!admitted) return;
    const stream = new DeltaStream(this.streamOptions(call, key, typeUrl, admitted), (r: DeltaResponse) => this.budget.write(call, () => encodeDeltaResponse(r)));
    this.attach(call, stream, (req) => stream.handle(req as DeltaRequest), admitted);
  }

  /** The caller's certificate, checked before anything is read from it; ends the call (recorded) when refused. */
  private authenticate(call: Caller, service: string, end: (e: Partial<grpc.StatusObject>) => void = (e) => call.emit('error', e)): Extract<Admission, { ok: true }> | undefined {
    const a = this.guard.authenticateCall(call.getAuthContext());
    if (a.ok) return a;
    this.refuse(end, a, { service, peer: call.getPeer() });
    return undefined;
  }

  /** Records the refusal and ends the call with its status (nothing else is ever sent on it). */
  private refuse(end: (e: Partial<grpc.StatusObject>) => void, a: Extract<Admission, { ok: false }>, who: { service: string; peer: string; nodeId?: string; group?: string }): void {
    this.guard.refuse(a, who);
    this.log.warn({ ...who, reason: a.reason, certificate: a.certificate?.serial }, `xds: refused: ${a.message}`);
    end({ code: a.code, details: a.message });
  }

  private streamOptions(call: AnyCall, key: DiscoveryServiceKey, typeUrl: string | undefined, admitted: Extract<Admission, { ok: true }>) {
    return {
      cache: this.cache,
      ads: key === 'ads',
      typeUrl,
      service: key,
      peer: call.getPeer(),
      ...(admitted.identity ? { certificate: admitted.identity } : {}),
      observer: this.observer,
      logger: this.log,
      orderingTimeoutMs: this.opts.orderingTimeoutMs,
      onProtocolError: (message: string) => {
        this.log.warn({ peer: call.getPeer(), message }, 'xds: protocol error');
        call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: message });
      },
    };
  }

  private attach(call: AnyCall, stream: SotwStream | DeltaStream, handle: (req: unknown) => void, admitted: Extract<Admission, { ok: true }>): void {
    if (this.closing) {
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'server is shutting down' });
      return;
    }
    const entry: { close(): void; timer?: NodeJS.Timeout } = { close: () => stream.close() };
    const age = this.opts.maxConnectionAgeMs ?? 0;
    if (age > 0) {
      // End the stream cleanly so Envoy reconnects (to whichever replica its xDS cluster picks).
      entry.timer = setTimeout(() => {
        this.log.debug({ node: stream.info.nodeId }, 'xds: stream reached its maximum age');
        finish();
        endCall(call);
      }, jittered(age));
      entry.timer.unref?.();
    }
    this.calls.set(call, entry);
    const finish = () => {
      if (entry.timer) clearTimeout(entry.timer);
      stream.close();
      this.calls.delete(call);
      this.budget.release(call);
    };
    // The stream is bound to a group by its first request's node: that group must be one the
    // certificate allows, before anything (resources, secrets) is sent.
    let authorized = this.guard.security === 'plaintext';
    call.on('data', (req: unknown) => {
      if (!authorized) {
        const node = (req as { node?: { id: string; cluster: string } }).node;
        if (!node) {
          finish();
          call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'the first request on a stream must carry the node' });
          return;
        }
        const z = this.guard.authorize(admitted.identity, node.cluster);
        if (!z.ok) {
          finish();
          this.refuse((e) => call.emit('error', e), z, { service: stream.info.service, peer: stream.info.peer, nodeId: node.id, group: node.cluster });
          return;
        }
        authorized = true;
      }
      try {
        handle(req);
      } catch (e) {
        this.log.error({ err: e, node: stream.info.nodeId }, 'xds: request handling failed');
        finish();
        call.emit('error', { code: grpc.status.INTERNAL, details: (e as Error).message });
      }
    });
    call.on('end', () => {
      finish();
      endCall(call);
    });
    call.on('error', () => finish());
    call.on('cancelled', () => finish());
    call.on('close', () => finish());
  }

  /** Unary Fetch*: the current state of the requested resources, no bookkeeping. */
  private fetch(call: grpc.ServerUnaryCall<SotwRequest, SotwResponse>, cb: grpc.sendUnaryData<SotwResponse>, typeUrl: string | undefined): void {
    const req = call.request;
    const admitted = this.authenticate(call, 'fetch', (e) => cb(e));
    if (!admitted) return;
    const z = this.guard.authorize(admitted.identity, req.node?.cluster ?? '');
    if (!z.ok) {
      this.refuse((e) => cb(e), z, { service: 'fetch', peer: call.getPeer(), ...(req.node ? { nodeId: req.node.id, group: req.node.cluster } : {}) });
      return;
    }
    const t = req.type_url || typeUrl!;
    if (!this.cache.isReady()) {
      cb({ code: grpc.status.UNAVAILABLE, details: 'configuration not loaded yet' });
      return;
    }
    const ts = typeSnapshot(this.cache.getSnapshot(req.node?.cluster ?? ''), t);
    const names = req.resource_names.filter((n) => n !== '*');
    const all = names.length === 0 || req.resource_names.includes('*');
    const resources = (all ? [...ts.resources.values()] : names.map((n) => ts.resources.get(n)).filter((r) => r !== undefined)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const version = all ? ts.version : setVersion(resources.map((r) => [r.name, r.version] as const));
    cb(null, { version_info: version, resources: resources.map((r) => r.any), type_url: t, nonce: '' });
  }
}

function endCall(call: AnyCall): void {
  try {
    if (!call.writableEnded) call.end();
  } catch {
    // already closed by the peer
  }
}
