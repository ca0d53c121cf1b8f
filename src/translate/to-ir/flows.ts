// Model → IR for flows in an Envoy group: the flow runtime's cluster (flow routes are sent there),
// and the step listener the runtime's calls come back to, with one route per service a flow of the
// group calls, so each call keeps its service's timeout, retries, circuit breaker and upstream TLS.
import { FLOW_HEADERS, FLOW_NAMES } from '../../contract/index.ts';
import { runsInEnvoy, type FlowStepSpec, type ModelSnapshot, type Product, type Route, type Service } from '../../model/index.ts';
import type { ClusterIR, FlowStepsIR, RouteIR, RouteTableIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import { grpcServiceCluster } from './clusters.ts';
import { DEFAULTS, parseHostPort, productRoutes, type IrOptions } from './common.ts';
import { emptyMutation, retryIr } from './routes.ts';

export interface GroupFlowsIR {
  /** Services the group's flows call (their clusters join the group's). */
  services: string[];
  /** The runtime's cluster. */
  cluster: ClusterIR;
  steps: FlowStepsIR;
  table: RouteTableIR;
}

function calledServices(steps: readonly FlowStepSpec[] | undefined, out: Set<string>): void {
  for (const s of steps ?? []) {
    if (s.call) out.add(s.call.service);
    calledServices(s.parallel?.steps, out);
    for (const c of s.switch?.cases ?? []) calledServices(c.steps, out);
    calledServices(s.switch?.default, out);
  }
}

/** Services a route calls from the flow runtime: a flow's call steps, or a transform route's service. */
export function flowServices(route: Route): string[] {
  const out = new Set<string>();
  if (route.flow) calledServices(route.flow.steps, out);
  else if (route.transform && route.service) out.add(route.service);
  return [...out];
}

function stepRoute(svc: Service): RouteIR {
  const retry = retryIr(svc.retries);
  return {
    name: `${FLOW_NAMES.stepRoutes}/${svc.name}`,
    match: { path: { kind: 'prefix', value: '/' }, headers: [{ name: FLOW_HEADERS.service, match: { kind: 'exact', value: svc.name }, invert: false }], query: [] },
    action: {
      kind: 'forward',
      clusters: [{ name: svc.name, weight: 1 }],
      weighted: false,
      timeoutMs: svc.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      ...(retry ? { retry } : {}),
    },
    // The routing headers are the gateway's business, not the upstream's.
    requestHeaders: { ...emptyMutation(), remove: [FLOW_HEADERS.step, FLOW_HEADERS.service].sort(compareStrings) },
    responseHeaders: emptyMutation(),
  };
}

/** The flows part of an Envoy group; undefined when none of its routes runs in the flow runtime. */
export function groupFlowsIr(model: ModelSnapshot, products: readonly Product[], options: IrOptions): GroupFlowsIR | undefined {
  const services = new Set<string>();
  let any = false;
  for (const p of products) {
    for (const r of productRoutes(model, p.name)) {
      // Flows that run in Envoy need neither the runtime nor the step listener (native-flows.ts).
      if ((!r.flow && !r.transform) || runsInEnvoy(r.flow)) continue;
      any = true;
      for (const s of flowServices(r)) services.add(s);
    }
  }
  if (!any) return undefined;
  const flows = options.flows ?? DEFAULTS.flows;
  const step = parseHostPort(flows.stepAddress, 'flows.stepAddress');
  const names = [...services].filter((s) => model.services.has(s)).sort(compareStrings);
  // The runtime speaks HTTP/1.1; Envoy pools connections to it (keep-alive).
  const cluster: ClusterIR = { ...grpcServiceCluster(FLOW_NAMES.cluster, flows.address, 'flows.address'), http2: false };
  return {
    services: names,
    cluster,
    steps: { name: FLOW_NAMES.stepListener, address: step.host, port: step.port, routeTable: FLOW_NAMES.stepRoutes },
    table: {
      name: FLOW_NAMES.stepRoutes,
      maxDirectResponseBodyBytes: 0,
      virtualHosts: [{ name: 'flow_steps', domains: ['*'], routes: names.map((n) => stepRoute(model.services.get(n)!)) }],
    },
  };
}
