// Who may use the control plane's gRPC channels (xDS, callouts, access logs). Under mTLS a caller
// needs a client certificate the TLS stack verified against the CA, naming the gateway group(s) it
// may serve; a node asking for another group is refused. Every refusal is kept (who, why, when)
// for fleet status and told to listeners (metrics). Plaintext (loopback, or explicitly insecure)
// admits everyone, as before.
import { peerIdentity, type PeerCertificateLike, type PeerIdentity } from './identity.ts';

export type ChannelSecurity = 'plaintext' | 'mtls';

/** gRPC status codes of a refusal. */
export const UNAUTHENTICATED = 16;
export const PERMISSION_DENIED = 7;

/** Why a caller was refused (the metric's label). */
export type RefusalReason = 'no_client_certificate' | 'no_group_identity' | 'group_not_allowed';

export interface Refusal {
  at: string;
  /** Which channel: 'ads' (or a per-type xDS service), 'access_log', 'callouts'. */
  service: string;
  peer: string;
  code: 'UNAUTHENTICATED' | 'PERMISSION_DENIED';
  reason: RefusalReason;
  /** The message the caller received. */
  message: string;
  /** What the caller claimed, when it got that far. */
  nodeId?: string;
  group?: string;
  /** The verified certificate, when there was one. */
  certificate?: PeerIdentity;
}

export type Admission = { ok: true; identity: PeerIdentity | undefined } | { ok: false; code: number; message: string; reason: RefusalReason; certificate?: PeerIdentity };

/** The auth context grpc-js gives a call: empty unless the TLS stack verified the client certificate. */
export interface AuthContextLike {
  transportSecurityType?: string;
  sslPeerCertificate?: PeerCertificateLike;
}

export interface ChannelGuardOptions {
  security: ChannelSecurity;
  trustDomain: string;
  /** Refusals kept for fleet status (newest first). */
  history?: number;
}

export class ChannelGuard {
  readonly security: ChannelSecurity;
  readonly trustDomain: string;
  private readonly refusals: Refusal[] = [];
  private readonly listeners = new Set<(r: Refusal) => void>();

  constructor(private readonly options: ChannelGuardOptions) {
    this.security = options.security;
    this.trustDomain = options.trustDomain;
  }

  /**
   * A caller's certificate: `verified` is what the TLS stack says (Node's socket.authorized), `cert`
   * the peer certificate. Under plaintext everyone is admitted without an identity.
   */
  authenticate(verified: boolean, cert: PeerCertificateLike | undefined): Admission {
    if (this.security === 'plaintext') return { ok: true, identity: undefined };
    if (!verified || !cert) {
      return {
        ok: false,
        code: UNAUTHENTICATED,
        reason: 'no_client_certificate',
        message: "a client certificate issued by the control plane's CA is required on this channel",
      };
    }
    const identity = peerIdentity(cert, this.trustDomain);
    if (identity.groups.length === 0) {
      return {
        ok: false,
        code: PERMISSION_DENIED,
        reason: 'no_group_identity',
        certificate: identity,
        message: `the client certificate names no gateway group (expected a URI SAN spiffe://${this.trustDomain}/gateway-group/<group>)`,
      };
    }
    return { ok: true, identity };
  }

  /** authenticate() for a grpc-js call's auth context. */
  authenticateCall(auth: AuthContextLike): Admission {
    return this.authenticate(auth.transportSecurityType === 'ssl' && auth.sslPeerCertificate !== undefined, auth.sslPeerCertificate);
  }

  /** May the holder of `identity` serve (and so receive the config and secrets of) `group`? */
  authorize(identity: PeerIdentity | undefined, group: string): Admission {
    if (this.security === 'plaintext') return { ok: true, identity };
    if (!identity) return this.authenticate(false, undefined);
    if (identity.groups.includes(group)) return { ok: true, identity };
    return {
      ok: false,
      code: PERMISSION_DENIED,
      reason: 'group_not_allowed',
      certificate: identity,
      message: `the client certificate allows gateway group(s) ${identity.groups.map((g) => `'${g}'`).join(', ')}, not '${group}'`,
    };
  }

  /** Records a refusal (the caller gets `refused.message` with `refused.code`). */
  refuse(refused: Extract<Admission, { ok: false }>, who: { service: string; peer: string; nodeId?: string; group?: string }): void {
    const r: Refusal = {
      at: new Date().toISOString(),
      service: who.service,
      peer: who.peer,
      code: refused.code === UNAUTHENTICATED ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED',
      reason: refused.reason,
      message: refused.message,
      ...(who.nodeId !== undefined ? { nodeId: who.nodeId } : {}),
      ...(who.group !== undefined ? { group: who.group } : {}),
      ...(refused.certificate ? { certificate: refused.certificate } : {}),
    };
    this.refusals.unshift(r);
    this.refusals.length = Math.min(this.refusals.length, this.options.history ?? 100);
    for (const fn of this.listeners) fn(r);
  }

  /** The latest refusals, newest first. */
  recent(): Refusal[] {
    return [...this.refusals];
  }

  onRefusal(fn: (r: Refusal) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/** The guard of a plaintext control plane (tests, loopback): admits everyone. */
export function plaintextGuard(): ChannelGuard {
  return new ChannelGuard({ security: 'plaintext', trustDomain: 'portico' });
}
