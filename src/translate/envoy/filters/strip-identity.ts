// header_mutation, first in the chain: removes every request header under the gateway's reserved
// prefix (x-portico-) and the other identity headers only the gateway may set (forwarded claims),
// before anyone reads them, so ext_authz is the only one who can set them and public routes never
// pass a forged one upstream.
import { TYPE_URL_PREFIX } from '../../../proto/index.ts';
import { any, FILTERS, type JsonObject } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';

const HEADER_MUTATION = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation';

/**
 * The filter's config travels as an xds.type.v3.TypedStruct, which Envoy converts with its own API:
 * `remove_on_match` (removal by a key matcher) is newer than the Envoy API src/proto loads today.
 * Once src/proto loads the 1.40 API this can be a plain typed config (`extension()`).
 */
function headerMutationFilter(requestMutations: JsonObject[]): JsonObject {
  return {
    name: FILTERS.stripIdentity,
    typed_config: any('xds.type.v3.TypedStruct', { type_url: `${TYPE_URL_PREFIX}${HEADER_MUTATION}`, value: { mutations: { request_mutations: requestMutations } } }),
  };
}

export const stripIdentity: HttpFilterEmitter = {
  chain: (g) => {
    const mutations: JsonObject[] = [
      // Envoy keeps header names in lower case; ignore_case is there for the day it does not.
      ...g.stripRequestHeaderPrefixes.map((prefix) => ({ remove_on_match: { key_matcher: { prefix, ignore_case: true } } })),
      ...g.stripRequestHeaders.map((h) => ({ remove: h })),
    ];
    return mutations.length ? [headerMutationFilter(mutations)] : [];
  },
};
