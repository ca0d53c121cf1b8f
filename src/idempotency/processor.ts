// The idempotency processor: Envoy's ext_proc gRPC service (one bidirectional stream per request on
// a protected route). It reads the route's settings from the stream's metadata, the key and caller
// from the request headers, and asks the store once the body is in; the first request proceeds and
// its response is stored as it passes back, a repeat is answered here. decide.ts holds the rules.
import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import { GATEWAY_HEADERS, IDEMPOTENCY_HEADERS, IDEMPOTENCY_NAMES, IDEMPOTENCY_REFUSALS, parseRouteSettings, type IdempotencyRefusal, type IdempotencyRouteSettings } from '../contract/index.ts';
import { lookupType } from '../proto/index.ts';
import type { BidiCall, StreamHandler } from '../grpc/index.ts';
import type { Logger } from '../telemetry/index.ts';
import { decideRepeat, fingerprint, pendingLifetimeMs, recordKey, replayHeaders, startRequest, storable, storedHeaders, type IdempotencyRecord } from './decide.ts';
import { idempotencyMetrics, type IdempotencyMetrics, type RequestOutcome } from './metrics.ts';
import type { IdempotencyStore } from './store.ts';
import { readProcessingRequest, type Incoming } from './wire.ts';

const METHOD = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';
const RESPONSE = lookupType('envoy.service.ext_proc.v3.ProcessingResponse');

type Json = Record<string, unknown>;
const CONTINUE = { response: { status: 'CONTINUE' } };
/** Nothing more to do for this request: Envoy sends no further messages. */
const SKIP_REST = { request_body_mode: 'NONE', response_header_mode: 'SKIP', response_body_mode: 'NONE', request_trailer_mode: 'SKIP', response_trailer_mode: 'SKIP' };
/** Nothing to do for this request, whose body chunks may already be on their way: those are answered, the response is not sent. */
const PASS_BODY = { request_body_mode: 'STREAMED', response_header_mode: 'SKIP', response_body_mode: 'NONE', request_trailer_mode: 'SEND', response_trailer_mode: 'SKIP' };

/**
 * Bodies come in chunks (STREAMED, sent without waiting for the headers' answer: one round trip per
 * direction). A request's chunks are held until its whole body is in, so the limit sits below
 * Envoy's buffer limit (1 MiB): beyond it Envoy would stop reading and the request would wait for
 * the message timeout. A larger protected request is refused (413); a larger response passes unstored.
 */
export const MAX_REQUEST_BODY_BYTES = 960 * 1024;
export const MAX_STORED_RESPONSE_BYTES = 1024 * 1024;

/**
 * A claim's own id: unique across processors (a random prefix per process) and within one (a
 * counter), which is all a release needs; cheaper per request than a fresh UUID.
 */
const CLAIM_PREFIX = randomUUID();
let claims = 0;
function newClaimId(): string {
  claims++;
  return `${CLAIM_PREFIX}.${claims.toString(36)}`;
}

function encode(msg: Json): Buffer {
  return Buffer.from(RESPONSE.encode(RESPONSE.fromObject(msg)).finish());
}

// The answers that never vary, encoded once (most messages of a stream get one of these).
const CONTINUED = {
  request_headers: encode({ request_headers: CONTINUE }),
  request_body: encode({ request_body: CONTINUE }),
  response_headers: encode({ response_headers: CONTINUE }),
  response_body: encode({ response_body: CONTINUE }),
  request_trailers: encode({ request_trailers: {} }),
  skip: encode({ request_headers: CONTINUE, mode_override: SKIP_REST }),
  passBody: encode({ request_headers: CONTINUE, mode_override: PASS_BODY }),
} as const;

/** Route settings by their metadata text: a handful of routes, parsed once each (bounded: the text comes from Envoy's config). */
const settingsCache = new Map<string, IdempotencyRouteSettings | undefined>();
function routeSettings(text: string | undefined): IdempotencyRouteSettings | undefined {
  if (text === undefined) return undefined;
  if (settingsCache.has(text)) return settingsCache.get(text);
  const parsed = parseRouteSettings(text);
  if (settingsCache.size >= 1_000) settingsCache.clear();
  settingsCache.set(text, parsed);
  return parsed;
}

function immediate(status: number, headers: Array<[string, string]>, body: Uint8Array): Json {
  return {
    immediate_response: {
      status: { code: status },
      headers: { set_headers: headers.map(([key, v]) => ({ header: { key, raw_value: Buffer.from(v, 'latin1') }, append_action: 'APPEND_IF_EXISTS_OR_ADD' })) },
      body,
      details: 'portico_idempotency',
    },
  };
}

function refusal(r: IdempotencyRefusal): Json {
  const { status, body } = IDEMPOTENCY_REFUSALS[r];
  return immediate(status, [['content-type', 'application/json'], ...(r === 'in_flight' || r === 'unavailable' ? ([['retry-after', '1']] as Array<[string, string]>) : [])], Buffer.from(body));
}

export interface ProcessorOptions {
  store: IdempotencyStore;
  registry: Registry;
  logger: Logger;
}

/** One request's progress through the processor. */
interface StreamState {
  settings: IdempotencyRouteSettings | undefined;
  method: string;
  path: string;
  partner: string;
  key?: string;
  /** Set once this request claimed its key: what to store or release when its response is known. */
  claimed?: { recordKey: string; pending: IdempotencyRecord };
  /** A protected request's body so far, while its headers' answer is held; undefined once decided. */
  requestBody?: { chunks: Buffer[]; bytes: number; held: number };
  /** A request not protected here: its body chunks are answered as they come. */
  passThrough?: boolean;
  status?: number;
  responseHeaders?: Array<[string, string]>;
  responseBody: { chunks: Buffer[]; bytes: number };
  finished: boolean;
  /** Nothing more to answer: the processor closes the stream (Envoy would otherwise reset it, which costs an error object here). */
  complete?: boolean;
}

/** Anything that hosts bidirectional gRPC methods on node:http2 (the lean callout server, src/grpc). */
export interface ServiceHost {
  handleStream(path: string, handler: StreamHandler): void;
}

export class IdempotencyProcessor {
  private readonly metrics: IdempotencyMetrics;

  constructor(private readonly opts: ProcessorOptions) {
    this.metrics = idempotencyMetrics(opts.registry);
  }

  /** Adds the ExternalProcessor service to a server (before it listens). */
  register(host: ServiceHost): void {
    host.handleStream(METHOD, (call) => this.serve(call));
  }

  /** The route's labelled counters, looked up once per route and outcome (labelling per request hashes the label set each time). */
  private readonly counters = new WeakMap<IdempotencyRouteSettings, Map<string, { inc(): void }>>();
  private counted(settings: IdempotencyRouteSettings, kind: 'requests' | 'responses', value: string): { inc(): void } {
    let byValue = this.counters.get(settings);
    if (!byValue) this.counters.set(settings, (byValue = new Map()));
    const k = `${kind}:${value}`;
    let c = byValue.get(k);
    if (!c) {
      c = kind === 'requests' ? this.metrics.requests.labels(settings.product, settings.route, value) : this.metrics.responses.labels(settings.product, settings.route, value);
      byValue.set(k, c);
    }
    return c;
  }

  private count(s: StreamState, outcome: RequestOutcome): void {
    if (s.settings) this.counted(s.settings, 'requests', outcome).inc();
  }

  private countResponse(s: StreamState, result: 'stored' | 'released'): void {
    this.counted(s.settings!, 'responses', result).inc();
  }

  private serve(call: BidiCall): void {
    const s: StreamState = {
      settings: routeSettings(call.header(IDEMPOTENCY_NAMES.metadata)),
      method: '',
      path: '',
      partner: '',
      responseBody: { chunks: [], bytes: 0 },
      finished: false,
    };
    // The answers of one turn (to messages that came in one read, or the held ones a decision
    // releases) go out as one stream write, once this turn's synchronous work is done.
    let out: Buffer[] = [];
    const flush = () => {
      if (out.length === 0) return;
      const batch = out;
      out = [];
      call.writeMany(batch);
    };
    const send = (msg: Json | Buffer) => {
      if (out.length === 0) queueMicrotask(flush);
      out.push(Buffer.isBuffer(msg) ? msg : encode(msg));
      // An immediate response (a replay, a refusal) ends the request.
      if (!Buffer.isBuffer(msg) && 'immediate_response' in msg) s.complete = true;
    };
    const finish = () => {
      flush();
      call.end();
    };
    const failed = (e: Error) => {
      this.opts.logger.warn({ err: e.message }, 'idempotency processor failed a message');
      send(refusal('unavailable'));
    };
    // Messages are handled one at a time, in order. Most need no store and are answered at once; one
    // that waits for the store (a claim, a stored response) holds the messages after it until it is done.
    let waiting: Promise<void> | undefined;
    const queued: Buffer[] = [];
    const run = (buf: Buffer): void => {
      let r: void | Promise<void>;
      try {
        r = this.handle(s, readProcessingRequest(buf), send);
      } catch (e) {
        failed(e as Error);
        return;
      }
      if (r === undefined) {
        if (s.complete) finish();
        return;
      }
      waiting = r.catch(failed).then(() => {
        waiting = undefined;
        if (s.complete) finish();
        while (queued.length > 0 && waiting === undefined) run(queued.shift()!);
      });
    };
    // After every message is answered (a message waiting for the store may let queued ones run, which may wait in turn).
    const settled = (then: () => void | Promise<void>): void => {
      const check = (): void => void (waiting ? waiting.then(check) : then());
      check();
    };
    call.handlers = {
      message: (buf) => {
        if (waiting) queued.push(buf);
        else run(buf);
      },
      // Envoy may half-close right after its last message: answer every message first, then close
      // (closing at once made Envoy fail the request with 503 while that answer was still pending).
      end: () =>
        settled(async () => {
          await this.finishUnstored(s);
          finish();
        }),
      // A first request whose response never completed here (client gone, Envoy reset): free its key.
      abort: () => settled(() => this.finishUnstored(s)),
    };
  }

  /** A first request whose response never completed here (client gone, Envoy reset): its key is freed. */
  private finishUnstored(s: StreamState): Promise<void> | undefined {
    return s.claimed && !s.finished ? this.release(s) : undefined;
  }

  /** Answers one message: at once (undefined), or once the store has answered (a promise). */
  private handle(s: StreamState, m: Incoming, send: (m: Json | Buffer) => void): void | Promise<void> {
    switch (m.kind) {
      case 'request_headers':
        return this.onRequestHeaders(s, m, send);
      case 'request_body':
        return this.onRequestChunk(s, m.body, m.endOfStream, send);
      case 'request_trailers':
        // Trailers end the body: the request is decided here if it was waiting for it.
        if (s.requestBody) return this.decideHeld(s, send).then(() => send(CONTINUED.request_trailers));
        send(CONTINUED.request_trailers);
        return;
      case 'response_headers': {
        s.status = Number(m.headers.find(([k]) => k === ':status')?.[1] ?? 0);
        s.responseHeaders = m.headers;
        if (!m.endOfStream) {
          send(CONTINUED.response_headers);
          return;
        }
        // The client's response completes only once its last part is answered: after the store.
        s.complete = true;
        return this.store(s, new Uint8Array()).then(() => send(CONTINUED.response_headers));
      }
      case 'response_body': {
        const b = s.responseBody;
        const chunk = m.body;
        let released: Promise<void> | undefined;
        if (s.claimed && !s.finished && chunk?.length) {
          b.chunks.push(Buffer.from(chunk));
          b.bytes += chunk.length;
          if (b.bytes > MAX_STORED_RESPONSE_BYTES) released = this.release(s);
        }
        if (m.endOfStream) {
          s.complete = true;
          return (released ?? Promise.resolve()).then(() => this.store(s, Buffer.concat(b.chunks))).then(() => send(CONTINUED.response_body));
        }
        if (released) return released.then(() => send(CONTINUED.response_body));
        send(CONTINUED.response_body);
        return;
      }
      default:
        return;
    }
  }

  /** A request body chunk: answered at once when the request is not protected, else held until the body is complete. */
  private onRequestChunk(s: StreamState, chunk: Uint8Array | undefined, end: boolean, send: (m: Json | Buffer) => void): void | Promise<void> {
    const b = s.requestBody;
    if (!b) {
      // Not protected here (or already decided): the chunk goes on.
      send(CONTINUED.request_body);
      if (end && s.passThrough) s.complete = true;
      return;
    }
    b.held++;
    if (chunk?.length) {
      b.chunks.push(Buffer.from(chunk));
      b.bytes += chunk.length;
    }
    if (b.bytes > MAX_REQUEST_BODY_BYTES) {
      s.requestBody = undefined;
      this.count(s, 'too_large');
      send(refusal('too_large'));
      return;
    }
    if (end) return this.decideHeld(s, send);
  }

  /** The held request is complete: the store decides; on a first request the headers and every held chunk go on. */
  private async decideHeld(s: StreamState, send: (m: Json | Buffer) => void): Promise<void> {
    const b = s.requestBody!;
    s.requestBody = undefined;
    if (!(await this.decide(s, b.chunks.length === 1 ? b.chunks[0]! : Buffer.concat(b.chunks), send))) return;
    send(CONTINUED.request_headers);
    for (let i = 0; i < b.held; i++) send(CONTINUED.request_body);
  }

  private onRequestHeaders(s: StreamState, h: Incoming, send: (m: Json | Buffer) => void): void | Promise<void> {
    if (!s.settings) {
      // A route Envoy sent without (valid) settings: a configuration fault, never a pass.
      this.opts.logger.error('idempotency processor: stream without route settings');
      send(refusal('unavailable'));
      return;
    }
    let keyHeader: string | undefined;
    for (const [k, v] of h.headers) {
      if (k === ':method') s.method = v;
      else if (k === ':path') s.path = v;
      else if (k === GATEWAY_HEADERS.partner) s.partner = v;
      else if (k === IDEMPOTENCY_HEADERS.key) keyHeader = keyHeader === undefined ? v : `${keyHeader},${v}`;
    }
    const start = startRequest(s.settings, s.method, keyHeader);
    if (start.kind === 'skip') {
      this.count(s, 'unprotected');
      s.passThrough = true;
      send(h.endOfStream ? CONTINUED.skip : CONTINUED.passBody);
      if (h.endOfStream) s.complete = true;
      return;
    }
    if (start.kind === 'refuse') {
      this.count(s, start.refusal === 'missing' ? 'missing_key' : 'invalid_key');
      send(refusal(start.refusal));
      return;
    }
    s.key = start.key;
    // Without a body Envoy sends nothing more before the response: decide now. Else the answer waits for the whole body.
    if (!h.endOfStream) {
      s.requestBody = { chunks: [], bytes: 0, held: 0 };
      return;
    }
    return this.decide(s, new Uint8Array(), send).then((first) => {
      if (first) send(CONTINUED.request_headers);
    });
  }

  /** Claims the key with the request's fingerprint: true when the request is the first and proceeds (the caller answers), else it is answered here. */
  private async decide(s: StreamState, body: Uint8Array, send: (m: Json | Buffer) => void): Promise<boolean> {
    const settings = s.settings!;
    const fp = fingerprint(s.method, s.path, body);
    const key = recordKey(settings, s.partner, s.key!);
    const pending: IdempotencyRecord = { state: 'pending', fingerprint: fp, claim: newClaimId() };
    let existing: IdempotencyRecord | undefined;
    try {
      existing = await this.opts.store.claim(key, pending, pendingLifetimeMs(settings.ttlSeconds));
    } catch (e) {
      this.count(s, 'unavailable');
      this.opts.logger.warn({ err: (e as Error).message, store: this.opts.store.kind }, 'idempotency store unavailable: request refused');
      send(refusal('unavailable'));
      return false;
    }
    if (!existing) {
      s.claimed = { recordKey: key, pending };
      this.count(s, 'first');
      return true;
    }
    const d = decideRepeat(existing, fp);
    if (d.kind === 'replay') {
      this.count(s, 'replayed');
      send(immediate(d.response.status, replayHeaders(d.response), d.response.body));
    } else {
      this.count(s, d.kind === 'in_flight' ? 'conflict' : 'mismatch');
      send(refusal(d.kind));
    }
    return false;
  }

  /** The first request's response will not be kept (too large, or never completed): its key is free again. */
  private async release(s: StreamState): Promise<void> {
    if (!s.claimed || s.finished) return;
    s.finished = true;
    s.responseBody = { chunks: [], bytes: 0 };
    this.countResponse(s, 'released');
    await this.opts.store.release(s.claimed.recordKey, s.claimed.pending).catch(() => undefined);
  }

  /** The first request's response is complete: kept for replays, or its key freed. */
  private async store(s: StreamState, body: Uint8Array): Promise<void> {
    if (!s.claimed || s.finished || s.status === undefined) return;
    s.finished = true;
    if (!storable(s.status)) {
      this.countResponse(s, 'released');
      await this.opts.store.release(s.claimed.recordKey, s.claimed.pending).catch(() => undefined);
      return;
    }
    const record: IdempotencyRecord = {
      state: 'done',
      fingerprint: s.claimed.pending.fingerprint,
      response: { status: s.status, headers: storedHeaders(s.responseHeaders ?? []), body: Buffer.from(body) },
    };
    try {
      await this.opts.store.complete(s.claimed.recordKey, record, s.settings!.ttlSeconds * 1000);
      this.countResponse(s, 'stored');
    } catch (e) {
      // The client still gets its response; a repeat finds the pending record (409) until it lapses.
      this.countResponse(s, 'released');
      this.opts.logger.warn({ err: (e as Error).message }, 'idempotency store unavailable: response not stored');
    }
  }
}
