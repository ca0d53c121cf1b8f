// The translator's entry point: model snapshot → per-gateway-group Envoy resources (proto3 JSON,
// sorted by name), through the IR. Pure: the same model always gives byte-identical output.
import type { ModelSnapshot, ModelError } from '../model/index.ts';
import { RESOURCE_TYPES, type JsonObject } from '../proto/index.ts';
import { cluster } from './envoy/clusters.ts';
import { loadAssignment } from './envoy/endpoints.ts';
import { apiListener, flowStepListener, listener } from './envoy/listeners.ts';
import { routeConfigurations } from './envoy/routes.ts';
import { secret } from './envoy/secrets.ts';
import type { GroupIR } from './ir.ts';
import { resourceName, type GroupResources, type ResourceKind } from '../contract/index.ts';
import type { IrOptions } from './to-ir/common.ts';
import { modelToIr } from './to-ir/group.ts';
import { validateTranslation } from './validate.ts';
import type { EmitMemo } from './memo.ts';

/** What translation needs besides the model: the IR stage's options, passed through whole. */
export type TranslateOptions = IrOptions;

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
  options.memo?.end();
  return out;
}

export { validateTranslation, templateProblem } from './validate.ts';
export { EmitMemo } from './memo.ts';
export { modelToIr, groupToIr } from './to-ir/group.ts';
export { CALLOUT_CLUSTER, DEFAULTS } from './to-ir/common.ts';
export { nextExpiry } from './to-ir/native-auth.ts';
export type { GroupIR, QuotaExhaustedIR } from './ir.ts';
