// JSON over HTTP to gRPC upstreams: Envoy's gRPC-JSON transcoder, off in the chain and switched on by
// a route's own config. A route's config replaces the filter's whole config in Envoy (no merging), so
// each route carries everything: its descriptor set (narrowed to its methods), services and options;
// the chain's instance holds the first transcoding route's config only because one is required.
import { TRANSCODER_REPLY_MAPPINGS } from '../../../contract/index.ts';
import type { TranscoderIR } from '../../ir.ts';
import { any, FILTERS, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const TRANSCODER = 'envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder';

function transcoderConfig(t: TranscoderIR): JsonObject {
  return any(TRANSCODER, {
    proto_descriptor_bin: t.descriptorSet,
    services: t.services,
    // The route the client's URL matched forwards the gRPC call (no second match on /package.Service/Method).
    match_incoming_request_route: true,
    // POST /package.Service/Method for methods without a google.api.http annotation.
    auto_mapping: true,
    // A gRPC error keeps its grpc-status header: the grpc-errors filter turns it into the gateway's JSON error.
    convert_grpc_status: false,
    // A URL no method maps to is a 404 here, never a malformed call to the upstream.
    request_validation_options: { reject_unknown_method: true },
    print_options: { always_print_primitive_fields: true, stream_newline_delimited: t.ndjson },
  });
}

export const grpcJsonTranscoder: HttpFilterEmitter = {
  chain: (g) => (g.filters.transcoder ? [disabledByDefault({ name: FILTERS.grpcJsonTranscoder, typed_config: transcoderConfig(g.filters.transcoder) })] : []),
  perRoute: (r) => (r.transcoder ? [[FILTERS.grpcJsonTranscoder, transcoderConfig(r.transcoder)]] : []),
  localReplies: (f) => (f.transcoder ? [...TRANSCODER_REPLY_MAPPINGS] : []),
};
