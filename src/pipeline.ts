// The configuration pipeline: every model snapshot is translated into Envoy resources and handed
// to the xDS cache; the same translation is the store's validation gate, so a model that would
// produce config Envoy cannot take is refused before it is committed.
import { Gauge, Histogram, type Registry } from 'prom-client';
import { KIND_ORDER, rateLimitModeOf, type ModelSnapshot, type ModelError } from './model/index.ts';
import { EmitMemo, nextExpiry, translate, validateTranslation, type QuotaExhaustedIR, type TranslateOptions } from './translate/index.ts';
import { resourceName, type EnvoyResource, type GroupResources } from './contract/index.ts';
import { typeLabel, type SnapshotCache, type FleetStatus } from './xds/index.ts';
import { TYPE_URLS } from './proto/index.ts';
import type { ModelStore } from './store/index.ts';
import { ConvergenceTracker, type Logger } from './telemetry/index.ts';

export interface PipelineStatus {
  /** Model revision last translated and handed to the cache. */
  servedRevision: number;
  /** Why the newest model could not be served (the previous config stays), if it could not. */
  lastError?: { revision: number; message: string; at: string };
}

/** The translated form of one model, remembered by the identity of its resource maps (and the fleet it divided limits among). */
interface Translation {
  maps: readonly unknown[];
  envoys: ReadonlyMap<string, number>;
  quotas: readonly QuotaExhaustedIR[];
  /** The next expiry after the clock it was translated at: until then the same model translates the same. */
  expiry: number | undefined;
  jwks: ReadonlyMap<string, unknown>;
  groups: Map<string, GroupResources>;
}

/**
 * How long fleet changes are gathered before native limits are re-divided: Envoys starting or
 * stopping together (a rollout) cause one push, not one per stream.
 */
const REDIVIDE_DELAY_MS = 200;

/** Where native quotas come from (the quota ledger fed by access logs). */
export interface QuotaSource {
  exhausted(now: number): QuotaExhaustedIR[];
  /** When the earliest exhausted budget's window ends (ms). */
  nextReset(now: number): number | undefined;
}

/** How long a removal waits for Envoys to stop routing to clusters before removing them anyway. */
const REMOVAL_WAIT_MS = 10_000;

export class ConfigPipeline {
  private last: Translation | undefined;
  /** What the cache was last given (possibly an interim that still holds clusters being removed). */
  private served: ReadonlyMap<string, GroupResources> = new Map();
  private removal: { cancelled: boolean } | undefined;
  private status: PipelineStatus = { servedRevision: -1 };
  /** No translation yet: it waits for the first Envoy's stream or a write (attach's deferUntilStream). */
  private deferred = false;
  private snapshot: ModelSnapshot | undefined;
  /** Connected Envoys per native gateway group: each gets an equal share of every plan limit. */
  private envoys: ReadonlyMap<string, number> = new Map();
  private redivide: NodeJS.Timeout | undefined;
  private quotaSource: QuotaSource | undefined;
  /** Native quotas used up now: their callers are refused (quota RBAC, per route). */
  private quotas: readonly QuotaExhaustedIR[] = [];
  private quotaTimer: NodeJS.Timeout | undefined;
  /** Native authorization: fires at the next subscription or key expiry, which then stops working in Envoy. */
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Native JWT: key sets fetched for jwksUri issuers (pushed to Envoy inline), and where they come from. */
  private jwks: ReadonlyMap<string, unknown> = new Map();
  private jwksSource: (() => ReadonlyMap<string, unknown>) | undefined;
  /** Emitted routes remembered across translations: a change hands the cache new objects only for what changed. */
  private readonly memo = new EmitMemo();
  private readonly buildSeconds: Histogram;
  private readonly revisionGauge: Gauge;
  /** Model change → Envoy ACK latency (portico_xds_convergence_seconds). */
  private readonly convergence: ConvergenceTracker;

  constructor(
    private readonly cache: SnapshotCache,
    private readonly fleet: FleetStatus,
    private readonly options: TranslateOptions,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.buildSeconds = new Histogram({
      name: 'portico_snapshot_build_seconds',
      help: 'Time to translate a model snapshot into Envoy resources and encode them',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    this.revisionGauge = new Gauge({ name: 'portico_model_revision', help: 'Model revision being served to Envoy', registers: [registry] });
    this.convergence = new ConvergenceTracker(registry, typeLabel);
  }

  /**
   * Hooks the pipeline to the store: validation gate on every write, translation of every new snapshot.
   * `deferUntilStream`: the first translation waits for the first Envoy to connect (or a write), so
   * a control plane no Envoy has reached yet holds no translation, encodings or memo (~110 MB at
   * 10k routes) and is ready sooner; that Envoy's stream waits for the first snapshot as before.
   */
  attach(store: ModelStore, opts: { deferUntilStream?: boolean } = {}): () => void {
    store.addValidator((candidate) => this.gate(candidate));
    const detachConvergence = this.convergence.attach(this.cache, this.fleet);
    const detachFleet = this.fleet.onMembership(() => this.fleetChanged());
    this.deferred = opts.deferUntilStream === true;
    this.publish(store.current());
    const detach = store.subscribe((s) => this.publish(s));
    return () => {
      detach();
      detachConvergence();
      detachFleet();
      clearTimeout(this.redivide);
      clearTimeout(this.quotaTimer);
      clearTimeout(this.expiryTimer);
    };
  }

  /** Native quotas: the budgets used up come from `source`; quotasChanged() when they may have changed. */
  useQuotas(source: QuotaSource): void {
    this.quotaSource = source;
  }

  /**
   * A quota may have run out (or a window ended): refusals for exactly the budgets used up now, one
   * push; a timer brings the next window's end back here, so the refusal is lifted when it ends.
   */
  quotasChanged(): void {
    const source = this.quotaSource;
    if (!source) return;
    const now = Date.now();
    const next = source.exhausted(now);
    clearTimeout(this.quotaTimer);
    const reset = source.nextReset(now);
    if (reset !== undefined) {
      this.quotaTimer = setTimeout(() => this.quotasChanged(), Math.min(Math.max(reset - now, 0) + 10, 2 ** 31 - 1));
      this.quotaTimer.unref();
    }
    if (JSON.stringify(next) === JSON.stringify(this.quotas)) return;
    this.quotas = next;
    this.log.info({ exhausted: next.length }, 'native quotas: refusals pushed for the budgets used up');
    if (this.snapshot) this.publish(this.snapshot);
  }

  /** Native JWT: fetched key sets come from `source`; jwksChanged() when an issuer's keys were reloaded. */
  useJwks(source: () => ReadonlyMap<string, unknown>): void {
    this.jwksSource = source;
    this.jwks = source();
  }

  /** An issuer's keys were reloaded: when a key set differs from the one pushed, one push (a key rotation reaches Envoy). */
  jwksChanged(): void {
    if (!this.jwksSource) return;
    const next = this.jwksSource();
    if (JSON.stringify([...next]) === JSON.stringify([...this.jwks])) return;
    this.jwks = next;
    this.log.info({ issuers: next.size }, 'native JWT: fetched key sets pushed to Envoy');
    if (this.snapshot) this.publish(this.snapshot);
  }

  /** Envoys came or went: when a native group's count changed, its limits are divided anew and pushed. */
  private fleetChanged(): void {
    // The first Envoy is here: translate now (not on this stream's callback), no gathering delay.
    if (this.deferred) {
      setImmediate(() => {
        if (this.deferred && this.snapshot) this.publish(this.snapshot);
      });
      return;
    }
    if (this.redivide) return;
    this.redivide = setTimeout(() => {
      this.redivide = undefined;
      if (!this.snapshot) return;
      const next = nativeEnvoys(this.snapshot, this.fleet.connectedNodes());
      if (sameCounts(next, this.envoys)) return;
      this.envoys = next;
      this.log.info({ envoys: Object.fromEntries(next) }, 'native rate limits divided among the connected Envoys');
      this.publish(this.snapshot);
    }, REDIVIDE_DELAY_MS);
    this.redivide.unref();
  }

  /** The validation gate: translator checks, then strict encoding of everything it would serve. */
  gate(candidate: ModelSnapshot): ModelError[] {
    const errors = validateTranslation(candidate);
    if (errors.length) return errors;
    // Divided among the Envoys the candidate's publish will divide by (a write that makes a group
    // native changes the count): the publish then finds this translation instead of making another.
    const envoys = nativeEnvoys(candidate, this.fleet.connectedNodes());
    const groups = this.translation(candidate, sameCounts(envoys, this.envoys) ? this.envoys : envoys);
    return this.cache.check(groups).flatMap((e) =>
      e.problems.map((p) => ({
        kind: 'gatewayGroups' as const,
        key: e.group,
        field: `envoy ${p.kind} '${p.name}' ${p.path}`,
        code: 'invalid' as const,
        message: `would be rejected: ${p.message}`,
      })),
    );
  }

  /** Translates and hands a snapshot to the cache; on failure the previous config keeps serving. */
  publish(snapshot: ModelSnapshot): void {
    this.snapshot = snapshot;
    // Deferred until an Envoy connects, unless a write's gate has translated this model already.
    if (this.deferred && this.fleet.connectedNodes().size === 0 && !this.translated(snapshot)) return;
    this.deferred = false;
    const end = this.buildSeconds.startTimer();
    // A model that makes a group native (or adds one) divides by the Envoys connected now.
    const envoys = nativeEnvoys(snapshot, this.fleet.connectedNodes());
    // The gate's own count when equal (same object): its translation of this model is then reused.
    if (!sameCounts(envoys, this.envoys)) this.envoys = this.last && sameCounts(envoys, this.last.envoys) ? this.last.envoys : envoys;
    try {
      const target = this.translation(snapshot);
      if (this.removal) this.removal.cancelled = true;
      // Make before break: clusters that routes may still point at are removed only after the
      // routes that stop using them are ACKed (or a bounded wait), so no request meets a 503.
      const interim = keepRemovedClusters(this.served, target);
      const changedAt = Date.now();
      this.cache.replaceAll(interim);
      if (this.cache.hasPending()) this.convergence.changed(changedAt);
      this.served = interim;
      if (interim !== target) this.finishRemoval(target);
      this.status = { servedRevision: snapshot.revision };
      this.revisionGauge.set(snapshot.revision);
      this.scheduleExpiry(snapshot);
    } catch (e) {
      const message = (e as Error).message;
      this.status = { ...this.status, lastError: { revision: snapshot.revision, message, at: new Date().toISOString() } };
      this.log.error({ revision: snapshot.revision, err: message }, 'model could not be translated; Envoys keep the previous config');
    } finally {
      end();
    }
  }

  /**
   * A push at the next expiry instant (ms resolution; +1 ms so the clock has passed it): the timer
   * republishes the snapshot and the translation, judging expiries at the new clock, leaves the
   * expired subscription or key out. Long waits are re-armed (timers cap at ~24.8 days).
   */
  private scheduleExpiry(snapshot: ModelSnapshot): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    const now = Date.now();
    const at = nextExpiry(snapshot, now);
    if (at === undefined) return;
    this.expiryTimer = setTimeout(
      () => {
        if (this.snapshot) this.publish(this.snapshot);
      },
      Math.min(at - now + 1, 2 ** 31 - 1),
    );
    this.expiryTimer.unref();
  }

  current(): PipelineStatus {
    return this.status;
  }

  /**
   * Whether this replica can serve Envoys: the model is served, or its translation waits for the
   * first Envoy (a failed first translation is not ready: Envoys would get nothing).
   */
  ready(): boolean {
    return this.status.servedRevision >= 0 || (this.deferred && this.snapshot !== undefined);
  }

  private finishRemoval(target: Map<string, GroupResources>): void {
    const token = { cancelled: false };
    this.removal = token;
    const deadline = Date.now() + REMOVAL_WAIT_MS;
    const check = () => {
      if (token.cancelled) return;
      if ((this.cache.hasPending() || !this.routesAcked(target)) && Date.now() < deadline) {
        setTimeout(check, 25).unref();
        return;
      }
      this.removal = undefined;
      try {
        this.cache.replaceAll(target);
        this.served = target;
      } catch (e) {
        this.log.error({ err: (e as Error).message }, 'could not publish the cluster removal');
      }
    };
    setTimeout(check, 25).unref();
  }

  /** Every connected Envoy of the groups has answered (ACK or NACK) the published listeners and routes. */
  private routesAcked(groups: ReadonlyMap<string, GroupResources>): boolean {
    const nodes = this.fleet.status().nodes;
    for (const g of groups.keys()) {
      const snap = this.cache.getSnapshot(g);
      for (const typeUrl of [TYPE_URLS.listener, TYPE_URLS.route]) {
        const version = snap.types.get(typeUrl)?.version;
        if (!version) continue;
        for (const n of nodes.filter((x) => x.group === g)) {
          const t = n.types.find((x) => x.typeUrl === typeUrl);
          if (t && t.ackedVersion !== version && t.lastNack?.version !== version) return false;
        }
      }
    }
    return true;
  }

  /** The last translation was made of this model's resource maps (a write's gate made it). */
  private translated(snapshot: ModelSnapshot): boolean {
    return this.last !== undefined && KIND_ORDER.every((k, i) => this.last!.maps[i] === snapshot[k]);
  }

  private translation(snapshot: ModelSnapshot, envoys = this.envoys): Map<string, GroupResources> {
    const maps = KIND_ORDER.map((k) => snapshot[k]);
    // The gate and the publish of one write see the same resource maps: translate once.
    const now = Date.now();
    const expiry = nextExpiry(snapshot, now);
    if (this.last?.envoys === envoys && this.last.quotas === this.quotas && this.last.jwks === this.jwks && this.last.expiry === expiry && this.last.maps.every((m, i) => m === maps[i]))
      return this.last.groups;
    const groups = translate(snapshot, { ...this.options, envoys, quotaExhausted: this.quotas, jwks: this.jwks, now, memo: this.memo });
    this.last = { maps, envoys, quotas: this.quotas, jwks: this.jwks, expiry, groups };
    return groups;
  }
}

/** Connected Envoys of the model's native-mode groups (other groups do not depend on the count). */
export function nativeEnvoys(model: ModelSnapshot, connected: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const g of model.gatewayGroups.values()) {
    if (g.kind !== 'proxyless-grpc' && rateLimitModeOf(model, g) === 'native') out.set(g.name, Math.max(1, connected.get(g.name) ?? 0));
  }
  return out;
}

function sameCounts(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

function byName(kind: 'clusters' | 'endpoints', list: readonly EnvoyResource[]): EnvoyResource[] {
  return [...list].sort((a, b) => {
    const x = resourceName(kind, a) ?? '';
    const y = resourceName(kind, b) ?? '';
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/**
 * The target config, except that clusters (and their endpoints) served before and absent now are
 * kept for the moment; returns `target` itself when nothing is being removed.
 */
export function keepRemovedClusters(served: ReadonlyMap<string, GroupResources>, target: Map<string, GroupResources>): Map<string, GroupResources> {
  let changed = false;
  const out = new Map<string, GroupResources>();
  for (const [g, next] of target) {
    const prev = served.get(g);
    const names = new Set(next.clusters.map((c) => resourceName('clusters', c)));
    const gone = prev ? prev.clusters.filter((c) => !names.has(resourceName('clusters', c))) : [];
    if (!prev || gone.length === 0) {
      out.set(g, next);
      continue;
    }
    changed = true;
    const goneNames = new Set(gone.map((c) => resourceName('clusters', c)));
    out.set(g, {
      ...next,
      clusters: byName('clusters', [...next.clusters, ...gone]),
      endpoints: byName('endpoints', [...next.endpoints, ...prev.endpoints.filter((e) => goneNames.has(resourceName('endpoints', e)))]),
    });
  }
  return changed ? out : target;
}
