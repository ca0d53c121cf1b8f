// The control plane's TLS material on disk (server certificate, key, and the CA that verifies
// Envoys' client certificates), checked as a whole and re-read while serving: a rotation on disk
// reaches new connections (node:http2's setSecureContext) while open streams keep the context they
// started with.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA bundle (PEM, one or more) that client certificates must chain to. */
  caFile: string;
}

export interface TlsSnapshot {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  /** The server certificate's serial and expiry (for logs and status). */
  serial: string;
  notAfter: string;
}

export interface TlsLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Reads and checks the three files together; throws with the file and the problem. */
export function readTlsFiles(files: TlsFiles, now = Date.now()): TlsSnapshot {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new Error(`${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const cert = read(files.certFile, 'certificate');
  const key = read(files.keyFile, 'private key');
  const ca = read(files.caFile, 'CA bundle');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`certificate ${files.certFile} is not a PEM certificate: ${(e as Error).message}`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new Error(`private key ${files.keyFile} is not a PEM private key: ${(e as Error).message}`);
  }
  // A rotation caught half-written shows up here: the key of one certificate beside another certificate.
  if (!leaf.checkPrivateKey(privateKey)) throw new Error(`private key ${files.keyFile} does not belong to certificate ${files.certFile}`);
  if (Date.parse(leaf.validTo) <= now) throw new Error(`certificate ${files.certFile} expired on ${leaf.validTo}`);
  const cas = ca.toString('utf8').match(PEM_CERT) ?? [];
  if (cas.length === 0) throw new Error(`CA bundle ${files.caFile} holds no PEM certificate`);
  for (const pem of cas) {
    try {
      if (!new X509Certificate(pem).ca) throw new Error('it is not a CA certificate (basicConstraints CA:FALSE)');
    } catch (e) {
      throw new Error(`CA bundle ${files.caFile}: ${(e as Error).message}`);
    }
  }
  return { cert, key, ca, serial: leaf.serialNumber, notAfter: new Date(leaf.validTo).toISOString() };
}

/**
 * The current TLS material, re-read every `reloadMs`: a changed and valid set replaces the current
 * one and listeners are told; a changed but invalid set (half-written, mismatched, expired) is
 * logged and ignored, so a botched rotation never leaves the server without credentials.
 */
export class TlsMaterial {
  private snapshot: TlsSnapshot;
  private digest: string;
  private timer: NodeJS.Timeout | undefined;
  private lastProblem: string | undefined;
  private readonly listeners = new Set<(s: TlsSnapshot) => void>();

  constructor(
    readonly files: TlsFiles,
    private readonly options: { reloadMs: number; logger?: TlsLogger },
  ) {
    this.snapshot = readTlsFiles(files);
    this.digest = digestOf(this.snapshot);
    if (options.reloadMs > 0) {
      this.timer = setInterval(() => this.reload(), options.reloadMs);
      this.timer.unref();
    }
  }

  current(): TlsSnapshot {
    return this.snapshot;
  }

  /** Options for tls.createSecureContext / setSecureContext. */
  secureContextOptions(): SecureContextOptions {
    return { cert: this.snapshot.cert, key: this.snapshot.key, ca: this.snapshot.ca };
  }

  /** Calls `fn` with every new valid set; returns the unsubscribe function. */
  onChange(fn: (s: TlsSnapshot) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Re-reads the files now (the timer calls this); true when a new set was taken. */
  reload(): boolean {
    let next: TlsSnapshot;
    try {
      next = readTlsFiles(this.files);
    } catch (e) {
      const problem = (e as Error).message;
      // Say it once per distinct problem, not every interval.
      if (problem !== this.lastProblem) this.options.logger?.warn({ problem }, 'tls: new certificate files not taken; still serving the previous ones');
      this.lastProblem = problem;
      return false;
    }
    this.lastProblem = undefined;
    const digest = digestOf(next);
    if (digest === this.digest) return false;
    this.snapshot = next;
    this.digest = digest;
    this.options.logger?.info({ serial: next.serial, notAfter: next.notAfter }, 'tls: certificates reloaded (new connections use them; open streams continue)');
    for (const fn of this.listeners) fn(next);
    return true;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

function digestOf(s: TlsSnapshot): string {
  return createHash('sha256').update(s.cert).update('\0').update(s.key).update('\0').update(s.ca).digest('hex');
}
