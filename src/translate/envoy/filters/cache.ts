// Response caching with Envoy's cache filter (cache_v2, in-memory store): it honours Cache-Control,
// sets Age and makes one upstream call for identical requests arriving together. Its key is the
// scheme, Host, path with query, and cluster; 1.40 has no way to add the caller or a purge generation,
// does not implement Vary and ignores its own query-parameter key settings. So a small Lua filter
// before it writes the key into the request: `<key>.<host>` as Host and, when the route lists its
// key's query parameters, only those (sorted) as the query, keeping the originals in reserved headers.
// A miss goes from the cache straight to the route's cluster, whose upstream Lua filter restores Host
// and path and, when the service sent no Cache-Control, adds the route's default TTL. One cache
// filter per maximum object size. A shared route varying on nothing needs none of this Lua: it
// forwards to a cluster of its own named after the purge generation (the key includes the cluster),
// whose upstream filter adds the default TTL (to-ir/cache.ts withKeyCluster).
import { createHash } from 'node:crypto';
import { GATEWAY_HEADERS, RESERVED_HEADER_PREFIX } from '../../../contract/index.ts';
import type { CacheIR, CacheProfileIR } from '../../ir.ts';
import { any, extension, FILTERS, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';

const CACHE = 'envoy.extensions.filters.http.cache_v2.v3.CacheV2Config';
const STORE = 'envoy.extensions.http.cache_v2.simple_http_cache.v3.SimpleHttpCacheV2Config';
const LUA = 'envoy.extensions.filters.http.lua.v3.Lua';
const LUA_PER_ROUTE = 'envoy.extensions.filters.http.lua.v3.LuaPerRoute';
const HEADER_MUTATION = 'envoy.extensions.filters.http.header_mutation.v3.HeaderMutation';

/** Request headers between the key filter and the cluster's upstream filter (reserved: clients' copies are stripped at the edge). */
export const CACHE_HEADERS = { host: `${RESERVED_HEADER_PREFIX}cache-host`, path: `${RESERVED_HEADER_PREFIX}cache-path` } as const;

/** A profile's filter name carries a digest of its settings, so a route finds its filter without the group. */
export function cacheFilterName(p: CacheProfileIR): string {
  const digest = createHash('sha256').update(String(p.maxObjectBytes)).digest('hex').slice(0, 8);
  return `${FILTERS.cachePrefix}.${digest}`;
}

function cacheFilter(p: CacheProfileIR): JsonObject {
  return disabledByDefault(extension(cacheFilterName(p), CACHE, { typed_config: any(STORE), max_body_bytes: p.maxObjectBytes }));
}

/** Lua string literal of a header name or fixed key part (names are token characters; quotes escaped anyway). */
const lua = (s: string): string => JSON.stringify(s);

/**
 * The route's key script. Caller-chosen values (partner, vary headers) are percent-encoded, so one
 * cannot spell another's key; the generation comes first, so a purge changes every key of the route.
 * It runs on every request, hits included, so it does the least it can: the fixed parts of the key
 * are one literal, and the original Host travels with the default TTL in one reserved header.
 */
export function cacheKeyScript(c: CacheIR): string {
  const partner = c.scope === 'partner';
  const encoded = [...(partner ? [`enc(hd:get(${lua(GATEWAY_HEADERS.partner)}))`] : []), ...c.varyHeaders.map((h) => `".v-" .. enc(hd:get(${lua(h)}))`)];
  // Lua does not fold string constants: a shared key without vary headers is one literal and the host.
  const parts = encoded.length ? [lua(`g${c.generation}.${partner ? 'p-' : 's'}`), ...encoded, '"."', 'host'] : [lua(`g${c.generation}.s.`), 'host'];
  return [
    ...(encoded.length ? ['local function enc(v) return (string.gsub(v or "", "[^%w%-]", function(ch) return string.format("%%%02X", string.byte(ch)) end)) end'] : []),
    'function envoy_on_request(handle)',
    '  local hd = handle:headers()',
    '  local host = hd:get(":authority") or ""',
    `  hd:replace(${lua(CACHE_HEADERS.host)}, ${lua(`max-age=${c.defaultTtlSeconds} `)} .. host)`,
    `  hd:replace(":authority", ${parts.join(' .. ')})`,
    ...(c.varyQuery.length ? queryKey(c.varyQuery) : []),
    'end',
    '',
  ].join('\n');
}

/** The key's query: only the listed parameters, sorted, so order and other parameters do not split entries. */
function queryKey(names: readonly string[]): string[] {
  return [
    `  local vary = { ${names.map((n) => `[${lua(n)}] = true`).join(', ')} }`,
    '  local path = hd:get(":path") or ""',
    '  local base, query = string.match(path, "^([^?]*)%??(.*)$")',
    '  local keep = {}',
    '  for pair in string.gmatch(query, "[^&]+") do',
    '    if vary[string.match(pair, "^[^=]*")] then keep[#keep + 1] = pair end',
    '  end',
    '  table.sort(keep)',
    `  hd:replace(${lua(CACHE_HEADERS.path)}, path)`,
    '  hd:replace(":path", base .. "?" .. table.concat(keep, "&"))',
  ];
}

/** The upstream filter of a cluster cached routes send misses to: the real Host back, the default TTL on a response without Cache-Control. */
export function cacheKeyRestoreFilter(): JsonObject {
  const script = [
    'function envoy_on_request(handle)',
    '  local hd = handle:headers()',
    // The key filter's header: `max-age=<default ttl> <original host>`.
    `  local saved = hd:get(${lua(CACHE_HEADERS.host)})`,
    '  if saved == nil then return end',
    '  local ttl, host = string.match(saved, "^(%S+) (.*)$")',
    '  if host == nil then return end',
    '  hd:replace(":authority", host)',
    `  local path = hd:get(${lua(CACHE_HEADERS.path)})`,
    '  if path ~= nil then hd:replace(":path", path) end',
    '  handle:streamInfo():dynamicMetadata():set("portico.cache", "ttl", ttl)',
    `  hd:remove(${lua(CACHE_HEADERS.host)})`,
    `  hd:remove(${lua(CACHE_HEADERS.path)})`,
    'end',
    'function envoy_on_response(handle)',
    '  local m = handle:streamInfo():dynamicMetadata():get("portico.cache")',
    '  if m == nil or m["ttl"] == "" or handle:headers():get("cache-control") ~= nil then return end',
    '  handle:headers():add("cache-control", m["ttl"])',
    'end',
    '',
  ].join('\n');
  return extension(FILTERS.cacheKeyRestore, LUA, { default_source_code: { inline_string: script } });
}

/** The upstream filter of a cached route's own cluster: its default TTL on a response without Cache-Control. */
export function cacheDefaultTtlFilter(ttlSeconds: number): JsonObject {
  return extension(`${FILTERS.cachePrefix}.ttl`, HEADER_MUTATION, {
    mutations: { response_mutations: [{ append: { header: { key: 'cache-control', value: `max-age=${ttlSeconds}` }, append_action: 'ADD_IF_ABSENT' } }] },
  });
}

export const cache: HttpFilterEmitter = {
  chain: (g) => (g.filters.cache?.length ? [disabledByDefault(extension(FILTERS.cacheKey, LUA)), ...g.filters.cache.map(cacheFilter)] : []),
  perRoute: (r) =>
    r.cache
      ? [
          ...(r.cache.keyCluster ? [] : [[FILTERS.cacheKey, any(LUA_PER_ROUTE, { source_code: { inline_string: cacheKeyScript(r.cache) } })] as [string, JsonObject]]),
          // The cache filter has no per-route config: an optional one is dropped, but still switches the filter on.
          [cacheFilterName(r.cache), any('envoy.config.route.v3.FilterConfig', { config: any(CACHE), is_optional: true })],
        ]
      : [],
};
