// Which mTLS identities Envoy can match natively (authz.mode native): its RBAC matches a verified
// client certificate's URI SANs, DNS SANs and subject by exact principal name, and its SHA-256
// fingerprint, email SANs and IP SANs through headers Envoy writes; shared by the translator, the
// callout (one text form for IPv6) and the documentation of what stays on the callout.
import type { MtlsIdentity } from './schemas.ts';
import { normalizeFingerprint } from './validate.ts';

/**
 * What Envoy compares for this identity (it matches when any member does): a principal name (URI SAN,
 * DNS SAN or subject), the fingerprint, an email SAN or an IP SAN (the latter three in headers the
 * edge writes from the verified certificate); or why it cannot (its partner's routes stay on the callout).
 */
export type NativeMtlsMatch = { name?: string; fingerprint?: string; email?: string; emailSan?: string; ip?: string };

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** An IPv6 address in RFC 5952's text form (lower case, no leading zeros, the first longest run of two or more zero groups compressed), or undefined when `value` is none. */
function ipv6Form(value: string): string | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(value) || value.split(':').length < 3) return undefined;
  try {
    // The WHATWG URL serializer writes RFC 5952's form.
    return new URL(`http://[${value}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

/**
 * An IPv6 address in one text form (RFC 5952), whatever form it was written in; other values as they
 * are. Node prints a certificate's IPv6 SANs uncompressed and upper case (FD00:0:…:7), administrators
 * write them compressed (fd00::7): the callout compares both in this form (Envoy prints nearly it, see ipSan).
 */
export function canonicalIp(value: string): string {
  return ipv6Form(value) ?? value;
}

/**
 * The IP SAN as Envoy prints it for an identity value, or undefined when the value is no IP address.
 * Envoy writes an IP SAN with inet_ntop: RFC 5952's form, except that an address whose first 80 bits
 * are zero, then 0000 or ffff, then an IPv4 address gets its last 32 bits dotted (::10.1.2.3,
 * ::ffff:10.1.2.3), as RFC 5952 section 5 recommends for IPv4-mapped addresses. Both checked against
 * Envoy in test/e2e/authz-native-mtls.test.ts.
 */
function ipSan(v: string): { ip: string } | undefined {
  if (IPV4.test(v)) return { ip: v };
  const c = ipv6Form(v);
  if (c === undefined) return undefined;
  const embedded = /^::(ffff:)?([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(c);
  if (!embedded) return { ip: c };
  const [hi, lo] = [Number.parseInt(embedded[2]!, 16), Number.parseInt(embedded[3]!, 16)];
  return { ip: `::${embedded[1] ?? ''}${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}` };
}

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
      // Envoy joins a certificate's email SANs with commas in the header: an address holding one is
      // matched as one SAN instead (emailSan: Envoy's mtls_authenticated RBAC principal).
      if (type === 'email') return typed![2]!.includes(',') ? { emailSan: typed![2]! } : { email: typed![2]! };
      if (type !== undefined) return ipSan(typed![2]!) ?? { reason: 'san: not an IPv4 or IPv6 address' };
      // A bare value is a SAN of any type (the callout's reading): a name, and an email or IP address when it looks like one.
      const ip = ipSan(v);
      const name = ip ? ip.ip : /^[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?$/.test(v) ? v.toLowerCase() : v;
      return { name, ...(v.includes('@') ? (v.includes(',') ? { emailSan: v } : { email: v }) : {}), ...(ip ?? {}) };
    }
    case 'subject':
      // Envoy prints the subject as RFC 2253 (most specific first, no spaces after commas).
      if (!/^[A-Z][A-Z0-9.]*=[^,+]+(,[A-Z][A-Z0-9.]*=[^,+]+)*$/.test(v) || /\\/.test(v)) return { reason: 'subject: not in the form Envoy prints (CN=…,O=…, no escapes)' };
      return { name: v };
  }
}
