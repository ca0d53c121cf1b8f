// Certificates for the control-plane channels: a CA, the control plane's server certificate and
// node certificates for gateway groups (`portico certs`, the compose init step, and every test).
// Built on @peculiar/x509 over Node's WebCrypto, so it runs wherever Node does (the slim image has
// no openssl binary). Only the CLI and tests load this module: the server never issues anything.
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it, once, before it loads
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import { controlPlaneIdentityUri, groupIdentityUri } from './identity.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** A certificate and its private key, PEM (the key as PKCS#8). */
export interface IssuedCertificate {
  certificate: string;
  privateKey: string;
}

/** One subject alternative name; a certificate carries them in the order given. */
export interface AltName {
  type: 'dns' | 'ip' | 'uri' | 'email';
  value: string;
}

export interface IssueOptions {
  commonName: string;
  /** A full subject in RFC 4514 form (`CN=a,O=b`); overrides commonName. */
  subject?: string;
  altNames?: AltName[];
  /** What the key may be used for: a TLS server, a TLS client, or both. */
  usage: 'server' | 'client' | 'both';
  days?: number;
  /** Validity start (default: one hour ago, for clocks slightly behind). */
  notBefore?: Date;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

/** A positive 128-bit serial, hex. */
function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

function pemKey(der: ArrayBuffer): string {
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function validity(days: number, notBefore?: Date): { notBefore: Date; notAfter: Date } {
  const from = notBefore ?? new Date(Date.now() - 3_600_000);
  return { notBefore: from, notAfter: new Date(from.getTime() + days * DAY) };
}

/** The CA's key as a WebCrypto signing key, and the algorithm it signs with (EC P-256/384 or RSA). */
async function signingKey(privateKeyPem: string): Promise<{ key: CryptoKey; algorithm: Algorithm & Record<string, unknown> }> {
  const k = createPrivateKey(privateKeyPem);
  const der = k.export({ format: 'der', type: 'pkcs8' });
  if (k.asymmetricKeyType === 'ec') {
    const curve = k.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : 'P-256';
    const algorithm = { name: 'ECDSA', namedCurve: curve, hash: curve === 'P-384' ? 'SHA-384' : 'SHA-256' };
    return { key: (await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign'])) as CryptoKey, algorithm };
  }
  if (k.asymmetricKeyType === 'rsa') {
    const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return { key: (await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign'])) as CryptoKey, algorithm };
  }
  throw new Error(`the CA key is ${k.asymmetricKeyType}; EC (P-256, P-384) and RSA keys are supported`);
}

function generalNames(names: readonly AltName[]): x509.JsonGeneralName[] {
  return names.map((n) => ({ type: n.type === 'uri' ? 'url' : n.type, value: n.value }));
}

/** A self-signed CA (it signs leaf certificates only: path length 0). */
export async function createCa(o: { commonName: string; subject?: string; days?: number; notBefore?: Date }): Promise<IssuedCertificate> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: o.subject ?? `CN=${o.commonName}`,
    ...validity(o.days ?? 3650, o.notBefore),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificate: cert.toString('pem'), privateKey: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

/** A leaf certificate signed by `ca`, for a TLS server, client or both. */
export async function issueCertificate(ca: IssuedCertificate, o: IssueOptions): Promise<IssuedCertificate> {
  const caCert = new x509.X509Certificate(ca.certificate);
  const signer = await signingKey(ca.privateKey);
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const usages = { server: [x509.ExtendedKeyUsage.serverAuth], client: [x509.ExtendedKeyUsage.clientAuth], both: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] }[o.usage];
  const names = generalNames(o.altNames ?? []);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: o.subject ?? `CN=${o.commonName}`,
    issuer: caCert.subject,
    ...validity(o.days ?? 365, o.notBefore),
    publicKey: keys.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(usages, false),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { certificate: cert.toString('pem'), privateKey: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

/** Host names and IP addresses as SANs (as `portico certs control-plane --host` takes them). */
export function hostAltNames(hosts: readonly string[]): AltName[] {
  return hosts.map((h) => ({ type: isIP(h) === 0 ? 'dns' : 'ip', value: h }));
}

/** The control plane's server certificate: its host names/addresses, and the control-plane identity Envoys check. */
export async function issueControlPlaneCertificate(ca: IssuedCertificate, o: { trustDomain: string; hosts: readonly string[]; days?: number }): Promise<IssuedCertificate> {
  if (o.hosts.length === 0) throw new Error('the control plane certificate needs at least one host name or address Envoys use to reach it');
  return issueCertificate(ca, {
    commonName: o.hosts[0]!,
    usage: 'server',
    altNames: [...hostAltNames(o.hosts), { type: 'uri', value: controlPlaneIdentityUri(o.trustDomain) }],
    ...(o.days ? { days: o.days } : {}),
  });
}

/** A node (Envoy) certificate: one identity per gateway group it may serve. */
export async function issueNodeCertificate(ca: IssuedCertificate, o: { trustDomain: string; groups: readonly string[]; name?: string; days?: number }): Promise<IssuedCertificate> {
  if (o.groups.length === 0) throw new Error('a node certificate needs at least one gateway group');
  return issueCertificate(ca, {
    commonName: o.name ?? `${o.groups[0]}-node`,
    usage: 'client',
    altNames: o.groups.map((g) => ({ type: 'uri' as const, value: groupIdentityUri(o.trustDomain, g) })),
    ...(o.days ? { days: o.days } : {}),
  });
}
