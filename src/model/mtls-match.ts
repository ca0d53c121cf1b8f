// Which mTLS identities Envoy can match natively (authz.mode native): its RBAC matches a verified
// client certificate's URI SANs, DNS SANs and subject by exact principal name, and its SHA-256
// fingerprint through a header Envoy writes; shared by the translator and the documentation of what
// stays on the callout.
import type { MtlsIdentity } from './schemas.ts';
import { normalizeFingerprint } from './validate.ts';

/** The principal name Envoy's RBAC compares for this identity, or why it cannot (its partner's routes stay on the callout). */
export function mtlsPrincipalName(match: MtlsIdentity['match']): { name: string } | { fingerprint: string } | { reason: string } {
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
      if (type !== undefined) return { reason: 'san: only URI and DNS names are principals Envoy matches' };
      return { name: /^[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?$/.test(v) ? v.toLowerCase() : v };
    }
    case 'subject':
      // Envoy prints the subject as RFC 2253 (most specific first, no spaces after commas).
      if (!/^[A-Z][A-Z0-9.]*=[^,+]+(,[A-Z][A-Z0-9.]*=[^,+]+)*$/.test(v) || /\\/.test(v)) return { reason: 'subject: not in the form Envoy prints (CN=…,O=…, no escapes)' };
      return { name: v };
  }
}
