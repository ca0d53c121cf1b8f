// Which mTLS identities Envoy can match natively (authz.mode native): its RBAC matches a verified
// client certificate's URI SANs, DNS SANs and subject by exact principal name, and its SHA-256
// fingerprint, email SANs and IP SANs through headers Envoy writes; shared by the translator and the
// documentation of what stays on the callout.
import type { MtlsIdentity } from './schemas.ts';
import { normalizeFingerprint } from './validate.ts';

/**
 * What Envoy compares for this identity (it matches when any member does): a principal name (URI SAN,
 * DNS SAN or subject), the fingerprint, an email SAN or an IP SAN (the latter three in headers the
 * edge writes from the verified certificate); or why it cannot (its partner's routes stay on the callout).
 */
export type NativeMtlsMatch = { name?: string; fingerprint?: string; email?: string; ip?: string };

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function mtlsPrincipalName(match: MtlsIdentity['match']): NativeMtlsMatch | { reason: string } {
  const v = match.value.trim();
  switch (match.type) {
    case 'spiffe_id':
      return { name: v };
    case 'fingerprint':
      // Lower-case hex without colons: what Envoy's %DOWNSTREAM_PEER_FINGERPRINT_256% prints.
      return { fingerprint: normalizeFingerprint(v) };
    case 'san': {
      const typed = /^(dns|uri|email|ip address|ip):(.*)$/i.exec(v);
      const type = typed ? typed[1]!.toLowerCase() : undefined;
      if (type === 'uri') return { name: typed![2]! };
      if (type === 'dns') return { name: typed![2]!.toLowerCase() };
      // Envoy joins a certificate's email (and IP) SANs with commas: a value holding one cannot be told apart.
      if (type === 'email') return typed![2]!.includes(',') ? { reason: 'san: an email address with a comma' } : { email: typed![2]! };
      // IPv4 is printed the same way by Envoy and the callout (Node); IPv6 text forms differ (compressed or not).
      if (type !== undefined) return IPV4.test(typed![2]!) ? { ip: typed![2]! } : { reason: 'san: only IPv4 addresses are IP SANs Envoy matches' };
      // A bare value is a SAN of any type (the callout's reading): a name, and an email or IPv4 address when it looks like one.
      if (/^[0-9A-Fa-f:.]+$/.test(v) && v.split(':').length > 2) return { reason: 'san: only IPv4 addresses are IP SANs Envoy matches' };
      const name = /^[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?$/.test(v) ? v.toLowerCase() : v;
      return { name, ...(v.includes('@') && !v.includes(',') ? { email: v } : {}), ...(IPV4.test(v) ? { ip: v } : {}) };
    }
    case 'subject':
      // Envoy prints the subject as RFC 2253 (most specific first, no spaces after commas).
      if (!/^[A-Z][A-Z0-9.]*=[^,+]+(,[A-Z][A-Z0-9.]*=[^,+]+)*$/.test(v) || /\\/.test(v)) return { reason: 'subject: not in the form Envoy prints (CN=…,O=…, no escapes)' };
      return { name: v };
  }
}
