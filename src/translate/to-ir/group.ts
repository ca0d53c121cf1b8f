// Model → IR for an Envoy gateway group (listeners, route tables, the filters its routes need,
// clusters, secrets), and for every group of a model. Pure: the same model gives the same IR.
import { createHash } from 'node:crypto';
import { sortedValues, authzModeOf, identityHeaders, isReservedHeader, rateLimitChoice, type ModelSnapshot, type GatewayGroup, type Listener, type Product, type Service } from '../../model/index.ts';
import { FILTERS } from '../envoy/common.ts';
import { LIMITS_UNAVAILABLE_STATUS, RATE_LIMIT_DOMAIN, RESERVED_HEADER_PREFIX } from '../../contract/index.ts';
import { localBucket } from './limits.ts';
import { nativeLimits } from './native-limits.ts';
import type { ClusterIR, GroupIR, ListenerIR, RouteIR, RouteTableIR, SecretIR, VirtualHostIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import { telemetryClusters, telemetryIr } from './telemetry.ts';
import { CALLOUT_CLUSTER, DEFAULTS, type IrOptions, groupProducts, productRoutes } from './common.ts';
import { correlationHeaders } from './headers.ts';
import { cachedServices, cacheProfiles, keyClusters } from './cache.ts';
import { compressionProfiles } from './compression.ts';
import { virtualHostsIr } from './virtual-hosts.ts';
import { calloutCluster, clusterIr } from './clusters.ts';
import { proxylessGroupToIr } from './proxyless.ts';
import { groupFlowsIr } from './flows.ts';
import { groupIdempotencyIr } from './idempotency.ts';
import { nativeFlowsFilterIr } from './native-flows.ts';
import { nativeAuthContext, type NativeAuthContext } from './native-auth.ts';
import type { EmitMemo } from '../memo.ts';
import { jwtAuthnIr, nativeJwtContext, type NativeJwtContext } from './native-jwt.ts';
import { groupRouteFacts, NEEDS } from './route-facts.ts';

// ── groups ────────────────────────────────────────────────────────────────────
function listenerIr(group: GatewayGroup, l: Listener): ListenerIR {
  const hostnames = l.hostnames ?? [];
  return {
    name: l.name,
    address: l.address ?? DEFAULTS.listenerAddress,
    port: l.port,
    statPrefix: group.name,
    routeTable: l.name,
    ...(l.tls && (l.protocol ?? 'http') === 'https'
      ? {
          tls: {
            certificateSecret: `tls/${l.tls.certificate}`,
            ...(l.tls.clientCa ? { clientCaSecret: `ca/${l.tls.clientCa}` } : {}),
            requireClientCertificate: l.tls.clientCa ? (l.tls.requireClientCertificate ?? true) : false,
            serverNames: hostnames.includes('*') ? [] : [...new Set(hostnames.map((h) => h.toLowerCase()))].sort(compareStrings),
          },
        }
      : {}),
  };
}

function secretsIr(model: ModelSnapshot, listeners: readonly ListenerIR[], clusters: readonly ClusterIR[]): SecretIR[] {
  const names = new Set<string>();
  for (const l of listeners) {
    if (l.tls) names.add(l.tls.certificateSecret);
    if (l.tls?.clientCaSecret) names.add(l.tls.clientCaSecret);
  }
  for (const c of clusters) {
    if (c.tls?.caSecret) names.add(c.tls.caSecret);
    if (c.tls?.clientCertificateSecret) names.add(c.tls.clientCertificateSecret);
  }
  const out: SecretIR[] = [];
  for (const name of [...names].sort(compareStrings)) {
    const [kind, cert] = name.split('/') as ['tls' | 'ca', string];
    const c = model.certificates.get(cert);
    if (!c) continue;
    if (kind === 'ca') out.push({ name, kind, trustedCa: c.certificate });
    else if (c.privateKey !== undefined) out.push({ name, kind, certificateChain: c.certificate, privateKey: c.privateKey });
  }
  return out;
}

/** Every route not taking gRPC-Web marked off, one copy per route however many virtual hosts carry it. */
/**
 * Filters that take no per-route config cannot be off in the chain and on for a route (gRPC-Web, the
 * flows Wasm filter): they are on in the chain of a group where some route uses them, and switched
 * off on that group's other routes. As copies: route IR may be the memo's, shared with other translations.
 */
function withFiltersOff(hosts: readonly VirtualHostIR[], off: { grpcWeb: boolean; nativeFlows: boolean }): VirtualHostIR[] {
  const copies = new Map<RouteIR, RouteIR>();
  const copy = (r: RouteIR): RouteIR => {
    const grpcWeb = off.grpcWeb && !r.grpcWeb;
    const nativeFlows = off.nativeFlows && !r.nativeFlow;
    if (!grpcWeb && !nativeFlows) return r;
    let c = copies.get(r);
    if (!c) copies.set(r, (c = { ...r, ...(grpcWeb ? { grpcWeb: false } : {}), ...(nativeFlows ? { nativeFlowsOff: true as const } : {}) }));
    return c;
  };
  return hosts.map((vh) => ({ ...vh, routes: vh.routes.map(copy) }));
}

/**
 * What a group's route IR reads besides the model's resources, as one digest: the rate-limit mode,
 * the keys and partners native authorization decides with, the subscriptions expired at its clock
 * (rather than the clock itself, which moves on every translation) and the native JWT providers.
 */
function routeContext(model: ModelSnapshot, mode: string, auth: NativeAuthContext | undefined, jwt: NativeJwtContext | undefined): string {
  const expired: string[] = [];
  if (auth) for (const [key, s] of model.subscriptions) if (s.expiresAt !== undefined && Date.parse(s.expiresAt) <= auth.now) expired.push(key);
  const text = JSON.stringify([mode, auth ? [auth.credentials, [...auth.calloutPartners].sort(compareStrings), expired] : null, jwt ? [...jwt.providers] : null]);
  return createHash('sha1').update(text).digest('base64');
}

/** The correlation headers a product's routes set (they read only the product and its routes: reused while those are the same objects). */
function productCorrelationHeaders(model: ModelSnapshot, p: Product, memo: EmitMemo | undefined): readonly string[] {
  const routes = productRoutes(model, p.name);
  const make = () => routes.flatMap((r) => correlationHeaders(p, r));
  return memo ? memo.reuse('correlation headers', p.name, [p, ...routes], make) : make();
}

export function groupToIr(model: ModelSnapshot, group: GatewayGroup, options: IrOptions): GroupIR {
  if (group.kind === 'proxyless-grpc') return proxylessGroupToIr(model, group);
  const products = groupProducts(model, group.name);
  const choice = rateLimitChoice(model, group);
  const mode = choice.mode;
  const calloutProducts = choice.calloutProducts;
  const nativeAuth = authzModeOf(group) === 'native' ? nativeAuthContext(model, products, options.now ?? Date.now()) : undefined;
  const nativeJwt = nativeAuth ? nativeJwtContext(model, options.jwks) : undefined;
  const native =
    mode === 'native'
      ? nativeLimits(
          model,
          calloutProducts ? products.filter((p) => !calloutProducts.has(p.name)) : products,
          options.envoys?.get(group.name) ?? 1,
          (options.quotaExhausted ?? []).filter((q) => q.group === group.name),
        )
      : undefined;
  const memo = options.memo;
  const virtualHostsBefore = virtualHostsIr(
    model,
    products,
    {
      rateLimitMode: mode,
      ...(calloutProducts ? { calloutProducts: new Set(calloutProducts.keys()) } : {}),
      ...(native ? { planLimits: native.routes, quotaDeny: native.quotaDeny } : {}),
      ...(nativeAuth ? { nativeAuth } : {}),
      ...(nativeJwt ? { nativeJwt } : {}),
    },
    memo ? { memo, group: group.name, context: routeContext(model, mode, nativeAuth, nativeJwt) } : undefined,
  );
  // What the routes need decides which filters the chain holds (summarised per route: route-facts.ts);
  // scans that depend on the routes' order run only when some route needs what they look for.
  const facts = groupRouteFacts(virtualHostsBefore);
  const needs = (n: number) => (facts.needs & n) !== 0;
  let flat: RouteIR[] | undefined;
  const groupRoutes = () => (flat ??= virtualHostsBefore.flatMap((vh) => vh.routes));
  const checked = needs(NEEDS.checked);
  const counted = needs(NEEDS.counted);
  const jwtAuthn = nativeJwt && needs(NEEDS.jwtAuth) ? jwtAuthnIr(groupRoutes(), nativeJwt) : undefined;
  const claimCheck = needs(NEEDS.claimCheck);
  const profiles = needs(NEEDS.compression) ? compressionProfiles(groupRoutes()) : [];
  const caches = needs(NEEDS.cache) ? cacheProfiles(groupRoutes()) : [];
  const cached = needs(NEEDS.cache) ? cachedServices(groupRoutes()) : new Set<string>();
  const transcoder = needs(NEEDS.transcoder) ? groupRoutes().find((r) => r.transcoder)?.transcoder : undefined;
  const grpcWeb = needs(NEEDS.grpcWeb);
  const idempotency = needs(NEEDS.idempotency) ? groupIdempotencyIr(groupRoutes(), options) : undefined;
  const nativeFlows = needs(NEEDS.nativeFlow) ? nativeFlowsFilterIr(groupRoutes(), options) : undefined;
  const virtualHosts = grpcWeb || nativeFlows ? withFiltersOff(virtualHostsBefore, { grpcWeb, nativeFlows: nativeFlows !== undefined }) : virtualHostsBefore;
  const correlation = [...new Set(products.flatMap((p) => productCorrelationHeaders(model, p, memo)))].sort(compareStrings);
  const listeners = (group.listeners ?? []).map((l) => listenerIr(group, l)).sort((a, b) => compareStrings(a.name, b.name));

  const maxBody = facts.maxBody;
  const routeTables: RouteTableIR[] = listeners.map((l) => ({
    name: l.routeTable,
    maxDirectResponseBodyBytes: maxBody,
    virtualHosts,
  }));

  const flows = groupFlowsIr(model, products, options);
  if (flows) routeTables.push(flows.table);
  const serviceNames = new Set<string>(flows?.services);
  for (const s of facts.services) serviceNames.add(s);
  const clusters = [...serviceNames]
    .sort(compareStrings)
    .map((n) => model.services.get(n))
    .filter((s): s is Service => s !== undefined)
    .map((s) => (cached.has(s.name) ? { ...clusterIr(s), cacheKeyRestore: true } : clusterIr(s)));
  if (needs(NEEDS.cache)) clusters.push(...keyClusters(groupRoutes(), (name) => (model.services.has(name) ? clusterIr(model.services.get(name)!) : undefined)));
  clusters.push(calloutCluster(options.calloutAddress, options.channelSdsDir), ...telemetryClusters(options.telemetry, options.channelSdsDir), ...(flows ? [flows.cluster] : []));
  if (idempotency) clusters.push(idempotency.cluster);
  clusters.sort((a, b) => compareStrings(a.name, b.name));

  const authz = group.authz;
  const authzTimeoutMs = authz?.timeoutMs ?? DEFAULTS.authzTimeoutMs;
  const rateLimitTimeoutMs = group.rateLimit?.timeoutMs ?? DEFAULTS.rateLimitTimeoutMs;
  const rateLimitFailOpen = (group.rateLimit?.failureMode ?? DEFAULTS.rateLimitFailureMode) === 'open';
  return {
    name: group.name,
    kind: 'envoy',
    filters: {
      cors: products.some((p) => p.cors !== undefined),
      ...(group.localRateLimit ? { localRateLimit: localBucket(group.localRateLimit) } : {}),
      routeLocalRateLimit: needs(NEEDS.routeLocal),
      ...(needs(NEEDS.apiKeyAuth) ? { apiKeyAuth: true as const } : {}),
      ...(needs(NEEDS.access) ? { access: true as const } : {}),
      ...(needs(NEEDS.peerHeaders) ? { peerHeaders: true as const } : {}),
      ...(needs(NEEDS.partnerFromAccess) ? { partnerFromAccess: true as const } : {}),
      ...(needs(NEEDS.planFromAccess) ? { planFromAccess: true as const } : {}),
      ...(needs(NEEDS.mtlsAccess) ? { mtlsAccess: true as const } : {}),
      ...(jwtAuthn ? { jwtAuthn } : {}),
      ...(claimCheck ? { claimCheck: true as const } : {}),
      ...(checked
        ? {
            extAuthz: {
              name: FILTERS.extAuthz,
              cluster: CALLOUT_CLUSTER,
              // A callout that also counts has the rate limiter's time on top of authorization's.
              timeoutMs: authzTimeoutMs + (counted ? rateLimitTimeoutMs : 0),
              failureModeAllow: (authz?.failureMode ?? DEFAULTS.authzFailureMode) === 'open',
              statusOnError: 503,
            },
          }
        : {}),
      ...(needs(NEEDS.countedAnonymous)
        ? {
            extAuthzLimits: {
              name: FILTERS.extAuthzLimits,
              statPrefix: 'limits',
              cluster: CALLOUT_CLUSTER,
              timeoutMs: rateLimitTimeoutMs,
              failureModeAllow: rateLimitFailOpen,
              statusOnError: LIMITS_UNAVAILABLE_STATUS,
            },
          }
        : {}),
      planLimits: native?.filters ?? [],
      quotas: native?.quotas ?? [],
      ...(needs(NEEDS.serviceLimited) ? { rateLimit: { cluster: CALLOUT_CLUSTER, domain: RATE_LIMIT_DOMAIN, timeoutMs: rateLimitTimeoutMs, failureModeDeny: !rateLimitFailOpen } } : {}),
      ...(needs(NEEDS.renamed) ? { headerRename: true } : {}),
      ...(profiles.length ? { compression: profiles } : {}),
      ...(caches.length ? { cache: caches } : {}),
      ...(transcoder ? { transcoder } : {}),
      ...(grpcWeb ? { grpcWeb: true } : {}),
      ...(idempotency ? { idempotency: idempotency.filter } : {}),
      ...(nativeFlows ? { nativeFlows } : {}),
    },
    // The reserved prefix covers the gateway's own headers, whatever their name; forwarded claims are named one by one.
    stripRequestHeaders: identityHeaders(model).filter((h) => !isReservedHeader(h)),
    stripRequestHeaderPrefixes: [RESERVED_HEADER_PREFIX],
    listeners,
    apiListeners: [],
    routeTables,
    clusters,
    secrets: secretsIr(model, listeners, clusters),
    ...(correlation.length ? { correlationHeaders: correlation } : {}),
    ...telemetryIr(options.telemetry),
    ...(flows ? { flowSteps: flows.steps } : {}),
  };
}

/** Every gateway group's IR, by group name. */
export function modelToIr(model: ModelSnapshot, options: IrOptions): GroupIR[] {
  return sortedValues(model, 'gatewayGroups').map((g) => groupToIr(model, g, options));
}
