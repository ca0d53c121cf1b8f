// A flow marked `execution: envoy` as the plan the flows Wasm filter runs inside Envoy (flows-wasm/),
// or why it cannot: the write gate reports the reasons (naming step and field), the translator puts
// the plan in the filter's configuration. Pure, so both sides of the pipeline share one judgement.
import { FLOW_DEFAULTS, type FlowSpec, type FlowStepSpec } from './flow-schema.ts';
import { GATEWAY_HEADERS } from '../contract/index.ts';
import type { ModelSnapshot } from './model.ts';
import { authzModeOf } from './modes.ts';
import { effectiveAccept } from './policy.ts';
import type { Product, Route } from './schemas.ts';

/** One call the filter makes with Envoy's HTTP client, to the service's own cluster. */
export interface NativeFlowCall {
  name: string;
  service: string;
  /** Path template: text with {request.query.NAME} / {request.headers.NAME} / {request.identity.claims.NAME} parts. */
  path: string;
  /** [name, template] in the flow's order. */
  query: Array<[string, string]>;
  timeoutMs: number;
  /** Present under onError: continue (null when the flow gives none). */
  fallback?: unknown;
  pick?: string[];
  remove?: string[];
  rename?: Record<string, string>;
}

export interface NativeFlowPlan {
  calls: NativeFlowCall[];
  /** The reply object's keys in order, each the (reshaped) body of one call. */
  reply: Array<{ key: string; step: string }>;
  /**
   * The identity values the templates read (`claims.NAME`, `partner`, `plan`), each with the headers
   * that carry it (claim_to_headers, or ext_authz in callout mode): set by Envoy's authentication
   * before the filter, and stripped from callers first in the chain, so a caller cannot send one.
   */
  identity?: Array<[string, string[]]>;
}

/** What an Envoy-run flow may read of the caller's identity on its route. */
export interface NativeFlowIdentity {
  /** Claim → the (lower-case) headers the product's issuers forward it in; absent when the route takes no JWT. */
  claims?: ReadonlyMap<string, readonly string[]>;
  /** Why there are no claims (the route takes no JWT). */
  noClaims?: string;
  /** Claims that share a header with another claim of another issuer (the header alone cannot say which): claim → why. */
  ambiguous?: ReadonlyMap<string, string>;
  /** `partner` / `plan` → the header the callout sets it in, when the filter can read it; else `noGateway` says why. */
  gateway?: ReadonlyMap<string, string>;
  noGateway?: string;
}

export interface NativeFlowError {
  field: string;
  message: string;
}

export type NativeFlowResult = { ok: true; plan: NativeFlowPlan } | { ok: false; errors: NativeFlowError[] };

export interface NativeFlowOptions {
  /** Why Envoy's calls cannot honour a service's settings (e.g. its retries), or undefined. */
  serviceProblem?: (service: string) => string | undefined;
  /** The route's identity (nativeFlowIdentity); without it, templates cannot read identity. */
  identity?: NativeFlowIdentity;
}

/**
 * The claims a flow on the route can read, run by Envoy or by the runtime: those the product's JWT
 * issuers forward as headers (forwardClaims); none when the route takes no JWT.
 */
export function nativeFlowIdentity(model: ModelSnapshot, route: Route): NativeFlowIdentity {
  const product = model.products.get(route.product);
  const gateway = product ? gatewayIdentity(model, product, route) : { noGateway: 'the route has no product' };
  if (!product || !effectiveAccept(product, route).includes('jwt')) return { noClaims: 'this route takes no JWT, so its callers have no claims', ...gateway };
  const claims = new Map<string, string[]>();
  const carried = new Map<string, Set<string>>();
  const issuers = product.jwtIssuers ?? [...model.jwtIssuers.keys()];
  for (const name of [...issuers].sort()) {
    for (const [claim, header] of Object.entries(model.jwtIssuers.get(name)?.forwardClaims ?? {})) {
      const h = header.toLowerCase();
      const headers = claims.get(claim) ?? [];
      if (!headers.includes(h)) headers.push(h);
      claims.set(claim, headers);
      carried.set(h, (carried.get(h) ?? new Set()).add(claim));
    }
  }
  // One issuer's sub and another's email both in X-User-Id: a token of the second would pass its email as sub.
  const ambiguous = new Map<string, string>();
  for (const [claim, headers] of claims) {
    const shared = headers.find((h) => carried.get(h)!.size > 1);
    if (shared) ambiguous.set(claim, `the product's issuers forward different claims (${[...carried.get(shared)!].sort().join(', ')}) in ${shared}, so the header cannot say which`);
  }
  for (const claim of ambiguous.keys()) claims.delete(claim);
  return { claims, ...(ambiguous.size ? { ambiguous } : {}), ...gateway };
}

/**
 * Where the filter reads the partner and plan: only where every group of the product is in exact
 * mode and every caller authenticates. There the callout (ext_authz, before the filter) sets both;
 * in native mode some paths set them on the route, after the filter (payload partners, mTLS without
 * limits, plans from the access RBAC), so a flow would read them wrong.
 */
function gatewayIdentity(model: ModelSnapshot, product: Product, route: Route): Pick<NativeFlowIdentity, 'gateway' | 'noGateway'> {
  const native = product.gatewayGroups.filter((g) => authzModeOf(model.gatewayGroups.get(g) ?? {}) !== 'exact');
  if (native.length)
    return {
      noGateway: `gateway group ${native[0]} authorizes in native mode, where the partner and plan are not known before the router on every path (authz.mode exact has the callout set them first)`,
    };
  if (effectiveAccept(product, route).includes('none')) return { noGateway: 'the route takes anonymous callers, who have none' };
  return {
    gateway: new Map([
      ['partner', GATEWAY_HEADERS.partner],
      ['plan', GATEWAY_HEADERS.plan],
    ]),
  };
}

const TEMPLATE_PART = /\{([^{}]*)\}/g;
const REQUEST_VALUE = /^request\.(query|headers)\.[A-Za-z0-9_-]+$/;
const CLAIM_VALUE = /^request\.identity\.claims\.(.+)$/;
const STEP_BODY = /^\s*steps\.([A-Za-z_][A-Za-z0-9_]*)\.body\s*$/;
const REPLY_ENTRY = /^\s*"([^"\\]+)"\s*:\s*steps\.([A-Za-z_][A-Za-z0-9_]*)\.body\s*$/;
const WHAT_RUNS = 'Envoy runs parallel GET calls, transforms by pick/remove/rename of one call body, and a last respond of step bodies';

/** Whether a flow asks to run in Envoy. */
export function runsInEnvoy(flow: Pick<FlowSpec, 'execution'> | undefined): boolean {
  return flow?.execution === 'envoy';
}

/**
 * The plan for a flow the filter can run: call steps (top level or in one parallel group) that GET
 * with path and query templates reading only request.query, request.headers and the claims the
 * route's issuers forward (request.identity.claims.NAME), transforms that
 * reshape one call's body by top-level pick/remove/rename, and a last respond step whose body is an
 * object of step bodies with the default status and headers. Anything else is an error at its field
 * (`prefix` is the flow's field in its resource).
 */
export function nativeFlowPlan(flow: FlowSpec, prefix = 'flow', opts: NativeFlowOptions = {}): NativeFlowResult {
  const errors: NativeFlowError[] = [];
  const no = (field: string, message: string) => errors.push({ field, message: `${message} (${WHAT_RUNS})` });
  const calls = new Map<string, NativeFlowCall>();
  /** transform step → the call whose body it reshapes. */
  const transforms = new Map<string, string>();
  const flowTimeout = flow.timeoutMs ?? FLOW_DEFAULTS.flowTimeoutMs;
  const claims = new Map<string, string[]>();
  const readsClaim = (field: string, claim: string) => {
    const id = opts.identity;
    const headers = id?.claims?.get(claim);
    if (!/^[A-Za-z0-9_:-]+$/.test(claim)) no(field, `reads claim ${claim}: Envoy reads claims with plain names (no dots)`);
    else if (!id?.claims) no(field, `reads claim ${claim}, but ${id?.noClaims ?? 'the route has no claims'}`);
    else if (id.ambiguous?.has(claim)) no(field, `reads claim ${claim}, but ${id.ambiguous.get(claim)}`);
    else if (!headers) no(field, `reads claim ${claim}, which none of the product's JWT issuers forwards (forwardClaims)`);
    else claims.set(`claims.${claim}`, [...headers]);
  };
  const template = (field: string, t: string): string => {
    for (const m of t.matchAll(TEMPLATE_PART)) {
      const v = m[1]!.trim();
      const claim = CLAIM_VALUE.exec(v)?.[1];
      if (claim !== undefined) readsClaim(field, claim);
      else if (v === 'request.identity.partner' || v === 'request.identity.plan') {
        const what = v.slice('request.identity.'.length);
        const header = opts.identity?.gateway?.get(what);
        if (header) claims.set(what, [header]);
        else no(field, `reads {${v}}, but ${opts.identity?.noGateway ?? 'the route has no identity'}`);
      } else if (v.startsWith('request.identity.'))
        no(field, `reads {${v}}; in Envoy a flow reads the caller's identity as request.identity.claims.NAME, request.identity.partner and request.identity.plan`);
      else if (!REQUEST_VALUE.test(v)) no(field, `reads {${m[1]}}; Envoy's templates read request.query.NAME, request.headers.NAME and request.identity.claims.NAME only`);
    }
    if (t.includes('{{') || t.includes('}}')) no(field, 'literal braces are not supported in Envoy');
    return t.replace(TEMPLATE_PART, (_, v: string) => `{${v.trim()}}`);
  };
  const addCall = (s: FlowStepSpec, f: string) => {
    const c = s.call!;
    if (s.when) no(`${f}.when`, 'conditional steps are not supported');
    if (c.forward) no(`${f}.call.forward`, 'forwarding the request is not supported');
    if (c.method && c.method !== 'GET') no(`${f}.call.method`, 'only GET calls are supported');
    if (c.headers) no(`${f}.call.headers`, 'call headers are not supported');
    if (c.body) no(`${f}.call.body`, 'call bodies are not supported');
    if (c.parse && c.parse !== 'json' && c.parse !== 'auto') no(`${f}.call.parse`, 'only JSON answers are supported');
    if (c.xml) no(`${f}.call.xml`, 'XML is not supported');
    if (c.okStatus && !(c.okStatus.length === 1 && c.okStatus[0] === '2xx')) no(`${f}.call.okStatus`, 'only 2xx counts as success');
    const problem = opts.serviceProblem?.(c.service);
    if (problem) no(`${f}.call.service`, problem);
    calls.set(s.name, {
      name: s.name,
      service: c.service,
      path: template(`${f}.call.path`, c.path ?? '/'),
      query: Object.entries(c.query ?? {}).map(([k, v]) => [k, template(`${f}.call.query.${k}`, v)]),
      timeoutMs: Math.min(c.timeoutMs ?? FLOW_DEFAULTS.callTimeoutMs, flowTimeout),
      ...(s.onError === 'continue' ? { fallback: s.fallback ?? null } : {}),
    });
  };
  let reply: NativeFlowPlan['reply'] | undefined;
  flow.steps.forEach((s, i) => {
    const f = `${prefix}.steps[${i}]`;
    if (reply) return no(f, `step ${s.name} comes after the respond step`);
    if (s.call) return addCall(s, f);
    if (s.parallel) {
      if (s.when) no(`${f}.when`, 'conditional steps are not supported');
      if (s.parallel.wait === 'referenced') no(`${f}.parallel.wait`, 'only wait: all is supported');
      s.parallel.steps.forEach((p, j) => (p.call ? addCall(p, `${f}.parallel.steps[${j}]`) : no(`${f}.parallel.steps[${j}]`, `step ${p.name}: only calls run in parallel`)));
      return;
    }
    if (s.transform) {
      const t = s.transform;
      const from = STEP_BODY.exec(t.from)?.[1];
      const call = from ? calls.get(from) : undefined;
      if (s.when) no(`${f}.when`, 'conditional steps are not supported');
      if (s.onError === 'continue') no(`${f}.onError`, 'a transform cannot continue on error');
      if (!call) return no(`${f}.transform.from`, "a transform must read an earlier call's body (steps.NAME.body)");
      if (t.map) return no(`${f}.transform.map`, 'map expressions are not supported');
      if (call.pick || call.remove || call.rename || [...transforms.values()].includes(from!)) return no(`${f}.transform.from`, `step ${from}'s body is reshaped by another transform already`);
      for (const [k, list] of [
        ['pick', t.pick],
        ['remove', t.remove],
        ['rename', t.rename && Object.keys(t.rename)],
      ] as const) {
        if (list?.some((x) => x.includes('.'))) no(`${f}.transform.${k}`, 'only top-level fields');
      }
      Object.assign(call, { ...(t.pick ? { pick: t.pick } : {}), ...(t.remove ? { remove: t.remove } : {}), ...(t.rename ? { rename: t.rename } : {}) });
      transforms.set(s.name, from!);
      return;
    }
    if (s.respond && i === flow.steps.length - 1) {
      const r = s.respond;
      if (s.when) no(`${f}.when`, 'conditional steps are not supported');
      if (r.status !== undefined) no(`${f}.respond.status`, 'the reply has the default status');
      if (r.headers) no(`${f}.respond.headers`, 'reply headers are not supported');
      if (r.format && r.format !== 'json') no(`${f}.respond.format`, 'the reply is JSON');
      const inner = /^\s*\{([\s\S]*)\}\s*$/.exec(r.body ?? '')?.[1];
      if (inner === undefined) return no(`${f}.respond.body`, 'the body must be an object of step bodies, {"key": steps.NAME.body, …}');
      const entries: NativeFlowPlan['reply'] = [];
      for (const pair of inner.split(',')) {
        const m = REPLY_ENTRY.exec(pair);
        if (!m) return no(`${f}.respond.body`, `entry ${pair.trim()} is not "key": steps.NAME.body`);
        const step = transforms.get(m[2]!) ?? m[2]!;
        if (!calls.has(step)) return no(`${f}.respond.body`, `reads steps.${m[2]}, which is not a call or transform before it`);
        // The filter keeps one shape per call: its raw body and a reshaped copy cannot both be sent.
        if (step === m[2] && [...transforms.values()].includes(step)) return no(`${f}.respond.body`, `step ${step} is used both raw and transformed`);
        entries.push({ key: m[1]!, step });
      }
      reply = entries;
      return;
    }
    no(f, `step ${s.name}: only calls, parallel calls, transforms and a last respond are supported`);
  });
  if (!reply && errors.length === 0) no(`${prefix}.steps`, 'the flow must end with a respond step');
  if (errors.length) return { ok: false, errors };
  const read = [...claims].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { ok: true, plan: { calls: [...calls.values()], reply: reply!, ...(read.length ? { identity: read } : {}) } };
}
