// header_mutation, first in the chain: removes the identity headers only the gateway may set, before
// anyone reads them, so ext_authz is the only one who can set them and public routes never pass a
// forged one upstream.
import { extension, FILTERS } from '../common.ts';
import type { HttpFilterEmitter } from './filter.ts';

export const stripIdentity: HttpFilterEmitter = {
  chain: (g) =>
    g.stripRequestHeaders.length
      ? [
          extension(FILTERS.stripIdentity, 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation', {
            mutations: { request_mutations: g.stripRequestHeaders.map((h) => ({ remove: h })) },
          }),
        ]
      : [],
};
