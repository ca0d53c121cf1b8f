// Canonical form of resources: keys in schema order, empty optional collections dropped, so the
// same model always serialises to the same bytes (exports, hashes, no-op detection).
import type { TSchema } from '@sinclair/typebox';
import { KINDS, type AnyResource, type KindName } from './model.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function schemaProps(schema: TSchema | undefined): Record<string, TSchema> | undefined {
  return (schema as { properties?: Record<string, TSchema> } | undefined)?.properties;
}

/** Orders object keys as the schema declares them (unknown keys last, sorted); recurses into arrays and records. */
export function canonicalize(value: unknown, schema?: TSchema): Json {
  if (Array.isArray(value)) {
    const items = (schema as { items?: TSchema } | undefined)?.items;
    return value.map((v) => canonicalize(v, items));
  }
  if (value === null || typeof value !== 'object') return value as Json;
  const obj = value as Record<string, unknown>;
  const props = schemaProps(schema);
  const record = (schema as { patternProperties?: Record<string, TSchema> } | undefined)?.patternProperties;
  const recordSchema = record ? Object.values(record)[0] : undefined;
  const declared = props ? Object.keys(props).filter((k) => k in obj) : [];
  const rest = Object.keys(obj)
    .filter((k) => !declared.includes(k))
    .sort();
  const out: Record<string, Json> = {};
  for (const k of [...declared, ...rest]) {
    const v = obj[k];
    if (v === undefined) continue;
    out[k] = canonicalize(v, props?.[k] ?? recordSchema);
  }
  return out;
}

/** Fields that live outside a kind's input schema but belong to the resource (parent references, stored hashes). */
const EXTRA_LEADING: Partial<Record<KindName, string[]>> = {
  routes: ['product'],
  subscriptions: ['partner'],
  apiKeys: ['partner'],
  mtlsIdentities: ['partner'],
};

export function canonicalResource(kind: KindName, resource: AnyResource): Json {
  const body = canonicalize(resource, KINDS[kind].schema) as Record<string, Json>;
  const lead = EXTRA_LEADING[kind] ?? [];
  const out: Record<string, Json> = {};
  for (const k of lead) if (k in body) out[k] = body[k]!;
  for (const [k, v] of Object.entries(body)) if (!lead.includes(k)) out[k] = v;
  return out;
}

export function sameResource(kind: KindName, a: AnyResource, b: AnyResource): boolean {
  return JSON.stringify(canonicalResource(kind, a)) === JSON.stringify(canonicalResource(kind, b));
}
