// mTLS identities: what a client certificate says about its holder (RFC 4514 subject, SANs, SPIFFE
// ID, SHA-256 fingerprint), read from what Envoy forwards, and its mapping to a partner.
import { X509Certificate } from 'node:crypto';
import { Lru } from './lru.ts';
import { canonicalIp } from '../model/index.ts';

export type SanType = 'dns' | 'uri' | 'email' | 'ip' | 'other';

export interface PeerIdentity {
  /** RFC 4514 form, most specific RDN first (as Envoy prints it), canonicalised by canonicalSubject. */
  subject: string | undefined;
  sans: ReadonlyArray<{ type: SanType; value: string }>;
  spiffeIds: readonly string[];
  /** Lower-case hex SHA-256 of the DER certificate. */
  fingerprint: string | undefined;
}

// ── distinguished names ──────────────────────────────────────────────────────

/** Splits on `sep` where it is not backslash-escaped. */
function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1];
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

function unescapeDnValue(v: string): string {
  return v.replace(/\\([0-9A-Fa-f]{2}|.)/g, (_, x: string) => (x.length === 2 ? String.fromCharCode(parseInt(x, 16)) : x));
}

function escapeDnValue(v: string): string {
  let out = v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`);
  if (out.startsWith('#') || out.startsWith(' ')) out = `\\${out}`;
  if (out.endsWith(' ') && !out.endsWith('\\ ')) out = `${out.slice(0, -1)}\\ `;
  return out;
}

/** One RDN (possibly multi-valued with '+') in canonical form: TYPE=value, AVAs sorted. */
function canonicalRdn(rdn: string): string | undefined {
  const avas: string[] = [];
  for (const raw of splitUnescaped(rdn, '+')) {
    const ava = raw.trim();
    const eq = ava.indexOf('=');
    if (eq <= 0) return undefined;
    const type = ava.slice(0, eq).trim().toUpperCase();
    const value = unescapeDnValue(ava.slice(eq + 1).trim());
    avas.push(`${type}=${escapeDnValue(value)}`);
  }
  return avas.sort().join('+');
}

function joinRdns(rdns: string[]): string | undefined {
  const out: string[] = [];
  for (const r of rdns) {
    if (r.trim() === '') continue;
    const c = canonicalRdn(r);
    if (c === undefined) return undefined;
    out.push(c);
  }
  return out.length ? out.join(',') : undefined;
}

/**
 * A subject as an administrator writes it, in canonical form: RFC 4514 (`CN=billing,O=Acme,C=DE`,
 * most specific first, as Envoy prints it) or OpenSSL's slash form (`/C=DE/O=Acme/CN=billing`,
 * certificate order). Spaces around separators, attribute-type case and the order of AVAs inside a
 * multi-valued RDN do not matter; RDN order does. Undefined when it cannot be parsed.
 */
export function canonicalSubject(value: string): string | undefined {
  const v = value.trim();
  if (v.startsWith('/')) return joinRdns(splitUnescaped(v.slice(1), '/').reverse());
  return joinRdns(splitUnescaped(v, ','));
}

/** Node's X509Certificate.subject (one RDN per line, certificate order) in canonical form. */
export function subjectOfNodeCertificate(subject: string): string | undefined {
  return joinRdns(subject.split('\n').reverse());
}

// ── subject alternative names ────────────────────────────────────────────────

const SAN_TYPES: Record<string, SanType> = { dns: 'dns', uri: 'uri', email: 'email', ip: 'ip', 'ip address': 'ip' };
const HOSTNAME = /^[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?$/;

/** A SAN identity value (`DNS:billing.internal`, `URI:…`, `email:…`, `IP:…`, or a bare value of any type). */
export function canonicalSan(value: string): { type: SanType | undefined; value: string } {
  const m = /^(dns|uri|email|ip address|ip):(.*)$/i.exec(value.trim());
  if (m) {
    const type = SAN_TYPES[m[1]!.toLowerCase()]!;
    return { type, value: type === 'dns' ? m[2]!.toLowerCase() : type === 'ip' ? canonicalIp(m[2]!) : m[2]! };
  }
  // DNS names compare case-insensitively; a bare value that looks like one is stored lower-case.
  const v = canonicalIp(value.trim());
  return { type: undefined, value: HOSTNAME.test(v) ? v.toLowerCase() : v };
}

/** Parses Node's subjectAltName string: `DNS:a, URI:b, IP Address:c`; values with separators come JSON-quoted. */
export function parseSubjectAltName(s: string | undefined): Array<{ type: SanType; value: string }> {
  const out: Array<{ type: SanType; value: string }> = [];
  if (!s) return out;
  let i = 0;
  while (i < s.length) {
    const colon = s.indexOf(':', i);
    if (colon < 0) break;
    const rawType = s.slice(i, colon).trim();
    let value: string;
    let next: number;
    if (s[colon + 1] === '"') {
      // JSON string: find the closing quote that is not escaped.
      let j = colon + 2;
      while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(s.slice(colon + 1, j + 1)) as string;
      } catch {
        value = s.slice(colon + 2, j);
      }
      next = s.indexOf(', ', j + 1);
    } else {
      next = s.indexOf(', ', colon + 1);
      value = s.slice(colon + 1, next < 0 ? s.length : next);
    }
    const type = SAN_TYPES[rawType.toLowerCase()] ?? 'other';
    out.push({ type, value: type === 'dns' ? value.toLowerCase() : type === 'ip' ? canonicalIp(value) : value });
    if (next < 0) break;
    i = next + 2;
  }
  return out;
}

// ── certificates from Envoy ──────────────────────────────────────────────────

// Parsing a certificate costs ~0.2 ms; the same few client certificates come back on every request.
const parsed = new Lru<string, PeerIdentity | null>(1024);

/**
 * The identity in AttributeContext.Peer.certificate (URL-encoded PEM, sent when the ext_authz filter
 * has include_peer_certificate). Undefined when it is not a certificate. Envoy has already verified
 * the chain against the listener's client CA; this only reads what the certificate says.
 */
export function peerFromCertificate(urlEncodedPem: string): PeerIdentity | undefined {
  const cached = parsed.get(urlEncodedPem);
  if (cached !== undefined) return cached ?? undefined;
  let identity: PeerIdentity | null = null;
  try {
    const cert = new X509Certificate(decodeURIComponent(urlEncodedPem));
    const sans = parseSubjectAltName(cert.subjectAltName);
    identity = {
      subject: subjectOfNodeCertificate(cert.subject),
      sans,
      spiffeIds: sans.filter((s) => s.type === 'uri' && s.value.startsWith('spiffe://')).map((s) => s.value),
      fingerprint: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
    };
  } catch {
    identity = null;
  }
  parsed.set(urlEncodedPem, identity);
  return identity ?? undefined;
}

/** Partners by client-certificate identity (CredentialIndex.mtls). */
export interface MtlsIndex {
  /** Canonical RFC 4514 subject → partner. */
  subject: ReadonlyMap<string, string>;
  /** `type:value` (dns:, uri:, email:, ip:) → partner, for SAN identities that name their type. */
  sanTyped: ReadonlyMap<string, string>;
  /** SAN value of any type → partner. */
  sanAny: ReadonlyMap<string, string>;
  spiffe: ReadonlyMap<string, string>;
  /** Lower-case hex SHA-256 of the DER certificate → partner. */
  fingerprint: ReadonlyMap<string, string>;
}

/** The partner a certificate identifies: by fingerprint, then SPIFFE ID, then SAN, then subject. */
export function partnerOfPeer(index: MtlsIndex, peer: PeerIdentity): string | undefined {
  if (peer.fingerprint !== undefined) {
    const p = index.fingerprint.get(peer.fingerprint);
    if (p !== undefined) return p;
  }
  for (const id of peer.spiffeIds) {
    const p = index.spiffe.get(id);
    if (p !== undefined) return p;
  }
  for (const san of peer.sans) {
    const p = index.sanTyped.get(`${san.type}:${san.value}`) ?? index.sanAny.get(san.value);
    if (p !== undefined) return p;
  }
  if (peer.subject !== undefined) return index.subject.get(peer.subject);
  return undefined;
}

/**
 * The partner named by AttributeContext.Peer.principal alone (when Envoy does not forward the
 * certificate): Envoy fills it with the first URI SAN, else the first DNS SAN, else the subject.
 */
export function partnerOfPrincipal(index: MtlsIndex, principal: string): string | undefined {
  if (principal.startsWith('spiffe://')) {
    const p = index.spiffe.get(principal);
    if (p !== undefined) return p;
  }
  const lower = principal.toLowerCase();
  const bySan = index.sanTyped.get(`uri:${principal}`) ?? index.sanTyped.get(`dns:${lower}`) ?? index.sanAny.get(principal) ?? index.sanAny.get(lower);
  if (bySan !== undefined) return bySan;
  const subject = principal.includes('=') ? canonicalSubject(principal) : undefined;
  return subject !== undefined ? index.subject.get(subject) : undefined;
}
