// The xDS protocol per stream, free of gRPC: the messages, the observer seam (fleet status and
// metrics), and what SotW (sotw.ts) and Delta (delta.ts) streams share: node/group binding, snapshot
// watching, ordered evaluation and the make-before-break gate on ADS. server.ts wires them to calls.
import type { BaseLogger } from 'pino';
import type { PeerIdentity } from '../grpc/index.ts';
import { TYPE_ORDER, typeSnapshot, type Snapshot, type SnapshotCache, type TypeSnapshot } from './cache.ts';
import { edsGap, edsGapOf, View, type Subscription } from './views.ts';
import type { Body } from './body.ts';
import { TYPE_URLS, type JsonObject } from '../proto/index.ts';

export type Protocol = 'sotw' | 'delta';
export type XdsLogger = Pick<BaseLogger, 'debug' | 'info' | 'warn' | 'error'>;

export const silentLogger: XdsLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** The parts of envoy.config.core.v3.Node Portico uses; `raw` is the whole node as proto3 JSON. */
export interface NodeInfo {
  id: string;
  /** The gateway group. */
  cluster: string;
  userAgent: string;
  raw: JsonObject;
}

export interface ErrorDetail {
  code: number;
  message: string;
}

export interface SotwRequest {
  version_info: string;
  node?: NodeInfo;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail?: ErrorDetail;
}

export interface SotwResponse {
  version_info: string;
  /** Encoded google.protobuf.Any, one per resource (shared buffers from the cache). */
  resources: Uint8Array[];
  type_url: string;
  nonce: string;
  /** The whole response pre-encoded (nonce included), shared by every stream sending the same view. */
  body?: Body;
}

export interface DeltaRequest {
  node?: NodeInfo;
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  initial_resource_versions: Record<string, string>;
  response_nonce: string;
  error_detail?: ErrorDetail;
}

export interface DeltaResponse {
  system_version_info: string;
  /** Encoded envoy.service.discovery.v3.Resource, one per changed resource (shared buffers). */
  resources: Uint8Array[];
  removed_resources: string[];
  type_url: string;
  nonce: string;
  /** The whole response pre-encoded (nonce included), shared by every stream sending the same plan. */
  body?: Body;
}

/** Who is on the other end of a stream. */
export interface StreamInfo {
  id: number;
  nodeId: string;
  group: string;
  peer: string;
  protocol: Protocol;
  /** 'ads' or the per-type service ('cds', 'eds', …). */
  service: string;
  userAgent: string;
  /** When the stream opened, ms since the epoch. */
  connectedAt: number;
  /** The verified client certificate (mTLS only). */
  certificate?: PeerIdentity;
}

/** Receives protocol events: the callbacks seam (fleet status and metrics implement it; observers() fans out). */
export interface StreamObserver {
  onOpen(info: StreamInfo): void;
  onClose(info: StreamInfo): void;
  onPush(info: StreamInfo, typeUrl: string, version: string, resources: number): void;
  /** latencyMs is undefined when the client reconnected already holding this version. */
  onAck(info: StreamInfo, typeUrl: string, version: string, latencyMs: number | undefined): void;
  onNack(info: StreamInfo, typeUrl: string, version: string, message: string): void;
}

export const nullObserver: StreamObserver = { onOpen() {}, onClose() {}, onPush() {}, onAck() {}, onNack() {} };

/** One observer telling each of `list` every event, in order (fleet status, metrics, …). */
export function observers(...list: StreamObserver[]): StreamObserver {
  return {
    onOpen: (info) => list.forEach((o) => o.onOpen(info)),
    onClose: (info) => list.forEach((o) => o.onClose(info)),
    onPush: (info, typeUrl, version, resources) => list.forEach((o) => o.onPush(info, typeUrl, version, resources)),
    onAck: (info, typeUrl, version, latencyMs) => list.forEach((o) => o.onAck(info, typeUrl, version, latencyMs)),
    onNack: (info, typeUrl, version, message) => list.forEach((o) => o.onNack(info, typeUrl, version, message)),
  };
}

/** Types where an empty subscription means "everything" (legacy wildcard). */
export const WILDCARD_TYPES = new Set<string>([TYPE_URLS.cluster, TYPE_URLS.listener]);
/** Types that must not overtake the EDS of clusters Envoy was just given. */
const AFTER_ENDPOINTS = new Set<string>([TYPE_URLS.listener, TYPE_URLS.route]);

export interface StreamOptions {
  cache: SnapshotCache;
  /** Aggregated (ADS) streams carry every type and order pushes; per-type streams carry one. */
  ads: boolean;
  /** For per-type services: the only type the stream serves. */
  typeUrl?: string;
  service: string;
  peer: string;
  /** The caller's verified certificate (mTLS only), shown in fleet status. */
  certificate?: PeerIdentity;
  observer?: StreamObserver;
  logger?: XdsLogger;
  /** How long make-before-break may hold back listeners/routes waiting for EDS subscriptions. */
  orderingTimeoutMs?: number;
  /** Called when the client violates the protocol; the server ends the call with this message. */
  onProtocolError?: (message: string) => void;
}

let nextStreamId = 1;

const CANONICAL_TYPES = new Map<string, string>(Object.values(TYPE_URLS).map((u) => [u, u]));

export interface InFlight {
  nonce: string;
  version: string;
  at: number;
}

/** Shared machinery: node/group binding, snapshot watching, ordered evaluation, the ordering gate. */
export abstract class XdsStreamBase<State extends { sub: Subscription; inFlight: InFlight | undefined }> {
  readonly info: StreamInfo;
  protected readonly types = new Map<string, State>();
  protected snapshot: Snapshot | undefined;
  protected readonly observer: StreamObserver;
  protected readonly log: XdsLogger;
  private unwatch: (() => void) | undefined;
  private scheduled = false;
  private closed = false;
  private gateSince: number | undefined;
  private gateTimer: NodeJS.Timeout | undefined;

  constructor(
    protected readonly opts: StreamOptions,
    protocol: Protocol,
  ) {
    this.observer = opts.observer ?? nullObserver;
    this.log = opts.logger ?? silentLogger;
    this.info = {
      id: nextStreamId++,
      nodeId: '',
      group: '',
      peer: opts.peer,
      protocol,
      service: opts.service,
      userAgent: '',
      connectedAt: Date.now(),
      ...(opts.certificate ? { certificate: opts.certificate } : {}),
    };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    if (this.gateTimer) clearTimeout(this.gateTimer);
    if (this.snapshot) this.observer.onClose(this.info);
  }

  /** A request's type once the stream is bound to its node; undefined when the request is to be dropped. */
  protected begin(node: NodeInfo | undefined, typeUrl: string): string | undefined {
    if (this.closed || !this.bindNode(node)) return undefined;
    return this.requestType(typeUrl);
  }

  /** The client rejected `version` of type `t`: logged and told to the observers. */
  protected nacked(t: string, version: string, message: string): void {
    this.log.warn({ node: this.info.nodeId, group: this.info.group, type: t, version, error: message }, 'xds: NACK');
    this.observer.onNack(this.info, t, version, message);
  }

  /** Binds the stream to its node's group on the first request that names a node. */
  protected bindNode(node: NodeInfo | undefined): boolean {
    if (this.snapshot) return true;
    if (!node) {
      this.opts.onProtocolError?.('the first request on a stream must carry the node');
      return false;
    }
    const cache = this.opts.cache;
    this.info.nodeId = node.id;
    this.info.group = node.cluster;
    this.info.userAgent = node.userAgent;
    this.snapshot = cache.getSnapshot(node.cluster);
    this.unwatch = cache.watch(node.cluster, (s) => {
      this.snapshot = s;
      this.schedule();
    });
    // A group that never gets resources is answered (with nothing) once the cache is ready.
    cache.onReady(() => {
      this.snapshot = cache.getSnapshot(node.cluster);
      this.schedule();
    });
    this.observer.onOpen(this.info);
    return true;
  }

  /** The request's type, checked against what this stream serves. */
  protected requestType(typeUrl: string): string | undefined {
    const t = typeUrl || this.opts.typeUrl || '';
    if (!t) {
      this.opts.onProtocolError?.('request without type_url on an aggregated stream');
      return undefined;
    }
    if (!this.opts.ads && this.opts.typeUrl && t !== this.opts.typeUrl) {
      this.opts.onProtocolError?.(`type ${t} requested on the ${this.opts.service} service`);
      return undefined;
    }
    // The canonical string: the decoded one is a copy per request, and states and fleet records keep it.
    return CANONICAL_TYPES.get(t) ?? t;
  }

  protected typeSnap(t: string): TypeSnapshot {
    return typeSnapshot(this.snapshot!, t);
  }

  /**
   * Re-evaluates pushes once the current batch of requests is processed: Envoy sends an ACK and the
   * subscriptions it caused back to back, and ordering decisions must see both.
   */
  protected schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.closed) this.evaluate();
    });
  }

  /** Pushes what each subscribed type needs, in make-before-break order on ADS. */
  evaluate(): void {
    if (!this.snapshot || this.closed) return;
    if (!this.opts.cache.isReady()) return; // never answer from a cache that was not filled yet
    let held = false; // an earlier type is in flight: later types wait for its ACK/NACK (ADS only)
    // Envoy ACKs a CDS update only once its new clusters have warmed, and warming needs their EDS:
    // so endpoints may go out while only clusters are unACKed (otherwise both wait for Envoy's
    // initial-fetch timeout and the clusters come up empty).
    let onlyClustersHeld = false;
    let gated = false;
    for (const t of this.order()) {
      const st = this.types.get(t)!;
      if (st.inFlight) {
        held = this.opts.ads;
        onlyClustersHeld = held && t === TYPE_URLS.cluster;
        continue;
      }
      if (held && !(onlyClustersHeld && t === TYPE_URLS.endpoint)) {
        this.settleInitial(t, st);
        continue;
      }
      if (this.opts.ads && AFTER_ENDPOINTS.has(t) && this.wouldPush(t, st) && this.missingEds() && !this.gateOpen()) {
        gated = true;
        continue;
      }
      if (this.push(t, st)) {
        held = this.opts.ads;
        onlyClustersHeld = false;
      }
    }
    if (!gated) this.clearGate();
  }

  private order(): string[] {
    const known = TYPE_ORDER.filter((t) => this.types.has(t));
    if (known.length === this.types.size) return known;
    return [...known, ...[...this.types.keys()].filter((t) => !TYPE_ORDER.includes(t as never))];
  }

  /** Clusters the client holds whose EDS it has not subscribed to (yet): listeners/routes wait for those. */
  private missingEds(): boolean {
    const edsClusters = this.snapshot!.edsClusters;
    if (edsClusters.size === 0) return false;
    const held = this.heldClusters();
    if (held === undefined || held === null) return false;
    const eds = this.types.get(TYPE_URLS.endpoint)?.sub ?? null;
    return held instanceof View ? edsGap(held, edsClusters, eds) : edsGapOf(held, edsClusters, eds);
  }

  private gateOpen(): boolean {
    const timeout = this.opts.orderingTimeoutMs ?? 5000;
    const now = Date.now();
    if (this.gateSince === undefined) {
      this.gateSince = now;
      this.gateTimer = setTimeout(() => this.schedule(), timeout + 1);
      this.gateTimer.unref?.();
      return false;
    }
    if (now - this.gateSince < timeout) return false;
    this.log.warn({ node: this.info.nodeId, group: this.info.group }, 'xds: EDS subscriptions did not follow the clusters in time; pushing listeners/routes anyway');
    return true;
  }

  private clearGate(): void {
    this.gateSince = undefined;
    if (this.gateTimer) clearTimeout(this.gateTimer);
    this.gateTimer = undefined;
  }

  /** The clusters the client holds (a shared view, or names), null when none, undefined when unknown (after a NACK). */
  protected abstract heldClusters(): View | Iterable<string> | null | undefined;
  /** On a type's first evaluation: records that a reconnecting client already holds what we would send. */
  protected abstract settleInitial(t: string, st: State): void;
  /** Would `t` be pushed if nothing held it back? */
  protected abstract wouldPush(t: string, st: State): boolean;
  /** Pushes `t` if it has something to deliver; true when something was sent. */
  protected abstract push(t: string, st: State): boolean;
}
