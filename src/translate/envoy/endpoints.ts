// IR → envoy.config.endpoint.v3.ClusterLoadAssignment: the endpoints of static services, served
// over EDS (and inlined into DNS and static clusters), with the model's endpoint weights.
import type { ClusterIR } from '../ir.ts';
import { socketAddress, type JsonObject } from './common.ts';

export function loadAssignment(c: ClusterIR): JsonObject {
  const lbEndpoints = c.endpoints.map((e) => ({
    endpoint: { address: socketAddress(e.host, e.port) },
    ...(e.weight !== undefined ? { load_balancing_weight: e.weight } : {}),
  }));
  return {
    cluster_name: c.name,
    endpoints: [
      // Proxyless gRPC clients refuse endpoints without a locality and skip localities without a weight.
      c.localityWeight !== undefined ? { locality: {}, lb_endpoints: lbEndpoints, load_balancing_weight: c.localityWeight } : { lb_endpoints: lbEndpoints },
    ],
  };
}
