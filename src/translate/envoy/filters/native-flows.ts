// Flows that run in Envoy: one Wasm filter (flows-wasm/, Envoy's V8) in the chain. Its plugin
// configuration holds every such route's plan by route name, and the filter picks the plan by the
// matched route (xds.route_name), so the module's bytes are in the config once per listener, not
// once per route. Envoy's Wasm filter takes no per-route config (an empty FilterConfig is refused,
// and so is a Wasm one), so it cannot be off in the chain and on for a route: it is on in the chain
// of a group where some flow runs in Envoy and off on the group's other routes, like gRPC-Web.
import type { NativeFlowsFilterIR } from '../../ir.ts';
import { any, extension, FILTERS, sortedRecord, type Json, type JsonObject } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';

const WASM = 'envoy.extensions.filters.http.wasm.v3.Wasm';

function wasmFilter(f: NativeFlowsFilterIR): JsonObject {
  const plans = sortedRecord(f.plans.map(([route, plan]) => [route, plan as unknown as Json]));
  return extension(FILTERS.nativeFlows, WASM, {
    config: {
      name: FILTERS.nativeFlows,
      // One VM per worker for every listener of the group: Envoy shares VMs with the same id and code hash.
      vm_config: {
        vm_id: `portico_flows.${f.module.sha256.slice(0, 16)}`,
        runtime: 'envoy.wasm.runtime.v8',
        code: { local: { inline_bytes: f.module.base64 } },
      },
      configuration: any('google.protobuf.StringValue', { value: JSON.stringify({ routes: plans }) }),
      // Closed: a plugin that failed to start answers 503 rather than letting the guard route answer.
      fail_open: false,
    },
  });
}

export const nativeFlows: HttpFilterEmitter = {
  chain: (g) => (g.filters.nativeFlows ? [wasmFilter(g.filters.nativeFlows)] : []),
  perRoute: (r) => (r.nativeFlowsOff ? [[FILTERS.nativeFlows, any('envoy.config.route.v3.FilterConfig', { disabled: true })]] : []),
};
