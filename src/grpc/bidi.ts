// One streaming gRPC call on a node:http2 server stream (the idempotency processor's ext_proc stream,
// xDS streams, access logs): length-prefixed messages in and out, trailers with the status. grpc-js's
// call machinery cost most of the processor's CPU per request; this is only what Envoy's client uses.
import http2 from 'node:http2';
import { TLSSocket } from 'node:tls';
import type { AuthContextLike } from './channel.ts';

const { NGHTTP2_NO_ERROR } = http2.constants;

/** grpc-message: UTF-8 bytes outside printable ASCII, and '%', are percent-encoded (gRPC over HTTP/2 spec). */
export function grpcMessage(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

/** A call's handlers, set by the method's handler when the call starts (all optional). */
export interface BidiHandlers {
  /** One whole request message (without its 5-byte prefix). */
  message?: (m: Buffer) => void;
  /** The client half-closed: no more messages come. */
  end?: () => void;
  /** The call ended without the handlers ending it (client reset, connection gone, or a message this layer refused). */
  abort?: () => void;
}

/** The peer of a stream as grpc-js prints it (address:port). */
export function streamPeer(stream: http2.Http2Stream): string {
  const socket = stream.session?.socket;
  return `${socket?.remoteAddress ?? ''}:${socket?.remotePort ?? ''}`;
}

/** What grpc-js's getAuthContext() gives: the client certificate only when the TLS stack verified it. */
export function streamAuthContext(stream: http2.Http2Stream): AuthContextLike {
  const socket = stream.session?.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
  const cert = socket.getPeerCertificate();
  return { transportSecurityType: 'ssl', sslPeerCertificate: cert.raw ? cert : undefined };
}

/** Below this size a message is copied behind its prefix (one write); above, the prefix and the message go out as two (no copy). */
const COPY_BELOW = 16 * 1024;

const STATUS_INTERNAL = 13;
const STATUS_UNIMPLEMENTED = 12;
const STATUS_RESOURCE_EXHAUSTED = 8;

export class BidiCall {
  handlers: BidiHandlers = {};
  /** Bytes of an incomplete message (and how many its prefix says are needed). */
  private pending: Buffer[] | undefined;
  private pendingBytes = 0;
  private awaited = 0;
  private trailers: http2.OutgoingHttpHeaders = { 'grpc-status': '0' };
  private headersSent = false;
  private ended = false;
  /** The request's headers (the call's metadata) until the method's handler has started. */
  private metadata: http2.IncomingHttpHeaders | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    metadata: http2.IncomingHttpHeaders,
    private readonly maxMessage: number,
  ) {
    this.metadata = metadata;
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => {
      if (!this.ended) this.handlers.end?.();
    });
    // Closed without our trailers having been sent: a reset by the peer or a dead connection.
    stream.on('close', () => {
      if (!this.ended) {
        this.ended = true;
        this.handlers.abort?.();
      }
    });
  }

  /** True once the server ended the call (or the call was gone): writes are dropped. */
  get done(): boolean {
    return this.ended || this.stream.destroyed;
  }

  /** The caller's address:port. */
  peer(): string {
    return streamPeer(this.stream);
  }

  /** The caller's verified certificate, as grpc-js's getAuthContext() gives it. */
  authContext(): AuthContextLike {
    return streamAuthContext(this.stream);
  }

  /** One value of the call's metadata (a request header), or undefined; read it when the call starts. */
  header(name: string): string | undefined {
    const v = this.metadata?.[name];
    return Array.isArray(v) ? v[0] : v;
  }

  /**
   * The server forgets the metadata once the method's handler has started (handlers read it then): a
   * thousand xDS streams kept ~0.5 MB of request headers nobody reads.
   */
  started(): void {
    this.metadata = undefined;
  }

  /**
   * Writes one message, whole or as pieces (its concatenation). A large one is not copied: a thousand
   * streams can be handed the same Buffers (one encoded xDS response around the cache's resource
   * buffers) with only a 5-byte prefix of their own. `written` is called once HTTP/2 took the bytes
   * (flow control permitting), or at once when the call is over.
   */
  write(message: Buffer | readonly Buffer[], written?: () => void): void {
    if (this.done) {
      written?.();
      return;
    }
    this.start();
    const cb = written && (() => written());
    const pieces = Buffer.isBuffer(message) ? [message] : message;
    let length = 0;
    for (const p of pieces) length += p.length;
    if (length < COPY_BELOW) {
      const frame = Buffer.allocUnsafe(5 + length);
      frame[0] = 0;
      frame.writeUInt32BE(length, 1);
      let at = 5;
      for (const p of pieces) at += p.copy(frame, at);
      this.stream.write(frame, cb);
      return;
    }
    // The prefix goes in front of the first piece when that is small (a copy of it), else alone: a
    // message of framing and one large buffer takes two writes, as one large Buffer does.
    const first = pieces[0]!;
    const head = Buffer.allocUnsafe(first.length < COPY_BELOW ? 5 + first.length : 5);
    head[0] = 0;
    head.writeUInt32BE(length, 1);
    const rest = head.length > 5 ? pieces.slice(1) : pieces;
    if (head.length > 5) first.copy(head, 5);
    // Corked: all of it goes to nghttp2 in one writev.
    this.stream.cork();
    this.stream.write(head, rest.length === 0 ? cb : undefined);
    rest.forEach((p, i) => this.stream.write(p, i === rest.length - 1 ? cb : undefined));
    this.stream.uncork();
  }

  /**
   * Several small messages as one stream write: the idempotency processor answers the messages of
   * one turn together (a stream write costs Node a Writable pass and a native call each).
   */
  writeMany(messages: readonly Buffer[]): void {
    if (messages.length === 1) return this.write(messages[0]!);
    if (this.done || messages.length === 0) return;
    this.start();
    let size = 0;
    for (const m of messages) size += 5 + m.length;
    const frames = Buffer.allocUnsafe(size);
    let at = 0;
    for (const m of messages) {
      frames[at] = 0;
      frames.writeUInt32BE(m.length, at + 1);
      m.copy(frames, at + 5);
      at += 5 + m.length;
    }
    this.stream.write(frames);
  }

  /** Sends the response headers before the first message; trailers follow the last. */
  private start(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    this.stream.once('wantTrailers', () => {
      this.stream.sendTrailers(this.trailers);
      // Envoy's ext_proc client resets every stream once it has its last answer (RST_STREAM with
      // INTERNAL_ERROR, Envoy 1.40), which Node turns into an Error with its stack trace on our
      // side: ~13% of the processor's CPU per request. Closing our side first (NO_ERROR) leaves that
      // reset nothing to report. On the next turn: the trailers are handed to nghttp2 inside this
      // callback, and a reset submitted here would be sent before them (a reset submitted later is
      // sent after everything pending).
      setImmediate(() => this.stream.close(NGHTTP2_NO_ERROR));
    });
  }

  /** Ends the call with a status (OK by default): trailers after the messages written, or trailers only. */
  end(code = 0, details = ''): void {
    if (this.done) return;
    this.ended = true;
    const status: http2.OutgoingHttpHeaders = { 'grpc-status': String(code), ...(details ? { 'grpc-message': grpcMessage(details) } : {}) };
    if (!this.headersSent) {
      this.headersSent = true;
      this.stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...status }, { endStream: true });
      return;
    }
    this.trailers = status;
    this.stream.end();
  }

  /** Ends the call for the handlers (a message refused here, or their own failure): they hear it as an abort, to clean up. */
  private fail(code: number, details: string): void {
    if (this.done) return;
    this.end(code, details);
    this.handlers.abort?.();
  }

  /** Splits the byte stream into messages (a chunk may hold several, or part of one; a large message spans many). */
  private onData(chunk: Buffer): void {
    if (this.done) return; // the call is over: what the client still sends is not read
    let buf = chunk;
    if (this.pending) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      // Joined only once the awaited message is complete (a 1 MiB body arrives in ~16 KiB frames).
      if (this.pendingBytes < this.awaited) return;
      buf = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = undefined;
    }
    while (buf.length >= 5) {
      if (buf[0] !== 0) return this.fail(STATUS_UNIMPLEMENTED, 'compressed messages are not supported');
      const len = buf.readUInt32BE(1);
      if (len > this.maxMessage) return this.fail(STATUS_RESOURCE_EXHAUSTED, `message larger than ${this.maxMessage} bytes`);
      if (buf.length < 5 + len) break;
      const message = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      try {
        this.handlers.message?.(message);
      } catch {
        return this.fail(STATUS_INTERNAL, 'internal error');
      }
      if (this.done) return;
    }
    if (buf.length > 0) {
      this.pending = [buf];
      this.pendingBytes = buf.length;
      this.awaited = buf.length >= 5 ? 5 + buf.readUInt32BE(1) : 5;
    }
  }
}
