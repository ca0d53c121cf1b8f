// The configuration pipeline: every model snapshot is translated into Envoy resources and handed
// to the xDS cache; the same translation is the store's validation gate, so a model that would
// produce config Envoy cannot take is refused before it is committed.
import { Gauge, Histogram, type Registry } from 'prom-client';
import { KIND_ORDER, type ModelSnapshot } from './model/model.ts';
import type { ModelError } from './model/validate.ts';
import { translate, validateTranslation, type TranslateOptions } from './translate/index.ts';
import type { GroupResources } from './xds/resources.ts';
import type { SnapshotCache } from './xds/cache.ts';
import type { ModelStore } from './store/store.ts';
import type { Logger } from './telemetry/log.ts';

export interface PipelineStatus {
  /** Model revision last translated and handed to the cache. */
  servedRevision: number;
  /** Why the newest model could not be served (the previous config stays), if it could not. */
  lastError?: { revision: number; message: string; at: string };
}

/** The translated form of one model, remembered by the identity of its resource maps. */
interface Translation {
  maps: readonly unknown[];
  groups: Map<string, GroupResources>;
}

export class ConfigPipeline {
  private last: Translation | undefined;
  private status: PipelineStatus = { servedRevision: -1 };
  private readonly buildSeconds: Histogram;
  private readonly revisionGauge: Gauge;

  constructor(
    private readonly cache: SnapshotCache,
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
  }

  /** Hooks the pipeline to the store: validation gate on every write, translation of every new snapshot. */
  attach(store: ModelStore): () => void {
    store.addValidator((candidate) => this.gate(candidate));
    this.publish(store.current());
    return store.subscribe((s) => this.publish(s));
  }

  /** The validation gate: translator checks, then strict encoding of everything it would serve. */
  gate(candidate: ModelSnapshot): ModelError[] {
    const errors = validateTranslation(candidate);
    if (errors.length) return errors;
    const groups = this.translation(candidate);
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
    const end = this.buildSeconds.startTimer();
    try {
      this.cache.replaceAll(this.translation(snapshot));
      this.status = { servedRevision: snapshot.revision };
      this.revisionGauge.set(snapshot.revision);
    } catch (e) {
      const message = (e as Error).message;
      this.status = { ...this.status, lastError: { revision: snapshot.revision, message, at: new Date().toISOString() } };
      this.log.error({ revision: snapshot.revision, err: message }, 'model could not be translated; Envoys keep the previous config');
    } finally {
      end();
    }
  }

  current(): PipelineStatus {
    return this.status;
  }

  private translation(snapshot: ModelSnapshot): Map<string, GroupResources> {
    const maps = KIND_ORDER.map((k) => snapshot[k]);
    // The gate and the publish of one write see the same resource maps: translate once.
    if (this.last && this.last.maps.every((m, i) => m === maps[i])) return this.last.groups;
    const groups = translate(snapshot, this.options);
    this.last = { maps, groups };
    return groups;
  }
}
