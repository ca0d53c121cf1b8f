// Who is on the other end of a control-plane channel: the identities Portico's certificates carry
// (URI SANs, SPIFFE form) and what a verified peer certificate says, as pure functions.
//
//   spiffe://<trust domain>/gateway-group/<group>   an Envoy that may serve <group> (one SAN per group)
//   spiffe://<trust domain>/control-plane           the control plane's server certificate

/** Gateway group names as the model allows them; anything else in a SAN is not an identity of ours. */
const GROUP_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const TRUST_DOMAIN = /^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$/;

export const DEFAULT_TRUST_DOMAIN = 'portico';

export function isTrustDomain(s: string): boolean {
  return TRUST_DOMAIN.test(s);
}

/** The URI SAN of a node certificate for one gateway group. */
export function groupIdentityUri(trustDomain: string, group: string): string {
  if (!GROUP_NAME.test(group)) throw new Error(`'${group}' is not a gateway group name (lower-case letters, digits and '-')`);
  return `spiffe://${trustDomain}/gateway-group/${group}`;
}

/** The URI SAN of the control plane's server certificate; Envoys accept only this identity as their control plane. */
export function controlPlaneIdentityUri(trustDomain: string): string {
  return `spiffe://${trustDomain}/control-plane`;
}

/** The parts of tls.PeerCertificate (or X509Certificate) read here. */
export interface PeerCertificateLike {
  subject?: { CN?: string | string[] } | undefined;
  subjectaltname?: string | undefined;
  serialNumber?: string | undefined;
  valid_to?: string | undefined;
}

/** What a verified client certificate says: the gateway groups its holder may serve. */
export interface PeerIdentity {
  /** The certificate's common name (informational: authorization reads the URI SANs only). */
  commonName: string;
  serial: string;
  notAfter: string;
  /** Gateway groups of this trust domain the certificate names, sorted. */
  groups: string[];
}

/**
 * Reads the identity of a certificate the TLS stack already verified against the CA. SAN entries
 * are Node's `subjectaltname` text (`URI:a, DNS:b`; values with separators come quoted, and a
 * quoted value never matches, so a crafted DNS name cannot smuggle a URI in).
 */
export function peerIdentity(cert: PeerCertificateLike, trustDomain: string): PeerIdentity {
  const prefix = `URI:spiffe://${trustDomain}/gateway-group/`;
  const groups = new Set<string>();
  for (const entry of (cert.subjectaltname ?? '').split(', ')) {
    if (!entry.startsWith(prefix)) continue;
    const group = entry.slice(prefix.length);
    if (GROUP_NAME.test(group)) groups.add(group);
  }
  const cn = cert.subject?.CN;
  return {
    commonName: (Array.isArray(cn) ? cn[0] : cn) ?? '',
    serial: cert.serialNumber ?? '',
    notAfter: cert.valid_to ? new Date(cert.valid_to).toISOString() : '',
    groups: [...groups].sort(),
  };
}
