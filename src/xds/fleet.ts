// Fleet status, one StreamObserver of the xDS streams (metrics.ts is another): which Envoys are
// connected, what each ACKed per type and its last NACK, served as JSON by the admin API
// (GET /api/v1/fleet), and every ACK to whoever listens (convergence metrics).
import type { ChannelGuard, PeerIdentity, Refusal } from '../grpc/index.ts';
import type { SnapshotCache } from './cache.ts';
import { TYPE_URLS } from '../proto/index.ts';
import type { StreamInfo, StreamObserver } from './stream.ts';

const SHORT: Record<string, string> = {
  [TYPE_URLS.cluster]: 'clusters',
  [TYPE_URLS.endpoint]: 'endpoints',
  [TYPE_URLS.listener]: 'listeners',
  [TYPE_URLS.route]: 'routes',
  [TYPE_URLS.secret]: 'secrets',
};

/** Short label for a type URL ('clusters', 'routes', …; other types keep their message name). */
export function typeLabel(typeUrl: string): string {
  return SHORT[typeUrl] ?? typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

export interface NackInfo {
  version: string;
  message: string;
  at: string;
}

export interface FleetTypeStatus {
  type: string;
  typeUrl: string;
  /** Last version sent on this stream (ACKed or not). */
  pushedVersion?: string;
  pushedAt?: string;
  /** Last version the Envoy accepted, and when (a reconnect already holding it counts). */
  ackedVersion?: string;
  ackedAt?: string;
  /** A push not answered yet. */
  pending: boolean;
  lastNack?: NackInfo;
}

export interface FleetNode {
  streamId: number;
  nodeId: string;
  group: string;
  peer: string;
  protocol: 'sotw' | 'delta';
  service: string;
  userAgent: string;
  connectedSince: string;
  /** The client certificate the node connected with (under mTLS): serial, expiry and the groups it allows. */
  certificate?: PeerIdentity;
  types: FleetTypeStatus[];
}

export interface FleetGroup {
  group: string;
  /** The group's current config version in the cache (undefined without a cache). */
  snapshotVersion?: string;
  connected: number;
}

export interface FleetView {
  generatedAt: string;
  groups: FleetGroup[];
  nodes: FleetNode[];
  /** The latest NACKs across the fleet, newest first, kept after the Envoy disconnects. */
  recentNacks: (NackInfo & { nodeId: string; group: string; type: string })[];
  /** How the channels are secured ('mtls' or 'plaintext'). */
  channelSecurity: 'mtls' | 'plaintext';
  /** Callers refused on the control-plane channels, newest first: who (peer, node, certificate), why, when. */
  refused: Refusal[];
}

/** Times in ms since the epoch, not Dates: a Date costs ~100 bytes, and 1,000 streams kept 9,000 of them. */
interface TypeRecord {
  pushedVersion?: string;
  pushedAt?: number;
  ackedVersion?: string;
  ackedAt?: number;
  pending: boolean;
  lastNack?: { version: string; message: string; at: number };
}

const iso = (ms: number): string => new Date(ms).toISOString();

export interface FleetOptions {
  /** To report each group's current version beside what the Envoys hold. */
  cache?: SnapshotCache;
  /** How many NACKs recentNacks keeps. */
  nackHistory?: number;
  /** The channels' guard, whose refusals the view lists. */
  guard?: ChannelGuard;
}

export class FleetStatus implements StreamObserver {
  private readonly streams = new Map<number, { info: StreamInfo; types: Map<string, TypeRecord> }>();
  private readonly nacks: FleetView['recentNacks'] = [];
  private readonly ackListeners = new Set<(info: StreamInfo, typeUrl: string, version: string, latencyMs: number | undefined) => void>();
  private readonly membershipListeners = new Set<() => void>();

  constructor(private readonly options: FleetOptions = {}) {}

  onOpen(info: StreamInfo): void {
    this.streams.set(info.id, { info, types: new Map() });
    for (const fn of this.membershipListeners) fn();
  }

  onClose(info: StreamInfo): void {
    this.streams.delete(info.id);
    for (const fn of this.membershipListeners) fn();
  }

  /** Calls `fn` whenever a stream opens or closes (native rate limits re-divide); returns the unsubscribe function. */
  onMembership(fn: () => void): () => void {
    this.membershipListeners.add(fn);
    return () => this.membershipListeners.delete(fn);
  }

  /** Distinct nodes connected per group (a node with several per-type streams counts once). */
  connectedNodes(): Map<string, number> {
    const ids = new Map<string, Set<string>>();
    for (const { info } of this.streams.values()) {
      let set = ids.get(info.group);
      if (!set) ids.set(info.group, (set = new Set()));
      set.add(info.nodeId);
    }
    return new Map([...ids].map(([g, set]) => [g, set.size]));
  }

  onPush(info: StreamInfo, typeUrl: string, version: string): void {
    const r = this.record(info, typeUrl);
    if (!r) return;
    r.pushedVersion = version;
    r.pushedAt = Date.now();
    r.pending = true;
  }

  onAck(info: StreamInfo, typeUrl: string, version: string, latencyMs: number | undefined): void {
    const r = this.record(info, typeUrl);
    if (!r) return;
    r.ackedVersion = version;
    r.ackedAt = Date.now();
    r.pending = false;
    for (const fn of this.ackListeners) fn(info, typeUrl, version, latencyMs);
  }

  /** Calls `fn` on every ACK (convergence metrics); returns the unsubscribe function. */
  onAcked(fn: (info: StreamInfo, typeUrl: string, version: string, latencyMs: number | undefined) => void): () => void {
    this.ackListeners.add(fn);
    return () => this.ackListeners.delete(fn);
  }

  onNack(info: StreamInfo, typeUrl: string, version: string, message: string): void {
    const r = this.record(info, typeUrl);
    if (!r) return;
    const at = Date.now();
    r.lastNack = { version, message, at };
    r.pending = false;
    this.nacks.unshift({ nodeId: info.nodeId, group: info.group, type: typeLabel(typeUrl), version, message, at: iso(at) });
    this.nacks.length = Math.min(this.nacks.length, this.options.nackHistory ?? 100);
  }

  /** The fleet as plain JSON: what GET /api/v1/fleet returns. */
  status(): FleetView {
    const nodes: FleetNode[] = [...this.streams.values()]
      .map(({ info, types }) => ({
        streamId: info.id,
        nodeId: info.nodeId,
        group: info.group,
        peer: info.peer,
        protocol: info.protocol,
        service: info.service,
        userAgent: info.userAgent,
        connectedSince: iso(info.connectedAt),
        ...(info.certificate ? { certificate: info.certificate } : {}),
        types: [...types.entries()]
          .map(([typeUrl, r]) => ({
            type: typeLabel(typeUrl),
            typeUrl,
            pushedVersion: r.pushedVersion,
            pushedAt: r.pushedAt === undefined ? undefined : iso(r.pushedAt),
            ackedVersion: r.ackedVersion,
            ackedAt: r.ackedAt === undefined ? undefined : iso(r.ackedAt),
            pending: r.pending,
            lastNack: r.lastNack && { version: r.lastNack.version, message: r.lastNack.message, at: iso(r.lastNack.at) },
          }))
          .sort((a, b) => a.type.localeCompare(b.type)),
      }))
      .sort((a, b) => a.group.localeCompare(b.group) || a.nodeId.localeCompare(b.nodeId) || a.streamId - b.streamId);
    const groupNames = new Set([...nodes.map((n) => n.group), ...(this.options.cache?.groups() ?? [])]);
    const groups = [...groupNames].sort().map((group) => ({
      group,
      snapshotVersion: this.options.cache?.getSnapshot(group).version,
      connected: nodes.filter((n) => n.group === group).length,
    }));
    return {
      generatedAt: new Date().toISOString(),
      groups,
      nodes,
      recentNacks: [...this.nacks],
      channelSecurity: this.options.guard?.security ?? 'plaintext',
      refused: this.options.guard?.recent() ?? [],
    };
  }

  /** One connected node's status by node id (the first stream when it has several). */
  node(nodeId: string): FleetNode | undefined {
    return this.status().nodes.find((n) => n.nodeId === nodeId);
  }

  private record(info: StreamInfo, typeUrl: string): TypeRecord | undefined {
    const s = this.streams.get(info.id);
    if (!s) return undefined;
    let r = s.types.get(typeUrl);
    if (!r) s.types.set(typeUrl, (r = { pending: false }));
    return r;
  }
}
