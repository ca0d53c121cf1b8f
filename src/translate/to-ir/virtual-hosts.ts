// Model → IR for an Envoy group's virtual hosts: every product route placed under each host that
// claims it, most specific first, with the gateway's 405 fallbacks, CORS preflights and 404 catch-all.
import type { ModelSnapshot, Product, Route } from '../../model/index.ts';
import { NOT_FOUND_BODY, NOT_FOUND_ROUTE, methodNotAllowedBody } from '../../contract/index.ts';
import type { CorsIR, HeaderMatchIR, RouteIR, VirtualHostIR } from '../ir.ts';
import { compareRoutes, samePath, type RouteOrderKey } from '../paths.ts';
import { CALLOUT_CLUSTER, DEFAULTS, sortMethods, productRoutes, productHosts, hostCovers, compareDomains } from './common.ts';
import { emptyMutation, routeIr, gatewayResponse, type RouteFilters } from './routes.ts';
import type { EmitMemo } from '../memo.ts';

/** Reuse across translations: the caller's memo, the group (a product's IR differs per group) and a digest of what the group's routes share. */
export interface IrReuse {
  memo: EmitMemo;
  group: string;
  /** Everything `filters` holds besides each route's plan limits and quota refusals, as one string. */
  context: string;
}

export interface PlacedRoute {
  ir: RouteIR;
  key: RouteOrderKey;
}

export function orderKey(ir: RouteIR, hostRank: number): RouteOrderKey {
  const m = ir.match;
  return {
    path: m.path,
    constraints: (m.methods ? 1 : 0) + m.headers.length + m.query.length,
    methodCount: m.methods ? m.methods.length : Infinity,
    hostRank,
    name: ir.name,
  };
}

/**
 * Orders a virtual host's routes most-specific-first, adds a 405 fallback after each path whose
 * routes all restrict methods, and ends with the 404 catch-all. `shared` keeps one object per
 * generated route across the virtual hosts of a group (they repeat the same paths).
 */
export function orderVirtualHostRoutes(placed: readonly PlacedRoute[], withAuthz: boolean, shared = new Map<string, RouteIR>(), reuse?: IrReuse): RouteIR[] {
  // Across translations too: a generated route reads only the routes on its path (the same objects while unchanged).
  // Kept on the first route of the path (kind: '405', 'preflight'); the 404 by its key.
  const once = (key: string, make: () => RouteIR, from: readonly RouteIR[] = [], kind?: string): RouteIR => {
    let r = shared.get(key);
    if (r) return r;
    const derive = () => sharedParts(make(), reuse!.memo);
    if (!reuse) r = make();
    else if (kind && from[0]) r = reuse.memo.reuseFor('generated route', `${reuse.group}\n${withAuthz}\n${kind}`, from[0], from, derive);
    else r = reuse.memo.reuse('generated route', `${reuse.group}\n${withAuthz}\n${key}`, from, derive);
    shared.set(key, r);
    return r;
  };
  const sorted = [...placed].sort((a, b) => compareRoutes(a.key, b.key));
  const out: RouteIR[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j < sorted.length && samePath(sorted[j]!.key.path, sorted[i]!.key.path)) j++;
    const samePathRoutes = sorted.slice(i, j).map((p) => p.ir);
    const id = JSON.stringify(samePathRoutes.map((r) => r.name).concat(samePathRoutes[0]!.match.path.kind, samePathRoutes[0]!.match.path.value));
    const restricted = samePathRoutes.filter((r) => r.match.methods);
    const catchesAll = samePathRoutes.some((r) => !r.match.methods && r.match.headers.length === 0 && r.match.query.length === 0);
    const fallback = restricted.length > 0 && !catchesAll;
    // Envoy's CORS filter skips direct responses, so their preflights (and those that would hit
    // the 405 fallback) need a forwarding route of their own; the filter answers them itself.
    const cors = samePathRoutes.find((r) => r.cors)?.cors;
    if (cors && (fallback || samePathRoutes.some((r) => r.action.kind === 'direct')))
      out.push(once(`preflight ${id}`, () => corsPreflight(samePathRoutes, cors, withAuthz), samePathRoutes, 'preflight'));
    // A route's waived copies (JWT-excluded paths) go right before it: they take only requests it would have taken.
    for (const r of samePathRoutes) out.push(...(r.waived ?? []), r);
    if (fallback) out.push(once(`405 ${id}`, () => methodFallback(samePathRoutes, withAuthz), samePathRoutes, '405'));
    i = j;
  }
  out.push(once('404', () => gatewayResponse(NOT_FOUND_ROUTE, { kind: 'prefix', value: '/' }, 404, NOT_FOUND_BODY, [], withAuthz)));
  return out;
}

/** The product of gateway-generated routes, when all routes on the path belong to one. */
function singleProduct(routes: readonly RouteIR[]): { metadata: { product: string } } | Record<string, never> {
  const products = [...new Set(routes.map((r) => r.metadata?.product))];
  return products.length === 1 && products[0] !== undefined ? { metadata: { product: products[0] } } : {};
}

function methodFallback(routes: readonly RouteIR[], withAuthz: boolean): RouteIR {
  const allowed = sortMethods(routes.flatMap((r) => r.match.methods ?? []));
  const fallback = gatewayResponse('portico/method-not-allowed', routes[0]!.match.path, 405, methodNotAllowedBody(allowed), [['allow', allowed.join(', ')]], withAuthz);
  return { ...fallback, ...singleProduct(routes) };
}

/** Matches CORS preflights (OPTIONS with Origin and Access-Control-Request-Method) on one path. */
function corsPreflight(routes: readonly RouteIR[], cors: CorsIR, withAuthz: boolean): RouteIR {
  const forward = routes.find((r) => r.action.kind === 'forward')?.action;
  // Never contacted (the CORS filter answers every preflight), but a route needs a real cluster.
  const cluster = forward?.kind === 'forward' ? forward.clusters[0]!.name : CALLOUT_CLUSTER;
  const present = (name: string): HeaderMatchIR => ({ name, match: { kind: 'present', present: true }, invert: false });
  return {
    name: 'portico/cors-preflight',
    ...singleProduct(routes),
    match: { path: routes[0]!.match.path, methods: ['OPTIONS'], headers: [present('origin'), present('access-control-request-method')], query: [] },
    action: { kind: 'forward', clusters: [{ name: cluster, weight: 1 }], weighted: false, timeoutMs: DEFAULTS.requestTimeoutMs },
    requestHeaders: emptyMutation(),
    responseHeaders: emptyMutation(),
    cors,
    ...(withAuthz ? { authz: { disabled: true as const } } : {}),
  };
}

/** The virtual hosts of a group: one per named host (with the host-agnostic routes merged in), then `*`. */
/**
 * What a product's route IRs read besides the product and its routes, compared by identity: the
 * services they forward to, the model maps of plans, subscriptions, partners, issuers and mTLS
 * identities, the group's shared filter context, and each route's native limits (as text: they are
 * rebuilt on every translation).
 */
function productDeps(model: ModelSnapshot, p: Product, routes: readonly Route[], filters: RouteFilters, context: string): unknown[] {
  const deps: unknown[] = [p, context, filters.calloutProducts?.has(p.name) === true, model.plans, model.subscriptions, model.partners, model.jwtIssuers, model.mtlsIdentities, ...routes];
  let limits = '';
  for (const r of routes) {
    if (r.service !== undefined) deps.push(model.services.get(r.service));
    for (const b of r.backends ?? []) deps.push(model.services.get(b.service));
    const name = `${p.name}/${r.name}`;
    const planLimits = filters.planLimits?.get(name);
    const quotaDeny = filters.quotaDeny?.get(name);
    if (planLimits || quotaDeny) limits += `${JSON.stringify([name, planLimits, quotaDeny])}\n`;
  }
  deps.push(limits);
  return deps;
}

/** A product's routes as IR (in name order), derived again only when something they read changed. */
function productRouteIrs(model: ModelSnapshot, p: Product, filters: RouteFilters, reuse: IrReuse | undefined): readonly RouteIR[] {
  const routes = productRoutes(model, p.name);
  const make = () => routes.map((r) => routeIr(model, p, r, filters));
  return reuse ? reuse.memo.reuse('product routes', `${reuse.group}\n${p.name}`, productDeps(model, p, routes, filters, reuse.context), () => make().map((ir) => sharedParts(ir, reuse.memo))) : make();
}

/** A route IR kept across translations, its parts that repeat from route to route shared with equal ones (IR is never mutated). */
function sharedParts(ir: RouteIR, memo: EmitMemo): RouteIR {
  return {
    ...ir,
    action: memo.shared(ir.action),
    requestHeaders: memo.shared(ir.requestHeaders),
    responseHeaders: memo.shared(ir.responseHeaders),
    ...(ir.planLimits ? { planLimits: memo.shared(ir.planLimits) } : {}),
  };
}

export function virtualHostsIr(model: ModelSnapshot, products: readonly Product[], filters: RouteFilters, reuse?: IrReuse): VirtualHostIR[] {
  const withAuthz = true;
  // Every route once, in the order it takes in any virtual host (up to host specificity), so the
  // per-host sort below only has to move a few routes: a gateway has many hosts and many routes.
  const all = products
    .flatMap((p) => {
      const hosts = productHosts(p);
      return productRouteIrs(model, p, filters, reuse).map((ir) => ({ hosts, ir }));
    })
    .map((x) => ({ ...x, key: orderKey(x.ir, 0) }))
    .sort((a, b) => compareRoutes(a.key, b.key));
  const place = (domain: string | undefined): PlacedRoute[] => {
    const placed: PlacedRoute[] = [];
    for (const { hosts, ir } of all) {
      const claim = hosts === undefined ? 2 : domain === undefined ? -1 : hosts.includes(domain) ? 0 : hosts.some((h) => hostCovers(h, domain)) ? 1 : -1;
      if (claim >= 0) placed.push({ ir, key: orderKey(ir, claim) });
    }
    return placed;
  };
  const shared = new Map<string, RouteIR>();
  const domains = [...new Set(all.flatMap((x) => x.hosts ?? []))].sort(compareDomains);
  const hosts: VirtualHostIR[] = domains.map((domain) => ({ name: domain, domains: [domain], routes: orderVirtualHostRoutes(place(domain), withAuthz, shared, reuse) }));
  hosts.push({ name: 'any_host', domains: ['*'], routes: orderVirtualHostRoutes(place(undefined), withAuthz, shared, reuse) });
  return hosts;
}
