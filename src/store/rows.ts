// Mapping between model resources and table rows: key fields become columns, nested
// configuration goes to `spec`. Pure; secrets are sealed/opened by the caller-supplied functions.
import type { AnyResource, KindName, ResourceMeta } from '../model/index.ts';

/** The Prisma model (delegate) name of each kind. */
export const TABLE: Readonly<Record<KindName, string>> = {
  gatewayGroups: 'gatewayGroup',
  certificates: 'certificate',
  services: 'service',
  products: 'product',
  routes: 'route',
  plans: 'plan',
  partners: 'partner',
  subscriptions: 'subscription',
  apiKeys: 'apiKey',
  jwtIssuers: 'jwtIssuer',
  mtlsIdentities: 'mtlsIdentity',
};

/** The SQL table of each kind (Prisma's model name). */
export const SQL_TABLE: Readonly<Record<KindName, string>> = Object.fromEntries(Object.entries(TABLE).map(([k, v]) => [k, v[0]!.toUpperCase() + v.slice(1)])) as Record<KindName, string>;

export type Row = Record<string, unknown> & {
  tags: string[];
  description: string | null;
  revision: number;
  createdAt: Date;
  updatedAt: Date;
};

export interface SecretCodec {
  seal(plaintext: string, purpose: string): string;
  open(envelope: string, purpose: string): string;
}

type Plain = Record<string, unknown>;

/** Columns that identify a row, per kind (in the order of the composite primary key). */
export const KEY_COLUMNS: Readonly<Record<KindName, readonly string[]>> = {
  gatewayGroups: ['name'],
  certificates: ['name'],
  services: ['name'],
  products: ['name'],
  routes: ['productName', 'name'],
  plans: ['name'],
  partners: ['name'],
  subscriptions: ['partnerName', 'productName'],
  apiKeys: ['partnerName', 'name'],
  jwtIssuers: ['name'],
  mtlsIdentities: ['partnerName', 'name'],
};

export function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** Associated data of a sealed field: an envelope opens only as the field it was sealed for. */
export function certificatePurpose(name: string): string {
  return `certificate:${name}:privateKey`;
}

export function apiKeyPurpose(partner: string, name: string): string {
  return `apiKey:${partner}/${name}:key`;
}

function pick(o: Plain, omit: readonly string[]): Plain {
  const out: Plain = {};
  for (const [k, v] of Object.entries(o)) if (!omit.includes(k) && v !== undefined) out[k] = v;
  return out;
}

/** A resource as the row to store (without bookkeeping columns). */
export function resourceToRow(kind: KindName, resource: AnyResource, secrets: SecretCodec): Plain {
  const r = resource as unknown as Plain;
  const common = { tags: (r.tags as string[] | undefined) ?? [], description: (r.description as string | undefined) ?? null };
  switch (kind) {
    case 'certificates':
      return {
        name: r.name,
        ...common,
        certificate: r.certificate,
        privateKey: typeof r.privateKey === 'string' ? secrets.seal(r.privateKey, certificatePurpose(String(r.name))) : null,
      };
    case 'apiKeys':
      return {
        partnerName: r.partner,
        name: r.name,
        ...common,
        prefix: r.prefix,
        hash: r.hash,
        sealedKey: typeof r.secret === 'string' ? secrets.seal(r.secret, apiKeyPurpose(String(r.partner), String(r.name))) : null,
        expiresAt: typeof r.expiresAt === 'string' ? new Date(r.expiresAt) : null,
        revoked: r.revoked === true,
      };
    case 'routes':
      return { productName: r.product, name: r.name, ...common, spec: pick(r, ['product', 'name', 'tags', 'description']) };
    case 'subscriptions':
      return {
        partnerName: r.partner,
        productName: r.product,
        planName: r.plan,
        ...common,
        spec: pick(r, ['partner', 'product', 'plan', 'tags', 'description']),
      };
    case 'mtlsIdentities':
      return { partnerName: r.partner, name: r.name, ...common, spec: pick(r, ['partner', 'name', 'tags', 'description']) };
    case 'jwtIssuers':
      return { name: r.name, ...common, issuer: r.issuer, spec: pick(r, ['name', 'issuer', 'tags', 'description']) };
    default:
      return { name: r.name, ...common, spec: pick(r, ['name', 'tags', 'description']) };
  }
}

/** A stored row as the model resource, with fields in schema order so output is stable. */
export function rowToResource(kind: KindName, row: Row, secrets: SecretCodec): AnyResource {
  const common = (o: Plain): Plain => {
    if (row.tags.length) o.tags = row.tags;
    if (row.description !== null) o.description = row.description;
    return o;
  };
  const spec = (row.spec ?? {}) as Plain;
  let out: Plain;
  switch (kind) {
    case 'certificates':
      out = common({ name: row.name });
      out.certificate = row.certificate;
      if (typeof row.privateKey === 'string') out.privateKey = secrets.open(row.privateKey, certificatePurpose(String(row.name)));
      break;
    case 'apiKeys':
      out = common({ partner: row.partnerName, name: row.name });
      if (row.expiresAt instanceof Date) out.expiresAt = row.expiresAt.toISOString();
      if (row.revoked === true) out.revoked = true;
      out.prefix = row.prefix;
      out.hash = row.hash;
      if (typeof row.sealedKey === 'string') out.secret = secrets.open(row.sealedKey, apiKeyPurpose(String(row.partnerName), String(row.name)));
      break;
    case 'routes':
      out = { ...common({ product: row.productName, name: row.name }), ...spec };
      break;
    case 'subscriptions':
      out = { ...common({ partner: row.partnerName, product: row.productName }), plan: row.planName, ...spec };
      break;
    case 'mtlsIdentities':
      out = { ...common({ partner: row.partnerName, name: row.name }), ...spec };
      break;
    case 'jwtIssuers':
      out = { ...common({ name: row.name }), issuer: row.issuer, ...spec };
      break;
    default:
      out = { ...common({ name: row.name }), ...spec };
  }
  return out as unknown as AnyResource;
}

/** The key of a stored row. */
export function rowKey(kind: KindName, row: Row): string {
  const cols = KEY_COLUMNS[kind];
  return cols.map((c) => String(row[c])).join('/');
}

export function rowMeta(row: Row): ResourceMeta {
  return { revision: row.revision, createdAt: isoString(row.createdAt), updatedAt: isoString(row.updatedAt) };
}

/**
 * Rows written by one transaction share their timestamps, so the model's createdAt/updatedAt have a
 * handful of distinct values: one string each instead of one per field (25,404 strings, ~1 MB of
 * heap held by every replica at 10k routes, for a few distinct values after a bulk apply).
 */
const isoStrings = new Map<number, string>();
function isoString(d: Date): string {
  const ms = d.getTime();
  let s = isoStrings.get(ms);
  if (s === undefined) {
    if (isoStrings.size >= 4096) isoStrings.clear();
    s = d.toISOString();
    isoStrings.set(ms, s);
  }
  return s;
}
