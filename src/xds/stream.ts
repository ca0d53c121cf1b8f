// The xDS protocol per stream, free of gRPC: SotW and Delta state machines with nonces, ACK/NACK
// bookkeeping, subscriptions and make-before-break ordering on ADS. server.ts wires them to calls.
import type { BaseLogger } from 'pino';
import { setVersion, TYPE_ORDER, typeSnapshot, type CachedResource, type Snapshot, type SnapshotCache } from './cache.ts';
import { TYPE_URLS } from './protos.ts';
import type { JsonObject } from './protos.ts';

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
  /** Thrown-away when the protocol is violated; the server ends the call with this message. */
  onProtocolError?: (message: string) => void;
}

let nextStreamId = 1;

interface Subscription {
  wildcard: boolean;
  names: Set<string>;
}

/** Shared machinery: node/group binding, snapshot watching, ordered evaluation, the ordering gate. */
abstract class XdsStreamBase<State extends { sub: Subscription; inFlight: InFlight | undefined }> {
  readonly info: StreamInfo;
  protected readonly types = new Map<string, State>();
  protected snapshot: Snapshot | undefined;
  protected readonly observer: StreamObserver;
  protected readonly log: XdsLogger;
  private nonceSeq = 0;
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
    this.info.nodeId = node.id;
    this.info.group = node.cluster;
    this.info.userAgent = node.userAgent;
    this.snapshot = this.opts.cache.getSnapshot(node.cluster);
    this.unwatch = this.opts.cache.watch(node.cluster, (s) => {
      this.snapshot = s;
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

  protected nonce(): string {
    return String(++this.nonceSeq);
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
    const order = [...TYPE_ORDER, ...[...this.types.keys()].filter((t) => !TYPE_ORDER.includes(t as never))];
    let held = false; // an earlier type is in flight: later types wait for its ACK/NACK (ADS only)
    let gated = false;
    for (const t of order) {
      const st = this.types.get(t);
      if (!st) continue;
      if (st.inFlight) {
        held = this.opts.ads;
        continue;
      }
      if (held) {
        this.settleInitial(t, st);
        continue;
      }
      if (this.opts.ads && AFTER_ENDPOINTS.has(t) && this.wouldPush(t) && this.missingEds() && !this.gateOpen()) {
        gated = true;
        continue;
      }
      if (this.push(t, st)) held = this.opts.ads;
    }
    if (!gated) this.clearGate();
  }

  /** Clusters the client holds whose EDS it has not subscribed to (yet): listeners/routes wait for those. */
  private missingEds(): boolean {
    const snap = this.snapshot!;
    if (snap.edsClusters.size === 0) return false;
    const held = this.heldClusters();
    if (!held) return false;
    const eds = this.types.get(TYPE_URLS.endpoint);
    for (const cluster of held) {
      const service = snap.edsClusters.get(cluster);
      if (service === undefined) continue;
      if (!eds || !(eds.sub.wildcard || eds.sub.names.has(service))) return true;
    }
    return false;
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

  /** Cluster names the client holds (last delivered), or undefined when unknown (e.g. after a NACK). */
  protected abstract heldClusters(): Iterable<string> | undefined;
  /** On a type's first evaluation: records that a reconnecting client already holds what we would send. */
  protected abstract settleInitial(t: string, st: State): void;
  /** Would `t` be pushed if nothing held it back? */
  protected abstract wouldPush(t: string): boolean;
  /** Pushes `t` if it has something to deliver; true when something was sent. */
  protected abstract push(t: string, st: State): boolean;
}

interface InFlight {
  nonce: string;
  version: string;
  at: number;
}

// ── State of the world ───────────────────────────────────────────────────────

interface SotwState {
  sub: Subscription;
  inFlight: InFlight | undefined;
  /** Last response sent (ACKed, NACKed or in flight); nonce '' when the client reconnected in sync. */
  sent: { nonce: string; version: string; names: string[] } | undefined;
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
    st.sub = subscription(t, req.resource_names);
    this.schedule();
  }

  private desired(t: string, st: SotwState): { version: string; resources: CachedResource[] } {
    const ts = typeSnapshot(this.snapshot!, t);
    let resources: CachedResource[];
    if (st.sub.wildcard) resources = [...ts.resources.values()];
    else {
      resources = [];
      for (const n of st.sub.names) {
        const r = ts.resources.get(n);
        if (r) resources.push(r);
      }
    }
    resources.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // Wildcard: the type's version; a subset: the same hash over just that subset.
    const version = st.sub.wildcard ? ts.version : setVersion(resources.map((r) => [r.name, r.version] as const));
    return { version, resources };
  }

  protected settleInitial(t: string, st: SotwState): void {
    if (st.sent || !st.initialVersion) return;
    const d = this.desired(t, st);
    if (d.version !== st.initialVersion) return;
    st.sent = { nonce: '', version: d.version, names: d.resources.map((r) => r.name) };
    this.observer.onAck(this.info, t, d.version, undefined);
  }

  protected wouldPush(t: string): boolean {
    const st = this.types.get(t);
    if (!st || st.inFlight) return false;
    const d = this.desired(t, st);
    if (!st.sent && d.version === st.initialVersion) return false;
    return d.version !== st.sent?.version && d.version !== st.nackedVersion;
  }

  protected push(t: string, st: SotwState): boolean {
    this.settleInitial(t, st);
    if (!this.wouldPush(t)) return false;
    const d = this.desired(t, st);
    const nonce = this.nonce();
    st.sent = { nonce, version: d.version, names: d.resources.map((r) => r.name) };
    st.inFlight = { nonce, version: d.version, at: Date.now() };
    this.observer.onPush(this.info, t, d.version, d.resources.length);
    this.send({ version_info: d.version, resources: d.resources.map((r) => r.any), type_url: t, nonce });
    return true;
  }

  protected heldClusters(): Iterable<string> | undefined {
    const st = this.types.get(TYPE_URLS.cluster);
    if (!st?.sent || st.lastNack) return undefined;
    return st.sent.names;
  }

  /** Test and debug view of one type's bookkeeping. */
  typeState(t: string): { sentVersion?: string; inFlight: boolean; nackedVersion?: string; wildcard: boolean; names: string[] } | undefined {
    const st = this.types.get(t);
    if (!st) return undefined;
    return { sentVersion: st.sent?.version, inFlight: !!st.inFlight, nackedVersion: st.nackedVersion, wildcard: st.sub.wildcard, names: [...st.sub.names].sort() };
  }
}

function subscription(t: string, names: readonly string[]): Subscription {
  const set = new Set(names);
  const wildcard = set.has('*') || (set.size === 0 && WILDCARD_TYPES.has(t));
  set.delete('*');
  return { wildcard, names: set };
}

// ── Delta (incremental) ──────────────────────────────────────────────────────

interface DeltaInFlight extends InFlight {
  /** name → version sent, or null for a removal. */
  changes: Map<string, string | null>;
}

interface DeltaState {
  sub: Subscription;
  inFlight: DeltaInFlight | undefined;
  /** What the client holds, as far as we know: initial_resource_versions, then every ACKed change. */
  client: Map<string, string>;
  /** Content the client rejected (name → version, null = a removal): not re-sent until it changes. */
  nacked: Map<string, string | null>;
  /** Whether the type got a response (a wildcard subscription is answered once even when empty). */
  answered: boolean;
  /** The first evaluation of the type is still to come (reconnect bookkeeping). */
  initial: boolean;
  lastNack: boolean;
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
      const client = new Map(Object.entries(req.initial_resource_versions ?? {}));
      st = {
        sub: { wildcard: req.resource_names_subscribe.length === 0 && WILDCARD_TYPES.has(t), names: new Set() },
        inFlight: undefined,
        client,
        nacked: new Map(),
        // A reconnecting client already got its first answer on the previous stream.
        answered: client.size > 0,
        initial: true,
        lastNack: false,
      };
      this.types.set(t, st);
    }
    if (req.response_nonce && st.inFlight && req.response_nonce === st.inFlight.nonce) {
      const f = st.inFlight;
      st.inFlight = undefined;
      if (req.error_detail) {
        for (const [n, v] of f.changes) st.nacked.set(n, v);
        st.lastNack = true;
        this.log.warn({ node: this.info.nodeId, group: this.info.group, type: t, version: f.version, error: req.error_detail.message }, 'xds: NACK');
        this.observer.onNack(this.info, t, f.version, req.error_detail.message);
      } else {
        for (const [n, v] of f.changes) {
          if (v === null) st.client.delete(n);
          else st.client.set(n, v);
          st.nacked.delete(n);
        }
        st.lastNack = false;
        this.observer.onAck(this.info, t, f.version, Date.now() - f.at);
      }
    }
    // Subscription changes are incremental: they apply whatever the nonce.
    for (const n of req.resource_names_subscribe) {
      if (n === '*') st.sub.wildcard = true;
      else st.sub.names.add(n);
    }
    for (const n of req.resource_names_unsubscribe) {
      if (n === '*') st.sub.wildcard = false;
      else st.sub.names.delete(n);
    }
    if (req.resource_names_unsubscribe.length > 0) {
      // The client drops what it no longer wants; forget it, so a re-subscription sends it again.
      for (const n of [...st.client.keys()]) if (!this.interested(st, n)) st.client.delete(n);
      for (const n of [...st.nacked.keys()]) if (!this.interested(st, n)) st.nacked.delete(n);
    }
    this.schedule();
  }

  private interested(st: DeltaState, name: string): boolean {
    return st.sub.wildcard || st.sub.names.has(name);
  }

  /** The changes the client needs (name → version, null = removed), or undefined when it is up to date. */
  private plan(t: string, st: DeltaState): Map<string, string | null> | undefined {
    const all = typeSnapshot(this.snapshot!, t).resources;
    const changes = new Map<string, string | null>();
    const consider = (r: CachedResource) => {
      if (st.client.get(r.name) !== r.version && st.nacked.get(r.name) !== r.version) changes.set(r.name, r.version);
    };
    if (st.sub.wildcard) for (const r of all.values()) consider(r);
    else
      for (const n of st.sub.names) {
        const r = all.get(n);
        if (r) consider(r);
      }
    for (const n of st.client.keys()) if (!all.has(n) && st.nacked.get(n) !== null) changes.set(n, null);
    if (changes.size > 0) return changes;
    if (!st.answered && st.sub.wildcard) return changes; // the first answer to a wildcard subscription, even if empty
    return undefined;
  }

  protected settleInitial(t: string, st: DeltaState): void {
    if (!st.initial) return;
    st.initial = false;
    if (st.client.size > 0 && this.plan(t, st) === undefined) this.observer.onAck(this.info, t, setVersion([...st.client]), undefined);
  }

  protected wouldPush(t: string): boolean {
    const st = this.types.get(t);
    return !!st && !st.inFlight && this.plan(t, st) !== undefined;
  }

  protected push(t: string, st: DeltaState): boolean {
    this.settleInitial(t, st);
    if (st.inFlight) return false;
    const changes = this.plan(t, st);
    if (!changes) return false;
    const all = typeSnapshot(this.snapshot!, t).resources;
    const resources: Uint8Array[] = [];
    const removed: string[] = [];
    for (const n of [...changes.keys()].sort()) {
      if (changes.get(n) === null) removed.push(n);
      else resources.push(all.get(n)!.delta);
    }
    // The version the client holds once it applies this: the same hash SotW reports for that set.
    const after = new Map(st.client);
    for (const [n, v] of changes) {
      if (v === null) after.delete(n);
      else after.set(n, v);
    }
    const version = setVersion([...after]);
    const nonce = this.nonce();
    st.inFlight = { nonce, version, at: Date.now(), changes };
    st.answered = true;
    this.observer.onPush(this.info, t, version, resources.length);
    this.send({ system_version_info: version, resources, removed_resources: removed, type_url: t, nonce });
    return true;
  }

  protected heldClusters(): Iterable<string> | undefined {
    const st = this.types.get(TYPE_URLS.cluster);
    if (!st || st.lastNack) return undefined;
    return st.client.keys();
  }

  /** Test and debug view of one type's bookkeeping. */
  typeState(t: string): { client: Record<string, string>; inFlight: boolean; nacked: Record<string, string | null>; wildcard: boolean; names: string[] } | undefined {
    const st = this.types.get(t);
    if (!st) return undefined;
    return {
      client: Object.fromEntries(st.client),
      inFlight: !!st.inFlight,
      nacked: Object.fromEntries(st.nacked),
      wildcard: st.sub.wildcard,
      names: [...st.sub.names].sort(),
    };
  }
}
