// What a group's routes ask of its filter chain and clusters (which filters, which services, the
// largest direct body), summarised per route IR object and cached by identity: a one-route change
// then costs one cheap pass over the group's routes instead of a dozen passes reading each route.
import { COMBINED_CONTEXT_KEY } from '../../contract/index.ts';
import type { RouteIR, VirtualHostIR } from '../ir.ts';
import { needsPlanFromAccess } from './native-auth.ts';
import { nativeFlowServices } from './native-flows.ts';
import { peerHeadersOf } from './native-mtls.ts';

/** One bit per thing a route may need; a group needs the union. */
export const NEEDS = {
  checked: 1 << 0,
  counted: 1 << 1,
  countedAnonymous: 1 << 2,
  serviceLimited: 1 << 3,
  routeLocal: 1 << 4,
  renamed: 1 << 5,
  apiKeyAuth: 1 << 6,
  access: 1 << 7,
  peerHeaders: 1 << 8,
  partnerFromAccess: 1 << 9,
  jwtAuth: 1 << 10,
  claimCheck: 1 << 11,
  compression: 1 << 12,
  cache: 1 << 13,
  transcoder: 1 << 14,
  grpcWeb: 1 << 15,
  idempotency: 1 << 16,
  planFromAccess: 1 << 17,
  mtlsAccess: 1 << 18,
  nativeFlow: 1 << 19,
} as const;

interface RouteFacts {
  needs: number;
  /** Bytes of a direct response's body (0 otherwise). */
  body: number;
  /** Clusters a forwarding route (not a flow's) sends to, or a native flow calls: the group's service clusters. */
  services: readonly string[];
}

export interface GroupRouteFacts {
  needs: number;
  maxBody: number;
  services: Set<string>;
}

// Route IR is never mutated once built (memo.ts), so its facts hold as long as the object lives.
const cached = new WeakMap<RouteIR, RouteFacts>();
const NO_SERVICES: readonly string[] = [];

function factsOf(r: RouteIR): RouteFacts {
  let needs = 0;
  if (r.authz && !r.authz.disabled) {
    if (r.authz.filter === 'authz') needs |= NEEDS.checked;
    else needs |= NEEDS.countedAnonymous;
    if (r.authz.filter === 'authz' && r.authz.contextExtensions[COMBINED_CONTEXT_KEY] !== undefined) needs |= NEEDS.counted;
  }
  if (r.rateLimit) needs |= NEEDS.serviceLimited;
  if (r.localRateLimit) needs |= NEEDS.routeLocal;
  if (r.requestHeaders.rename || r.responseHeaders.rename) needs |= NEEDS.renamed;
  if (r.apiKeyAuth) needs |= NEEDS.apiKeyAuth;
  if (r.access) needs |= NEEDS.access;
  if (peerHeadersOf(r.access).length) needs |= NEEDS.peerHeaders;
  if (r.access?.identities && r.access.allowed.length > 0 && (r.planLimits || r.quotaDeny)) needs |= NEEDS.partnerFromAccess;
  if (needsPlanFromAccess(r)) needs |= NEEDS.planFromAccess;
  if (r.access?.certificates) needs |= NEEDS.mtlsAccess;
  if (r.jwtAuth) needs |= NEEDS.jwtAuth;
  if (r.jwtAuth?.claimHeaders.length) needs |= NEEDS.claimCheck;
  if (r.compression) needs |= NEEDS.compression;
  if (r.cache) needs |= NEEDS.cache;
  if (r.transcoder) needs |= NEEDS.transcoder;
  if (r.grpcWeb) needs |= NEEDS.grpcWeb;
  if (r.idempotency) needs |= NEEDS.idempotency;
  if (r.nativeFlow) needs |= NEEDS.nativeFlow;
  const a = r.action;
  const body = a.kind === 'direct' && a.body ? Buffer.byteLength(a.body) : 0;
  const services = r.nativeFlow ? nativeFlowServices(r) : a.kind === 'forward' && !a.flow ? a.clusters.map((c) => c.name) : NO_SERVICES;
  return { needs, body, services };
}

/** The union of what the virtual hosts' routes need (a route in several hosts counts once per host: the union is the same). */
export function groupRouteFacts(hosts: readonly VirtualHostIR[]): GroupRouteFacts {
  let needs = 0;
  let maxBody = 0;
  const services = new Set<string>();
  for (const vh of hosts) {
    for (const r of vh.routes) {
      let f = cached.get(r);
      if (!f) cached.set(r, (f = factsOf(r)));
      needs |= f.needs;
      if (f.body > maxBody) maxBody = f.body;
      for (const s of f.services) services.add(s);
    }
  }
  return { needs, maxBody, services };
}
