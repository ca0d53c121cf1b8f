// A PKI for the control-plane channels in a temporary directory, made by the product's issuer: the CA,
// the control plane's certificate (localhost, 127.0.0.1), node certificates per gateway group with the
// SDS file Envoy reads them through, and grpc-js credentials for test clients (including attackers').
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createCa, issueCertificate, issueControlPlaneCertificate, issueNodeCertificate, type IssuedCertificate } from '../../src/grpc/certs.ts';
import { renderChannelSds } from '../../src/xds/bootstrap.ts';

export const TRUST_DOMAIN = 'portico';

export interface NodeFiles {
  dir: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  /** The directory with the SDS files an Envoy bootstrap names (renderChannelSds over the three files). */
  sdsDir: string;
  cert: IssuedCertificate;
}

export interface ChannelPki {
  dir: string;
  ca: IssuedCertificate;
  server: IssuedCertificate;
  /** Control-plane settings for mTLS (PORTICO_TLS_*), reloading every 100 ms. */
  env: Record<string, string>;
  serverFiles: { certFile: string; keyFile: string; caFile: string };
  /** Writes a node certificate for `groups` (and its SDS file) under dir/nodes/<name>. */
  node(name: string, groups: string[], opts?: { ca?: IssuedCertificate }): Promise<NodeFiles>;
  /** Replaces a node's certificate on disk the way Kubernetes and cert-manager do: new files renamed into place. */
  rotateNode(node: NodeFiles, groups: string[]): Promise<IssuedCertificate>;
  /** Replaces the control plane's certificate on disk (same CA). */
  rotateServer(): Promise<IssuedCertificate>;
  close(): void;
}

/** Writes `content` beside `file` and renames it into place (a reader never sees half a file). */
export function replaceFile(file: string, content: string): void {
  writeFileSync(`${file}.new`, content, { mode: 0o600 });
  renameSync(`${file}.new`, file);
}

export async function channelPki(): Promise<ChannelPki> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-channel-'));
  const ca = await createCa({ commonName: 'Portico test channel CA', days: 30 });
  const server = await issueControlPlaneCertificate(ca, { trustDomain: TRUST_DOMAIN, hosts: ['localhost', '127.0.0.1'], days: 30 });
  const sdir = path.join(dir, 'control-plane');
  mkdirSync(sdir, { recursive: true });
  const serverFiles = { certFile: path.join(sdir, 'tls.crt'), keyFile: path.join(sdir, 'tls.key'), caFile: path.join(sdir, 'ca.crt') };
  writeFileSync(serverFiles.certFile, server.certificate);
  writeFileSync(serverFiles.keyFile, server.privateKey, { mode: 0o600 });
  writeFileSync(serverFiles.caFile, ca.certificate);
  const pki: ChannelPki = {
    dir,
    ca,
    server,
    serverFiles,
    env: {
      PORTICO_TLS_CERT_FILE: serverFiles.certFile,
      PORTICO_TLS_KEY_FILE: serverFiles.keyFile,
      PORTICO_TLS_CLIENT_CA_FILE: serverFiles.caFile,
      PORTICO_TLS_RELOAD_MS: '100',
      PORTICO_TRUST_DOMAIN: TRUST_DOMAIN,
    },
    async node(name, groups, opts = {}) {
      const nodeDir = path.join(dir, 'nodes', name);
      mkdirSync(nodeDir, { recursive: true });
      const cert = await issueNodeCertificate(opts.ca ?? ca, { trustDomain: TRUST_DOMAIN, groups, name, days: 30 });
      const files = { certFile: path.join(nodeDir, 'tls.crt'), keyFile: path.join(nodeDir, 'tls.key'), caFile: path.join(nodeDir, 'ca.crt') };
      writeFileSync(files.certFile, cert.certificate);
      writeFileSync(files.keyFile, cert.privateKey, { mode: 0o600 });
      writeFileSync(files.caFile, ca.certificate);
      const sdsDir = path.join(nodeDir, 'sds');
      mkdirSync(sdsDir);
      for (const [file, doc] of Object.entries(renderChannelSds({ ...files, trustDomain: TRUST_DOMAIN }))) writeFileSync(path.join(sdsDir, file), JSON.stringify(doc));
      return { dir: nodeDir, ...files, sdsDir, cert };
    },
    async rotateNode(node, groups) {
      const cert = await issueNodeCertificate(ca, { trustDomain: TRUST_DOMAIN, groups, name: path.basename(node.dir), days: 30 });
      // Key first, then certificate: for a moment they do not match, which readers must survive.
      replaceFile(node.keyFile, cert.privateKey);
      replaceFile(node.certFile, cert.certificate);
      node.cert = cert;
      return cert;
    },
    async rotateServer() {
      const next = await issueControlPlaneCertificate(ca, { trustDomain: TRUST_DOMAIN, hosts: ['localhost', '127.0.0.1'], days: 30 });
      replaceFile(serverFiles.keyFile, next.privateKey);
      replaceFile(serverFiles.certFile, next.certificate);
      pki.server = next;
      return next;
    },
    close() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return pki;
}

/** grpc-js client credentials trusting `ca`, presenting `client` when given. */
export function clientCredentials(ca: IssuedCertificate, client?: IssuedCertificate): grpc.ChannelCredentials {
  return client ? grpc.credentials.createSsl(Buffer.from(ca.certificate), Buffer.from(client.privateKey), Buffer.from(client.certificate)) : grpc.credentials.createSsl(Buffer.from(ca.certificate));
}

/** A client certificate from `ca` without any gateway-group identity (e.g. some other service's). */
export function plainClientCertificate(ca: IssuedCertificate): Promise<IssuedCertificate> {
  return issueCertificate(ca, { commonName: 'billing-batch', usage: 'client', altNames: [{ type: 'dns', value: 'billing.internal' }], days: 30 });
}
