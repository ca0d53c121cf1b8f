// The translator's part of the validation gate: what the schemas and validateModel accept but the
// translator cannot express, or Envoy would refuse, named by resource and field.
import { sortedValues, fullPath, serviceDiscovery, MAX_NATIVE_LIMIT_SHAPES, type ModelSnapshot, type ModelError, type HeaderMutation, type Product, type Route } from '../model/index.ts';
import { templateSegments, templateVariables } from './paths.ts';
import { apiKeyCountProblems } from './to-ir/limits.ts';
import { effectiveAccept, groupProducts, productRoutes } from './to-ir/common.ts';
import { nativeLimits } from './to-ir/native-limits.ts';
import { GRPC_RETRY_ON, proxylessGroupsOf } from './to-ir/proxyless.ts';

/** Envoy's URI template limits (uri_template_matcher). */
const TEMPLATE_MAX_LENGTH = 256;
const TEMPLATE_MAX_VARIABLES = 5;
const TEMPLATE_MAX_VARIABLE_NAME = 16;
/** One segment of an Envoy URI template: a literal, *, **, {name}, {name=*} or {name=**}. */
const TEMPLATE_SEGMENT = /^(\*\*?|\{[A-Za-z_][A-Za-z0-9_]*(=\*\*?)?\}|[A-Za-z0-9._~!$&'()+,;=:@%-]+)$/;

export function validateTranslation(model: ModelSnapshot): ModelError[] {
  const errors: ModelError[] = [];
  const invalid = (kind: ModelError['kind'], key: string, field: string, message: string) => errors.push({ kind, key, field, code: 'invalid', message });

  for (const g of sortedValues(model, 'gatewayGroups')) {
    // A group that states native mode must be able to count its plans natively; unstated, the products it cannot count fall back to combined (src/model/modes.ts).
    if (g.kind !== 'proxyless-grpc' && g.rateLimit?.mode === 'native') {
      const products = groupProducts(model, g.name);
      for (const plan of exactPlans(model, products)) {
        invalid('plans', plan, 'exact', `gateway group '${g.name}' states rateLimit.mode native: remove exact here, or give the group combined or service mode`);
      }
      const native = nativeLimits(model, products, 1);
      for (const plan of native.uncountableQuotas) {
        invalid(
          'plans',
          plan,
          'quotas',
          `gateway group '${g.name}' counts natively, from access logs that name the partner and route only: count this plan's quotas by partner (subscribers) or route, or use combined or service mode`,
        );
      }
      const shapes = native.tooManyShapes;
      if (shapes !== undefined) {
        invalid(
          'gatewayGroups',
          g.name,
          'rateLimit.mode',
          `native mode enforces at most ${MAX_NATIVE_LIMIT_SHAPES} distinct limits (requests, per, burst) per gateway group; its plans have ${shapes}: align plan limits, or use combined or service mode`,
        );
      }
    }
    (g.listeners ?? []).forEach((l, i) => {
      (l.hostnames ?? []).forEach((h, j) => {
        if ((l.protocol ?? 'http') !== 'https') {
          invalid('gatewayGroups', g.name, `listeners[${i}].hostnames[${j}]`, 'hostnames select the certificate by SNI, so they need protocol https');
        } else if (/:\d+$/.test(h)) {
          invalid('gatewayGroups', g.name, `listeners[${i}].hostnames[${j}]`, 'an SNI name cannot carry a port');
        }
      });
    });
  }

  for (const s of sortedValues(model, 'services')) {
    const sni = s.tls?.sni;
    if (sni !== undefined && (sni.includes('*') || /:\d+$/.test(sni))) {
      invalid('services', s.name, 'tls.sni', 'must be a plain DNS name (no wildcard, no port)');
    }
  }

  for (const p of sortedValues(model, 'products')) {
    (p.hosts ?? []).forEach((h, i) => {
      if (/:\d+$/.test(h)) invalid('products', p.name, `hosts[${i}]`, 'hosts are matched without their port; remove the port');
    });
    p.cors?.allowOrigins.forEach((o, i) => {
      if (o !== '*' && o.includes('*')) invalid('products', p.name, `cors.allowOrigins[${i}]`, "wildcards are not supported in origins; list each origin, or use '*' alone");
    });
  }

  errors.push(...proxylessProblems(model));

  // Nothing can count by a header the gateway removes before counting (and keys must never become counter keys).
  for (const p of apiKeyCountProblems(model)) {
    invalid('plans', p.plan, p.field, `'${p.header}' carries API keys for product '${p.product}': the gateway removes it before limits are counted; count by partner instead`);
  }

  for (const r of sortedValues(model, 'routes')) {
    const product = model.products.get(r.product);
    // Copies: a caller may extend its errors, and the cached ones outlive this call.
    if (product) for (const e of routeErrors(r, product)) errors.push({ ...e });
  }
  for (const p of sortedValues(model, 'products')) {
    for (const [field, m] of [
      ['requestHeaders', p.requestHeaders],
      ['responseHeaders', p.responseHeaders],
    ] as const) {
      for (const f of hostMutations(m)) invalid('products', p.name, `${field}.${f}`, "the host header cannot be changed by header rules; use a route's rewrite.host");
    }
  }
  return errors;
}

// A route's own problems read only the route and its product (full path): kept per route object while
// its product is the same object, so a one-route change re-checks one route, not every route.
const routeChecked = new WeakMap<Route, { product: Product; errors: readonly ModelError[] }>();
const NO_ERRORS: readonly ModelError[] = Object.freeze([]);

function routeErrors(r: Route, product: Product): readonly ModelError[] {
  const known = routeChecked.get(r);
  if (known?.product === product) return known.errors;
  const errors: ModelError[] = [];
  const key = `${r.product}/${r.name}`;
  const invalid = (field: string, message: string) => errors.push({ kind: 'routes', key, field, code: 'invalid', message });
  if (r.match.path.type === 'template') {
    const problem = templateProblem(fullPath(product, r));
    if (problem) invalid('match.path.value', problem);
  }
  r.match.query?.forEach((q, i) => {
    const presence = q.exact === undefined && q.prefix === undefined && q.regex === undefined;
    if (q.invert && !presence) invalid(`match.query[${i}].invert`, 'Envoy cannot invert a query value match (only presence)');
  });
  for (const [field, m] of [
    ['requestHeaders', r.requestHeaders],
    ['responseHeaders', r.responseHeaders],
  ] as const) {
    for (const f of hostMutations(m)) invalid(`${field}.${f}`, 'the host header cannot be changed by header rules; use rewrite.host');
  }
  // Almost every route has none: one shared empty list instead of 10k.
  const kept = errors.length > 0 ? errors : NO_ERRORS;
  routeChecked.set(r, { product, errors: kept });
  return kept;
}

/** Plans with exact: true subscribed to (or public on) one of these products. */
function exactPlans(model: ModelSnapshot, products: readonly { name: string; publicPlan?: string }[]): string[] {
  const names = new Set(products.map((p) => p.name));
  const plans = new Set<string>(products.flatMap((p) => (p.publicPlan !== undefined ? [p.publicPlan] : [])));
  for (const s of model.subscriptions.values()) if (names.has(s.product)) plans.add(s.plan);
  return [...plans].filter((p) => model.plans.get(p)?.exact === true).sort();
}

function hostMutations(m: HeaderMutation | undefined): string[] {
  if (!m) return [];
  const out: string[] = [];
  for (const op of ['set', 'add'] as const) for (const name of Object.keys(m[op] ?? {})) if (name.toLowerCase() === 'host') out.push(`${op}.${name}`);
  (m.remove ?? []).forEach((name, i) => {
    if (name.toLowerCase() === 'host') out.push(`remove[${i}]`);
  });
  for (const [from, to] of Object.entries(m.rename ?? {})) if (from.toLowerCase() === 'host' || to.toLowerCase() === 'host') out.push(`rename.${from}`);
  return out;
}

/** Why Envoy would refuse a URI template (checked on the full path, base path included). */
export function templateProblem(template: string): string | undefined {
  if (template.length > TEMPLATE_MAX_LENGTH) return `with the base path the template is ${template.length} characters; Envoy allows ${TEMPLATE_MAX_LENGTH}`;
  const segments = templateSegments(template);
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (!TEMPLATE_SEGMENT.test(s)) return `segment '${s}' of '${template}' is not a literal, *, **, {name}, {name=*} or {name=**}`;
    if ((s === '**' || s.endsWith('=**}')) && i !== segments.length - 1) return `** may only appear in the last segment of '${template}'`;
  }
  const vars = templateVariables(template);
  if (vars.length > TEMPLATE_MAX_VARIABLES) return `binds ${vars.length} variables; Envoy allows ${TEMPLATE_MAX_VARIABLES}`;
  const long = vars.find((v) => v.length > TEMPLATE_MAX_VARIABLE_NAME);
  if (long) return `variable name '${long}' is longer than ${TEMPLATE_MAX_VARIABLE_NAME} characters`;
  const dup = vars.find((v, i) => vars.indexOf(v) !== i);
  if (dup) return `variable '${dup}' is bound twice`;
  return undefined;
}

/** Load-balancing policies gRPC clients implement. */
const GRPC_LB_POLICIES = new Set(['round_robin', 'ring_hash']);

/**
 * What proxyless gRPC clients cannot do, for products a proxyless-grpc group serves: they dial
 * `xds:///<host>` (so exact hosts are needed), call no ext_authz or rate-limit service, send every
 * RPC as POST without a query string, refuse direct responses and URI templates, never rewrite or
 * add headers, only read gRPC retry conditions, and take endpoints from EDS only. A product in an
 * Envoy group too must satisfy both. Ignored by gRPC and so not refused: services' connect timeouts
 * and health checks (clients do no active health checking), the group's authz/rateLimit settings;
 * plans and subscriptions do not apply to such products.
 */
function proxylessProblems(model: ModelSnapshot): ModelError[] {
  const errors: ModelError[] = [];
  const invalid = (kind: ModelError['kind'], key: string, field: string, message: string) => errors.push({ kind, key, field, code: 'invalid', message });
  for (const g of sortedValues(model, 'gatewayGroups')) {
    if (g.kind === 'proxyless-grpc' && g.localRateLimit) invalid('gatewayGroups', g.name, 'localRateLimit', 'proxyless gRPC clients do not enforce local rate limits');
  }
  const services = new Map<string, { group: string; route: string }>();
  for (const p of sortedValues(model, 'products')) {
    const groups = proxylessGroupsOf(model, p);
    if (groups.length === 0) continue;
    const group = groups[0]!.name;
    const why = `proxyless-grpc gateway group '${group}'`;
    if (!p.hosts || p.hosts.length === 0) invalid('products', p.name, 'hosts', `is required in ${why}: gRPC clients dial xds:///<host>`);
    (p.hosts ?? []).forEach((h, i) => {
      if (h.includes('*')) invalid('products', p.name, `hosts[${i}]`, `must be an exact host in ${why}: gRPC clients dial xds:///<host>, which names one listener`);
    });
    if (p.cors) invalid('products', p.name, 'cors', `is not supported in ${why}: gRPC clients make no CORS requests`);
    if (p.publicPlan) invalid('products', p.name, 'publicPlan', `is not supported in ${why}: gRPC clients do not call the rate-limit service`);
    if (p.requestHeaders) invalid('products', p.name, 'requestHeaders', `is not supported in ${why}: gRPC clients do not apply header rules`);
    if (p.responseHeaders) invalid('products', p.name, 'responseHeaders', `is not supported in ${why}: gRPC clients do not apply header rules`);
    if (p.compression) invalid('products', p.name, 'compression', `is not supported in ${why}: gRPC clients compress messages themselves`);
    let productAuthReported = false;
    for (const r of productRoutes(model, p.name)) {
      const key = `${p.name}/${r.name}`;
      const rf = (field: string, message: string) => invalid('routes', key, field, message);
      if (effectiveAccept(p, r).some((a) => a !== 'none')) {
        const msg = `must be [none] in ${why}: gRPC clients do not call ext_authz, so the upstream has to authenticate callers itself`;
        if (r.auth) rf('auth.accept', msg);
        else if (!productAuthReported) {
          productAuthReported = true;
          invalid('products', p.name, 'auth.accept', p.auth ? msg : `${msg} (unset, it defaults to [api_key, jwt])`);
        }
      }
      routeProblems(r, why, rf);
      if (r.flow) rf('flow', `is not supported in ${why}: gRPC clients call services directly, with no flow runtime in between`);
      if (r.transform) rf('transform', `is not supported in ${why}: gRPC clients call services directly, with no flow runtime in between`);
      for (const s of [r.service, ...(r.backends ?? []).map((b) => b.service)]) if (s && !services.has(s)) services.set(s, { group, route: key });
    }
  }
  for (const [name, use] of [...services].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const s = model.services.get(name);
    if (!s) continue;
    const why = `the service is used by route '${use.route}' in proxyless-grpc gateway group '${use.group}'`;
    if (serviceDiscovery(s) === 'dns') {
      invalid('services', name, 'endpoints', `must be IP addresses (static discovery): ${why}, whose clients take endpoints from EDS only`);
    }
    if (s.lbPolicy && !GRPC_LB_POLICIES.has(s.lbPolicy)) invalid('services', name, 'lbPolicy', `must be round_robin or ring_hash: ${why}, whose clients implement only those`);
    if (s.tls) invalid('services', name, 'tls', `is not supported: ${why}, whose clients take TLS settings from their own bootstrap, not from SDS`);
  }
  return errors;
}

function routeProblems(r: Route, why: string, rf: (field: string, message: string) => void): void {
  if (r.match.methods) rf('match.methods', `is not supported in ${why}: every gRPC call is a POST and gRPC clients cannot match on the method`);
  if (r.match.query?.length) rf('match.query', `is not supported in ${why}: gRPC calls have no query string`);
  if (r.match.path.type === 'template') rf('match.path.type', `template is not supported in ${why}: use prefix, exact or regex`);
  r.match.headers?.forEach((h, i) => {
    const n = h.name.toLowerCase();
    if (n === 'host' || n.startsWith(':') || n.endsWith('-bin')) rf(`match.headers[${i}].name`, `gRPC clients cannot match on '${h.name}' in ${why}`);
  });
  if (r.directResponse) rf('directResponse', `is not supported in ${why}: gRPC clients refuse route tables with direct responses`);
  if (r.rewrite) rf('rewrite', `is not supported in ${why}: gRPC clients do not rewrite paths or hosts`);
  if (r.requestHeaders) rf('requestHeaders', `is not supported in ${why}: gRPC clients do not apply header rules`);
  if (r.responseHeaders) rf('responseHeaders', `is not supported in ${why}: gRPC clients do not apply header rules`);
  if (r.localRateLimit) rf('localRateLimit', `is not supported in ${why}: gRPC clients do not enforce local rate limits`);
  if (r.compression) rf('compression', `is not supported in ${why}: gRPC clients compress messages themselves`);
  if (r.retries && r.retries.attempts > 0) {
    const bad = (r.retries.retryOn ?? []).filter((c) => !GRPC_RETRY_ON.includes(c));
    if (!r.retries.retryOn) rf('retries.retryOn', `is required in ${why}: list the gRPC conditions (${GRPC_RETRY_ON.join(', ')})`);
    else if (bad.length) rf('retries.retryOn', `${bad.join(', ')} mean nothing to gRPC clients in ${why}; use ${GRPC_RETRY_ON.join(', ')}`);
    if (r.retries.retriableStatusCodes) rf('retries.retriableStatusCodes', `is not supported in ${why}: gRPC clients retry on gRPC status codes only`);
  }
}
