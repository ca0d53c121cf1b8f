// Test certificates from the product's own issuer (src/grpc/certs.ts): a CA, and leaf certificates it
// signs. SANs are written as openssl writes them ('DNS:a,IP:1.2.3.4,URI:spiffe://…,email:x@y').
import { createCa, issueCertificate, type AltName, type IssuedCertificate } from '../../src/grpc/certs.ts';

export type TestCertificate = IssuedCertificate;

const SAN_TYPES: Record<string, AltName['type']> = { DNS: 'dns', IP: 'ip', URI: 'uri', email: 'email' };

function parseSan(san: string): AltName[] {
  return san.split(',').map((part) => {
    const i = part.indexOf(':');
    const type = SAN_TYPES[part.slice(0, i).trim()];
    if (!type) throw new Error(`unsupported SAN '${part}'`);
    return { type, value: part.slice(i + 1).trim() };
  });
}

/** A self-signed certificate usable as a CA, for the given common name. */
export function selfSigned(cn: string, opts: { subject?: string } = {}): Promise<TestCertificate> {
  return createCa({ commonName: cn, days: 30, ...(opts.subject ? { subject: opts.subject } : {}) });
}

/** A leaf certificate signed by `ca`, for servers (default) or clients; SAN defaults to DNS:<cn>. */
export function signedBy(ca: TestCertificate, cn: string, opts: { san?: string; altNames?: AltName[]; client?: boolean; subject?: string } = {}): Promise<TestCertificate> {
  return issueCertificate(ca, {
    commonName: cn,
    ...(opts.subject ? { subject: opts.subject } : {}),
    // altNames: SANs as they are (a value may hold a comma, which `san` would split on).
    altNames: opts.altNames ?? parseSan(opts.san ?? `DNS:${cn}`),
    usage: opts.client ? 'client' : 'server',
    days: 30,
  });
}
