// Public surface of src/grpc: the lean HTTP/2 gRPC server the callouts (ext_authz, rate limit), xDS and access logs run on,
// and the security of every control-plane channel: TLS material with hot reload, node identities and
// the guard that admits nodes, and (loaded on demand: only the CLI issues) certificate issuance.
export * from './unary-server.ts';
export * from './service-host.ts';
export * from './channel.ts';
export * from './identity.ts';
export * from './tls.ts';
export type { AltName, IssuedCertificate, IssueOptions } from './certs.ts';

/** The certificate issuer (`portico certs`); a dynamic import so the server never loads the X.509 library. */
export function loadCertificateIssuer(): Promise<typeof import('./certs.ts')> {
  return import('./certs.ts');
}
