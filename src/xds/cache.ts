// Snapshot cache per gateway group: resources encoded once per content and shared by every stream,
// versions that are content hashes (identical on every replica and across restarts), debounced publishing.
import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import { RESOURCE_KINDS, type EnvoyResource, type GroupResources } from '../contract/index.ts';
import { EncodedMessage, EncodedParts, RESOURCE_TYPES, TYPE_URLS, type XdsTypeUrl } from '../proto/index.ts';
import { GroupResourcesError, tryEncode, type ResourceProblem } from './check.ts';

/** Types in make-before-break order (what a later type refers to is delivered first). */
export const TYPE_ORDER: readonly XdsTypeUrl[] = RESOURCE_KINDS.map((k) => RESOURCE_TYPES[k]);

function hex16(h: ReturnType<typeof createHash>): string {
  return h.digest('hex').slice(0, 16);
}

/** Content hash of an encoded resource: its version in every response. */
export function contentVersion(bytes: Uint8Array): string {
  return hex16(createHash('sha256').update(bytes));
}

/** Version of a set of resources: hash over (name, version) in name order; the empty set has one too. */
export function setVersion(entries: Iterable<readonly [string, string]>): string {
  const sorted = [...entries].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const h = createHash('sha256');
  for (const [name, version] of sorted) h.update(`${name}\0${version}\n`);
  return hex16(h);
}

/** Bytes of a varint-encoded length. */
function varintBytes(n: number): number {
  let k = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    k++;
  }
  return k;
}

/** Bytes of a length-delimited field (tag below 16, so one byte) holding `len` bytes. */
const fieldBytes = (len: number): number => 1 + varintBytes(len) + len;

/**
 * One encoded resource, shared by every stream and every group holding the same content. One
 * buffer holds it: the Delta framing (Resource) around the SotW framing (Any) around the message,
 * so `bytes`, `any` and `delta` are views of it, not three copies (7 MB each for a large route table).
 */
export class CachedResource {
  /** envoy.service.discovery.v3.Resource: one element of DeltaDiscoveryResponse.resources. */
  readonly delta: Uint8Array;
  /** google.protobuf.Any holding the resource: one element of DiscoveryResponse.resources. */
  readonly any: Uint8Array;
  /** The resource message itself. */
  readonly bytes: Uint8Array;

  constructor(
    readonly typeUrl: XdsTypeUrl,
    readonly name: string,
    /** Content hash of `message`. */
    readonly version: string,
    message: Uint8Array,
  ) {
    this.delta = protobuf.Writer.create()
      .uint32(10)
      .string(version) // version = 1
      .uint32(18)
      .fork() // resource = 2: Any { type_url = 1, value = 2 }
      .uint32(10)
      .string(typeUrl)
      .uint32(18)
      .bytes(message)
      .ldelim()
      .uint32(26)
      .string(name) // name = 3
      .finish();
    const anyLength = fieldBytes(Buffer.byteLength(typeUrl)) + fieldBytes(message.length);
    const anyStart = fieldBytes(Buffer.byteLength(version)) + 1 + varintBytes(anyLength);
    this.any = this.delta.subarray(anyStart, anyStart + anyLength);
    const messageStart = anyStart + anyLength - message.length;
    this.bytes = this.delta.subarray(messageStart, messageStart + message.length);
  }
}

export interface TypeSnapshot {
  readonly typeUrl: string;
  /** setVersion over every resource of the type. */
  readonly version: string;
  readonly resources: ReadonlyMap<string, CachedResource>;
}

export interface Snapshot {
  readonly group: string;
  /** Hash over (type, name, version) of everything: the group's config version. */
  readonly version: string;
  readonly types: ReadonlyMap<string, TypeSnapshot>;
  /** EDS cluster name → its EDS service name, for those with a ClusterLoadAssignment here (make-before-break). */
  readonly edsClusters: ReadonlyMap<string, string>;
}

const EMPTY_TYPES = new Map<string, TypeSnapshot>(TYPE_ORDER.map((t) => [t, { typeUrl: t, version: setVersion([]), resources: new Map() }]));

/** Hash over each type's version (itself a hash over its names and versions): no pass over every resource. */
function snapshotVersion(types: ReadonlyMap<string, TypeSnapshot>): string {
  const h = createHash('sha256');
  for (const t of TYPE_ORDER) h.update(`${t}\0${types.get(t)!.version}\n`);
  return hex16(h);
}

function sameEntries(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

export function emptySnapshot(group: string): Snapshot {
  return { group, version: snapshotVersion(EMPTY_TYPES), types: EMPTY_TYPES, edsClusters: new Map() };
}

const unserved = new Map<string, TypeSnapshot>();

/** The resources of a type in a snapshot (empty for types Portico does not serve). */
export function typeSnapshot(s: Snapshot, typeUrl: string): TypeSnapshot {
  const ts = s.types.get(typeUrl);
  if (ts) return ts;
  let empty = unserved.get(typeUrl);
  // One stable object per unknown type (bounded: only types clients asked for, a handful).
  if (!empty && unserved.size < 64) unserved.set(typeUrl, (empty = { typeUrl, version: setVersion([]), resources: new Map() }));
  return empty ?? { typeUrl, version: setVersion([]), resources: new Map() };
}

export interface CacheOptions {
  /** Quiet period: publish once no update arrived for this long. */
  debounceMs: number;
  /** Upper bound on how long the first pending update waits. */
  debounceMaxMs: number;
}

export type SnapshotListener = (snapshot: Snapshot) => void;

export class SnapshotCache {
  private readonly published = new Map<string, Snapshot>();
  private readonly pending = new Map<string, Snapshot>();
  private readonly listeners = new Map<string, Set<SnapshotListener>>();
  private readonly anyListeners = new Set<SnapshotListener>();
  /**
   * Content-addressed encodings (type + digest of the JSON text), so equal content is encoded once
   * across groups and updates. A digest, not the text: the text of 10k routes would be held twice.
   */
  private readonly interned = new Map<string, WeakRef<CachedResource>>();
  /**
   * Encodings by the identity of the resource object handed in: a translator that reuses the objects
   * of unchanged resources (resources are immutable once handed over) costs no serialisation at all.
   */
  private readonly byObject = new WeakMap<EnvoyResource, CachedResource>();
  /**
   * Routes and virtual hosts remembered by object identity: a route configuration rebuilt around the
   * route objects of the previous one (the translator's memo) re-encodes only the routes that changed.
   */
  readonly parts = new EncodedParts(['envoy.config.route.v3.Route', 'envoy.config.route.v3.VirtualHost']);
  /** Resources encoded (cache misses), since creation: what a change cost, for tests and metrics. */
  encodings = 0;
  private readonly finalizer = new FinalizationRegistry<string>((key) => {
    const ref = this.interned.get(key);
    if (ref && ref.deref() === undefined) this.interned.delete(key);
  });
  /** Snapshots built by check(), held so their encodings stay interned until they are published. */
  // biome-ignore lint/correctness/noUnusedPrivateClassMembers: held, never read: the reference keeps the WeakRefs alive
  private checked: Snapshot[] = [];
  private timer: NodeJS.Timeout | undefined;
  private firstPendingAt = 0;
  private closed = false;
  private ready = false;
  private readonly readyWaiters: (() => void)[] = [];

  constructor(private readonly options: CacheOptions = { debounceMs: 50, debounceMaxMs: 250 }) {}

  /**
   * Replaces a group's resources. Encodes (and so validates) them now: an invalid resource throws
   * GroupResourcesError and leaves the group as it was. Publishing to streams is debounced.
   * Returns the snapshot version the group will have.
   */
  setGroupResources(group: string, resources: GroupResources): string {
    const next = this.build(group, resources);
    const current = this.pending.get(group) ?? this.published.get(group);
    if (current?.version === next.version) {
      if (!this.ready) this.schedule();
      return next.version;
    }
    if (this.published.get(group)?.version === next.version) this.pending.delete(group);
    else this.pending.set(group, next);
    this.schedule();
    return next.version;
  }

  /**
   * Encodes (and so validates) every group without publishing anything: the validation gate runs
   * this before a write commits. The encodings are kept until the next replaceAll, which then
   * finds them interned instead of encoding again.
   */
  check(all: ReadonlyMap<string, GroupResources>): GroupResourcesError[] {
    const problems: GroupResourcesError[] = [];
    const built: Snapshot[] = [];
    for (const [g, r] of all) {
      try {
        built.push(this.build(g, r));
      } catch (e) {
        if (e instanceof GroupResourcesError) problems.push(e);
        else throw e;
      }
    }
    this.checked = built;
    return problems;
  }

  /** Sets every group in `all` and empties the groups not in it. */
  replaceAll(all: ReadonlyMap<string, GroupResources>): void {
    const built = new Map<string, Snapshot>();
    const problems: GroupResourcesError[] = [];
    for (const [g, r] of all) {
      try {
        built.set(g, this.build(g, r));
      } catch (e) {
        if (e instanceof GroupResourcesError) problems.push(e);
        else throw e;
      }
    }
    this.checked = [];
    // All or nothing: one bad group must not leave the fleet half-updated.
    if (problems.length > 0) throw problems[0]!;
    for (const g of this.groups()) if (!all.has(g)) built.set(g, emptySnapshot(g));
    let changed = false;
    for (const [g, s] of built) {
      if ((this.pending.get(g) ?? this.published.get(g) ?? emptySnapshot(g)).version === s.version) continue;
      changed = true;
      if (this.published.get(g)?.version === s.version) this.pending.delete(g);
      else this.pending.set(g, s);
    }
    if (changed || !this.ready) this.schedule();
  }

  /** Empties a group (its Envoys get empty responses; their config is removed). */
  removeGroup(group: string): void {
    if (!this.published.has(group) && !this.pending.has(group)) return;
    this.pending.set(group, emptySnapshot(group));
    this.schedule();
  }

  /** The published snapshot of a group; an unknown group has an empty one. */
  getSnapshot(group: string): Snapshot {
    return this.published.get(group) ?? emptySnapshot(group);
  }

  /** Groups with a published or pending snapshot. */
  groups(): string[] {
    return [...new Set([...this.published.keys(), ...this.pending.keys()])].sort();
  }

  /** Calls `fn` with every snapshot published for `group`; returns the unsubscribe function. */
  watch(group: string, fn: SnapshotListener): () => void {
    let set = this.listeners.get(group);
    if (!set) this.listeners.set(group, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.listeners.get(group) === set) this.listeners.delete(group);
    };
  }

  /** Calls `fn` for every publication of any group. */
  watchAll(fn: SnapshotListener): () => void {
    this.anyListeners.add(fn);
    return () => this.anyListeners.delete(fn);
  }

  /** Publishes pending updates now (tests, shutdown, or a caller that wants no debounce). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = [...this.pending.values()];
    this.pending.clear();
    for (const s of batch) {
      if (s.types === EMPTY_TYPES) this.published.delete(s.group);
      else this.published.set(s.group, s);
      for (const fn of [...(this.listeners.get(s.group) ?? [])]) fn(s);
      for (const fn of [...this.anyListeners]) fn(s);
    }
    if (!this.ready) {
      this.ready = true;
      for (const fn of this.readyWaiters.splice(0)) fn();
    }
  }

  /**
   * False until the first publication. Streams answer nothing before that: after a restart an empty
   * cache must never be served to Envoys that still hold the real config.
   */
  isReady(): boolean {
    return this.ready;
  }

  /** Calls `fn` once the cache is ready (now, if it is). */
  onReady(fn: () => void): void {
    if (this.ready) fn();
    else this.readyWaiters.push(fn);
  }

  /** True while an update waits for the debounce. */
  hasPending(): boolean {
    return this.pending.size > 0;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    // Before the first publication even an unchanged (e.g. empty) input must publish, to become ready.
    if (this.closed || (this.pending.size === 0 && this.ready)) return;
    const now = Date.now();
    if (!this.timer) this.firstPendingAt = now;
    else clearTimeout(this.timer);
    const due = Math.min(now + this.options.debounceMs, this.firstPendingAt + this.options.debounceMaxMs);
    this.timer = setTimeout(() => this.flush(), Math.max(0, due - now));
  }

  private build(group: string, resources: GroupResources): Snapshot {
    const previous = this.pending.get(group) ?? this.published.get(group);
    const problems: ResourceProblem[] = [];
    const types = new Map<string, TypeSnapshot>();
    const edsCandidates: [string, string][] = [];
    for (const kind of RESOURCE_KINDS) {
      const typeUrl = RESOURCE_TYPES[kind];
      const map = new Map<string, CachedResource>();
      const list = resources[kind] ?? [];
      if (!Array.isArray(list)) {
        problems.push({ kind, name: '-', path: '$', message: `${kind} must be an array` });
        continue;
      }
      const prev = previous?.types.get(typeUrl);
      let same = 0; // resources identical (the same encoding) to the previous snapshot's
      list.forEach((r: EnvoyResource, i: number) => {
        const c = this.encode(kind, typeUrl, i, r);
        if ('message' in c) problems.push(c);
        else if (map.has(c.name)) problems.push({ kind, name: c.name, path: '$', message: 'duplicate name' });
        else {
          map.set(c.name, c);
          if (prev?.resources.get(c.name) === c) same++;
          if (kind === 'clusters' && r.type === 'EDS') {
            const eds = r.eds_cluster_config as { service_name?: unknown } | undefined;
            edsCandidates.push([c.name, typeof eds?.service_name === 'string' && eds.service_name ? eds.service_name : c.name]);
          }
        }
      });
      // An unchanged type keeps its object (streams' memoised views of it stay valid) and its version
      // needs no hashing: the same names with the very same encodings.
      if (prev && same === map.size && same === prev.resources.size) types.set(typeUrl, prev);
      else {
        const version = setVersion([...map].map(([n, c]) => [n, c.version] as const));
        types.set(typeUrl, prev?.version === version ? prev : { typeUrl, version, resources: map });
      }
    }
    if (problems.length > 0) throw new GroupResourcesError(group, problems);
    const cla = types.get(TYPE_URLS.endpoint)!.resources;
    let edsClusters: ReadonlyMap<string, string> = new Map(edsCandidates.filter(([, service]) => cla.has(service)));
    if (previous && sameEntries(previous.edsClusters, edsClusters)) edsClusters = previous.edsClusters;
    return { group, version: snapshotVersion(types), types, edsClusters };
  }

  /** Holds `c` weakly under `key` (one resource may be interned under several keys). */
  private intern(key: string, c: CachedResource): void {
    this.interned.set(key, new WeakRef(c));
    this.finalizer.register(c, key);
  }

  private encode(kind: (typeof RESOURCE_KINDS)[number], typeUrl: XdsTypeUrl, index: number, r: EnvoyResource): CachedResource | ResourceProblem {
    const same = typeof r === 'object' && r !== null ? this.byObject.get(r) : undefined;
    if (same?.typeUrl === typeUrl) return same;
    if (kind === 'routes' && builtOfKnownParts(r, this.parts)) return this.encodeFirst(kind, typeUrl, index, r);
    let json: string;
    try {
      json = JSON.stringify(r);
    } catch (e) {
      return { kind, name: `#${index}`, path: '$', message: `not JSON: ${(e as Error).message}` };
    }
    const key = `${typeUrl}\n${createHash('sha256').update(json).digest('base64')}`;
    let c = this.interned.get(key)?.deref();
    if (!c) {
      const out = tryEncode(kind, index, r, this.parts);
      if ('message' in out) return out;
      this.encodings++;
      c = new CachedResource(typeUrl, out.name, contentVersion(out.bytes), out.bytes);
      this.intern(key, c);
      if (kind === 'routes') {
        // Also under the key encodeFirst looks for: the next translation's equal route configuration
        // (a new object built of the same parts) finds this one instead of holding a second copy
        // (7 MB at 10k routes) that the parts would then point into while the snapshot keeps this.
        this.intern(encodedKey(typeUrl, c.name, c.version), c);
        shareRouteParts(r, c.bytes, this.parts);
      }
    }
    if (typeof r === 'object' && r !== null) this.byObject.set(r, c);
    return c;
  }

  /**
   * Encodes first and finds an equal resource by its encoding: for a route configuration made of
   * parts encoded before, that costs less than serialising it as JSON (megabytes for 10k routes).
   */
  private encodeFirst(kind: (typeof RESOURCE_KINDS)[number], typeUrl: XdsTypeUrl, index: number, r: EnvoyResource): CachedResource | ResourceProblem {
    const out = tryEncode(kind, index, r, this.parts);
    if ('message' in out) return out;
    const version = contentVersion(out.bytes);
    const key = encodedKey(typeUrl, out.name, version);
    let c = this.interned.get(key)?.deref();
    if (!c) {
      this.encodings++;
      c = new CachedResource(typeUrl, out.name, version, out.bytes);
      this.intern(key, c);
    }
    shareRouteParts(r, c.bytes, this.parts);
    this.byObject.set(r, c);
    return c;
  }
}

/** The interning key of a resource found by its encoding (encodeFirst): type, name and content hash. */
function encodedKey(typeUrl: string, name: string, version: string): string {
  return `${typeUrl}\n#${name}\n${version}`;
}

/** Calls `each` with the bounds of every occurrence of length-delimited field `field` in a message. */
function eachField(bytes: Uint8Array, field: number, each: (start: number, end: number, n: number) => void): void {
  const r = protobuf.Reader.create(bytes);
  let n = 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === field && (tag & 7) === 2) {
      const len = r.uint32();
      each(r.pos, r.pos + len, n++);
      r.skip(len);
    } else r.skipType(tag & 7);
  }
}

/**
 * Points the parts memory's virtual hosts and routes of route configuration `r` at their bytes inside
 * its encoding `bytes` (RouteConfiguration.virtual_hosts = 2, VirtualHost.routes = 3), so they do not
 * each keep a copy of what the cached resource holds.
 */
function shareRouteParts(r: EnvoyResource, bytes: Uint8Array, parts: EncodedParts): void {
  const hosts = (r as { virtual_hosts?: unknown }).virtual_hosts;
  if (!Array.isArray(hosts)) return;
  eachField(bytes, 2, (start, end, h) => {
    const vh = hosts[h] as { routes?: unknown } | undefined;
    const vhBytes = bytes.subarray(start, end);
    parts.share(vh, vhBytes);
    const routes = vh?.routes;
    if (!Array.isArray(routes)) return;
    eachField(vhBytes, 3, (s, e, k) => {
      const route: unknown = routes[k];
      // A route the translator keeps encoded points into this resource too (equal bytes only).
      if (route instanceof EncodedMessage) route.share(vhBytes.subarray(s, e));
      else parts.share(route, vhBytes.subarray(s, e));
    });
  });
}

/** A route configuration some of whose virtual hosts, or their first routes, the parts memory holds or come encoded. */
function builtOfKnownParts(r: EnvoyResource, parts: EncodedParts): boolean {
  const hosts = (r as { virtual_hosts?: unknown }).virtual_hosts;
  if (!Array.isArray(hosts)) return false;
  return hosts.some((vh) => {
    const first = (vh as { routes?: unknown[] } | null)?.routes?.[0];
    return parts.holds(vh) || parts.holds(first) || first instanceof EncodedMessage;
  });
}
