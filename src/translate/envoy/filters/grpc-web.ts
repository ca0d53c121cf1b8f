// gRPC-Web for browser clients: Envoy's grpc_web filter turns a gRPC-Web request (application/grpc-web,
// or its base64 -text form) into gRPC for the upstream and the answer back, trailers in the body.
// The filter takes no per-route config, so it cannot be off in the chain and on for a route: it is
// on in the chain of a group where some route accepts gRPC-Web, and off on that group's other routes.
import { any, FILTERS } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';

const GRPC_WEB = 'envoy.extensions.filters.http.grpc_web.v3.GrpcWeb';

export const grpcWeb: HttpFilterEmitter = {
  chain: (g) => (g.filters.grpcWeb ? [{ name: FILTERS.grpcWeb, typed_config: any(GRPC_WEB) }] : []),
  perRoute: (r) => (r.grpcWeb === false ? [[FILTERS.grpcWeb, any('envoy.config.route.v3.FilterConfig', { disabled: true })]] : []),
};
