// `portico certs`: a CA, the control plane's server certificate and node certificates for gateway
// groups, written as Kubernetes TLS secrets lay them out (tls.crt, tls.key, ca.crt), for operators
// who have no PKI of their own and for docker-compose's first start.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_TRUST_DOMAIN, isTrustDomain, loadCertificateIssuer, type IssuedCertificate } from './grpc/index.ts';

export const CERTS_USAGE = `portico certs ca --out DIR [--days N]
      a CA: DIR/ca.crt and DIR/ca.key (keep ca.key off every machine that does not issue)
  portico certs control-plane --ca DIR --out DIR --host NAME [--host NAME…] [--days N]
      the control plane's server certificate for the names/addresses Envoys dial
  portico certs node --ca DIR --out DIR --group G [--group G…] [--name NODE] [--days N]
      an Envoy's client certificate, allowed to serve the gateway groups named
  portico certs dev --out DIR --host NAME… --group G… [--if-missing]
      all of the above at once, for development: DIR/ca, DIR/control-plane, DIR/nodes/<group>
  Certificates carry URI SANs spiffe://<trust domain>/gateway-group/<group> (nodes) and
  spiffe://<trust domain>/control-plane (server); --trust-domain (or PORTICO_TRUST_DOMAIN) sets it, default ${DEFAULT_TRUST_DOMAIN}.`;

export interface CertsArgs {
  action: string | undefined;
  out?: string;
  ca?: string;
  hosts: string[];
  groups: string[];
  name?: string;
  days?: number;
  trustDomain: string;
  ifMissing: boolean;
  force: boolean;
}

export class CertsUsageError extends Error {}

function write(dir: string, files: Record<string, string>, force: boolean): void {
  mkdirSync(dir, { recursive: true });
  for (const name of Object.keys(files)) {
    if (!force && existsSync(path.join(dir, name))) throw new Error(`${path.join(dir, name)} exists; pass --force to replace it`);
  }
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name);
    // Keys readable by their owner only; written aside, then renamed, so a reader never sees half a file.
    const mode = name.endsWith('.key') ? 0o600 : 0o644;
    writeFileSync(`${file}.tmp`, content, { mode });
    chmodSync(`${file}.tmp`, mode);
    renameSync(`${file}.tmp`, file);
  }
}

function readCa(dir: string | undefined): IssuedCertificate {
  if (!dir) throw new CertsUsageError('--ca DIR (holding ca.crt and ca.key) is required');
  try {
    return { certificate: readFileSync(path.join(dir, 'ca.crt'), 'utf8'), privateKey: readFileSync(path.join(dir, 'ca.key'), 'utf8') };
  } catch (e) {
    throw new Error(`cannot read the CA in ${dir}: ${(e as Error).message}`);
  }
}

/** Runs one `portico certs` action; returns what it wrote, one line per directory. */
export async function runCerts(a: CertsArgs): Promise<string[]> {
  if (!isTrustDomain(a.trustDomain)) throw new CertsUsageError(`--trust-domain '${a.trustDomain}' is not a trust domain (lower-case DNS-like name)`);
  if (!a.out) throw new CertsUsageError('--out DIR is required');
  const issuer = await loadCertificateIssuer();
  const days = a.days !== undefined ? { days: a.days } : {};
  const td = a.trustDomain;
  switch (a.action) {
    case 'ca': {
      const ca = await issuer.createCa({ commonName: `Portico ${td} CA`, ...days });
      write(a.out, { 'ca.crt': ca.certificate, 'ca.key': ca.privateKey }, a.force);
      return [`${a.out}: ca.crt, ca.key`];
    }
    case 'control-plane': {
      if (a.hosts.length === 0) throw new CertsUsageError('--host NAME (a name or address Envoys use to reach the control plane) is required');
      const ca = readCa(a.ca);
      const c = await issuer.issueControlPlaneCertificate(ca, { trustDomain: td, hosts: a.hosts, ...days });
      write(a.out, { 'tls.crt': c.certificate, 'tls.key': c.privateKey, 'ca.crt': ca.certificate }, a.force);
      return [`${a.out}: tls.crt, tls.key, ca.crt (control plane: ${a.hosts.join(', ')})`];
    }
    case 'node': {
      if (a.groups.length === 0) throw new CertsUsageError('--group G (a gateway group the node may serve) is required');
      const ca = readCa(a.ca);
      const c = await issuer.issueNodeCertificate(ca, { trustDomain: td, groups: a.groups, ...(a.name ? { name: a.name } : {}), ...days });
      write(a.out, { 'tls.crt': c.certificate, 'tls.key': c.privateKey, 'ca.crt': ca.certificate }, a.force);
      return [`${a.out}: tls.crt, tls.key, ca.crt (node of ${a.groups.join(', ')})`];
    }
    case 'dev': {
      if (a.hosts.length === 0 || a.groups.length === 0) throw new CertsUsageError('dev needs --host NAME and --group G');
      if (a.ifMissing && existsSync(path.join(a.out, 'ca', 'ca.crt'))) return [`${a.out}: a CA exists; nothing written`];
      const ca = await issuer.createCa({ commonName: `Portico ${td} development CA`, ...days });
      write(path.join(a.out, 'ca'), { 'ca.crt': ca.certificate, 'ca.key': ca.privateKey }, a.force);
      const cp = await issuer.issueControlPlaneCertificate(ca, { trustDomain: td, hosts: a.hosts, ...days });
      write(path.join(a.out, 'control-plane'), { 'tls.crt': cp.certificate, 'tls.key': cp.privateKey, 'ca.crt': ca.certificate }, a.force);
      const lines = [`${a.out}/ca: ca.crt, ca.key`, `${a.out}/control-plane: tls.crt, tls.key, ca.crt (${a.hosts.join(', ')})`];
      for (const g of a.groups) {
        const n = await issuer.issueNodeCertificate(ca, { trustDomain: td, groups: [g], name: `${g}-node`, ...days });
        write(path.join(a.out, 'nodes', g), { 'tls.crt': n.certificate, 'tls.key': n.privateKey, 'ca.crt': ca.certificate }, a.force);
        lines.push(`${a.out}/nodes/${g}: tls.crt, tls.key, ca.crt (node of ${g})`);
      }
      return lines;
    }
    default:
      throw new CertsUsageError(`unknown certs action '${a.action ?? ''}'`);
  }
}
