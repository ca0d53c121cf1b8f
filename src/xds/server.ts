// The gRPC server Envoys connect to: ADS (SotW + Delta) and the per-type discovery services over the
// snapshot cache, on node:http2 (src/grpc) rather than grpc-js: one encoded response is written to every
// stream that sends it, behind a 5-byte prefix of its own (grpc-js copied it per stream). Keepalive,
// jittered connection age, graceful shutdown; other services (access logs, callouts) can join it.
import type * as grpc from '@grpc/grpc-js';
import { hostService, jittered, plaintextGuard, UnaryGrpcServer, type Admission, type AuthContextLike, type BidiCall, type ChannelGuard, type TlsMaterial, type UnaryResult } from '../grpc/index.ts';
import { bodyLength, joinBody, type Body } from './body.ts';
import { setVersion, typeSnapshot, type SnapshotCache } from './cache.ts';
import { FleetStatus } from './fleet.ts';
import { DISCOVERY_SERVICES, decodeDeltaRequest, decodeSotwRequest, discoveryServiceDefinition, encodeDeltaResponse, encodeSotwResponse, type DiscoveryServiceKey } from './services.ts';
import { DeltaStream } from './delta.ts';
import { SotwStream } from './sotw.ts';
import { observers, silentLogger, type StreamObserver, type DeltaRequest, type SotwRequest, type XdsLogger } from './stream.ts';

export { jittered };

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
   * Bytes of responses handed to HTTP/2 but not yet taken by it (flow control), across all streams. A
   * change fanned out to a thousand Envoys is paced by this instead of being queued all at once.
   */
  sendBudgetBytes?: number;
  /** Host the discovery services (false for a callouts-only replica); default true. */
  serveAds?: boolean;
  /**
   * Who may connect (mTLS: a node certificate from the CA, naming the group the node asks for);
   * default: plaintext, everyone. Pass the matching TLS material to listen().
   */
  guard?: ChannelGuard;
}

/** What SendBudget writes to: a call that takes a message and says when HTTP/2 took it. */
interface Writable {
  readonly done: boolean;
  write(message: Body, written: () => void): void;
}

/** Paces writes so that at most `limit` bytes are queued in HTTP/2 at once (one oversized write may pass alone). */
export class SendBudget {
  private used = 0;
  private readonly queue: { call: Writable; produce: () => Body }[] = [];
  private readonly pending = new Map<Writable, Set<{ bytes: number }>>();

  constructor(private readonly limit: number) {}

  get queuedWrites(): number {
    return this.queue.length;
  }

  /** Serializes (lazily, when there is room) and writes one response on `call`. */
  write(call: Writable, produce: () => Body): void {
    this.queue.push({ call, produce });
    this.drain();
  }

  /** Forgets a call that ended: its queued writes are dropped and its bytes released. */
  release(call: Writable): void {
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
      if (call.done) continue;
      const buf = produce();
      const token = { bytes: bodyLength(buf) };
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

const STATUS = { OK: 0, INVALID_ARGUMENT: 3, INTERNAL: 13, UNAVAILABLE: 14 } as const;
type Admitted = Extract<Admission, { ok: true }>;
type Refused = Extract<Admission, { ok: false }>;

export class XdsServer {
  readonly fleet: FleetStatus;
  readonly guard: ChannelGuard;
  private readonly observer: StreamObserver;
  private readonly cache: SnapshotCache;
  private readonly log: XdsLogger;
  private readonly calls = new Map<BidiCall, { close(): void }>();
  private readonly budget: SendBudget;
  /** Methods to register once the HTTP/2 server exists (listen() creates it: TLS is known then). */
  private readonly methods: ((server: UnaryGrpcServer) => void)[] = [];
  private server: UnaryGrpcServer | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: XdsServerOptions) {
    this.cache = opts.cache;
    this.log = opts.logger ?? silentLogger;
    this.guard = opts.guard ?? plaintextGuard();
    this.fleet = opts.fleet ?? new FleetStatus({ cache: opts.cache, guard: this.guard });
    this.observer = opts.observer ? observers(this.fleet, opts.observer) : this.fleet;
    this.budget = new SendBudget(opts.sendBudgetBytes ?? 16 * 1024 * 1024);
    if (opts.serveAds !== false) for (const key of Object.keys(DISCOVERY_SERVICES) as DiscoveryServiceKey[]) this.addDiscoveryService(key);
  }

  /** Hosts another service (access logs, ext_authz, rate limit: unary or client streaming) on the same port; call before listen(). */
  addService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    if (this.server) throw new Error('addService must be called before listen()');
    this.methods.push((server) => hostService(server, definition, implementation));
  }

  /** Binds and serves; returns the bound port (pass port 0 for a free one). With `tls`, clients present node certificates (see guard). */
  async listen(host: string, port: number, tls?: TlsMaterial): Promise<number> {
    if (this.server) throw new Error('listen() was called already');
    const age = this.opts.maxConnectionAgeMs ?? 0;
    const server = new UnaryGrpcServer({
      maxMessageBytes: 64 * 1024 * 1024,
      keepalive: { timeMs: this.opts.keepaliveTimeMs ?? 30_000, timeoutMs: this.opts.keepaliveTimeoutMs ?? 10_000 },
      // xDS streams end on their own jittered timer (attach()); the connection's GOAWAY and its grace
      // cover other calls and streams that started late on an old connection.
      ...(age > 0 ? { maxConnectionAgeMs: age, maxConnectionAgeGraceMs: age } : {}),
      // A whole configuration may be queued on one connection; the send budget bounds the total.
      maxSessionMemoryMB: 1 << 20,
      logger: this.log,
      ...(tls ? { tls: { material: tls } } : {}),
    });
    for (const register of this.methods) register(server);
    this.server = server;
    const bound = await server.listen(host, port);
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
      for (const [call, s] of this.calls) {
        s.close();
        call.end();
      }
      this.calls.clear();
      await this.server?.close(graceMs);
    })();
    return this.closing;
  }

  private addDiscoveryService(key: DiscoveryServiceKey): void {
    const { service, typeUrl } = DISCOVERY_SERVICES[key];
    for (const [name, m] of Object.entries(discoveryServiceDefinition(service))) {
      if (m.requestStream && name.startsWith('Delta')) this.methods.push((server) => server.handleStream(m.path, (call) => this.serveDelta(call, key, typeUrl)));
      else if (m.requestStream) this.methods.push((server) => server.handleStream(m.path, (call) => this.serveSotw(call, key, typeUrl)));
      else this.methods.push((server) => server.handle(m.path, (request, peer, auth) => this.fetch(request, peer, auth, typeUrl)));
    }
  }

  private serveSotw(call: BidiCall, key: DiscoveryServiceKey, typeUrl: string | undefined): void {
    const admitted = this.admit(call, key);
    if (!admitted) return;
    const link = this.link(call);
    const stream = new SotwStream(this.streamOptions(call, key, typeUrl, admitted, link.fail), (r) => this.budget.write(call, () => encodeSotwResponse(r)));
    this.attach(call, stream, link, decodeSotwRequest, (r) => stream.handle(r), admitted);
  }

  private serveDelta(call: BidiCall, key: DiscoveryServiceKey, typeUrl: string | undefined): void {
    const admitted = this.admit(call, key);
    if (!admitted) return;
    const link = this.link(call);
    const stream = new DeltaStream(this.streamOptions(call, key, typeUrl, admitted, link.fail), (r) => this.budget.write(call, () => encodeDeltaResponse(r)));
    this.attach(call, stream, link, decodeDeltaRequest, (r) => stream.handle(r), admitted);
  }

  /** The caller's certificate, checked before anything is read from it; ends the call (recorded) when refused, or when shutting down. */
  private admit(call: BidiCall, service: string): Admitted | undefined {
    const a = this.guard.authenticateCall(call.authContext());
    if (!a.ok) {
      const s = this.refuse(a, { service, peer: call.peer() });
      call.end(s.code, s.details);
      return undefined;
    }
    if (this.closing) {
      call.end(STATUS.UNAVAILABLE, 'server is shutting down');
      return undefined;
    }
    return a;
  }

  /** Records the refusal; returns the status to end the call with (nothing else is ever sent on it). */
  private refuse(a: Refused, who: { service: string; peer: string; nodeId?: string; group?: string }): { code: number; details: string } {
    this.guard.refuse(a, who);
    this.log.warn({ ...who, reason: a.reason, certificate: a.certificate?.serial }, `xds: refused: ${a.message}`);
    return { code: a.code, details: a.message };
  }

  /** How a stream's call ends from our side: `finish` forgets it (set by attach), `fail` also sends a status. */
  private link(call: BidiCall): { finish: () => void; fail: (code: number, details: string) => void } {
    const link = {
      finish: () => {},
      fail: (code: number, details: string) => {
        link.finish();
        call.end(code, details);
      },
    };
    return link;
  }

  private streamOptions(call: BidiCall, key: DiscoveryServiceKey, typeUrl: string | undefined, admitted: Admitted, fail: (code: number, details: string) => void) {
    const peer = call.peer();
    return {
      cache: this.cache,
      ads: key === 'ads',
      typeUrl,
      service: key,
      peer,
      ...(admitted.identity ? { certificate: admitted.identity } : {}),
      observer: this.observer,
      logger: this.log,
      orderingTimeoutMs: this.opts.orderingTimeoutMs,
      onProtocolError: (message: string) => {
        this.log.warn({ peer, message }, 'xds: protocol error');
        fail(STATUS.INVALID_ARGUMENT, message);
      },
    };
  }

  private attach<R extends SotwRequest | DeltaRequest>(
    call: BidiCall,
    stream: SotwStream | DeltaStream,
    link: ReturnType<XdsServer['link']>,
    decode: (message: Buffer) => R,
    handle: (request: R) => void,
    admitted: Admitted,
  ): void {
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      if (timer) clearTimeout(timer);
      stream.close();
      this.calls.delete(call);
      this.budget.release(call);
    };
    link.finish = finish;
    const age = this.opts.maxConnectionAgeMs ?? 0;
    if (age > 0) {
      // End the stream cleanly so Envoy reconnects (to whichever replica its xDS cluster picks).
      timer = setTimeout(() => {
        this.log.debug({ node: stream.info.nodeId }, 'xds: stream reached its maximum age');
        finish();
        call.end();
      }, jittered(age));
      timer.unref?.();
    }
    this.calls.set(call, { close: finish });
    // The stream is bound to a group by its first request's node: that group must be one the
    // certificate allows, before anything (resources, secrets) is sent.
    let authorized = this.guard.security === 'plaintext';
    call.handlers = {
      message: (m) => {
        let req: R;
        try {
          req = decode(m);
        } catch (e) {
          return link.fail(STATUS.INVALID_ARGUMENT, `undecodable request: ${(e as Error).message}`);
        }
        if (!authorized) {
          const node = req.node;
          if (!node) return link.fail(STATUS.INVALID_ARGUMENT, 'the first request on a stream must carry the node');
          const z = this.guard.authorize(admitted.identity, node.cluster);
          if (!z.ok) {
            const s = this.refuse(z, { service: stream.info.service, peer: stream.info.peer, nodeId: node.id, group: node.cluster });
            return link.fail(s.code, s.details);
          }
          authorized = true;
        }
        try {
          handle(req);
        } catch (e) {
          this.log.error({ err: e, node: stream.info.nodeId }, 'xds: request handling failed');
          link.fail(STATUS.INTERNAL, (e as Error).message);
        }
      },
      end: () => {
        finish();
        call.end();
      },
      abort: finish,
    };
  }

  /** Unary Fetch*: the current state of the requested resources, no bookkeeping. */
  private fetch(request: Buffer, peer: () => string, auth: () => AuthContextLike, typeUrl: string | undefined): UnaryResult {
    const a = this.guard.authenticateCall(auth());
    if (!a.ok) return { ok: false, ...this.refuse(a, { service: 'fetch', peer: peer() }) };
    let req: SotwRequest;
    try {
      req = decodeSotwRequest(request);
    } catch (e) {
      return { ok: false, code: STATUS.INVALID_ARGUMENT, details: `undecodable request: ${(e as Error).message}` };
    }
    const z = this.guard.authorize(a.identity, req.node?.cluster ?? '');
    if (!z.ok) return { ok: false, ...this.refuse(z, { service: 'fetch', peer: peer(), ...(req.node ? { nodeId: req.node.id, group: req.node.cluster } : {}) }) };
    const t = req.type_url || typeUrl!;
    if (!this.cache.isReady()) return { ok: false, code: STATUS.UNAVAILABLE, details: 'configuration not loaded yet' };
    const ts = typeSnapshot(this.cache.getSnapshot(req.node?.cluster ?? ''), t);
    const names = req.resource_names.filter((n) => n !== '*');
    const all = names.length === 0 || req.resource_names.includes('*');
    const resources = (all ? [...ts.resources.values()] : names.map((n) => ts.resources.get(n)).filter((r) => r !== undefined)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const version = all ? ts.version : setVersion(resources.map((r) => [r.name, r.version] as const));
    return { ok: true, response: joinBody(encodeSotwResponse({ version_info: version, resources: resources.map((r) => r.any), type_url: t, nonce: '' })) };
  }
}
