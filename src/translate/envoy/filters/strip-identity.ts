// header_mutation, first in the chain: removes every request header under the gateway's reserved
// prefix (x-portico-) and the other identity headers only the gateway may set (forwarded claims),
// before anyone reads them, so ext_authz is the only one who can set them and public routes never
// pass a forged one upstream.
// Native mTLS routes that know partners by fingerprint add, per route, the verified certificate's
// fingerprint as a header after the strip (the route's mutations run last: most specific wins).
import { PEER_FINGERPRINT_HEADER, PEER_FINGERPRINT_VALUE, usesPeerFingerprint } from '../../to-ir/native-mtls.ts';
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
    return mutations.length ? [headerMutationFilter(mutations, g.filters.peerFingerprint === true)] : [];
  },
  perRoute: (r) => {
    if (!usesPeerFingerprint(r.access)) return [];
    const append = { header: { key: PEER_FINGERPRINT_HEADER, value: PEER_FINGERPRINT_VALUE }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
    return [[FILTERS.stripIdentity, any('envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute', { mutations: { request_mutations: [{ append }] } })]];
  },
};
