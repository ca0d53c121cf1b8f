// Validation of the model: each resource against its schema, then the whole snapshot for
// references, duplicates and conflicting routes. Pure: the same input always gives the same errors.
// Its ~450 lines are one rule after another over one snapshot; a split would scatter the rule list.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { TSchema } from '@sinclair/typebox';
import { KINDS, sortedValues, type KindName, type ModelSnapshot } from './model.ts';
import { RESERVED_HEADER_PREFIX } from '../contract/index.ts';
import { reservedHeaderUses } from './policy.ts';
import { headerRuleProblems } from './header-values.ts';
import { decodeDescriptorSet, grpcRouteProblems } from './grpc-descriptor.ts';
import { idempotencyProblems } from './idempotency-schema.ts';
import type { Route, Product } from './schemas.ts';

export interface FieldError {
  /** Path of the offending field, e.g. `listeners[0].port`. */
  field: string;
  message: string;
}

export interface ModelError extends FieldError {
  kind: KindName;
  key: string;
  /** reference: names something missing; conflict: clashes with another resource; invalid: bad value. */
  code: 'reference' | 'conflict' | 'invalid';
  /** For references, what is missing. */
  target?: { kind: KindName; key: string };
}

// ── schema validation (shared by REST bodies and declarative files) ──────────
const addFormats = addFormatsModule as unknown as (ajv: Ajv, formats?: string[]) => Ajv;

// verbose: errors carry their schema, so messages can list a union's allowed values.
export const ajv = new Ajv({ allErrors: true, verbose: true, strict: false, useDefaults: false, coerceTypes: false });
addFormats(ajv, ['date-time', 'uri', 'ipv4', 'ipv6']);
ajv.addFormat('ipv4-or-ipv6', {
  type: 'string',
  validate: (s: string) => (/^(\d{1,3}\.){3}\d{1,3}$/.test(s) && s.split('.').every((o) => Number(o) <= 255)) || isIpv6(s),
});
ajv.addFormat('re2', { type: 'string', validate: (s: string) => re2Problem(s) === undefined });

function isIpv6(s: string): boolean {
  return s.includes(':') && /^[0-9A-Fa-f:.]+$/.test(s) && s.split('::').length <= 2;
}

/** Why a pattern would not compile under RE2 (Envoy's regex engine), or undefined if it would. */
export function re2Problem(pattern: string): string | undefined {
  if (/\(\?<?[=!]/.test(pattern)) return 'lookahead and lookbehind are not supported by RE2';
  if (/\\[1-9]/.test(pattern)) return 'backreferences are not supported by RE2';
  try {
    new RegExp(pattern);
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}

const compiled = new WeakMap<TSchema, ValidateFunction>();
function validatorFor(schema: TSchema): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/**
 * Compiles every resource schema and runs each validator once (V8 compiles Ajv's generated code on
 * its first call): ~0.4 CPU-second for all kinds (routes most), synchronous. `portico serve` pays
 * it just after it reports ready rather than on its first admin writes, one kind per event-loop
 * turn, so a callout waits for at most one kind's compile, and readiness for none.
 */
export async function compileResourceSchemas(): Promise<void> {
  for (const kind of Object.keys(KINDS) as KindName[]) {
    await new Promise((r) => setImmediate(r));
    validatorFor(KINDS[kind].schema)({});
  }
}

/** Turns Ajv's JSON-pointer errors into one message per offending field, named as a person reads it. */
export function describeSchemaErrors(errors: readonly ErrorObject[], prefix = ''): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  // A failed union also reports one error per branch; keep only the union's own summary.
  const unionPaths = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  for (const e of errors) {
    if (e.keyword !== 'anyOf' && unionPaths.has(e.instancePath) && e.schemaPath.includes('/anyOf/')) continue;
    let field = pointerToField(e.instancePath);
    let message: string;
    switch (e.keyword) {
      case 'additionalProperties':
        field = joinField(field, String(e.params.additionalProperty));
        message = 'is not a known field';
        break;
      case 'required':
        field = joinField(field, String(e.params.missingProperty));
        message = 'is required';
        break;
      case 'type':
        message = `must be ${e.params.type === 'integer' ? 'an integer' : `of type ${e.params.type}`}`;
        break;
      case 'const':
        message = `must be ${JSON.stringify(e.params.allowedValue)}`;
        break;
      case 'anyOf': {
        const literals = unionLiterals(e.parentSchema);
        message = literals ? `must be one of ${literals.join(', ')}` : 'does not match any allowed form';
        break;
      }
      case 'pattern':
        message = `has an invalid format${typeof e.parentSchema?.description === 'string' ? ` (${e.parentSchema.description})` : ''}`;
        break;
      case 'format':
        message = e.params.format === 're2' ? 'is not a valid RE2 regular expression' : `must be a valid ${e.params.format}`;
        break;
      default:
        message = e.message ?? 'is invalid';
    }
    if (prefix) field = !field ? prefix : field.startsWith('[') ? `${prefix}${field}` : `${prefix}.${field}`;
    const dedupe = `${field}|${message}`;
    if (seen.has(dedupe)) continue;
    seen.add(dedupe);
    out.push({ field: field || '(body)', message });
  }
  return out;
}

function unionLiterals(schema: unknown): string[] | undefined {
  const anyOf = (schema as { anyOf?: Array<{ const?: unknown }> } | undefined)?.anyOf;
  if (!anyOf?.every((s) => typeof s.const === 'string')) return undefined;
  return anyOf.map((s) => String(s.const));
}

function pointerToField(pointer: string): string {
  if (!pointer) return '';
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : joinField(acc, part)), '');
}

/** Appends a property to a field path as a person reads it: `a.b`, or `a["odd key"]`. */
export function joinField(a: string, b: string): string {
  if (!b) return `${a}[""]`; // an empty property name, still named
  if (!a) return b;
  return /^[A-Za-z_$][\w$]*$/.test(b) ? `${a}.${b}` : `${a}[${JSON.stringify(b)}]`;
}

/** Validates one value against a schema; returns the field errors (empty when valid). */
export function schemaErrors(schema: TSchema, value: unknown, prefix = ''): FieldError[] {
  const v = validatorFor(schema);
  if (v(value)) return [];
  return describeSchemaErrors(v.errors ?? [], prefix);
}

export function resourceSchemaErrors(kind: KindName, value: unknown, prefix = ''): FieldError[] {
  return schemaErrors(KINDS[kind].schema, value, prefix);
}

// ── whole-model validation ───────────────────────────────────────────────────
/** Checks everything a single schema cannot: references, uniqueness, conflicts, certificate contents. */
export function validateModel(m: ModelSnapshot): ModelError[] {
  const errors: ModelError[] = [];
  const ref = (kind: KindName, key: string, field: string, targetKind: KindName, targetKey: string) => {
    if (!(m[targetKind] as ReadonlyMap<string, unknown>).has(targetKey)) {
      errors.push({
        kind,
        key,
        field,
        code: 'reference',
        target: { kind: targetKind, key: targetKey },
        message: `refers to ${KINDS[targetKind].singular} '${targetKey}', which does not exist`,
      });
    }
  };
  const invalid = (kind: KindName, key: string, field: string, message: string) => errors.push({ kind, key, field, code: 'invalid', message });
  const conflict = (kind: KindName, key: string, field: string, message: string) => errors.push({ kind, key, field, code: 'conflict', message });

  // certificates
  const certInfo = new Map<string, { hasKey: boolean }>();
  for (const c of sortedValues(m, 'certificates')) {
    let x509: X509Certificate | undefined;
    try {
      x509 = new X509Certificate(c.certificate);
    } catch {
      invalid('certificates', c.name, 'certificate', 'is not a PEM-encoded X.509 certificate');
    }
    if (c.privateKey !== undefined) {
      try {
        const key = createPrivateKey(c.privateKey);
        if (x509 && !x509.checkPrivateKey(key)) {
          invalid('certificates', c.name, 'privateKey', 'does not match the certificate');
        }
      } catch {
        invalid('certificates', c.name, 'privateKey', 'is not a PEM-encoded private key');
      }
    }
    certInfo.set(c.name, { hasKey: c.privateKey !== undefined });
  }
  const needsKey = (kind: KindName, key: string, field: string, cert: string) => {
    ref(kind, key, field, 'certificates', cert);
    const info = certInfo.get(cert);
    if (info && !info.hasKey) invalid(kind, key, field, `certificate '${cert}' has no private key`);
  };

  // gateway groups
  const mtlsGroups = new Set<string>();
  for (const g of sortedValues(m, 'gatewayGroups')) {
    const ports = new Map<string, string>();
    const names = new Set<string>();
    if ((g.kind ?? 'envoy') === 'envoy' && !g.listeners) invalid('gatewayGroups', g.name, 'listeners', 'is required for an envoy gateway group');
    if (g.kind === 'proxyless-grpc' && g.listeners) invalid('gatewayGroups', g.name, 'listeners', 'is not used by a proxyless-grpc group (clients connect to product hosts)');
    (g.listeners ?? []).forEach((l, i) => {
      const f = `listeners[${i}]`;
      if (names.has(l.name)) conflict('gatewayGroups', g.name, `${f}.name`, `listener name '${l.name}' is used twice`);
      names.add(l.name);
      const other = ports.get(String(l.port));
      if (other) conflict('gatewayGroups', g.name, `${f}.port`, `port ${l.port} is already used by listener '${other}'`);
      ports.set(String(l.port), l.name);
      const https = (l.protocol ?? 'http') === 'https';
      if (https && !l.tls) invalid('gatewayGroups', g.name, `${f}.tls`, 'is required when protocol is https');
      if (!https && l.tls) invalid('gatewayGroups', g.name, `${f}.tls`, "is only allowed when protocol is 'https'");
      if (l.tls) {
        needsKey('gatewayGroups', g.name, `${f}.tls.certificate`, l.tls.certificate);
        if (l.tls.clientCa) {
          ref('gatewayGroups', g.name, `${f}.tls.clientCa`, 'certificates', l.tls.clientCa);
          mtlsGroups.add(g.name);
        } else if (l.tls.requireClientCertificate) {
          invalid('gatewayGroups', g.name, `${f}.tls.requireClientCertificate`, 'needs tls.clientCa to verify client certificates');
        }
      }
    });
  }

  // services
  for (const s of sortedValues(m, 'services')) {
    const descriptor = s.grpc ? decodeDescriptorSet(s.grpc.descriptorSet) : undefined;
    if (typeof descriptor === 'string') invalid('services', s.name, 'grpc.descriptorSet', descriptor);
    if (s.grpc && s.protocol !== 'http2') invalid('services', s.name, 'protocol', 'must be http2 for a gRPC service (grpc is set)');
    const discovery = serviceDiscovery(s);
    if (discovery === 'static') {
      s.endpoints.forEach((e, i) => {
        if (!isIpLiteral(e.host)) {
          invalid('services', s.name, `endpoints[${i}].host`, `'${e.host}' is not an IP address; use discovery: dns for host names`);
        }
      });
    }
    if (s.tls?.ca) ref('services', s.name, 'tls.ca', 'certificates', s.tls.ca);
    if (s.tls?.clientCertificate) needsKey('services', s.name, 'tls.clientCertificate', s.tls.clientCertificate);
    if (s.tls && s.tls.verify !== false && !s.tls.ca) {
      invalid('services', s.name, 'tls.ca', 'is required to verify the upstream (or set verify: false)');
    }
    if (s.retries?.retriableStatusCodes && !s.retries.retryOn?.includes('retriable-status-codes')) {
      invalid('services', s.name, 'retries.retriableStatusCodes', "needs 'retriable-status-codes' in retryOn");
    }
  }

  // JWT issuers
  const issuerValues = new Map<string, string>();
  for (const j of sortedValues(m, 'jwtIssuers')) {
    if ((j.jwksUri === undefined) === (j.jwks === undefined)) {
      invalid('jwtIssuers', j.name, 'jwksUri', 'exactly one of jwksUri and jwks must be set');
    }
    if (j.partner !== undefined && j.partnerClaim !== undefined) {
      invalid('jwtIssuers', j.name, 'partner', 'set either partner (a fixed partner) or partnerClaim, not both');
    }
    if (j.partner) ref('jwtIssuers', j.name, 'partner', 'partners', j.partner);
    j.jwks?.keys.forEach((k, i) => {
      if (typeof k.kty !== 'string') invalid('jwtIssuers', j.name, `jwks.keys[${i}].kty`, 'is required');
      if ('d' in k || 'k' in k) invalid('jwtIssuers', j.name, `jwks.keys[${i}]`, 'must be a public key (no private or symmetric material)');
    });
    const other = issuerValues.get(j.issuer);
    if (other) conflict('jwtIssuers', j.name, 'issuer', `issuer '${j.issuer}' is already configured by JWT issuer '${other}'`);
    issuerValues.set(j.issuer, j.name);
  }

  // products
  for (const p of sortedValues(m, 'products')) {
    p.gatewayGroups.forEach((g, i) => ref('products', p.name, `gatewayGroups[${i}]`, 'gatewayGroups', g));
    p.jwtIssuers?.forEach((j, i) => ref('products', p.name, `jwtIssuers[${i}]`, 'jwtIssuers', j));
    if (p.publicPlan) ref('products', p.name, 'publicPlan', 'plans', p.publicPlan);
    if (p.auth) authErrors(p.auth.accept, 'products', p.name, 'auth.accept', p, m, mtlsGroups, invalid);
    for (const e of headerRuleProblems(m, p, p)) invalid('products', p.name, e.field, e.message);
  }

  // headers under the gateway's reserved prefix
  for (const u of reservedHeaderUses(m)) {
    invalid(u.kind, u.key, u.field, `'${u.header}': request headers starting with ${RESERVED_HEADER_PREFIX} are reserved for the gateway's own (clients' copies are removed at the edge)`);
  }

  // routes, including conflicts per gateway group
  const seenMatch = new Map<string, string>();
  for (const r of sortedValues(m, 'routes')) {
    const key = `${r.product}/${r.name}`;
    const product = m.products.get(r.product);
    if (!product) {
      ref('routes', key, 'product', 'products', r.product);
      continue;
    }
    for (const e of headerRuleProblems(m, product, r)) invalid('routes', key, e.field, e.message);
    for (const [field, message] of grpcRouteProblems(r, r.service ? m.services.get(r.service) : undefined)) invalid('routes', key, field, message);
    for (const [field, message] of idempotencyProblems(r)) invalid('routes', key, field, message);
    const actions = [r.service, r.backends, r.directResponse, r.flow].filter((a) => a !== undefined).length;
    if (actions !== 1) invalid('routes', key, 'service', 'exactly one of service, backends, directResponse and flow must be set');
    // A body transform rewrites what one service answers (a flow shapes its own bodies).
    if (r.transform && !r.service) invalid('routes', key, 'transform', 'applies to a route sent to one service (a flow shapes bodies itself)');
    const cacheProblem = r.cache && r.cache.enabled !== false ? cacheConflict(r) : undefined;
    if (cacheProblem) invalid('routes', key, 'cache', cacheProblem);
    if (r.service) ref('routes', key, 'service', 'services', r.service);
    r.backends?.forEach((b, i) => ref('routes', key, `backends[${i}].service`, 'services', b.service));
    if (r.backends && r.backends.reduce((n, b) => n + b.weight, 0) === 0) {
      invalid('routes', key, 'backends', 'weights must not all be 0');
    }
    const pathProblem = pathMatchProblem(r);
    if (pathProblem) invalid('routes', key, 'match.path.value', pathProblem);
    if (r.match.path.segmentBoundary !== undefined && r.match.path.type !== 'prefix') {
      invalid('routes', key, 'match.path.segmentBoundary', `applies to prefix matches only, not ${r.match.path.type}`);
    }
    const rw = r.rewrite;
    if (rw && [rw.stripPrefix, rw.prefix, rw.regex].filter((x) => x !== undefined).length > 1) {
      invalid('routes', key, 'rewrite', 'set at most one of stripPrefix, prefix and regex');
    }
    if (rw?.stripPrefix && r.match.path.type !== 'regex') {
      const full = fullPath(product, r);
      if (!full.startsWith(rw.stripPrefix)) {
        invalid('routes', key, 'rewrite.stripPrefix', `'${rw.stripPrefix}' is not a prefix of the route path '${full}'`);
      }
    }
    if (r.retries?.retriableStatusCodes && !r.retries.retryOn?.includes('retriable-status-codes')) {
      invalid('routes', key, 'retries.retriableStatusCodes', "needs 'retriable-status-codes' in retryOn");
    }
    if (rw?.prefix && r.match.path.type !== 'prefix') {
      invalid('routes', key, 'rewrite.prefix', 'needs a prefix path match (use rewrite.regex otherwise)');
    }
    [...(r.match.headers ?? []), ...(r.match.query ?? [])].forEach((h) => {
      const forms = [h.exact, h.prefix, h.regex, h.present].filter((x) => x !== undefined).length;
      if (forms > 1) invalid('routes', key, 'match', `matcher for '${h.name}' sets more than one of exact, prefix, regex, present`);
    });
    if (r.auth) authErrors(r.auth.accept, 'routes', key, 'auth.accept', product, m, mtlsGroups, invalid);
    // Two routes with the same match on the same host of one gateway group: Envoy would only ever use the first.
    for (const group of product.gatewayGroups) {
      for (const host of product.hosts ?? ['*']) {
        const sig = matchSignature(group, host, product, r);
        const other = seenMatch.get(sig);
        if (other && other !== key) {
          conflict('routes', key, 'match', `route '${other}' already matches ${describeMatch(product, r)} on host '${host}' in gateway group '${group}'`);
        } else seenMatch.set(sig, key);
      }
    }
  }

  // plans
  for (const p of sortedValues(m, 'plans')) {
    countByErrors(p.countBy, 'plans', p.name, 'countBy', invalid);
    const seen = new Set<string>();
    p.overrides?.forEach((o, i) => {
      const f = `overrides[${i}]`;
      ref('plans', p.name, `${f}.product`, 'products', o.product);
      if (m.products.has(o.product)) ref('plans', p.name, `${f}.route`, 'routes', `${o.product}/${o.route}`);
      if (seen.has(`${o.product}/${o.route}`)) conflict('plans', p.name, f, `route '${o.product}/${o.route}' is overridden twice`);
      seen.add(`${o.product}/${o.route}`);
      countByErrors(o.countBy, 'plans', p.name, `${f}.countBy`, invalid);
    });
    for (const [field, list] of [
      ['limits', p.limits],
      ['quotas', p.quotas],
    ] as const) {
      const pers = (list ?? []).map((l) => l.per);
      if (new Set(pers).size !== pers.length) invalid('plans', p.name, field, 'has two entries for the same period');
    }
  }

  // subscriptions
  for (const s of sortedValues(m, 'subscriptions')) {
    const key = `${s.partner}/${s.product}`;
    ref('subscriptions', key, 'partner', 'partners', s.partner);
    ref('subscriptions', key, 'product', 'products', s.product);
    ref('subscriptions', key, 'plan', 'plans', s.plan);
    if (m.products.has(s.product)) {
      s.access?.routes?.forEach((r, i) => ref('subscriptions', key, `access.routes[${i}]`, 'routes', `${s.product}/${r}`));
    }
  }

  // API keys: the prefix is how a presented key is found, so it must be unique.
  const prefixes = new Map<string, string>();
  for (const k of sortedValues(m, 'apiKeys')) {
    const key = `${k.partner}/${k.name}`;
    ref('apiKeys', key, 'partner', 'partners', k.partner);
    const other = prefixes.get(k.prefix);
    if (other) conflict('apiKeys', key, 'prefix', `prefix '${k.prefix}' is already used by API key '${other}'`);
    prefixes.set(k.prefix, key);
  }

  // mTLS identities
  const identities = new Map<string, string>();
  for (const i of sortedValues(m, 'mtlsIdentities')) {
    const key = `${i.partner}/${i.name}`;
    ref('mtlsIdentities', key, 'partner', 'partners', i.partner);
    const sig = `${i.match.type}:${i.match.type === 'fingerprint' ? normalizeFingerprint(i.match.value) : i.match.value}`;
    const other = identities.get(sig);
    if (other) conflict('mtlsIdentities', key, 'match', `the same ${i.match.type} already identifies '${other}'`);
    identities.set(sig, key);
    if (i.match.type === 'fingerprint' && !/^[0-9a-f]{64}$/.test(normalizeFingerprint(i.match.value))) {
      invalid('mtlsIdentities', key, 'match.value', 'must be a SHA-256 fingerprint (64 hex digits, colons allowed)');
    }
  }
  return errors;
}

function authErrors(
  accept: readonly string[],
  kind: KindName,
  key: string,
  field: string,
  product: Product,
  m: ModelSnapshot,
  mtlsGroups: ReadonlySet<string>,
  invalid: (kind: KindName, key: string, field: string, message: string) => void,
): void {
  if (accept.includes('none') && accept.length > 1) invalid(kind, key, field, "'none' cannot be combined with other credential types");
  if (accept.includes('mtls')) {
    for (const g of product.gatewayGroups) {
      if (m.gatewayGroups.has(g) && !mtlsGroups.has(g)) {
        invalid(kind, key, field, `accepts mtls but gateway group '${g}' has no listener with tls.clientCa`);
      }
    }
  }
}

function countByErrors(
  countBy: { kind: string; header?: string } | undefined,
  kind: KindName,
  key: string,
  field: string,
  invalid: (kind: KindName, key: string, field: string, message: string) => void,
): void {
  if (!countBy) return;
  if (countBy.kind === 'header' && !countBy.header) invalid(kind, key, `${field}.header`, "is required when kind is 'header'");
  if (countBy.kind !== 'header' && countBy.header) invalid(kind, key, `${field}.header`, "is only allowed when kind is 'header'");
}

export function normalizeFingerprint(v: string): string {
  return v.replace(/:/g, '').toLowerCase();
}

export function isIpLiteral(host: string): boolean {
  return /^(\d{1,3}\.){3}\d{1,3}$/.test(host) || (host.includes(':') && /^\[?[0-9A-Fa-f:.]+\]?$/.test(host));
}

export function serviceDiscovery(s: { discovery?: 'static' | 'dns'; endpoints: ReadonlyArray<{ host: string }> }): 'static' | 'dns' {
  return s.discovery ?? (s.endpoints.every((e) => isIpLiteral(e.host)) ? 'static' : 'dns');
}

/**
 * The path a route matches including its product's base path. A prefix '/' under base path '/api'
 * is '/api' on a segment boundary (matching '/api' and '/api/…'), '/api/' without one.
 */
export function fullPath(product: Pick<Product, 'basePath'>, route: Pick<Route, 'match'>): string {
  const base = (product.basePath ?? '').replace(/\/+$/, '');
  const path = route.match.path;
  const v = path.value;
  if (path.type === 'regex') return base ? `${escapeRegex(base)}${v.replace(/^\^/, '')}` : v;
  if (!base) return v;
  if (v === '/' && path.type === 'prefix') return path.segmentBoundary === false ? `${base}/` : base;
  return `${base}${v}`;
}

/**
 * A prefix match that ends at a path segment boundary (Envoy's path_separated_prefix): the full
 * path '/api/orders' matches '/api/orders' and '/api/orders/…', never '/api/ordersXYZ'. The default
 * for prefixes; a full path ending in '/' (and '/' itself) is on a boundary already and stays a plain prefix.
 */
export function segmentPrefix(product: Pick<Product, 'basePath'>, route: Pick<Route, 'match'>): boolean {
  if (route.match.path.type !== 'prefix' || route.match.path.segmentBoundary === false) return false;
  return !fullPath(product, route).endsWith('/');
}

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const TEMPLATE_SEGMENT = /^(\*\*?|\{[A-Za-z_][A-Za-z0-9_]*(=\*\*?)?\}|[A-Za-z0-9._~!$&'()+,;=:@%-]+)$/;

function pathMatchProblem(r: Route): string | undefined {
  const { type, value } = r.match.path;
  if (type === 'regex') return re2Problem(value);
  if (!value.startsWith('/')) return 'must start with /';
  if (/[\s?#]/.test(value)) return 'must not contain spaces, ? or #';
  if (type === 'template') {
    const segments = value.slice(1).split('/');
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i]!;
      if (!TEMPLATE_SEGMENT.test(s)) return `segment '${s}' is not a literal, *, **, {name}, {name=*} or {name=**}`;
      if ((s === '**' || s.endsWith('=**}')) && i !== segments.length - 1) return '** may only appear in the last segment';
    }
  }
  return undefined;
}

function matchSignature(group: string, host: string, product: Product, r: Route): string {
  const norm = (xs?: ReadonlyArray<{ name: string }>) => JSON.stringify([...(xs ?? [])].map((x) => ({ ...x, name: x.name.toLowerCase() })).sort((a, b) => (a.name < b.name ? -1 : 1)));
  return JSON.stringify([
    group,
    host.toLowerCase(),
    segmentPrefix(product, r) ? 'segment_prefix' : r.match.path.type,
    fullPath(product, r),
    [...(r.match.methods ?? [])].sort(),
    norm(r.match.headers),
    norm(r.match.query),
  ]);
}

function describeMatch(product: Product, r: Route): string {
  const methods = r.match.methods?.length ? `${[...r.match.methods].sort().join('|')} ` : '';
  return `${methods}${r.match.path.type} '${fullPath(product, r)}'`;
}

/**
 * Envoy's cache filter sends a miss straight to the route's cluster, past the router: what only the
 * router does (path and host rewrites, the route's request headers) would not happen on a miss, and
 * a route answered by Envoy itself or by the flow runtime has nothing to cache.
 */
function cacheConflict(r: Route): string | undefined {
  if (!r.service && !r.backends) return 'caches routes sent to a service or backends (not direct responses or flows)';
  const clash = (['rewrite', 'requestHeaders', 'transform', 'transcode', 'grpcWeb'] as const).find((f) => r[f] !== undefined && r[f] !== false);
  return clash ? `cannot be combined with ${clash}: a cache miss goes to the service without the router's rewrites and request headers` : undefined;
}
