// The access RBAC (native mode): who may call a route, on the partner the authentication filter before
// it established (x-portico-partner). Off in the chain, on per route: DENY policies named after the
// callout's 403 codes (the local-reply mapper words each), shadow ALLOW policies naming the plan; not on
// API-key routes whose every key belongs to a partner let through on one plan (nothing to decide).
// Where its only refusal is no_subscription (one plan, no refused partner, no method rule, the partner
// in the header), a cheaper filter decides instead: see noSubscription below.
import { accessReplyMapping, GATEWAY_HEADERS, MTLS_ACCESS_POLICIES, MTLS_REPLY_MAPPINGS, noPartnerClaimPolicy, noPartnerClaimReplyMapping } from '../../../contract/index.ts';
import type { GroupIR, JwtAuthnIR, RouteAccessIR } from '../../ir.ts';
import { ACCESS_REFUSALS, admitsEveryKey, onePlan } from '../../to-ir/native-auth.ts';
import { headerPartnerClaim, partnerClaimOf } from '../../to-ir/native-jwt.ts';
import { compareStrings } from '../../paths.ts';
import { PEER_HEADERS } from '../../to-ir/native-mtls.ts';
import { any, extension, FILTERS, sortedRecord, type Json, type JsonObject } from '../common.ts';
import { disabledByDefault, type HttpFilterEmitter } from './filter.ts';
import { verifiedTokenHeader } from './jwt-authn.ts';

const RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
const RBAC_PER_ROUTE_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute';
const MATCHING = 'envoy.extensions.common.matching.v3';

/**
 * The cheap form of the access decision: an RBAC that refuses everyone with no_subscription, wrapped
 * in Envoy's match delegate, which per route skips it when the partner header names a partner the
 * route lets through. Why: an RBAC that allows always writes its result into dynamic metadata, which
 * the gRPC access log then copies into every entry (~13k instructions per request, about a quarter
 * of a JWT request's cost over plain); a skipped filter writes nothing. The delegate reads its own
 * per-route config under this filter's name, so the wrapped RBAC can only have the chain's rules:
 * hence one fixed refusal, used only where it is the route's only one (the same response code
 * details, so the same local-reply body).
 */
const NO_SUBSCRIPTION_FILTER = 'portico.access.no_subscription';

/**
 * Whether the route's access decision is only "a partner in the header, listed, or no_subscription"
 * (or, for a token without the partner claim, the unknown_partner the group's filter knows: inChain).
 */
export function onlyNoSubscription(a: RouteAccessIR): boolean {
  const claimless = a.claimless ?? [];
  const chainKnows = claimless.length === 0 || (claimless.length === 1 && claimless[0]!.fromHeader?.inChain === true && claimless[0]!.fromHeader.except.length === 0);
  return chainKnows && !a.identities && !a.unmappedTokens?.length && a.deny.length === 0 && a.allowed.length > 0 && onePlan(a) !== undefined && a.allowed.every((x) => x.methods === undefined);
}

/** The one partner claim the group's issuers copy into the partner header, if they all use one name. */
function chainClaim(j: JwtAuthnIR | undefined): string | undefined {
  const claims = new Set((j?.providers ?? []).map(headerPartnerClaim).filter((c) => c !== undefined));
  return claims.size === 1 ? [...claims][0] : undefined;
}

const partnerHeaderPresent: Json = { header: { name: GATEWAY_HEADERS.partner, present_match: true } };
/** The negation, without a double one. */
const not = (j: Json): Json => (j !== null && typeof j === 'object' && !Array.isArray(j) && Object.keys(j).length === 1 && 'not_id' in j ? (j.not_id as Json) : { not_id: j });
const deny = (principal: Json): Json => ({ permissions: [{ any: true }], principals: [principal] });

/**
 * The refusing RBAC's rules: no_subscription for everyone, or, in a group whose issuers copy one
 * partner claim into the partner header, unknown_partner for a request without it (a token that
 * lacks the claim) and no_subscription for the rest (disjoint: the first policy by name decides).
 */
function noSubscription(g: GroupIR): JsonObject {
  const claim = chainClaim(g.filters.jwtAuthn);
  const policies: Array<[string, Json]> =
    claim === undefined
      ? [['no_subscription', deny({ any: true })]]
      : [
          ['no_subscription', deny(partnerHeaderPresent)],
          [noPartnerClaimPolicy(claim), deny(not(partnerHeaderPresent))],
        ];
  return extension(NO_SUBSCRIPTION_FILTER, `${MATCHING}.ExtensionWithMatcher`, {
    extension_config: extension(FILTERS.access, RBAC_TYPE, { rules: { action: 'DENY', policies: sortedRecord(policies) } }),
  });
}

/** Skips the refusing RBAC for the partners the route lets through; anyone else (or no header) meets it. */
function skipFor(partners: readonly string[]): Json {
  const skip = { action: extension('skip', 'envoy.extensions.filters.common.matcher.action.v3.SkipFilter') };
  const input = extension('partner', 'envoy.type.matcher.v3.HttpRequestHeaderMatchInput', { header_name: GATEWAY_HEADERS.partner });
  return any(`${MATCHING}.ExtensionWithMatcherPerRoute`, {
    xds_matcher: { matcher_tree: { input, exact_match_map: { map: sortedRecord([...new Set(partners)].map((p) => [p, skip])) } } },
  });
}

const partnerHeaderIs = (name: string): Json => ({ header: { name: GATEWAY_HEADERS.partner, string_match: { exact: name } } });
export const oneOf = (ids: Json[]): Json => (ids.length === 1 ? ids[0]! : { or_ids: { ids } });
/** No identity: a principal nothing matches. */
const NOBODY: Json = { not_id: { any: true } };

/** jwt_authn's dynamic metadata: each provider's verified payload under the provider's name (payload_in_metadata). */
const payloadAt = (provider: string, path: readonly string[], value: Json): Json => ({
  metadata: { filter: 'envoy.filters.http.jwt_authn', path: [provider, ...path].map((key) => ({ key })), value },
});
/** Any token the provider verified: jwt_authn wrote its issuer header (providers whose partner is not a claim header). */
const tokenOf = (provider: string): Json => ({ header: { name: verifiedTokenHeader(provider), present_match: true } });

/** The providers whose issuer header the route's access rules read (tokenOf): the route removes those headers before the upstream. */
export function verifiedTokenHeaders(a: RouteAccessIR): string[] {
  const providers = new Set<string>([
    ...(a.identities ?? []).flatMap((i) => (i.tokens ?? []).filter((t) => t.claim === undefined).map((t) => t.provider)),
    ...(a.unmappedTokens ?? []),
    ...(a.claimless ?? []).flatMap((c) => (c.fromHeader ? c.fromHeader.except : c.providers)),
  ]);
  return [...providers].map(verifiedTokenHeader).sort(compareStrings);
}
/**
 * The payload's claim names the partner, read as the callout reads it (claimAt in src/model): the
 * top-level claim of that name, else, for a dotted name when no top-level claim has it, the nested one.
 */
function claimIs(provider: string, claim: string, partner: string): Json {
  const top = payloadAt(provider, [claim], { string_match: { exact: partner } });
  if (!claim.includes('.')) return top;
  const nested = payloadAt(provider, claim.split('.'), { string_match: { exact: partner } });
  return { or_ids: { ids: [top, { and_ids: { ids: [nested, { not_id: payloadAt(provider, [claim], { present_match: true }) }] } }] } };
}

/** The payload's claim names a partner as the callout requires: a non-empty string (read as claimIs reads it). */
function namesPartner(provider: string, claim: string): Json {
  const named = (path: readonly string[]) => payloadAt(provider, path, { string_match: { safe_regex: { regex: '.+' } } });
  if (!claim.includes('.')) return named([claim]);
  return { or_ids: { ids: [named([claim]), { and_ids: { ids: [named(claim.split('.')), { not_id: payloadAt(provider, [claim], { present_match: true }) }] } }] } };
}

/** A verified token whose partner claim names no partner (see RouteAccessIR.claimless). */
function claimlessPrincipal(c: NonNullable<RouteAccessIR['claimless']>[number]): Json {
  if (c.fromHeader) {
    const noHeader = not(partnerHeaderPresent);
    return c.fromHeader.except.length ? { and_ids: { ids: [noHeader, { not_id: oneOf(c.fromHeader.except.map(tokenOf)) }] } } : noHeader;
  }
  return oneOf(c.providers.map((p) => ({ and_ids: { ids: [tokenOf(p), { not_id: namesPartner(p, c.claim) }] } })));
}

const escapeRegex = (v: string): string => v.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
// Lists of values are matched one exact (or one-value regex) principal each, never one regex of many:
// Envoy refuses a regex whose RE2 program exceeds 100 instructions (its default limit).
/** One value in a comma-joined list (Envoy joins a certificate's email or IP SANs so), matched whole; several: any of them. */
const inList = (name: string, ...values: string[]): Json => oneOf(values.map((v) => ({ header: { name, string_match: { safe_regex: { regex: `(?:.*,)?${escapeRegex(v)}(?:,.*)?` } } } })));
/** A certificate whose URI SANs, DNS SANs or subject hold one of the names. */
const anyName = (names: readonly string[]): Json => oneOf(names.map((n) => ({ authenticated: { principal_name: { exact: n } } })));
/** A certificate with one of these email SANs, compared SAN by SAN (Envoy's mtls_authenticated principal): an address may hold a comma. */
const emailSan = (emails: readonly string[]): Json =>
  oneOf(
    emails.map((e) => ({
      custom: extension('envoy.rbac.principals.mtls_authenticated', 'envoy.extensions.rbac.principals.mtls_authenticated.v3.Config', {
        san_matcher: { san_type: 'EMAIL', matcher: { exact: e } },
      }),
    })),
  );
/** A certificate with any identity of the model's partners (one matcher per kind, however many). */
function anyCertificateIdentity(c: NonNullable<RouteAccessIR['certificates']>): Json | undefined {
  const ids: Json[] = [
    ...c.fingerprints.map((f) => ({ header: { name: PEER_HEADERS.fingerprints.header, string_match: { exact: f } } })),
    ...(c.names.length ? [anyName(c.names)] : []),
    ...(c.emails.length ? [inList(PEER_HEADERS.emails.header, ...c.emails)] : []),
    ...(c.ips.length ? [inList(PEER_HEADERS.ips.header, ...c.ips)] : []),
    ...(c.emailSans.length ? [emailSan(c.emailSans)] : []),
  ];
  return ids.length ? oneOf(ids) : undefined;
}
const andNot = (j: Json, guards: Json[]): Json => (guards.length ? { and_ids: { ids: [j, { not_id: oneOf(guards) }] } } : j);

/**
 * A partner's certificate names, each guarded by the callout's precedence when another partner's
 * identity of a higher rank could be on the same certificate: a SPIFFE ID, then the SANs, then the
 * subject (RouteAccessIR identities: sans, subjects, notSpiffe, notSans).
 */
function rankedNames(i: NonNullable<RouteAccessIR['identities']>[number]): Json[] {
  const name = (n: string): Json => ({ authenticated: { principal_name: { exact: n } } });
  const peerSans = [
    ...(i.emails ?? []).map((e) => inList(PEER_HEADERS.emails.header, e)),
    ...(i.emailSans ?? []).map((e) => emailSan([e])),
    ...(i.ips ?? []).map((ip) => inList(PEER_HEADERS.ips.header, ip)),
  ];
  if (!i.sans && !i.subjects) return [...i.principals.map(name), ...peerSans];
  const sans = new Set(i.sans);
  const subjects = new Set(i.subjects);
  const spiffe = i.principals.filter((n) => !sans.has(n) && !subjects.has(n)).map(name);
  const overSans = i.notSpiffe?.length ? [anyName(i.notSpiffe)] : [];
  const s = i.notSans;
  const overSubject = [
    ...overSans,
    ...(s?.names.length ? [anyName(s.names)] : []),
    ...(s?.emails.length ? [inList(PEER_HEADERS.emails.header, ...s.emails)] : []),
    ...(s?.ips.length ? [inList(PEER_HEADERS.ips.header, ...s.ips)] : []),
    ...(s?.emailSans.length ? [emailSan(s.emailSans)] : []),
  ];
  const sanNames = [...i.principals.filter((n) => sans.has(n)).map(name), ...peerSans];
  const subjectNames = i.principals.filter((n) => subjects.has(n)).map(name);
  return [...spiffe, ...(sanNames.length ? [andNot(oneOf(sanNames), overSans)] : []), ...(subjectNames.length ? [andNot(oneOf(subjectNames), overSubject)] : [])];
}

/**
 * Who a partner is on this route: the partner header, or (mTLS routes) its certificates' names,
 * fingerprints, email and IP SANs (the latter three in headers the edge's first filter wrote from the
 * verified certificate).
 */
export function principalOf(a: RouteAccessIR): (name: string) => Json {
  if (!a.identities) return partnerHeaderIs;
  const ids = new Map(a.identities.map((i) => [i.partner, i]));
  return (partner) => {
    const i = ids.get(partner);
    const fingerprintIs = (f: string): Json => ({ header: { name: PEER_HEADERS.fingerprints.header, string_match: { exact: f } } });
    const names: Json[] = i ? rankedNames(i) : [];
    // A certificate another partner pinned by fingerprint is that partner's, whatever names it carries.
    const byName = names.length && i?.notFingerprints ? [{ and_ids: { ids: [oneOf(names), { not_id: oneOf(i.notFingerprints.map(fingerprintIs)) }] } }] : names;
    const list: Json[] = [
      ...(i?.fingerprints ?? []).map(fingerprintIs),
      ...byName,
      ...(i?.partnerHeader ? [partnerHeaderIs(partner)] : []),
      ...(i?.tokens ?? []).map((t) => (t.claim === undefined ? tokenOf(t.provider) : claimIs(t.provider, t.claim, partner))),
    ];
    return list.length ? oneOf(list) : NOBODY;
  };
}
const methodIs = (m: string): Json => ({ header: { name: ':method', string_match: { exact: m } } });

/**
 * One DENY policy per refusal that applies, their partner sets disjoint, so the policy Envoy names in
 * the response code details is the callout's reason. Whoever is listed nowhere (a key of a partner
 * not subscribed here, or any identity this route never heard of) has no subscription.
 */
function rules(a: RouteAccessIR): Json {
  const partnerIs = principalOf(a);
  const policies: Array<[string, Json]> = a.deny.map((d) => [d.reason, { permissions: [{ any: true }], principals: [oneOf(d.partners.map(partnerIs))] }]);
  const restricted = a.allowed.filter((x) => x.methods !== undefined);
  if (restricted.length) {
    const principals = restricted.map((x) => ({ and_ids: { ids: [partnerIs(x.partner), { not_id: oneOf(x.methods!.map(methodIs)) }] } }));
    policies.push(['method_not_in_subscription', { permissions: [{ any: true }], principals }]);
  }
  const known = [...a.deny.flatMap((d) => d.partners), ...a.allowed.map((x) => x.partner)];
  const unknown: Json = known.length ? { not_id: oneOf(known.map(partnerIs)) } : { any: true };
  // Tokens that name no partner are the callout's unknown_partner, and not no_subscription (disjoint).
  const namesNoPartner: Json[] = [];
  if (a.unmappedTokens?.length) {
    // A token of an issuer that names no partner.
    const unmapped = oneOf(a.unmappedTokens.map(tokenOf));
    policies.push(['unknown_partner', deny(unmapped)]);
    namesNoPartner.push(unmapped);
  }
  for (const c of a.claimless ?? []) {
    const principal = claimlessPrincipal(c);
    policies.push([noPartnerClaimPolicy(c.claim), deny(principal)]);
    namesNoPartner.push(principal);
  }
  if (a.certificates) {
    // Certificate routes: no certificate, or one naming no partner of the model, is the callout's 401;
    // a partner the route does not know is no_subscription (disjoint: any identity of the model).
    // Both start with "unknown", so a caller the route knows never evaluates the model's identities.
    const verified: Json = { authenticated: {} };
    const anyIdentity = anyCertificateIdentity(a.certificates);
    policies.push([MTLS_ACCESS_POLICIES.missing, deny(not(verified))]);
    policies.push([MTLS_ACCESS_POLICIES.unknown, deny({ and_ids: { ids: [unknown, verified, ...(anyIdentity ? [not(anyIdentity)] : [])] } })]);
    if (anyIdentity) policies.push(['no_subscription', deny({ and_ids: { ids: [unknown, anyIdentity] } })]);
    return { action: 'DENY', policies: sortedRecord(policies) };
  }
  // "unknown" first: for a caller the route knows, the and_ids stops there (no added work per request).
  policies.push(['no_subscription', deny(namesNoPartner.length ? { and_ids: { ids: [unknown, not(oneOf(namesNoPartner))] } } : unknown)]);
  return { action: 'DENY', policies: sortedRecord(policies) };
}

/**
 * Shadow rules (never enforced): the ALLOW policy that matches is the caller's plan, recorded in
 * dynamic metadata; on mTLS routes it is the caller's partner (no filter sets the partner header there).
 */
function plans(a: RouteAccessIR): Json | undefined {
  // One plan for all: the route sets it as a literal (see onePlan), nothing to record.
  if (!a.identities && onePlan(a) !== undefined) return undefined;
  const partnerIs = principalOf(a);
  const byPlan = new Map<string, string[]>();
  for (const x of a.allowed) byPlan.set(a.identities ? x.partner : x.plan, [...(byPlan.get(a.identities ? x.partner : x.plan) ?? []), x.partner]);
  if (byPlan.size === 0) return undefined;
  return { action: 'ALLOW', policies: sortedRecord([...byPlan].map(([plan, partners]) => [plan, { permissions: [{ any: true }], principals: [oneOf(partners.map(partnerIs))] }])) };
}

export const access: HttpFilterEmitter = {
  chain: (g) => (g.filters.access ? [disabledByDefault(extension(FILTERS.access, RBAC_TYPE)), disabledByDefault(noSubscription(g))] : []),
  perRoute: (r) => {
    // Left off (the chain's copy stays disabled) where api_key_auth's key list already is the decision.
    if (!r.access || (r.apiKeyAuth && admitsEveryKey(r.access, r.apiKeyAuth.credentials))) return [];
    if (onlyNoSubscription(r.access)) return [[NO_SUBSCRIPTION_FILTER, skipFor(r.access.allowed.map((x) => x.partner))]];
    const shadow = plans(r.access);
    return [[FILTERS.access, any(RBAC_PER_ROUTE_TYPE, { rbac: { rules: rules(r.access), ...(shadow ? { shadow_rules: shadow } : {}) } })]];
  },
  localReplies: (f) => [
    ...(f.access ? ACCESS_REFUSALS.map(accessReplyMapping) : []),
    // Only where some issuer names no partner (its tokens are refused so): other groups' replies stay as they were.
    ...(f.access && f.jwtAuthn?.providers.some((p) => p.partner?.none) ? [accessReplyMapping('unknown_partner')] : []),
    ...(f.access && f.mtlsAccess ? MTLS_REPLY_MAPPINGS : []),
    // A token without its issuer's partner claim: one refusal per claim name (the message names it).
    ...(f.access ? [...new Set((f.jwtAuthn?.providers ?? []).map(partnerClaimOf).filter((c) => c !== undefined))].sort(compareStrings).map(noPartnerClaimReplyMapping) : []),
  ],
};
