// Secret handling: AES-256-GCM envelopes under a rotatable master key, and keyed hashes for API
// keys and admin tokens (only the hash is stored; lookups go by a short public prefix).
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bearerSecret, type SecretKind } from '../contract/index.ts';

export class SecretError extends Error {}

export interface MasterKey {
  id: string;
  key: Buffer;
}

/** Parses a 32-byte key given as base64, base64url or 64 hex digits. */
export function parseMasterKey(text: string): MasterKey {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32) throw new SecretError('a master key must be 32 bytes (base64 or 64 hex digits)');
  return { id: createHash('sha256').update(key).digest('hex').slice(0, 8), key };
}

export function generateMasterKey(): string {
  return randomBytes(32).toString('base64');
}

/** Master keys: the current one seals, every listed one opens (so rotation needs no downtime). */
export class KeyRing {
  readonly current: MasterKey;
  private readonly byId: Map<string, MasterKey>;

  constructor(current: MasterKey, previous: MasterKey[] = []) {
    this.current = current;
    this.byId = new Map([...previous, current].map((k) => [k.id, k]));
  }

  /** Seals a secret; `purpose` is bound as associated data so an envelope cannot be moved to another field. */
  seal(plaintext: string, purpose: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    cipher.setAAD(Buffer.from(purpose));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1.${this.current.id}.${iv.toString('base64url')}.${body.toString('base64url')}`;
  }

  open(envelope: string, purpose: string): string {
    const [v, id, iv, body] = envelope.split('.');
    if (v !== 'v1' || !id || !iv || !body) throw new SecretError('stored secret has an unknown format');
    const k = this.byId.get(id);
    if (!k) throw new SecretError(`stored secret is sealed with master key ${id}, which is not configured (PORTICO_PREVIOUS_MASTER_KEYS)`);
    const raw = Buffer.from(body, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', k.key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(purpose));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    try {
      return Buffer.concat([decipher.update(raw.subarray(0, raw.length - 16)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretError(`stored secret for ${purpose} failed authentication (wrong master key or tampered data)`);
    }
  }

  /** True when the envelope is sealed with the current key (rotation skips those). */
  isCurrent(envelope: string): boolean {
    return envelope.split('.')[1] === this.current.id;
  }
}

export interface MasterKeySource {
  masterKey: string | undefined;
  masterKeyFile: string | undefined;
  previousMasterKeys: string[];
  dataDir: string;
  databaseUrl: string | undefined;
}

/**
 * The key ring from settings. Embedded mode writes a generated key into the data directory on
 * first start; with an external database every replica must be given the same key explicitly.
 */
export function loadKeyRing(s: MasterKeySource, log: (msg: string) => void = () => {}): KeyRing {
  let text = s.masterKey;
  if (!text && s.masterKeyFile) text = readFileSync(s.masterKeyFile, 'utf8');
  if (!text) {
    if (s.databaseUrl) {
      throw new SecretError('PORTICO_MASTER_KEY or PORTICO_MASTER_KEY_FILE is required with DATABASE_URL (every replica needs the same key)');
    }
    // An in-memory database keeps nothing, so neither does its key (a file named memory:/… would be
    // written into the working directory otherwise).
    if (s.dataDir.startsWith('memory://')) return new KeyRing(parseMasterKey(generateMasterKey()), s.previousMasterKeys.map(parseMasterKey));
    const file = path.join(s.dataDir, 'master.key');
    if (!existsSync(file)) {
      mkdirSync(s.dataDir, { recursive: true });
      writeFileSync(file, `${generateMasterKey()}\n`, { mode: 0o600 });
      log(`generated a master key in ${file}; back it up with the data directory`);
    }
    chmodSync(file, 0o600);
    text = readFileSync(file, 'utf8');
  }
  return new KeyRing(parseMasterKey(text), s.previousMasterKeys.map(parseMasterKey));
}

// ── keyed hashes for bearer secrets ───────────────────────────────────────────
const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomPrefix(): string {
  const bytes = randomBytes(8);
  return [...bytes].map((b) => ALNUM[b % ALNUM.length]).join('');
}

export interface MintedSecret {
  /** The whole bearer secret, shown to its owner once. */
  secret: string;
  prefix: string;
  hash: string;
}

/** Keyed hashing of bearer secrets (API keys `ptk_…`, admin tokens `pta_…`). */
export class SecretHasher {
  constructor(private readonly key: Buffer) {}

  hash(secret: string): string {
    return createHmac('sha256', this.key).update(secret).digest('base64url');
  }

  /** Constant-time comparison of a presented secret against a stored hash. */
  verify(secret: string, storedHash: string): boolean {
    const a = Buffer.from(this.hash(secret));
    const b = Buffer.from(storedHash);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  mint(kind: SecretKind): MintedSecret {
    const prefix = randomPrefix();
    const secret = bearerSecret(kind, prefix, randomBytes(32).toString('base64url'));
    return { secret, prefix, hash: this.hash(secret) };
  }
}
