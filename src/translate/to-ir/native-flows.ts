// Model → IR for flows that run in Envoy (`execution: envoy`): each such route's plan with its calls
// bound to the services' clusters (so a call keeps the service's timeouts, circuit breaker and
// upstream TLS), and the group's one flows Wasm filter holding every plan, keyed by route name.
import { gatewayErrorBody } from '../../contract/index.ts';
import { nativeFlowIdentity, nativeFlowPlan, runsInEnvoy, type ModelSnapshot, type Route } from '../../model/index.ts';
import type { DirectActionIR, NativeFlowPlanIR, NativeFlowsFilterIR, RouteIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import type { IrOptions } from './common.ts';

/** What a native flow route answers if its filter did not: never, unless the filter is off there (a guard, not a path). */
export const NATIVE_FLOW_GUARD: DirectActionIR = {
  kind: 'direct',
  status: 500,
  body: gatewayErrorBody('flow_error', 'The flow runs in Envoy, but the flows filter did not answer.'),
};

/** The route's plan, when its flow runs in Envoy and qualifies (the write gate refused it otherwise). */
export function nativeFlowIr(model: ModelSnapshot, route: Route): NativeFlowPlanIR | undefined {
  if (!route.flow || !runsInEnvoy(route.flow)) return undefined;
  const r = nativeFlowPlan(route.flow, 'flow', { identity: nativeFlowIdentity(model, route) });
  if (!r.ok) return undefined;
  // A service's cluster is named after the service (clusters.ts).
  return { calls: r.plan.calls.map((c) => ({ ...c, cluster: c.service })), reply: r.plan.reply, ...(r.plan.identity ? { identity: r.plan.identity } : {}) };
}

/** The group's flows filter, when some route runs its flow in Envoy and the module is there. */
export function nativeFlowsFilterIr(routes: readonly RouteIR[], options: IrOptions): NativeFlowsFilterIR | undefined {
  const module = options.flows?.wasmModule;
  if (!module) return undefined;
  const plans = new Map<string, NativeFlowPlanIR>();
  for (const r of routes) if (r.nativeFlow) plans.set(r.name, r.nativeFlow);
  if (plans.size === 0) return undefined;
  return { module, plans: [...plans].sort((a, b) => compareStrings(a[0], b[0])) };
}

/** Services the route's native flow calls (their clusters join the group's). */
export function nativeFlowServices(r: RouteIR): string[] {
  return r.nativeFlow ? r.nativeFlow.calls.map((c) => c.cluster) : [];
}
