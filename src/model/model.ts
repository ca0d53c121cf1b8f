// The model snapshot: every resource of one model revision as plain immutable objects, plus the
// registry of resource kinds (how each is keyed, nested and validated).
import * as S from './schemas.ts';
import type { TSchema } from '@sinclair/typebox';

/** A certificate as held by the model: the private key is decrypted in memory for Envoy's SDS. */
export type CertificateModel = S.Certificate;

export interface ResourceTypes {
  gatewayGroups: S.GatewayGroup;
  certificates: CertificateModel;
  services: S.Service;
  products: S.Product;
  routes: S.Route;
  plans: S.Plan;
  partners: S.Partner;
  subscriptions: S.Subscription;
  apiKeys: S.ApiKey;
  jwtIssuers: S.JwtIssuer;
  mtlsIdentities: S.MtlsIdentity;
}
export type KindName = keyof ResourceTypes;
export type AnyResource = ResourceTypes[KindName];

/** Stored bookkeeping kept beside a resource, never part of what is translated or exported. */
export interface ResourceMeta {
  revision: number;
  createdAt: string;
  updatedAt: string;
}

export type ResourceMap<K extends KindName> = ReadonlyMap<string, ResourceTypes[K]>;

export type ModelSnapshot = {
  /** Sequence number of the last committed change (0 for an empty store). */
  readonly revision: number;
  /** Bookkeeping per resource, keyed by `${kind}/${key}`. */
  readonly meta: ReadonlyMap<string, ResourceMeta>;
} & { readonly [K in KindName]: ResourceMap<K> };

export interface KindInfo {
  kind: KindName;
  /** Singular name used in messages and audit entries. */
  singular: string;
  /** URL segment under /api/v1 (or under the parent's item URL for children). */
  path: string;
  /** The kind this one is nested under (routes under products, keys under partners). */
  parent?: { kind: KindName; field: 'product' | 'partner' };
  /** Field that names the resource within its parent (or globally). */
  keyField: 'name' | 'product';
  /** Input schema (REST body and declarative entry). */
  schema: TSchema;
}

export const KINDS: Readonly<Record<KindName, KindInfo>> = {
  gatewayGroups: { kind: 'gatewayGroups', singular: 'gateway group', path: 'gateway-groups', keyField: 'name', schema: S.GatewayGroup },
  certificates: { kind: 'certificates', singular: 'certificate', path: 'certificates', keyField: 'name', schema: S.Certificate },
  services: { kind: 'services', singular: 'service', path: 'services', keyField: 'name', schema: S.Service },
  products: { kind: 'products', singular: 'product', path: 'products', keyField: 'name', schema: S.Product },
  routes: {
    kind: 'routes',
    singular: 'route',
    path: 'routes',
    parent: { kind: 'products', field: 'product' },
    keyField: 'name',
    schema: S.Route,
  },
  plans: { kind: 'plans', singular: 'plan', path: 'plans', keyField: 'name', schema: S.Plan },
  partners: { kind: 'partners', singular: 'partner', path: 'partners', keyField: 'name', schema: S.Partner },
  subscriptions: {
    kind: 'subscriptions',
    singular: 'subscription',
    path: 'subscriptions',
    parent: { kind: 'partners', field: 'partner' },
    keyField: 'product',
    schema: S.Subscription,
  },
  apiKeys: {
    kind: 'apiKeys',
    singular: 'API key',
    path: 'api-keys',
    parent: { kind: 'partners', field: 'partner' },
    keyField: 'name',
    schema: S.ApiKey,
  },
  jwtIssuers: { kind: 'jwtIssuers', singular: 'JWT issuer', path: 'jwt-issuers', keyField: 'name', schema: S.JwtIssuer },
  mtlsIdentities: {
    kind: 'mtlsIdentities',
    singular: 'mTLS identity',
    path: 'mtls-identities',
    parent: { kind: 'partners', field: 'partner' },
    keyField: 'name',
    schema: S.MtlsIdentity,
  },
};

/** Kinds in storage order: parents before children (writes go in this order, deletes in reverse). */
export const KIND_ORDER: readonly KindName[] = ['certificates', 'gatewayGroups', 'services', 'jwtIssuers', 'products', 'routes', 'plans', 'partners', 'subscriptions', 'apiKeys', 'mtlsIdentities'];

/** The key of a resource within its kind: `name`, or `parent/name` for nested kinds. */
export function keyOf<K extends KindName>(kind: K, resource: ResourceTypes[K]): string {
  const info = KINDS[kind];
  const r = resource as unknown as Record<string, string>;
  const own = r[info.keyField]!;
  return info.parent ? `${r[info.parent.field]}/${own}` : own;
}

export function metaKey(kind: KindName, key: string): string {
  return `${kind}/${key}`;
}

export function emptySnapshot(): ModelSnapshot {
  const s: Record<string, unknown> = { revision: 0, meta: new Map() };
  for (const k of KIND_ORDER) s[k] = new Map();
  return s as ModelSnapshot;
}

/** One write to the model: resources to put (create or replace) and keys to delete. */
export interface Mutation {
  kind: KindName;
  op: 'put' | 'delete';
  key: string;
  /** The new resource for a put. */
  resource?: AnyResource;
}

/** Applies mutations to a snapshot, sharing untouched kinds; children of deleted parents go too. */
export function applyMutations(base: ModelSnapshot, mutations: readonly Mutation[]): ModelSnapshot {
  const next: Record<string, unknown> = { ...base };
  const copies = new Map<KindName, Map<string, AnyResource>>();
  const writable = (kind: KindName): Map<string, AnyResource> => {
    let m = copies.get(kind);
    if (!m) {
      m = new Map(base[kind] as ReadonlyMap<string, AnyResource>);
      copies.set(kind, m);
      next[kind] = m;
    }
    return m;
  };
  for (const mu of mutations) {
    const m = writable(mu.kind);
    if (mu.op === 'put') m.set(mu.key, mu.resource!);
    else {
      m.delete(mu.key);
      for (const child of childKinds(mu.kind)) {
        const cm = writable(child);
        for (const k of [...cm.keys()]) if (k.startsWith(`${mu.key}/`)) cm.delete(k);
      }
    }
  }
  return next as ModelSnapshot;
}

export function childKinds(kind: KindName): KindName[] {
  return KIND_ORDER.filter((k) => KINDS[k].parent?.kind === kind);
}

/** Sorted entries of one kind: every consumer that must be deterministic iterates through this. */
export function sortedValues<K extends KindName>(snapshot: ModelSnapshot, kind: K): ResourceTypes[K][] {
  const m = snapshot[kind] as ResourceMap<K>;
  return [...m.keys()].sort().map((k) => m.get(k)!);
}
