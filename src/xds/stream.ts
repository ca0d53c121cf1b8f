// The xDS protocol per stream, free of gRPC: SotW and Delta state machines with nonces, ACK/NACK
// bookkeeping, subscriptions and make-before-break ordering on ADS. server.ts wires them to calls.
import type { BaseLogger } from 'pino';
import { setVersion, TYPE_ORDER, typeSnapshot, type CachedResource, type Snapshot, type SnapshotCache, type TypeSnapshot } from './cache.ts';
import { deltaPlan, edsGap, edsGapOf, ownNonce, sotwUpdate, subscriptionOf, View, viewOf, type DeltaPlan, type Subscription } from './views.ts';
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
  body?: Buffer;
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
  body?: Buffer;
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
  connectedAt: Date;
}

/** Receives protocol events (fleet status and metrics implement it). */
export interface StreamObserver {
  onOpen(info: StreamInfo): void;
  onClose(info: StreamInfo): void;
  onPush(info: StreamInfo, typeUrl: string, version: string, resources: number): void;
  /** latencyMs is undefined when the client reconnected already holding this version. */
  onAck(info: StreamInfo, typeUrl: string, version: string, latencyMs: number | undefined): void;
  onNack(info: StreamInfo, typeUrl: string, version: string, message: string): void;
}

export const nullObserver: StreamObserver = { onOpen() {}, onClose() {}, onPush() {}, onAck() {}, onNack() {} };

/** Types where an empty subscription means "everything" (legacy wildcard). */
const WILDCARD_TYPES = new Set<string>([TYPE_URLS.cluster, TYPE_URLS.listener]);
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
  observer?: StreamObserver;
  logger?: XdsLogger;
  /** How long make-before-break may hold back listeners/routes waiting for EDS subscriptions. */
  orderingTimeoutMs?: number;
  /** Called when the client violates the protocol; the server ends the call with this message. */
  onProtocolError?: (message: string) => void;
}

let nextStreamId = 1;

interface InFlight {
  nonce: string;
  version: string;
  at: number;
}

/** Shared machinery: node/group binding, snapshot watching, ordered evaluation, the ordering gate. */
abstract class XdsStreamBase<State extends { sub: Subscription; inFlight: InFlight | undefined }> {
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
      connectedAt: new Date(),
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
    return t;
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

function sameSubscription(sub: Subscription, t: string, names: readonly string[]): boolean {
  const wildcard = names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(t));
  if (wildcard !== sub.wildcard) return false;
  let explicit = 0;
  for (const n of names) {
    if (n === '*') continue;
    if (!sub.names.has(n)) return false;
    explicit++;
  }
  return explicit === sub.names.size || new Set(names).size - (names.includes('*') ? 1 : 0) === sub.names.size;
}

// ── State of the world ───────────────────────────────────────────────────────

interface SotwState {
  sub: Subscription;
  inFlight: InFlight | undefined;
  /** Last response sent (ACKed, NACKed or in flight); nonce '' when the client reconnected in sync. */
  sent: { nonce: string; view: View } | undefined;
  /** version_info of the first request: what a reconnecting client holds. */
  initialVersion: string;
  /** The content version the client rejected: never re-sent, only something newer is. */
  nackedVersion: string | undefined;
  /** The last response was NACKed (what the client holds is then uncertain). */
  lastNack: boolean;
}

export class SotwStream extends XdsStreamBase<SotwState> {
  constructor(
    opts: StreamOptions,
    private readonly send: (r: SotwResponse) => void,
  ) {
    super(opts, 'sotw');
  }

  handle(req: SotwRequest): void {
    if (this.isClosed || !this.bindNode(req.node)) return;
    const t = this.requestType(req.type_url);
    if (!t) return;
    let st = this.types.get(t);
    if (!st) {
      st = { sub: subscription(t, []), inFlight: undefined, sent: undefined, initialVersion: req.version_info, nackedVersion: undefined, lastNack: false };
      this.types.set(t, st);
    }
    if (req.response_nonce && st.sent?.nonce && req.response_nonce !== st.sent.nonce) {
      // A reply to an older response: a newer one is on its way and the client will answer that.
      this.log.debug({ node: this.info.nodeId, type: t, nonce: req.response_nonce }, 'xds: stale nonce ignored');
      return;
    }
    if (st.inFlight && req.response_nonce === st.inFlight.nonce) {
      const f = st.inFlight;
      st.inFlight = undefined;
      if (req.error_detail) {
        st.nackedVersion = f.version;
        st.lastNack = true;
        this.log.warn({ node: this.info.nodeId, group: this.info.group, type: t, version: f.version, error: req.error_detail.message }, 'xds: NACK');
        this.observer.onNack(this.info, t, f.version, req.error_detail.message);
      } else {
        if (st.nackedVersion !== f.version) st.nackedVersion = undefined;
        st.lastNack = false;
        this.observer.onAck(this.info, t, f.version, Date.now() - f.at);
      }
    }
    // Envoy repeats the whole list on every request: re-intern only when it changed (without keeping it).
    if (!sameSubscription(st.sub, t, req.resource_names)) st.sub = subscription(t, req.resource_names);
    this.schedule();
  }

  private desired(t: string, st: SotwState): View {
    return viewOf(this.typeSnap(t), st.sub);
  }

  protected settleInitial(t: string, st: SotwState): void {
    if (st.sent || !st.initialVersion) return;
    const d = this.desired(t, st);
    if (d.version !== st.initialVersion) return;
    st.sent = { nonce: '', view: d };
    this.observer.onAck(this.info, t, d.version, undefined);
  }

  protected wouldPush(t: string, st: SotwState): boolean {
    if (st.inFlight) return false;
    const d = this.desired(t, st);
    if (!st.sent && d.version === st.initialVersion) return false;
    return d.version !== st.sent?.view.version && d.version !== st.nackedVersion;
  }

  protected push(t: string, st: SotwState): boolean {
    this.settleInitial(t, st);
    if (!this.wouldPush(t, st)) return false;
    const d = this.desired(t, st);
    // Listeners and clusters: always the full set (absence means deletion). Other types: only what
    // changed since the last response, which is all a client needs (absence means nothing there).
    const out = st.sent && !WILDCARD_TYPES.has(t) && !d.sub.wildcard ? sotwUpdate(st.sent.view, d) : d;
    const nonce = out.nonce;
    st.sent = { nonce, view: d };
    st.inFlight = { nonce, version: d.version, at: Date.now() };
    this.observer.onPush(this.info, t, d.version, out.resources.length);
    this.send({ version_info: d.version, resources: out.resources.map((r) => r.any), type_url: t, nonce, body: out.sotwMessage });
    return true;
  }

  protected heldClusters(): View | null | undefined {
    const st = this.types.get(TYPE_URLS.cluster);
    if (!st?.sent) return null;
    return st.lastNack ? undefined : st.sent.view;
  }

  /** Test and debug view of one type's bookkeeping. */
  typeState(t: string): { sentVersion?: string; inFlight: boolean; nackedVersion?: string; wildcard: boolean; names: string[] } | undefined {
    const st = this.types.get(t);
    if (!st) return undefined;
    return { sentVersion: st.sent?.view.version, inFlight: !!st.inFlight, nackedVersion: st.nackedVersion, wildcard: st.sub.wildcard, names: [...st.sub.names] };
  }
}

function subscription(t: string, names: readonly string[]): Subscription {
  const wildcard = names.includes('*') || (names.length === 0 && WILDCARD_TYPES.has(t));
  return subscriptionOf(wildcard, names);
}

// ── Delta (incremental) ──────────────────────────────────────────────────────

interface DeltaInFlight extends InFlight {
  /** name → version sent, or null for a removal. */
  changes: ReadonlyMap<string, string | null>;
  /** When the push brings the client exactly to this view (so an ACK can say so without a map). */
  target: View | undefined;
}

interface DeltaState {
  sub: Subscription;
  inFlight: DeltaInFlight | undefined;
  /**
   * What the client holds. Usually `base`: exactly a shared view (null = nothing), so a thousand
   * streams in sync cost one view; after NACKs, reconnects or subscription changes, an explicit map.
   */
  base: View | null | undefined;
  client: Map<string, string> | undefined;
  /** Content the client rejected (name → version, null = a removal): not re-sent until it changes. */
  nacked: Map<string, string | null>;
  /** Whether the type got a response (a wildcard subscription is answered once even when empty). */
  answered: boolean;
  /** The first evaluation of the type is still to come (reconnect bookkeeping). */
  initial: boolean;
  lastNack: boolean;
}

interface Plan {
  changes: ReadonlyMap<string, string | null>;
  resources: readonly CachedResource[];
  removed: readonly string[];
  version: string;
  /** The shared plan (with its nonce and encoded message) when streams in sync share it. */
  shared?: DeltaPlan;
  target: View | undefined;
}

export class DeltaStream extends XdsStreamBase<DeltaState> {
  constructor(
    opts: StreamOptions,
    private readonly send: (r: DeltaResponse) => void,
  ) {
    super(opts, 'delta');
  }

  handle(req: DeltaRequest): void {
    if (this.isClosed || !this.bindNode(req.node)) return;
    const t = this.requestType(req.type_url);
    if (!t) return;
    let st = this.types.get(t);
    if (!st) {
      const initial = Object.entries(req.initial_resource_versions ?? {});
      st = {
        sub: subscriptionOf(req.resource_names_subscribe.length === 0 && WILDCARD_TYPES.has(t), []),
        inFlight: undefined,
        base: initial.length > 0 ? undefined : null,
        // Reconnect: the client says what it holds, so none of it is re-sent needlessly.
        client: initial.length > 0 ? new Map(initial) : undefined,
        nacked: new Map(),
        answered: initial.length > 0, // it got its first answer on the previous stream
        initial: true,
        lastNack: false,
      };
      this.types.set(t, st);
    }
    if (req.response_nonce && st.inFlight && req.response_nonce === st.inFlight.nonce) {
      const f = st.inFlight;
      st.inFlight = undefined;
      if (req.error_detail) {
        this.materialize(st);
        for (const [n, v] of f.changes) st.nacked.set(n, v);
        st.lastNack = true;
        this.log.warn({ node: this.info.nodeId, group: this.info.group, type: t, version: f.version, error: req.error_detail.message }, 'xds: NACK');
        this.observer.onNack(this.info, t, f.version, req.error_detail.message);
      } else {
        if (f.target && f.target.sub === st.sub) {
          st.base = f.target;
          st.client = undefined;
          st.nacked.clear();
        } else {
          const client = this.materialize(st);
          for (const [n, v] of f.changes) {
            if (v === null) client.delete(n);
            else client.set(n, v);
            st.nacked.delete(n);
          }
        }
        st.lastNack = false;
        this.observer.onAck(this.info, t, f.version, Date.now() - f.at);
      }
    }
    // Subscription changes are incremental: they apply whatever the nonce.
    if (req.resource_names_subscribe.length > 0 || req.resource_names_unsubscribe.length > 0) {
      let wildcard = st.sub.wildcard;
      const names = new Set(st.sub.names);
      for (const n of req.resource_names_subscribe) {
        if (n === '*') wildcard = true;
        else names.add(n);
      }
      for (const n of req.resource_names_unsubscribe) {
        if (n === '*') wildcard = false;
        else names.delete(n);
      }
      const sub = subscriptionOf(wildcard, names);
      if (sub !== st.sub) {
        const client = this.materialize(st);
        st.sub = sub;
        if (req.resource_names_unsubscribe.length > 0) {
          // The client drops what it no longer wants; forget it, so a re-subscription sends it again.
          for (const n of [...client.keys()]) if (!sub.covers(n)) client.delete(n);
          for (const n of [...st.nacked.keys()]) if (!sub.covers(n)) st.nacked.delete(n);
        }
      }
    }
    this.schedule();
  }

  /** Switches a state held as a shared view to an explicit map (before changing it piecemeal). */
  private materialize(st: DeltaState): Map<string, string> {
    if (!st.client) {
      st.client = new Map((st.base?.resources ?? []).map((r) => [r.name, r.version] as const));
      st.base = undefined;
    }
    return st.client;
  }

  /** The changes the client needs, or undefined when it is up to date. */
  private plan(t: string, st: DeltaState): Plan | undefined {
    const to = viewOf(this.typeSnap(t), st.sub);
    let plan: Plan;
    if (st.base && st.base.sub !== st.sub) this.materialize(st);
    if (st.base !== undefined && st.nacked.size === 0) {
      // In sync with a shared view: the diff (and its encoding) is shared by every such stream.
      if (st.base === to) plan = EMPTY_PLAN;
      else {
        const p = deltaPlan(st.base, to);
        plan = { changes: p.changes, resources: p.resources, removed: p.removed, version: p.version, target: to, shared: p };
      }
    } else plan = this.mapPlan(st, to);
    if (plan.changes.size > 0) return plan;
    // The first answer to a wildcard subscription, even when there is nothing.
    if (!st.answered && st.sub.wildcard) return { changes: new Map(), resources: [], removed: [], version: to.version, target: plan.target ?? to };
    return undefined;
  }

  private mapPlan(st: DeltaState, to: View): Plan {
    const client = st.client ?? new Map<string, string>();
    const changes = new Map<string, string | null>();
    const resources: CachedResource[] = [];
    let complete = true;
    for (const r of to.resources) {
      if (client.get(r.name) === r.version) continue;
      if (st.nacked.get(r.name) === r.version) {
        complete = false;
        continue;
      }
      changes.set(r.name, r.version);
      resources.push(r);
    }
    const removed: string[] = [];
    for (const n of client.keys()) {
      if (to.ts.resources.has(n)) continue;
      if (st.nacked.get(n) === null) complete = false;
      else removed.push(n);
    }
    removed.sort();
    for (const n of removed) changes.set(n, null);
    const after = new Map(client);
    for (const [n, v] of changes) {
      if (v === null) after.delete(n);
      else after.set(n, v);
    }
    // Complete and nothing outside the subscription held: the client then holds exactly `to`.
    if (complete && after.size !== to.resources.length) complete = false;
    return { changes, resources, removed, version: complete ? to.version : setVersion([...after]), target: complete ? to : undefined };
  }

  protected settleInitial(t: string, st: DeltaState): void {
    if (!st.initial) return;
    st.initial = false;
    if (st.client && st.client.size > 0 && this.plan(t, st) === undefined) {
      const to = viewOf(this.typeSnap(t), st.sub);
      if (st.client.size === to.resources.length) {
        st.base = to;
        st.client = undefined;
      }
      this.observer.onAck(this.info, t, to.version, undefined);
    }
  }

  protected wouldPush(t: string, st: DeltaState): boolean {
    return !st.inFlight && this.plan(t, st) !== undefined;
  }

  protected push(t: string, st: DeltaState): boolean {
    this.settleInitial(t, st);
    if (st.inFlight) return false;
    const plan = this.plan(t, st);
    if (!plan) return false;
    const nonce = plan.shared?.nonce ?? ownNonce();
    st.inFlight = { nonce, version: plan.version, at: Date.now(), changes: plan.changes, target: plan.target };
    st.answered = true;
    this.observer.onPush(this.info, t, plan.version, plan.resources.length);
    this.send({
      system_version_info: plan.version,
      resources: plan.resources.map((r) => r.delta),
      removed_resources: [...plan.removed],
      type_url: t,
      nonce,
      body: plan.shared?.deltaMessage,
    });
    return true;
  }

  protected heldClusters(): View | Iterable<string> | null | undefined {
    const st = this.types.get(TYPE_URLS.cluster);
    if (!st) return null;
    if (st.lastNack) return undefined;
    return st.client ? st.client.keys() : st.base;
  }

  /** Test and debug view of one type's bookkeeping. */
  typeState(t: string): { client: Record<string, string>; inFlight: boolean; nacked: Record<string, string | null>; wildcard: boolean; names: string[]; shared: boolean } | undefined {
    const st = this.types.get(t);
    if (!st) return undefined;
    const client = st.client ?? new Map((st.base?.resources ?? []).map((r) => [r.name, r.version] as const));
    return {
      client: Object.fromEntries(client),
      inFlight: !!st.inFlight,
      nacked: Object.fromEntries(st.nacked),
      wildcard: st.sub.wildcard,
      names: [...st.sub.names],
      shared: !st.client,
    };
  }
}

const EMPTY_PLAN: Plan = { changes: new Map(), resources: [], removed: [], version: '', target: undefined };
