// header_mutation, first in the chain: removes every request header under the gateway's reserved
// prefix (x-portico-) and the other identity headers only the gateway may set (forwarded claims),
// before anyone reads them, so ext_authz is the only one who can set them and public routes never
// pass a forged one upstream.
// Native mTLS routes that know partners by fingerprint, email or IP SAN add, per route, the verified
// certificate's facts as headers after the strip (the route's mutations run last: most specific wins).
import { peerHeadersOf } from '../../to-ir/native-mtls.ts';
import { any, extension, FILTERS, type JsonObject } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';

function headerMutationFilter(requestMutations: JsonObject[], routeLast: boolean): JsonObject {
  return extension(FILTERS.stripIdentity, 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation', {
    mutations: { request_mutations: requestMutations },
    ...(routeLast ? { most_specific_header_mutations_wins: true } : {}),
  });
}

export const stripIdentity: HttpFilterEmitter = {
  chain: (g) => {
    const mutations: JsonObject[] = [
      // Envoy keeps header names in lower case; ignore_case is there for the day it does not.
      ...g.stripRequestHeaderPrefixes.map((prefix) => ({ remove_on_match: { key_matcher: { prefix, ignore_case: true } } })),
      ...g.stripRequestHeaders.map((h) => ({ remove: h })),
    ];
    return mutations.length ? [headerMutationFilter(mutations, g.filters.peerHeaders === true)] : [];
  },
  perRoute: (r) => {
    const headers = peerHeadersOf(r.access);
    if (headers.length === 0) return [];
    const request_mutations = headers.map(([key, value]) => ({ append: { header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' } }));
    return [[FILTERS.stripIdentity, any('envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute', { mutations: { request_mutations } })]];
  },
};
