// Building blocks for ext_authz tests, benchmarks and the through-Envoy e2e tests: models from
// resource lists, minted API keys, CheckRequests as Envoy sends them. Not used by the running service.
import { randomBytes } from 'node:crypto';
import { applyMutations, emptySnapshot, keyOf, KIND_ORDER, type KindName, type ModelSnapshot, type Mutation, type ResourceTypes, type ApiKey } from '../../src/model/index.ts';
import { SecretHasher } from '../../src/store/index.ts';
import type { JsonObject } from '../../src/proto/index.ts';
import type { AuthzRequest } from '../../src/authz/decide.ts';

export type ModelResources = { [K in KindName]?: ReadonlyArray<ResourceTypes[K]> };

/** A snapshot holding exactly these resources (no validation: tests build odd models on purpose). */
export function modelOf(resources: ModelResources, revision = 1): ModelSnapshot {
  const mutations: Mutation[] = [];
  for (const kind of KIND_ORDER) {
    for (const r of (resources[kind] ?? []) as ReadonlyArray<ResourceTypes[typeof kind]>) {
      mutations.push({ kind, op: 'put', key: keyOf(kind, r), resource: r });
    }
  }
  return { ...applyMutations(emptySnapshot(), mutations), revision };
}

/** The one-product model ext_authz's service tests and benchmark share: orders/list, partner acme on plan gold with this key, these issuers. */
export function ordersModel(apiKey: ApiKey, jwtIssuers: ModelResources['jwtIssuers']): ModelSnapshot {
  return modelOf({
    products: [{ name: 'orders', gatewayGroups: ['edge'] }],
    routes: [{ product: 'orders', name: 'list', match: { path: { type: 'prefix', value: '/orders' } }, service: 'svc' }],
    partners: [{ name: 'acme' }],
    plans: [{ name: 'gold' }],
    subscriptions: [{ partner: 'acme', product: 'orders', plan: 'gold' }],
    apiKeys: [apiKey],
    jwtIssuers,
  });
}

/** A hasher with a random key (what ModelStore.apiKeyHasher() is in production). */
export function testHasher(): SecretHasher {
  return new SecretHasher(randomBytes(32));
}

/** A new API key: the secret a caller presents and the model resource holding only its hash. */
export function mintApiKey(hasher: SecretHasher, partner: string, name: string, extra: Partial<Pick<ApiKey, 'expiresAt' | 'revoked'>> = {}): { secret: string; resource: ApiKey } {
  const m = hasher.mint('ptk');
  return { secret: m.secret, resource: { name, partner, prefix: m.prefix, hash: m.hash, ...extra } };
}

export interface CheckInput {
  method?: string;
  /** Path with an optional query string, as the client sent it. */
  path?: string;
  host?: string;
  headers?: Record<string, string>;
  /** context_extensions as the translator sets them per route. */
  product?: string;
  route?: string;
  accept?: string;
  requestId?: string;
  principal?: string;
  /** PEM certificate (URL-encoded here, as Envoy does with include_peer_certificate). */
  certificatePem?: string;
}

/** An envoy.service.auth.v3.CheckRequest as proto3 JSON, shaped like Envoy's (pseudo-headers included). */
export function checkRequestJson(i: CheckInput): JsonObject {
  const method = i.method ?? 'GET';
  const path = i.path ?? '/';
  const host = i.host ?? 'api.example.com';
  const id = i.requestId ?? 'req-1';
  const headers: Record<string, string> = {
    ':authority': host,
    ':method': method,
    ':path': path,
    ':scheme': 'https',
    'x-request-id': id,
    'user-agent': 'portico-test',
    ...Object.fromEntries(Object.entries(i.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
  };
  const ctx: Record<string, string> = {};
  if (i.product !== undefined) ctx.product = i.product;
  if (i.route !== undefined) ctx.route = i.route;
  if (i.accept !== undefined) ctx.accept = i.accept;
  const source: JsonObject = { address: { socket_address: { address: '10.0.0.7', port_value: 40001 } } };
  if (i.principal !== undefined) source.principal = i.principal;
  if (i.certificatePem !== undefined) source.certificate = encodeURIComponent(i.certificatePem);
  return {
    attributes: {
      source,
      destination: { address: { socket_address: { address: '10.0.0.1', port_value: 8443 } } },
      request: {
        time: '2025-01-01T00:00:00Z',
        http: { id, method, headers, path, host, scheme: 'https', protocol: 'HTTP/1.1' },
      },
      context_extensions: ctx,
    },
  };
}

/** The AuthzRequest decodeCheckRequest would produce for the same input (for pure decide() tests). */
export function authzRequest(i: CheckInput): AuthzRequest {
  const j = checkRequestJson(i) as { attributes: { request: { http: { headers: Record<string, string> } }; context_extensions: Record<string, string> } };
  const path = i.path ?? '/';
  const q = path.indexOf('?');
  return {
    method: i.method ?? 'GET',
    path: q < 0 ? path : path.slice(0, q),
    query: q < 0 ? '' : path.slice(q + 1),
    headers: new Map(Object.entries(j.attributes.request.http.headers)),
    requestId: i.requestId ?? 'req-1',
    context: new Map(Object.entries(j.attributes.context_extensions)),
    peerPrincipal: i.principal ?? '',
    peerCertificate: i.certificatePem !== undefined ? encodeURIComponent(i.certificatePem) : '',
  };
}
