// A lean gRPC server straight on node:http2: unary callouts (ext_authz Check, measured at about half of
// grpc-js's CPU per call) and streaming methods (bidi.ts: the ext_proc stream, xDS, access logs), with
// keepalive pings and a maximum connection age. Only what Envoy's and grpc-js's clients use.
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { BidiCall, grpcMessage, streamAuthContext, streamPeer } from './bidi.ts';
import type { Admission, AuthContextLike, ChannelGuard } from './channel.ts';
import type { TlsMaterial } from './tls.ts';

/** A handler's answer: the encoded response message, or a gRPC status. */
export type UnaryResult = { ok: true; response: Buffer } | { ok: false; code: number; details: string };
/** `peer` and `auth` (the verified client certificate) are computed only when called (most calls never need them). */
export type UnaryHandler = (request: Buffer, peer: () => string, auth: () => AuthContextLike) => UnaryResult | Promise<UnaryResult>;
/** A bidirectional-streaming method: sets the call's handlers when it starts. */
export type StreamHandler = (call: BidiCall) => void;
export { BidiCall, grpcMessage };

/** Adds ±10% jitter so that many connections (or replicas' Envoys) do not all act at once. */
export function jittered(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (0.9 + 0.2 * random()));
}

export interface UnaryServerOptions {
  /** Largest request message accepted (default 4 MiB, as gRPC's default). */
  maxMessageBytes?: number;
  /** HTTP/2 streams per connection (default 1024). */
  maxConcurrentStreams?: number;
  /**
   * mTLS: the server's certificate material (reloaded from disk: new connections take new files) and
   * the guard that admits only clients with a node certificate from the CA (refusals recorded once per
   * connection). Without a guard every TLS client gets in and each handler checks the certificate
   * itself (the xDS server: it records refusals per call). Plain text when omitted.
   */
  tls?: { material: TlsMaterial; guard?: ChannelGuard };
  logger?: Pick<Logger, 'error'>;
  /** Server keepalive: a PING every timeMs; a connection whose answer takes over timeoutMs is dropped. */
  keepalive?: { timeMs: number; timeoutMs: number };
  /** Connections get a GOAWAY after this age (±10%), and are closed graceMs later; 0 = never. */
  maxConnectionAgeMs?: number;
  maxConnectionAgeGraceMs?: number;
  /**
   * Node's per-connection memory cap in MB (default 10), outbound data included: a connection over it
   * gets its new streams refused. The xDS server lifts it (a whole configuration may be queued).
   */
  maxSessionMemoryMB?: number;
}

const STATUS = { OK: 0, INTERNAL: 13, UNIMPLEMENTED: 12, RESOURCE_EXHAUSTED: 8, INVALID_ARGUMENT: 3, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/**
 * Serves unary gRPC methods by path. Requests must be `application/grpc` POSTs with one
 * uncompressed message; anything else is answered with the gRPC status the spec prescribes.
 */
export class UnaryGrpcServer {
  private readonly routes = new Map<string, UnaryHandler>();
  private readonly streamRoutes = new Map<string, StreamHandler>();
  private readonly server: http2.Http2Server | http2.Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly maxMessage: number;
  private readonly log: Pick<Logger, 'error'> | undefined;
  private closing: Promise<void> | undefined;
  /** Under mTLS: each session's admission, decided once when it opens. */
  private readonly admissions = new WeakMap<http2.Http2Session, Admission>();
  private readonly guard: ChannelGuard | undefined;
  private detachTls: (() => void) | undefined;

  constructor(opts: UnaryServerOptions = {}) {
    this.maxMessage = opts.maxMessageBytes ?? 4 * 1024 * 1024;
    this.log = opts.logger;
    const settings = { maxConcurrentStreams: opts.maxConcurrentStreams ?? 1024 };
    const common = { settings, ...(opts.maxSessionMemoryMB ? { maxSessionMemory: opts.maxSessionMemoryMB } : {}) };
    const tls = opts.tls;
    this.guard = tls?.guard;
    if (tls) {
      // The TLS stack verifies client certificates against the CA but lets unverified clients in, so
      // that they get a gRPC status saying why (and are recorded) instead of a bare handshake failure.
      const server = http2.createSecureServer({ ...tls.material.secureContextOptions(), requestCert: true, rejectUnauthorized: false, ...common });
      this.detachTls = tls.material.onChange(() => server.setSecureContext(tls.material.secureContextOptions()));
      this.server = server;
    } else {
      this.server = http2.createServer(common);
    }
    this.server.on('session', (s: http2.ServerHttp2Session) => {
      this.sessions.add(s);
      const stop = [this.keepalive(s, opts.keepalive), this.maxAge(s, opts.maxConnectionAgeMs ?? 0, opts.maxConnectionAgeGraceMs ?? 0)];
      s.on('close', () => {
        this.sessions.delete(s);
        for (const f of stop) f();
      });
      s.on('error', () => s.destroy());
      if (this.guard) {
        const socket = s.socket as TLSSocket;
        const admission = this.guard.authenticate(socket.authorized === true, socket.authorized ? socket.getPeerCertificate() : undefined);
        this.admissions.set(s, admission);
        if (!admission.ok) this.guard.refuse(admission, { service: 'callouts', peer: `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}` });
      }
    });
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  /** Registers a method, e.g. '/envoy.service.auth.v3.Authorization/Check'. */
  handle(path: string, handler: UnaryHandler): void {
    this.routes.set(path, handler);
  }

  /** Registers a bidirectional-streaming method, e.g. '/envoy.service.ext_proc.v3.ExternalProcessor/Process'. */
  handleStream(path: string, handler: StreamHandler): void {
    this.streamRoutes.set(path, handler);
  }

  /** Binds and serves; returns the bound port (0 for a free one). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting connections, lets in-flight calls finish (GOAWAY), and forces after graceMs. */
  close(graceMs = 5_000): Promise<void> {
    this.detachTls?.();
    this.closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        for (const s of this.sessions) s.destroy();
      }, graceMs);
      timer.unref();
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const s of this.sessions) s.close();
    });
    return this.closing;
  }

  /** Asks every open connection to move to a new one (GOAWAY; in-flight calls finish): e.g. after a certificate rotation. */
  recycleConnections(): void {
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  /** Pings the client every timeMs; no answer within timeoutMs (a dead peer behind a NAT or balancer) drops the connection. */
  private keepalive(s: http2.ServerHttp2Session, k: { timeMs: number; timeoutMs: number } | undefined): () => void {
    if (!k || k.timeMs <= 0) return () => {};
    let deadline: NodeJS.Timeout | undefined;
    const interval = setInterval(() => {
      if (deadline || s.closed || s.destroyed) return;
      // After the event loop was blocked (a large push), timers run before pending socket reads: the
      // answer may be waiting unread. setImmediate runs after them, so only a missing answer drops the peer.
      deadline = setTimeout(() => setImmediate(() => deadline && s.destroy()), k.timeoutMs);
      deadline.unref();
      const answered = () => {
        clearTimeout(deadline);
        deadline = undefined;
      };
      try {
        if (!s.ping(answered)) answered();
      } catch {
        answered();
      }
    }, k.timeMs);
    interval.unref();
    return () => {
      clearInterval(interval);
      clearTimeout(deadline);
    };
  }

  /** GOAWAY at the (jittered) maximum age so clients reconnect and rebalance; streams still open get graceMs. */
  private maxAge(s: http2.ServerHttp2Session, ageMs: number, graceMs: number): () => void {
    if (ageMs <= 0) return () => {};
    let grace: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      if (s.closed || s.destroyed) return;
      s.close();
      grace = setTimeout(() => s.destroy(), graceMs);
      grace.unref();
    }, jittered(ageMs));
    timer.unref();
    return () => {
      clearTimeout(timer);
      clearTimeout(grace);
    };
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => {}); // a reset by the peer: nothing to answer
    if (this.guard) {
      const admission = this.admissions.get(stream.session!);
      if (!admission?.ok) {
        stream.resume();
        const refused = admission && !admission.ok ? admission : { code: STATUS.UNAUTHENTICATED, message: 'no client certificate' };
        this.trailersOnly(stream, refused.code, refused.message);
        return;
      }
    }
    if (headers[':method'] !== 'POST') {
      stream.respond({ ':status': 405 }, { endStream: true });
      return;
    }
    const ct = headers['content-type'] ?? '';
    if (!ct.startsWith('application/grpc')) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const streaming = this.streamRoutes.get(headers[':path'] ?? '');
    if (streaming) {
      const call = new BidiCall(stream, headers, this.maxMessage);
      streaming(call);
      call.started();
      return;
    }
    const handler = this.routes.get(headers[':path'] ?? '');
    if (!handler) {
      stream.resume();
      this.trailersOnly(stream, STATUS.UNIMPLEMENTED, `unknown method ${headers[':path'] ?? ''}`);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > this.maxMessage + 5) tooLarge = true;
      else chunks.push(c);
    });
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return;
      if (tooLarge) return this.trailersOnly(stream, STATUS.RESOURCE_EXHAUSTED, `request larger than ${this.maxMessage} bytes`);
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (body.length < 5) return this.trailersOnly(stream, STATUS.INTERNAL, 'missing request message');
      if (body[0] !== 0) return this.trailersOnly(stream, STATUS.UNIMPLEMENTED, 'compressed messages are not supported');
      const len = body.readUInt32BE(1);
      if (len !== body.length - 5) return this.trailersOnly(stream, STATUS.INTERNAL, 'a unary call carries exactly one message');
      const peer = () => streamPeer(stream);
      const auth = () => streamAuthContext(stream);
      let r: UnaryResult | Promise<UnaryResult>;
      try {
        r = handler(body.subarray(5), peer, auth);
      } catch (e) {
        this.log?.error({ reason: (e as Error)?.message }, 'callout: handler failed');
        return this.trailersOnly(stream, STATUS.INTERNAL, 'internal error');
      }
      if (r instanceof Promise) {
        r.then(
          (x) => this.reply(stream, x),
          () => this.trailersOnly(stream, STATUS.INTERNAL, 'internal error'),
        );
      } else this.reply(stream, r);
    });
  }

  private reply(stream: http2.ServerHttp2Stream, r: UnaryResult): void {
    if (stream.destroyed || stream.closed) return;
    if (!r.ok) return this.trailersOnly(stream, r.code, r.details);
    const frame = Buffer.allocUnsafe(5 + r.response.length);
    frame[0] = 0;
    frame.writeUInt32BE(r.response.length, 1);
    r.response.copy(frame, 5);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(frame);
  }

  private trailersOnly(stream: http2.ServerHttp2Stream, code: number, details: string): void {
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': grpcMessage(details) }, { endStream: true });
  }
}
