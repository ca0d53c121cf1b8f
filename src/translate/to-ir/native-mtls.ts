// Native mTLS (GatewayGroup.authz.mode native): routes that accept only client certificates, decided
// by the access RBAC on the verified certificate's names and facts (each partner's identities),
// no callout; partners with an identity Envoy cannot match keep the product on the callout.
import { mtlsPrincipalName, sortedValues, type CredentialType, type ModelSnapshot, type Product, type Route } from '../../model/index.ts';
import type { RouteAccessIR } from '../ir.ts';
import { compareStrings } from '../paths.ts';
import { productSubscriptions } from './common.ts';
import { routeAccess, type NativeAuthContext } from './native-auth.ts';

/**
 * Certificate facts RBAC cannot match as principal names (it matches names, not digests, email or IP
 * SANs): on routes whose partners are known by one, the edge's first filter writes them into these
 * headers from the verified client certificate (Envoy joins several SANs of a kind with commas).
 * Under the reserved prefix, so a client's copy is stripped before they are set; the router removes them.
 */
export const PEER_HEADERS = {
  fingerprints: { header: 'x-portico-peer-sha256', value: '%DOWNSTREAM_PEER_FINGERPRINT_256%' },
  emails: { header: 'x-portico-peer-email', value: '%DOWNSTREAM_PEER_EMAIL_SAN%' },
  ips: { header: 'x-portico-peer-ip', value: '%DOWNSTREAM_PEER_IP_SAN%' },
} as const;
export type PeerFact = keyof typeof PEER_HEADERS;
const PEER_FACTS = Object.keys(PEER_HEADERS) as PeerFact[];

/** The peer headers a route's access policies read (the edge writes them there), as [header, formatter]. */
export function peerHeadersOf(a: RouteAccessIR | undefined): Array<[string, string]> {
  if (!a?.identities) return [];
  const guards = (i: NonNullable<RouteAccessIR['identities']>[number], f: PeerFact) =>
    f === 'fingerprints' ? i.notFingerprints !== undefined : f === 'emails' ? (i.notSans?.emails.length ?? 0) > 0 : (i.notSans?.ips.length ?? 0) > 0;
  // The model's every identity of that kind (a certificate naming no partner is refused as unknown_certificate).
  const anyPartner = (f: PeerFact) => (a.certificates?.[f].length ?? 0) > 0;
  const needs = (f: PeerFact) => anyPartner(f) || a.identities!.some((i) => i[f] !== undefined || guards(i, f));
  return PEER_FACTS.filter(needs).map((f) => [PEER_HEADERS[f].header, PEER_HEADERS[f].value]);
}

const add = (m: Map<string, string[]>, partner: string, v: string) => m.set(partner, [...new Set([...(m.get(partner) ?? []), v])].sort(compareStrings));

/** Principal names (and, by rank, SPIFFE IDs, SAN names and subjects) and peer facts per partner, and the partners with an identity Envoy cannot match (see mtlsPrincipalName). */
export function mtlsPrincipals(model: ModelSnapshot): {
  principals: ReadonlyMap<string, string[]>;
  ranks: Record<'spiffe' | 'sans' | 'subjects', ReadonlyMap<string, string[]>>;
  facts: Record<PeerFact, ReadonlyMap<string, string[]>>;
  /** Email SANs with a comma, per partner: matched one SAN at a time (not through the comma-joined header). */
  emailSans: ReadonlyMap<string, string[]>;
  calloutPartners: ReadonlySet<string>;
} {
  const principals = new Map<string, string[]>();
  const ranks: Record<'spiffe' | 'sans' | 'subjects', Map<string, string[]>> = { spiffe: new Map(), sans: new Map(), subjects: new Map() };
  const facts: Record<PeerFact, Map<string, string[]>> = { fingerprints: new Map(), emails: new Map(), ips: new Map() };
  const calloutPartners = new Set<string>();
  const emailSans = new Map<string, string[]>();
  for (const i of sortedValues(model, 'mtlsIdentities')) {
    const p = mtlsPrincipalName(i.match);
    if ('reason' in p) {
      calloutPartners.add(i.partner);
      continue;
    }
    if (p.name !== undefined) {
      add(principals, i.partner, p.name);
      add(ranks[i.match.type === 'spiffe_id' ? 'spiffe' : i.match.type === 'subject' ? 'subjects' : 'sans'], i.partner, p.name);
    }
    if (p.fingerprint !== undefined) add(facts.fingerprints, i.partner, p.fingerprint);
    if (p.email !== undefined) add(facts.emails, i.partner, p.email);
    if (p.ip !== undefined) add(facts.ips, i.partner, p.ip);
    if (p.emailSan !== undefined) add(emailSans, i.partner, p.emailSan);
  }
  return { principals, ranks, facts, emailSans, calloutPartners };
}

/**
 * The access policies of a route taking only client certificates, on certificate names, or undefined
 * when it stays on the callout: it accepts other credentials, the callout counts its plan limits, or
 * a partner subscribed to the product has an identity Envoy cannot match. Natively counted limits
 * read the partner header a filter after the access RBAC sets (partner-from-access.ts).
 */
export function nativeMtlsAccess(model: ModelSnapshot, product: Product, route: Route, accept: readonly CredentialType[], limited: boolean, auth: NativeAuthContext): RouteAccessIR | undefined {
  if (accept.length !== 1 || accept[0] !== 'mtls' || limited) return undefined;
  const { principals, ranks, facts, emailSans, calloutPartners } = mtlsPrincipals(model);
  const others = (m: ReadonlyMap<string, string[]>, partner: string) => [...new Set([...m].filter(([p]) => p !== partner).flatMap(([, v]) => v))].sort(compareStrings);
  for (const s of productSubscriptions(model, product.name)) if (calloutPartners.has(s.partner)) return undefined;
  const access = routeAccess(model, product, route, auth, true);
  const partners = new Set([...access.deny.flatMap((d) => d.partners), ...access.allowed.map((a) => a.partner)]);
  const identities = [...partners].sort(compareStrings).map((partner) => {
    const identity: NonNullable<RouteAccessIR['identities']>[number] = { partner, principals: principals.get(partner) ?? [] };
    for (const f of PEER_FACTS) {
      const values = facts[f].get(partner);
      if (values) identity[f] = values;
    }
    const commaEmails = emailSans.get(partner);
    if (commaEmails) identity.emailSans = commaEmails;
    // The callout tries the fingerprint first: a certificate another partner pinned is that partner's, whatever names it carries.
    const pinned = [...facts.fingerprints].filter(([p]) => p !== partner).flatMap(([, fps]) => fps);
    if (pinned.length && (identity.principals.length || identity.emails || identity.ips || identity.emailSans)) identity.notFingerprints = [...new Set(pinned)].sort(compareStrings);
    // Then a SPIFFE ID, then the SANs, then the subject: another partner's higher-ranked identity on the
    // same certificate makes it that partner's (the callout's partnerOfPeer).
    const sans = ranks.sans.get(partner) ?? [];
    const subjects = ranks.subjects.get(partner) ?? [];
    const notSpiffe = others(ranks.spiffe, partner);
    const notSans = { names: others(ranks.sans, partner), emails: others(facts.emails, partner), ips: others(facts.ips, partner), emailSans: others(emailSans, partner) };
    const sanRanked = sans.length > 0 || identity.emails !== undefined || identity.ips !== undefined || identity.emailSans !== undefined;
    if (notSpiffe.length && (sanRanked || subjects.length)) Object.assign(identity, { sans, subjects, notSpiffe });
    if (subjects.length && notSans.names.length + notSans.emails.length + notSans.ips.length + notSans.emailSans.length > 0) Object.assign(identity, { sans, subjects, notSans });
    return identity;
  });
  const all = (m: ReadonlyMap<string, string[]>) => [...new Set([...m.values()].flat())].sort(compareStrings);
  const certificates = { names: all(principals), fingerprints: all(facts.fingerprints), emails: all(facts.emails), ips: all(facts.ips), emailSans: all(emailSans) };
  return { ...access, identities, certificates };
}
