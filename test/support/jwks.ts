// A test identity provider with a real JWKS endpoint: RSA and EC keys under chosen kids, a published
// set the test can change (key rotation), and tokens with any claims, header or algorithm — including
// the ones a gateway must refuse (alg none, HS256 signed with the RSA public key, wrong audience…).
import { generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { SignJWT, exportJWK, type JWK, type JWTPayload } from 'jose';
import { listenHttp } from './servers.ts';

export type KeyAlg = 'RS256' | 'ES256';

export interface IssuerKey {
  kid: string;
  alg: KeyAlg;
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: JWK;
}

export interface TokenOptions {
  /** Signing key (default: the current signing key). */
  kid?: string;
  /** Header alg (default: the key's). RS384/RS512 with an RSA key sign for real; HS256 uses `hmacSecret`. */
  alg?: string;
  /** For alg HS*: the shared secret (e.g. the RSA public key's PEM, for algorithm confusion). */
  hmacSecret?: Uint8Array;
  /** Leave the kid out of the header. */
  noKid?: boolean;
  iss?: string;
  /** Audience (default: the issuer's audience); null leaves it out. */
  aud?: string | string[] | null;
  sub?: string;
  /** Seconds since the epoch; default now + 1 h. null leaves exp out. */
  exp?: number | null;
  nbf?: number;
  iat?: number;
  claims?: Record<string, unknown>;
}

export interface TestIssuer {
  /** The `iss` claim value. */
  issuer: string;
  audience: string;
  /** http://127.0.0.1:<port>/.well-known/jwks.json */
  jwksUri: string;
  /** Keys by kid (published or not). */
  keys: ReadonlyMap<string, IssuerKey>;
  /** The kid new tokens are signed with by default. */
  signingKid: string;
  /** Creates a key (not published until publish() names it). */
  addKey(kid: string, alg: KeyAlg): Promise<IssuerKey>;
  /** Sets the kids the JWKS endpoint serves, in order. */
  publish(kids: readonly string[]): void;
  /** Makes `kid` the default signing key. */
  signWith(kid: string): void;
  /** GET requests the JWKS endpoint has answered. */
  fetchCount(): number;
  token(opts?: TokenOptions): Promise<string>;
  close(): Promise<void>;
}

const b64url = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An unsigned token (alg none), as an attacker would send it. */
export function unsignedToken(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${b64url({ alg: 'none', ...header })}.${b64url(payload)}.`;
}

const generateRsa = promisify(generateKeyPair) as (type: 'rsa', o: { modulusLength: number }) => Promise<{ publicKey: KeyObject; privateKey: KeyObject }>;
const generateEc = promisify(generateKeyPair) as (type: 'ec', o: { namedCurve: string }) => Promise<{ publicKey: KeyObject; privateKey: KeyObject }>;

export const now = (): number => Math.floor(Date.now() / 1000);

export async function startTestIssuer(opts: { issuer?: string; audience?: string; keys?: Array<{ kid: string; alg: KeyAlg }> } = {}): Promise<TestIssuer> {
  const issuer = opts.issuer ?? 'https://auth.example.com';
  const audience = opts.audience ?? 'api.example.com';
  const keys = new Map<string, IssuerKey>();
  let published: string[] = [];
  let fetches = 0;

  const addKey = async (kid: string, alg: KeyAlg): Promise<IssuerKey> => {
    // Off the event loop: tests often share their process with the control plane, whose Checks
    // (250 ms timeout) a synchronous RSA key generation would stall.
    const pair = alg === 'RS256' ? await generateRsa('rsa', { modulusLength: 2048 }) : await generateEc('ec', { namedCurve: 'P-256' });
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
    const key: IssuerKey = { kid, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
    keys.set(kid, key);
    return key;
  };
  const initial = opts.keys ?? [{ kid: 'rsa-1', alg: 'RS256' as const }];
  for (const k of initial) await addKey(k.kid, k.alg);
  published = initial.map((k) => k.kid);
  let signingKid = initial[0]!.kid;

  const server = await listenHttp((req, res) => {
    if (req.method === 'GET' && req.url === '/.well-known/jwks.json') {
      fetches++;
      const body = JSON.stringify({ keys: published.map((kid) => keys.get(kid)!.jwk) });
      res.writeHead(200, { 'content-type': 'application/jwk-set+json', 'content-length': Buffer.byteLength(body) });
      return res.end(body);
    }
    res.writeHead(404).end();
  });
  const port = server.port;

  const token = async (o: TokenOptions = {}): Promise<string> => {
    const kid = o.kid ?? signingKid;
    const key = keys.get(kid);
    if (!key) throw new Error(`no key '${kid}'`);
    const payload: JWTPayload = { ...(o.claims ?? {}) };
    payload.iss = o.iss ?? issuer;
    if (o.aud !== null) payload.aud = o.aud ?? audience;
    if (o.sub !== undefined) payload.sub = o.sub;
    payload.iat = o.iat ?? now();
    if (o.exp !== null) payload.exp = o.exp ?? now() + 3600;
    if (o.nbf !== undefined) payload.nbf = o.nbf;
    const alg = o.alg ?? key.alg;
    const header = { alg, typ: 'JWT', ...(o.noKid ? {} : { kid }) };
    const jwt = new SignJWT(payload).setProtectedHeader(header);
    if (alg.startsWith('HS')) return jwt.sign(o.hmacSecret ?? new Uint8Array(32));
    return jwt.sign(key.privateKey);
  };

  return {
    issuer,
    audience,
    jwksUri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    keys,
    get signingKid() {
      return signingKid;
    },
    addKey,
    publish(kids) {
      for (const kid of kids) if (!keys.has(kid)) throw new Error(`no key '${kid}'`);
      published = [...kids];
    },
    signWith(kid) {
      if (!keys.has(kid)) throw new Error(`no key '${kid}'`);
      signingKid = kid;
    },
    fetchCount: () => fetches,
    token,
    close: server.close,
  };
}
