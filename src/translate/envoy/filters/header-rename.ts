// Header renames (HeaderMutation.rename): a second header_mutation instance just before the router,
// off unless a route renames. A route's own headers_to_add cannot rename: Envoy removes a route's
// headers before it formats the added ones, so `%REQ(old)%` would read nothing; this filter applies
// its mutations in order (copy to the new name, then remove the old one), after authentication has
// set the gateway's identity headers, and on responses after the route's response headers.
import type { HeaderMutationIR } from '../../ir.ts';
import { any, extension, FILTERS, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const HEADER_MUTATION = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation';
const PER_ROUTE = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute';

function renames(m: HeaderMutationIR, command: 'REQ' | 'RESP'): JsonObject[] {
  return (m.rename ?? []).flatMap(([from, to]): JsonObject[] => [{ append: { header: { key: to, value: `%${command}(${from})%` }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' } }, { remove: from }]);
}

export const headerRename: HttpFilterEmitter = {
  chain: (g) => (g.filters.headerRename ? [disabledByDefault(extension(FILTERS.headerRename, HEADER_MUTATION))] : []),
  perRoute: (r) => {
    const request = renames(r.requestHeaders, 'REQ');
    const response = renames(r.responseHeaders, 'RESP');
    if (!request.length && !response.length) return [];
    const mutations: JsonObject = {};
    if (request.length) mutations.request_mutations = request;
    if (response.length) mutations.response_mutations = response;
    return [[FILTERS.headerRename, any(PER_ROUTE, { mutations })]];
  },
};
