// What many streams share, computed once: interned subscriptions, the resources a subscription selects
// from a type snapshot (with its version and SotW body, pieces around the cache's buffers), and Delta diffs between such views.
import { responseBody, type Body } from './body.ts';
import { setVersion, type CachedResource, type TypeSnapshot } from './cache.ts';

/** A set of subscribed names (or a wildcard), interned: equal subscriptions are the same object. */
export class Subscription {
  private static nextId = 1;
  readonly id = Subscription.nextId++;
  constructor(
    readonly wildcard: boolean,
    readonly names: ReadonlySet<string>,
    readonly key: string,
  ) {}

  covers(name: string): boolean {
    return this.wildcard || this.names.has(name);
  }
}

const interned = new Map<string, WeakRef<Subscription>>();
const finalizer = new FinalizationRegistry<string>((key) => {
  if (interned.get(key)?.deref() === undefined) interned.delete(key);
});

export function subscriptionOf(wildcard: boolean, names: Iterable<string>): Subscription {
  const sorted = [...new Set(names)].filter((n) => n !== '*').sort();
  const key = `${wildcard ? '*' : ''}\n${sorted.join('\n')}`;
  const hit = interned.get(key)?.deref();
  if (hit) return hit;
  const s = new Subscription(wildcard, new Set(sorted), key);
  interned.set(key, new WeakRef(s));
  finalizer.register(s, key);
  return s;
}

let nextBodyId = 1;

/**
 * A nonce shared by every stream sending the same response. Nonces only have to tell a stream's latest
 * response from its earlier ones: consecutive pushes on a stream never carry the same content, and a
 * reply can only reach us before the next push's reply (streams are ordered), so an id per distinct
 * response body is enough — and lets a thousand streams share one fully encoded message.
 */
function sharedNonce(prefix: string): string {
  return `${prefix}${(nextBodyId++).toString(36)}`;
}

/** The resources of one type snapshot a subscription selects. */
export class View {
  /** Selected resources in name order. */
  readonly resources: readonly CachedResource[];
  /** Wildcard: the type's version; otherwise the same hash over the subset. */
  readonly version: string;
  readonly nonce = sharedNonce('s');
  private sotw: Body | undefined;

  constructor(
    readonly ts: TypeSnapshot,
    readonly sub: Subscription,
  ) {
    let rs: CachedResource[];
    if (sub.wildcard) rs = [...ts.resources.values()];
    else {
      rs = [];
      for (const n of sub.names) {
        const r = ts.resources.get(n);
        if (r) rs.push(r);
      }
    }
    rs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.resources = rs;
    this.version = sub.wildcard ? ts.version : setVersion(rs.map((r) => [r.name, r.version] as const));
  }

  /** The version of `name` in this view, undefined when the view does not hold it. */
  versionOf(name: string): string | undefined {
    return this.sub.covers(name) ? this.ts.resources.get(name)?.version : undefined;
  }

  /** The whole DiscoveryResponse (nonce included), encoded once for every stream, around the cache's buffers. */
  get sotwMessage(): Body {
    this.sotw ??= responseBody(
      this.version,
      this.resources.map((r) => r.any),
      this.ts.typeUrl,
      this.nonce,
    );
    return this.sotw;
  }
}

/** A nonce for a response only one stream sends. */
export function ownNonce(): string {
  return sharedNonce('m');
}

const views = new WeakMap<TypeSnapshot, Map<Subscription, View>>();

export function viewOf(ts: TypeSnapshot, sub: Subscription): View {
  let m = views.get(ts);
  if (!m) views.set(ts, (m = new Map()));
  let v = m.get(sub);
  if (!v) m.set(sub, (v = new View(ts, sub)));
  return v;
}

/**
 * A State-of-the-World response carrying only what changed since `from` — allowed for the types whose
 * absence from a response means nothing (EDS, RDS, SDS): a changed endpoint is one resource, not all.
 */
export class SotwUpdate {
  readonly nonce = sharedNonce('p');
  private message: Body | undefined;

  constructor(
    readonly to: View,
    readonly resources: readonly CachedResource[],
  ) {}

  get sotwMessage(): Body {
    this.message ??= responseBody(
      this.to.version,
      this.resources.map((r) => r.any),
      this.to.ts.typeUrl,
      this.nonce,
    );
    return this.message;
  }
}

const updates = new WeakMap<View, WeakMap<View, SotwUpdate>>();

export function sotwUpdate(from: View, to: View): SotwUpdate {
  let m = updates.get(from);
  if (!m) updates.set(from, (m = new WeakMap()));
  let u = m.get(to);
  if (!u) {
    u = new SotwUpdate(
      to,
      to.resources.filter((r) => from.versionOf(r.name) !== r.version),
    );
    m.set(to, u);
  }
  return u;
}

/** The changes that take a Delta client from one view to another. */
export class DeltaPlan {
  readonly nonce = sharedNonce('d');
  private body: Body | undefined;

  constructor(
    readonly typeUrl: string,
    /** name → new version, or null for a removal. */
    readonly changes: ReadonlyMap<string, string | null>,
    readonly resources: readonly CachedResource[],
    readonly removed: readonly string[],
    /** What the client holds afterwards (system_version_info). */
    readonly version: string,
  ) {}

  /** The whole DeltaDiscoveryResponse (nonce included), encoded once for every stream. */
  get deltaMessage(): Body {
    this.body ??= responseBody(
      this.version,
      this.resources.map((r) => r.delta),
      this.typeUrl,
      this.nonce,
      this.removed,
    );
    return this.body;
  }
}

const plans = new WeakMap<View, WeakMap<View, DeltaPlan>>();
const fromNothing = new WeakMap<View, DeltaPlan>();

/**
 * From a client holding exactly `from` (or nothing) to `to`, both over the same subscription: changed
 * and new resources of `to`, and removals of what `from` holds that the snapshot no longer has.
 */
export function deltaPlan(from: View | null, to: View): DeltaPlan {
  const memo = from ? plans.get(from)?.get(to) : fromNothing.get(to);
  if (memo) return memo;
  const changes = new Map<string, string | null>();
  const resources: CachedResource[] = [];
  for (const r of to.resources) {
    if (from?.versionOf(r.name) !== r.version) {
      changes.set(r.name, r.version);
      resources.push(r);
    }
  }
  const removed: string[] = [];
  if (from) for (const r of from.resources) if (!to.ts.resources.has(r.name)) removed.push(r.name);
  for (const n of removed) changes.set(n, null);
  const plan = new DeltaPlan(to.ts.typeUrl, changes, resources, removed, to.version);
  if (from) {
    let m = plans.get(from);
    if (!m) plans.set(from, (m = new WeakMap()));
    m.set(to, plan);
  } else fromNothing.set(to, plan);
  return plan;
}

const gaps = new WeakMap<View, WeakMap<ReadonlyMap<string, string>, Map<Subscription | null, boolean>>>();

/**
 * Whether a client holding the clusters of `held` misses an EDS subscription for one of them (whose
 * endpoints the snapshot has): listeners and routes wait for those (make-before-break).
 */
export function edsGap(held: View, edsClusters: ReadonlyMap<string, string>, eds: Subscription | null): boolean {
  let byEds = gaps.get(held);
  if (!byEds) gaps.set(held, (byEds = new WeakMap()));
  let bySub = byEds.get(edsClusters);
  if (!bySub) byEds.set(edsClusters, (bySub = new Map()));
  let gap = bySub.get(eds);
  if (gap === undefined) {
    gap = edsGapOf(
      held.resources.map((r) => r.name),
      edsClusters,
      eds,
    );
    bySub.set(eds, gap);
  }
  return gap;
}

export function edsGapOf(clusters: Iterable<string>, edsClusters: ReadonlyMap<string, string>, eds: Subscription | null): boolean {
  if (edsClusters.size === 0) return false;
  for (const c of clusters) {
    const service = edsClusters.get(c);
    if (service !== undefined && !eds?.covers(service)) return true;
  }
  return false;
}
