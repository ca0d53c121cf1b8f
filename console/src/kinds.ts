// What the resource pages know about each kind: its collection in the admin API, the fields the
// form shows (paths in the same notation problem+json uses: endpoints[0].host), a template, columns.
import type { paths } from './generated/api.d.ts';

export type FieldType = 'text' | 'number' | 'select' | 'list' | 'textarea' | 'checkbox' | 'datetime';

export interface FieldSpec {
  path: string;
  label: string;
  type?: FieldType;
  options?: readonly string[];
  /** Options are the names of another kind's resources. */
  ref?: KindId;
  help?: string;
  /** Only when creating (names cannot change). */
  createOnly?: boolean;
}

export type KindId = 'adminTokens' | 'gatewayGroups' | 'services' | 'products' | 'routes' | 'plans' | 'partners' | 'subscriptions' | 'apiKeys' | 'jwtIssuers' | 'certificates';

export interface KindSpec {
  id: KindId;
  title: string;
  singular: string;
  /** The collection URL; `{parent}` is replaced by the parent resource's name. */
  collection: keyof paths;
  keyField: string;
  parent?: KindId;
  children?: KindId[];
  fields: FieldSpec[];
  template: () => Record<string, unknown>;
  columns: { label: string; value: (r: any) => string }[];
  /** Created once, never edited: existing items offer only deletion. */
  immutable?: boolean;
  /** Only the admin role may list them. */
  adminOnly?: boolean;
  /** The list is one page (no limit/cursor query). */
  unpaged?: boolean;
  /** The create response's field holding a secret shown once. */
  secretField?: string;
}

const list = (v: unknown) => (Array.isArray(v) ? v.join(', ') : '');
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const name: FieldSpec = { path: 'name', label: 'Name', help: 'lowercase letters, digits and dashes', createOnly: true };

export const KINDS: Record<KindId, KindSpec> = {
  adminTokens: {
    id: 'adminTokens',
    title: 'Admin tokens',
    singular: 'admin token',
    collection: '/api/v1/admin-tokens',
    keyField: 'name',
    immutable: true,
    adminOnly: true,
    unpaged: true,
    secretField: 'token',
    fields: [
      name,
      { path: 'role', label: 'Role', type: 'select', options: ['viewer', 'admin'] },
      { path: 'description', label: 'Description' },
      { path: 'expiresAt', label: 'Expires at', type: 'datetime', help: 'optional, e.g. 2027-01-31T00:00:00Z' },
    ],
    template: () => ({ name: '', role: 'viewer' }),
    columns: [
      { label: 'Role', value: (r) => r.role },
      { label: 'Prefix', value: (r) => r.prefix ?? '' },
      { label: 'Expires', value: (r) => r.expiresAt ?? 'never' },
      { label: 'Created by', value: (r) => r.createdBy ?? '' },
    ],
  },
  gatewayGroups: {
    id: 'gatewayGroups',
    title: 'Gateway groups',
    singular: 'gateway group',
    collection: '/api/v1/gateway-groups',
    keyField: 'name',
    fields: [name, { path: 'listeners[0].name', label: 'Listener name' }, { path: 'listeners[0].port', label: 'Listener port', type: 'number' }],
    template: () => ({ name: '', listeners: [{ name: 'http', port: 10080 }] }),
    columns: [{ label: 'Listeners', value: (r) => (r.listeners ?? []).map((l: any) => `${l.name}:${l.port}`).join(', ') }],
  },
  services: {
    id: 'services',
    title: 'Services',
    singular: 'service',
    collection: '/api/v1/services',
    keyField: 'name',
    fields: [
      name,
      { path: 'endpoints[0].host', label: 'Upstream host', help: 'an IP address or DNS name' },
      { path: 'endpoints[0].port', label: 'Upstream port', type: 'number' },
      { path: 'protocol', label: 'Protocol', type: 'select', options: ['', 'http1', 'http2'] },
      { path: 'lbPolicy', label: 'Load balancing', type: 'select', options: ['', 'round_robin', 'least_request', 'random', 'ring_hash', 'maglev'] },
    ],
    template: () => ({ name: '', endpoints: [{ host: '', port: 80 }] }),
    columns: [{ label: 'Endpoints', value: (r) => (r.endpoints ?? []).map((e: any) => `${e.host}:${e.port}`).join(', ') }],
  },
  products: {
    id: 'products',
    title: 'Products',
    singular: 'product',
    collection: '/api/v1/products',
    keyField: 'name',
    children: ['routes'],
    fields: [
      name,
      { path: 'displayName', label: 'Display name' },
      { path: 'gatewayGroups', label: 'Gateway groups', type: 'list', ref: 'gatewayGroups', help: 'comma-separated' },
      { path: 'hosts', label: 'Hosts', type: 'list', help: 'comma-separated; empty for any host' },
      { path: 'basePath', label: 'Base path', help: 'e.g. /orders' },
      { path: 'auth.accept', label: 'Accepted credentials', type: 'list', help: 'api_key, jwt, mtls or none' },
    ],
    template: () => ({ name: '', gatewayGroups: [], auth: { accept: ['api_key'] } }),
    columns: [
      { label: 'Base path', value: (r) => r.basePath ?? '' },
      { label: 'Gateway groups', value: (r) => list(r.gatewayGroups) },
      { label: 'Credentials', value: (r) => list(r.auth?.accept) },
    ],
  },
  routes: {
    id: 'routes',
    title: 'Routes',
    singular: 'route',
    collection: '/api/v1/products/{parent}/routes',
    keyField: 'name',
    parent: 'products',
    fields: [
      name,
      { path: 'match.path.type', label: 'Match', type: 'select', options: ['prefix', 'exact', 'template', 'regex'] },
      { path: 'match.path.value', label: 'Path' },
      { path: 'match.methods', label: 'Methods', type: 'list', help: `comma-separated: ${METHODS.join(', ')}; empty for all` },
      { path: 'service', label: 'Service', type: 'select', ref: 'services' },
    ],
    template: () => ({ name: '', match: { path: { type: 'prefix', value: '/' } }, service: '' }),
    columns: [
      { label: 'Path', value: (r) => `${r.match?.path?.type ?? ''} ${r.match?.path?.value ?? ''}` },
      { label: 'Methods', value: (r) => list(r.match?.methods) || 'all' },
      { label: 'Service', value: (r) => r.service ?? (r.backends ?? []).map((b: any) => `${b.service} (${b.weight})`).join(', ') },
    ],
  },
  plans: {
    id: 'plans',
    title: 'Plans',
    singular: 'plan',
    collection: '/api/v1/plans',
    keyField: 'name',
    fields: [
      name,
      { path: 'limits[0].requests', label: 'Rate limit: requests', type: 'number' },
      { path: 'limits[0].per', label: 'Rate limit: per', type: 'select', options: ['second', 'minute', 'hour'] },
      { path: 'quotas[0].requests', label: 'Quota: requests', type: 'number' },
      { path: 'quotas[0].per', label: 'Quota: per', type: 'select', options: ['day', 'month'] },
    ],
    template: () => ({ name: '', limits: [{ requests: 10, per: 'second' }], quotas: [{ requests: 100000, per: 'day' }] }),
    columns: [
      { label: 'Limits', value: (r) => (r.limits ?? []).map((l: any) => `${l.requests}/${l.per}`).join(', ') },
      { label: 'Quotas', value: (r) => (r.quotas ?? []).map((q: any) => `${q.requests}/${q.per}`).join(', ') },
    ],
  },
  partners: {
    id: 'partners',
    title: 'Partners',
    singular: 'partner',
    collection: '/api/v1/partners',
    keyField: 'name',
    children: ['subscriptions', 'apiKeys'],
    fields: [
      name,
      { path: 'displayName', label: 'Display name' },
      { path: 'kind', label: 'Kind', type: 'select', options: ['', 'team', 'service_account', 'tenant'] },
      { path: 'contact', label: 'Contact' },
      { path: 'suspended', label: 'Suspended', type: 'checkbox' },
    ],
    template: () => ({ name: '', kind: 'team' }),
    columns: [
      { label: 'Display name', value: (r) => r.displayName ?? '' },
      { label: 'Kind', value: (r) => r.kind ?? '' },
    ],
  },
  subscriptions: {
    id: 'subscriptions',
    title: 'Subscriptions',
    singular: 'subscription',
    collection: '/api/v1/partners/{parent}/subscriptions',
    keyField: 'product',
    parent: 'partners',
    fields: [
      { path: 'product', label: 'Product', type: 'select', ref: 'products', createOnly: true },
      { path: 'plan', label: 'Plan', type: 'select', ref: 'plans' },
      { path: 'status', label: 'Status', type: 'select', options: ['', 'active', 'suspended'] },
    ],
    template: () => ({ product: '', plan: '' }),
    columns: [
      { label: 'Plan', value: (r) => r.plan },
      { label: 'Status', value: (r) => r.status ?? 'active' },
    ],
  },
  apiKeys: {
    id: 'apiKeys',
    title: 'API keys',
    singular: 'API key',
    collection: '/api/v1/partners/{parent}/api-keys',
    secretField: 'key',
    keyField: 'name',
    parent: 'partners',
    fields: [name, { path: 'expiresAt', label: 'Expires at', type: 'datetime', help: 'optional, e.g. 2027-01-31T00:00:00Z' }],
    template: () => ({ name: '' }),
    columns: [
      { label: 'Prefix', value: (r) => r.prefix ?? '' },
      { label: 'State', value: (r) => (r.revoked ? 'revoked' : r.expiresAt && Date.parse(r.expiresAt) < Date.now() ? 'expired' : 'active') },
      { label: 'Expires', value: (r) => r.expiresAt ?? 'never' },
    ],
  },
  jwtIssuers: {
    id: 'jwtIssuers',
    title: 'JWT issuers',
    singular: 'JWT issuer',
    collection: '/api/v1/jwt-issuers',
    keyField: 'name',
    fields: [
      name,
      { path: 'issuer', label: 'Issuer (iss)' },
      { path: 'audiences', label: 'Audiences', type: 'list', help: 'comma-separated' },
      { path: 'jwksUri', label: 'JWKS URI' },
      { path: 'partnerClaim', label: 'Partner claim' },
    ],
    template: () => ({ name: '', issuer: '', audiences: [], jwksUri: '' }),
    columns: [
      { label: 'Issuer', value: (r) => r.issuer },
      { label: 'Audiences', value: (r) => list(r.audiences) },
    ],
  },
  certificates: {
    id: 'certificates',
    title: 'Certificates',
    singular: 'certificate',
    collection: '/api/v1/certificates',
    keyField: 'name',
    fields: [name, { path: 'certificate', label: 'Certificate (PEM)', type: 'textarea' }, { path: 'privateKey', label: 'Private key (PEM; stored encrypted, never shown again)', type: 'textarea' }],
    template: () => ({ name: '', certificate: '' }),
    columns: [
      { label: 'Subject', value: (r) => r.subject ?? '' },
      { label: 'Expires', value: (r) => r.notAfter ?? '' },
      { label: 'Key', value: (r) => (r.hasPrivateKey ? 'yes' : 'no') },
    ],
  },
};

export function collectionUrl(kind: KindSpec, parent?: string): string {
  return String(kind.collection).replace(/\{[^}]+\}/, encodeURIComponent(parent ?? ''));
}

export function itemUrl(kind: KindSpec, key: string, parent?: string): string {
  return `${collectionUrl(kind, parent)}/${encodeURIComponent(key)}`;
}

// ── field paths (the notation of problem+json: a.b[0].c) ─────────────────────
function parts(path: string): (string | number)[] {
  return [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
}

export function getPath(obj: unknown, path: string): unknown {
  let cur: any = obj;
  for (const p of parts(path)) cur = cur?.[p];
  return cur;
}

/** A copy of obj with path set to value; undefined removes the field. */
export function setPath<T>(obj: T, path: string, value: unknown): T {
  const ps = parts(path);
  const root: any = structuredClone(obj ?? {});
  let cur = root;
  ps.forEach((p, i) => {
    if (i === ps.length - 1) {
      if (value === undefined) {
        if (Array.isArray(cur)) cur.splice(p as number, 1);
        else delete cur[p];
      } else cur[p] = value;
      return;
    }
    if (cur[p] === undefined || cur[p] === null) cur[p] = typeof ps[i + 1] === 'number' ? [] : {};
    cur = cur[p];
  });
  return root;
}
