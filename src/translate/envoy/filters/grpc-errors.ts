// gRPC errors of transcoded routes in the gateway's JSON error shape: Envoy's custom_response filter,
// after the transcoder on the way back, replaces an answer carrying a grpc-status other than 0 with
// {"error": <code>, "message": <grpc-message>} and the status src/contract/grpc-errors.ts maps it to.
// Off in the chain; transcoding routes switch it on.
import { GRPC_ERRORS } from '../../../contract/index.ts';
import { any, FILTERS, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const CUSTOM_RESPONSE = 'envoy.extensions.filters.http.custom_response.v3.CustomResponse';
const LOCAL_RESPONSE = 'envoy.extensions.http.custom_response.local_response_policy.v3.LocalResponsePolicy';

function config(): JsonObject {
  const map: JsonObject = {};
  for (const [code, [status, error]] of Object.entries(GRPC_ERRORS)) {
    map[code] = {
      action: {
        name: `grpc_${error}`,
        typed_config: any(LOCAL_RESPONSE, {
          status_code: status,
          // grpc-message as the upstream sent it: percent-encoded where gRPC requires (grpc-js encodes spaces too).
          body_format: { json_format: { error, message: '%RESP(grpc-message)%' } },
          response_headers_to_add: [{ header: { key: 'content-type', value: 'application/json' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
        }),
      },
    };
  }
  return any(CUSTOM_RESPONSE, {
    custom_response_matcher: {
      matcher_tree: {
        input: { name: 'grpc-status', typed_config: any('envoy.type.matcher.v3.HttpResponseHeaderMatchInput', { header_name: 'grpc-status' }) },
        exact_match_map: { map },
      },
    },
  });
}

export const grpcErrors: HttpFilterEmitter = {
  chain: (g) => (g.filters.transcoder ? [disabledByDefault({ name: FILTERS.grpcErrors, typed_config: config() })] : []),
  perRoute: (r) => (r.transcoder ? [[FILTERS.grpcErrors, config()]] : []),
};
