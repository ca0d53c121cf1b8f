// The translator's entry point: model snapshot → per-gateway-group Envoy resources (proto3 JSON,
// sorted by name), through the IR. Pure: the same model always gives byte-identical output.
import type { ModelSnapshot, ModelError } from '../model/index.ts';
import { RESOURCE_TYPES, type JsonObject } from '../proto/index.ts';
import { cluster } from './envoy/clusters.ts';
import { loadAssignment } from './envoy/endpoints.ts';
import { apiListener, flowStepListener, listener } from './envoy/listeners.ts';
import { routeConfigurations } from './envoy/routes.ts';
import { secret } from './envoy/secrets.ts';
import type { FlowOptions, GroupIR, IdempotencyOptions, QuotaExhaustedIR, TelemetryOptions } from './ir.ts';
import { resourceName, type GroupResources, type ResourceKind } from '../contract/index.ts';
import { modelToIr } from './to-ir/group.ts';
import { validateTranslation } from './validate.ts';
import type { EmitMemo } from './memo.ts';

export interface TranslateOptions {
  /** host:port of Portico's gRPC callout services (ext_authz and rate limit). */
  calloutAddress: string;
  /** Access-log streaming to Portico and OpenTelemetry tracing; off when unset. */
  telemetry?: TelemetryOptions;
  /** Where flows run: the runtime's address and each Envoy's step listener (DEFAULTS.flows when unset). */
  flows?: FlowOptions;
  /** Where the idempotency processor runs (DEFAULTS.idempotency when unset). */
  idempotency?: IdempotencyOptions;
  /**
   * Under mTLS: the SDS file on every Envoy host naming its channel credentials; the callout and
   * access-log clusters present the node certificate from it. Plaintext clusters when unset.
   */
  channelSdsDir?: string;
  /** Connected Envoys per gateway group: native rate limits give each an equal share of every plan limit (1 when absent). */
  envoys?: ReadonlyMap<string, number>;
  /** Native mode: budgets whose quota is used up (counted from access logs); their callers are refused. */
  quotaExhausted?: readonly QuotaExhaustedIR[];
  /** Epoch ms subscription and key expiries are judged at (native authorization); Date.now() when unset. */
  now?: number;
  /** Native mode: JWKS documents the control plane fetched for jwksUri issuers, by issuer name (pushed to Envoy inline). */
  jwks?: ReadonlyMap<string, unknown>;
  /** The caller's memory of emitted JSON: unchanged routes come back as the objects of the last translation. */
  memo?: EmitMemo;
}

// The output type is the xDS cache's input type: one contract, in src/contract.
export type { GroupResources, ResourceKind };
export { RESOURCE_TYPES };

/** Thrown by translate for a model that validateTranslation refuses (the store gate keeps such models out). */
export class TranslationError extends Error {
  constructor(readonly errors: ModelError[]) {
    super(`the model cannot be translated: ${errors.map((e) => `${e.kind} '${e.key}' ${e.field}: ${e.message}`).join('; ')}`);
    this.name = 'TranslationError';
  }
}

function byName(kind: ResourceKind, list: JsonObject[]): JsonObject[] {
  return list
    .map((r) => [String(resourceName(kind, r)), r] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([, r]) => r);
}

/** IR → Envoy resources for one gateway group. */
export function groupResources(g: GroupIR, memo?: EmitMemo): GroupResources {
  return {
    clusters: byName('clusters', g.clusters.map(cluster)),
    endpoints: byName('endpoints', g.clusters.filter((c) => c.discovery === 'eds').map(loadAssignment)),
    listeners: byName('listeners', [...g.listeners.map((l) => listener(g, l)), ...g.apiListeners.map(apiListener), ...(g.flowSteps ? [flowStepListener(g, g.flowSteps)] : [])]),
    routes: byName('routes', routeConfigurations(g.routeTables, { authz: g.filters.extAuthz !== undefined, limits: g.filters.extAuthzLimits !== undefined }, memo)),
    secrets: byName('secrets', g.secrets.map(secret)),
  };
}

/** Every gateway group's Envoy resources, keyed by group name (in name order). */
export function translate(model: ModelSnapshot, options: TranslateOptions): Map<string, GroupResources> {
  const errors = validateTranslation(model);
  if (errors.length) throw new TranslationError(errors);
  const out = new Map<string, GroupResources>();
  options.memo?.begin();
  for (const g of modelToIr(model, options)) out.set(g.name, groupResources(g, options.memo));
  return out;
}

export { validateTranslation, templateProblem } from './validate.ts';
export { EmitMemo } from './memo.ts';
export { modelToIr, groupToIr } from './to-ir/group.ts';
export { CALLOUT_CLUSTER, DEFAULTS } from './to-ir/common.ts';
export { nextExpiry } from './to-ir/native-auth.ts';
export type { GroupIR, QuotaExhaustedIR } from './ir.ts';
