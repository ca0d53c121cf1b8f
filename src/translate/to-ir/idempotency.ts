// Model → IR for duplicate-request protection: a route's settings (defaults resolved, methods the
// route can match), and the group's ext_proc filter and processor cluster when any route has them.
import { IDEMPOTENCY_NAMES, type IdempotencyRouteSettings } from '../../contract/index.ts';
import { IDEMPOTENCY_DEFAULTS, protectedMethods, type Product, type Route } from '../../model/index.ts';
import type { ClusterIR, IdempotencyFilterIR, RouteIR } from '../ir.ts';
import { grpcServiceCluster } from './clusters.ts';
import { DEFAULTS, type IrOptions } from './common.ts';

/** The route's protection, or undefined when it has none (or none of its methods can be protected). */
export function idempotencyIr(product: Product, route: Route): IdempotencyRouteSettings | undefined {
  const methods = protectedMethods(route);
  if (methods.length === 0) return undefined;
  const i = route.idempotency!;
  return { product: product.name, route: route.name, required: i.required ?? IDEMPOTENCY_DEFAULTS.required, ttlSeconds: i.ttlSeconds ?? IDEMPOTENCY_DEFAULTS.ttlSeconds, methods };
}

/** The group's filter and the processor's cluster, when some route of the group is protected. */
export function groupIdempotencyIr(routes: readonly RouteIR[], options: IrOptions): { filter: IdempotencyFilterIR; cluster: ClusterIR } | undefined {
  if (!routes.some((r) => r.idempotency)) return undefined;
  const address = options.idempotency?.address ?? DEFAULTS.idempotency.address;
  return {
    filter: { cluster: IDEMPOTENCY_NAMES.cluster, messageTimeoutMs: DEFAULTS.idempotency.messageTimeoutMs },
    // One connection for every stream: Envoy half-closes each (the bootstrap's ext_proc_graceful_grpc_close,
    // src/xds/bootstrap.ts) instead of resetting it, which Node's HTTP/2 server rate-limits.
    cluster: grpcServiceCluster(IDEMPOTENCY_NAMES.cluster, address, 'idempotency.address', options.channelSdsDir),
  };
}
