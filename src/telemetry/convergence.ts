// Convergence latency: from a model change to each Envoy's ACK of the config that carries it, per
// gateway group and resource type. The pipeline reports changes, the snapshot cache its
// publications (which versions now carry the change), the fleet every ACK.
import { Histogram, type Registry } from 'prom-client';
import { registeredMetric } from './metrics.ts';

/** What the tracker needs from the snapshot cache: its publications. */
export interface PublicationSource {
  watchAll(fn: (snapshot: { group: string; types: ReadonlyMap<string, { version: string }> }) => void): () => void;
}

/** What the tracker needs from fleet status: every ACK, with push→ACK latency when this stream was pushed the version. */
export interface AckSource {
  onAcked(fn: (info: { group: string }, typeUrl: string, version: string, latencyMs: number | undefined) => void): () => void;
}

interface Pending {
  version: string;
  /** When the earliest change this version carries was made (ms since epoch). */
  changedAt: number;
}

/** Versions remembered per group and type (a burst of changes produces a few, Envoys ACK the last). */
const KEEP_VERSIONS = 16;
/** A version not ACKed after this long is forgotten (an Envoy that connects later is not "converging"). */
const MAX_AGE_MS = 10 * 60_000;

export const CONVERGENCE_METRIC = 'portico_xds_convergence_seconds';

export class ConvergenceTracker {
  private readonly histogram: Histogram<'group' | 'type'>;
  /** Earliest change not yet seen in a publication. */
  private changeSince: number | undefined;
  private clearScheduled = false;
  private readonly lastVersions = new Map<string, Map<string, string>>();
  private readonly pending = new Map<string, Pending[]>();
  private readonly detach: Array<() => void> = [];

  constructor(
    registry: Registry,
    private readonly typeLabel: (typeUrl: string) => string,
    private readonly now: () => number = Date.now,
  ) {
    this.histogram = registeredMetric(
      registry,
      CONVERGENCE_METRIC,
      () =>
        new Histogram<'group' | 'type'>({
          name: CONVERGENCE_METRIC,
          help: 'Time from a model change to an Envoy ACKing the config that carries it, by gateway group and resource type (one observation per Envoy)',
          labelNames: ['group', 'type'],
          buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
          registers: [registry],
        }),
    );
  }

  /** Subscribes to the cache's publications and the fleet's ACKs. */
  attach(cache: PublicationSource, fleet: AckSource): () => void {
    this.detach.push(
      cache.watchAll((s) => this.published(s)),
      fleet.onAcked((info, typeUrl, version, latencyMs) => this.acked(info.group, typeUrl, version, latencyMs)),
    );
    return () => {
      for (const d of this.detach.splice(0)) d();
    };
  }

  /** A model change that will reach Envoys (the pipeline calls this when the cache has something pending). */
  changed(at = this.now()): void {
    if (this.changeSince === undefined || at < this.changeSince) this.changeSince = at;
  }

  /** A group's new snapshot is out: every type whose version moved now carries the pending change. */
  published(s: { group: string; types: ReadonlyMap<string, { version: string }> }): void {
    let last = this.lastVersions.get(s.group);
    if (!last) this.lastVersions.set(s.group, (last = new Map()));
    const at = this.changeSince;
    for (const [typeUrl, t] of s.types) {
      if (last.get(typeUrl) === t.version) continue;
      last.set(typeUrl, t.version);
      if (at === undefined) continue;
      const key = `${s.group}\0${typeUrl}`;
      const list = (this.pending.get(key) ?? []).filter((p) => this.now() - p.changedAt < MAX_AGE_MS);
      list.push({ version: t.version, changedAt: at });
      if (list.length > KEEP_VERSIONS) list.splice(0, list.length - KEEP_VERSIONS);
      this.pending.set(key, list);
    }
    // One flush publishes every changed group synchronously: the change is consumed after all of them.
    if (!this.clearScheduled) {
      this.clearScheduled = true;
      queueMicrotask(() => {
        this.clearScheduled = false;
        this.changeSince = undefined;
      });
    }
  }

  /** An Envoy ACKed a version; observed only when this stream was pushed it (not a reconnect holding it already). */
  acked(group: string, typeUrl: string, version: string, latencyMs: number | undefined): void {
    if (latencyMs === undefined) return;
    const p = this.pending.get(`${group}\0${typeUrl}`)?.find((x) => x.version === version);
    if (!p) return;
    const age = this.now() - p.changedAt;
    if (age >= MAX_AGE_MS) return;
    this.histogram.observe({ group, type: this.typeLabel(typeUrl) }, Math.max(0, age) / 1000);
  }
}
