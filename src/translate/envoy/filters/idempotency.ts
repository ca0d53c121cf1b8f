// Duplicate-request protection: Envoy's ext_proc filter, off in the chain and on for the routes
// that protect a method, streaming each request to the idempotency processor with the route's
// settings as gRPC metadata. The processor reads both bodies (it fingerprints the request and stores
// the response); the processor turns the rest of a stream off when it has nothing to do.
import { formatRouteSettings, IDEMPOTENCY_NAMES } from '../../../contract/index.ts';
import type { IdempotencyFilterIR } from '../../ir.ts';
import { any, duration, extension, statusName, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const FILTER_TYPE = 'envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor';
const PER_ROUTE_TYPE = 'envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute';

function extProcFilter(f: IdempotencyFilterIR): JsonObject {
  return disabledByDefault(
    extension(IDEMPOTENCY_NAMES.filter, FILTER_TYPE, {
      grpc_service: { envoy_grpc: { cluster_name: f.cluster } },
      // Closed: without the processor a duplicate could reach the upstream twice.
      failure_mode_allow: false,
      status_on_error: { code: statusName(503) },
      // Bodies STREAMED and sent without waiting for the headers' answer, both ways: headers and body
      // reach the processor together, one round trip per direction. BUFFERED or BUFFERED_PARTIAL
      // would make each body one message instead of a chunk plus an empty end-of-stream chunk (~30k of
      // the edge Envoy's ~300k ext_proc instructions per request, callgrind), but Envoy then sends the
      // body only after the headers' answer: a second round trip, and a higher p50 in the bench's A/B.
      // The processor holds a request's chunks until its body is complete; request trailers, when
      // there are any, end the body.
      processing_mode: {
        request_header_mode: 'SEND',
        request_body_mode: 'STREAMED',
        response_header_mode: 'SEND',
        response_body_mode: 'STREAMED',
        request_trailer_mode: 'SEND',
        response_trailer_mode: 'SKIP',
      },
      send_body_without_waiting_for_header_response: true,
      // The processor never changes a body (it answers CONTINUE or replaces the whole response), so
      // the client keeps the upstream's content-length instead of a chunked response.
      allow_content_length_header: true,
      // A request the processor does not protect (a GET, no key where none is required) costs one message.
      allow_mode_override: true,
      message_timeout: duration(f.messageTimeoutMs),
      stat_prefix: 'idempotency',
    }),
  );
}

export const idempotency: HttpFilterEmitter = {
  chain: (g) => (g.filters.idempotency ? [extProcFilter(g.filters.idempotency)] : []),
  perRoute: (r) =>
    r.idempotency ? [[IDEMPOTENCY_NAMES.filter, any(PER_ROUTE_TYPE, { overrides: { grpc_initial_metadata: [{ key: IDEMPOTENCY_NAMES.metadata, value: formatRouteSettings(r.idempotency) }] } })]] : [],
};
