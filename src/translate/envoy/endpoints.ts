// IR → envoy.config.endpoint.v3.ClusterLoadAssignment: the endpoints of static services, served
// over EDS (and inlined into DNS and static clusters), with the model's endpoint weights.
import type { ClusterIR } from '../ir.ts';
import { socketAddress, type JsonObject } from './common.ts';

export function loadAssignment(c: ClusterIR): JsonObject {
  return {
    cluster_name: c.name,
    endpoints: [
      {
        lb_endpoints: c.endpoints.map((e) => ({
          endpoint: { address: socketAddress(e.host, e.port) },
          ...(e.weight !== undefined ? { load_balancing_weight: e.weight } : {}),
        })),
      },
    ],
  };
}
