// header_mutation, first in the chain: removes every request header under the gateway's reserved
// prefix (x-portico-) and the other identity headers only the gateway may set (forwarded claims),
// before anyone reads them, so ext_authz is the only one who can set them and public routes never
// pass a forged one upstream.
import { extension, FILTERS, type JsonObject } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';

function headerMutationFilter(requestMutations: JsonObject[]): JsonObject {
  return extension(FILTERS.stripIdentity, 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation', { mutations: { request_mutations: requestMutations } });
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
