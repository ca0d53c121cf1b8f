// Test certificates made with openssl at run time (a CA, and leaf certificates it signs).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCertificate {
  certificate: string;
  privateKey: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A self-signed certificate (usable as a CA) for the given common name. */
export function selfSigned(cn: string, opts: { san?: string } = {}): TestCertificate {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-cert-'));
  try {
    openssl(
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '30', '-subj', `/CN=${cn}`,
        '-addext', `subjectAltName=${opts.san ?? `DNS:${cn}`}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,digitalSignature'],
      dir,
    );
    return { certificate: readFileSync(path.join(dir, 'cert.pem'), 'utf8'), privateKey: readFileSync(path.join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A leaf certificate signed by `ca`, for servers or clients. */
export function signedBy(ca: TestCertificate, cn: string, opts: { san?: string; client?: boolean } = {}): TestCertificate {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-cert-'));
  try {
    writeFileSync(path.join(dir, 'ca.pem'), ca.certificate);
    writeFileSync(path.join(dir, 'ca.key'), ca.privateKey);
    writeFileSync(
      path.join(dir, 'ext.cnf'),
      `subjectAltName=${opts.san ?? `DNS:${cn}`}\nextendedKeyUsage=${opts.client ? 'clientAuth' : 'serverAuth'}\nbasicConstraints=CA:FALSE\n`,
    );
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'key.pem', '-out', 'req.csr', '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', 'req.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'cert.pem', '-days', '30', '-extfile', 'ext.cnf'], dir);
    return { certificate: readFileSync(path.join(dir, 'cert.pem'), 'utf8'), privateKey: readFileSync(path.join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
