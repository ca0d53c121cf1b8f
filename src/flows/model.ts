// The flows of one model snapshot: every route answered by a flow or carrying a body transform,
// compiled once per route version. The store's write gate uses the errors (naming route, step and
// field); the runtime uses the compiled flows, keyed by `product/route`.
import { fullPath, nativeFlowIdentity, nativeFlowPlan, runsInEnvoy, sortedValues, type ModelError, type ModelSnapshot, type Route, type Service } from '../model/index.ts';
import { compileFlow, DEFAULTS, type FlowError } from './compile.ts';
import { compileRouteTransform } from './route-transform.ts';
import type { CompiledFlow } from './types.ts';

export interface RouteFlow {
  /** `product/route`: what Envoy names in the x-portico-flow header. */
  readonly key: string;
  readonly product: string;
  readonly route: string;
  readonly kind: 'flow' | 'transform';
  readonly flow: CompiledFlow;
  /** Path parameters of a template route, from the request path; undefined when it does not match. */
  readonly params?: (path: string) => Record<string, string> | undefined;
  /**
   * The JWT claims this route's callers can have, each with the headers its product's issuers forward
   * it in (lower-case): what the flow reads as identity.claims. A header two of the product's issuers
   * fill with different claims is left out (it cannot say which claim it carries).
   */
  readonly claimHeaders: ReadonlyArray<readonly [claim: string, headers: readonly string[]]>;
}

export interface ModelFlows {
  readonly routes: ReadonlyMap<string, RouteFlow>;
  readonly errors: ModelError[];
}

export interface ModelFlowOptions {
  /** Why a code step's source does not compile (the sandbox's check); unchecked when unset. */
  checkCode?: (source: string) => string | undefined;
  /**
   * Why flows cannot run in Envoy here (the flows Wasm module was not found), or undefined when they
   * can; unchecked when the option is absent (the runtime's own compilation).
   */
  envoyExecution?: { unavailable?: string };
}

/** Whether a route runs in the flow runtime (Envoy sends it there instead of to a service). */
export function isFlowRoute(route: Pick<Route, 'flow' | 'transform'>): boolean {
  return route.flow !== undefined || route.transform !== undefined;
}

interface Cached {
  /** What besides the route the compilation depended on. */
  context: string;
  result: { ok: true; flow: CompiledFlow } | { ok: false; errors: FlowError[] };
}
// Snapshots share unchanged resource objects: a route is compiled again only when it (or the set of services, or its path) changes.
const cache = new WeakMap<Route, Cached>();

export function compileModelFlows(model: ModelSnapshot, opts: ModelFlowOptions = {}): ModelFlows {
  const services = new Set(model.services.keys());
  const servicesKey = [...services].sort().join(',');
  // Flows run by Envoy also depend on which services have retries (they are refused there).
  let retried: string | undefined;
  const retriedKey = () =>
    (retried ??= [...model.services.values()]
      .filter((s) => retriesProblem(s))
      .map((s) => s.name)
      .sort()
      .join(','));
  const routes = new Map<string, RouteFlow>();
  const errors: ModelError[] = [];
  for (const r of sortedValues(model, 'routes')) {
    if (!isFlowRoute(r)) continue;
    const key = `${r.product}/${r.name}`;
    const product = model.products.get(r.product);
    const path = product ? fullPath(product, r) : r.match.path.value;
    const context = `${servicesKey}|${runsInEnvoy(r.flow) ? `${retriedKey()}|${opts.envoyExecution?.unavailable ?? ''}|${identityKey(model, r)}` : ''}|${path}|${r.timeoutMs ?? ''}|${r.service ? (model.services.get(r.service)?.requestTimeoutMs ?? '') : ''}`;
    let c = cache.get(r);
    if (!c || c.context !== context) {
      c = { context, result: compileRoute(model, r, services, opts) };
      cache.set(r, c);
    }
    if (!c.result.ok) {
      for (const e of c.result.errors) {
        errors.push({ kind: 'routes', key, field: e.field, message: e.message, code: e.code, ...(e.target ? { target: e.target } : {}) });
      }
      continue;
    }
    const params = r.flow && r.match.path.type === 'template' ? templateMatcher(path) : undefined;
    // Per route, from its product's issuers: one map across all issuers let another product's issuer
    // decide which claim a shared header name carries.
    const claimHeaders = [...(nativeFlowIdentity(model, r).claims ?? [])];
    routes.set(key, { key, product: r.product, route: r.name, kind: r.flow ? 'flow' : 'transform', flow: c.result.flow, claimHeaders, ...(params ? { params } : {}) });
  }
  return { routes, errors };
}

function compileRoute(model: ModelSnapshot, r: Route, services: ReadonlySet<string>, opts: ModelFlowOptions): Cached['result'] {
  if (r.flow) {
    // A flow builds its own calls: the route's rewrite and transform have nothing to act on.
    const extra: FlowError[] = [];
    if (r.rewrite) extra.push({ field: 'rewrite', message: 'does not apply to a flow (its calls name their own paths)', code: 'invalid' });
    if (runsInEnvoy(r.flow)) {
      // Checked here, at write time, so a flow Envoy cannot run never reaches Envoy's config.
      const why = opts.envoyExecution?.unavailable;
      if (why !== undefined) extra.push({ field: 'flow.execution', message: `envoy is unavailable: ${why}`, code: 'invalid' });
      const native = nativeFlowPlan(r.flow, 'flow', { serviceProblem: (name) => retriesProblem(model.services.get(name)), identity: nativeFlowIdentity(model, r) });
      if (!native.ok) for (const e of native.errors) extra.push({ ...e, code: 'invalid' });
    }
    const result = compileFlow(r.flow, { prefix: 'flow', services, ...(opts.checkCode ? { checkCode: opts.checkCode } : {}) });
    if (extra.length) return { ok: false, errors: [...extra, ...(result.ok ? [] : result.errors)] };
    return result;
  }
  const service = r.service ?? '';
  const timeoutMs = r.timeoutMs ?? model.services.get(service)?.requestTimeoutMs ?? DEFAULTS.callTimeoutMs;
  return compileRouteTransform(service, r.transform!, { prefix: 'transform', timeoutMs });
}

/** What an Envoy-run flow's check depends on of the route's identity (its claims, or why it has none). */
function identityKey(model: ModelSnapshot, r: Route): string {
  const id = nativeFlowIdentity(model, r);
  return id.claims ? JSON.stringify([[...id.claims], [...(id.ambiguous ?? [])]]) : (id.noClaims ?? '');
}

/** Envoy's calls from the flows filter have no route, so no retry policy: a service's retries would be silently dropped. */
function retriesProblem(s: Service | undefined): string | undefined {
  return s?.retries && s.retries.attempts > 0 ? `service ${s.name} has retries, which Envoy's calls from a flow do not apply; run this flow in the runtime` : undefined;
}

/** Path parameters of a URI template ({name}, {name=*}, {name=**}, * and ** segments), as Envoy's uri_template matches them. */
export function templateMatcher(template: string): (path: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const parts = template
    .split('/')
    .slice(1)
    .map((seg) => {
      const v = /^\{([A-Za-z_][A-Za-z0-9_]*)(=\*\*?)?\}$/.exec(seg);
      if (v) {
        names.push(v[1]!);
        return v[2] === '=**' ? '(.*)' : '([^/]+)';
      }
      if (seg === '**') return '.*';
      if (seg === '*') return '[^/]+';
      return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    });
  const re = new RegExp(`^/${parts.join('/')}$`);
  return (path) => {
    const m = re.exec(path);
    if (!m) return undefined;
    const out: Record<string, string> = {};
    names.forEach((n, i) => {
      const raw = m[i + 1] ?? '';
      try {
        out[n] = decodeURIComponent(raw);
      } catch {
        out[n] = raw;
      }
    });
    return out;
  };
}
