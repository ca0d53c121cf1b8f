// Incremental (Delta) xDS on one stream: what the client holds per resource (a shared view while in
// sync, an explicit map after NACKs, reconnects or subscription changes), diffs, removals, NACKed
// content never re-sent until it changes.
import { setVersion, type CachedResource } from './cache.ts';
import { TYPE_URLS } from '../proto/index.ts';
import { deltaPlan, ownNonce, subscriptionOf, viewOf, type DeltaPlan, type Subscription, type View } from './views.ts';
import { WILDCARD_TYPES, XdsStreamBase, type DeltaRequest, type DeltaResponse, type InFlight, type StreamOptions } from './stream.ts';

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
    const t = this.begin(req.node, req.type_url);
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
        this.nacked(t, f.version, req.error_detail.message);
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
