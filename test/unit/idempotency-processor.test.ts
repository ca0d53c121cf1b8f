// The idempotency processor over a real gRPC stream (grpc-js client, the lean node:http2 server), driven
// the way Envoy's ext_proc filter drives it: every message of a request, then a half-close straight
// after the last one. Each message must be answered before the processor closes its side.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { formatRouteSettings, IDEMPOTENCY_NAMES } from '../../src/contract/index.ts';
import { UnaryGrpcServer } from '../../src/grpc/index.ts';
import { IdempotencyProcessor, MemoryIdempotencyStore } from '../../src/idempotency/index.ts';
import { lookupType } from '../../src/proto/index.ts';
import { createLogger } from '../../src/telemetry/log.ts';
import { freePort } from '../support/components.ts';

const REQUEST = lookupType('envoy.service.ext_proc.v3.ProcessingRequest');
const RESPONSE = lookupType('envoy.service.ext_proc.v3.ProcessingResponse');
const METHOD = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';
const raw = (b: Buffer) => b;

const headers = (list: Array<[string, string]>, endOfStream = false) => ({ headers: { headers: list.map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) }, end_of_stream: endOfStream });
const encode = (msg: Record<string, unknown>) => Buffer.from(REQUEST.encode(REQUEST.fromObject(msg)).finish());

/** One request's messages, as Envoy sends them with bodies buffered both ways. */
function firstRequestMessages(key: string): Buffer[] {
  return [
    encode({
      request_headers: headers([
        [':method', 'POST'],
        [':path', '/orders'],
        ['idempotency-key', key],
      ]),
    }),
    encode({ request_body: { body: Buffer.from('{"qty":1}'), end_of_stream: true } }),
    encode({
      response_headers: headers([
        [':status', '201'],
        ['content-type', 'application/json'],
      ]),
    }),
    encode({ response_body: { body: Buffer.from('{"id":"o-1"}'), end_of_stream: true } }),
  ];
}

/** A store whose writes take a while, as Redis's round trip does: the half-close arrives while one is pending. */
class SlowStore extends MemoryIdempotencyStore {
  override async complete(...args: Parameters<MemoryIdempotencyStore['complete']>): Promise<void> {
    await new Promise((r) => setTimeout(r, 20));
    return super.complete(...args);
  }
}

describe('idempotency processor stream', () => {
  let server: UnaryGrpcServer;
  let client: grpc.Client;
  const store = new SlowStore();
  const registry = new Registry();

  before(async () => {
    server = new UnaryGrpcServer();
    new IdempotencyProcessor({ store, registry, logger: createLogger('silent') }).register(server);
    const port = await server.listen('127.0.0.1', await freePort());
    client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await server.close();
    await store.close();
  });

  /** Writes every message, half-closes at once, and collects the answers until the server ends the stream. */
  function exchange(messages: Buffer[]): Promise<{ answers: Array<Record<string, unknown>>; status: number }> {
    const metadata = new grpc.Metadata();
    metadata.set(IDEMPOTENCY_NAMES.metadata, formatRouteSettings({ product: 'shop', route: 'orders', ttlSeconds: 60, required: true, methods: ['POST'] }));
    const call = client.makeBidiStreamRequest(METHOD, raw, raw, metadata);
    const answers: Array<Record<string, unknown>> = [];
    return new Promise((resolve) => {
      call.on('data', (b: Buffer) => answers.push(RESPONSE.toObject(RESPONSE.decode(b), { enums: String }) as Record<string, unknown>));
      call.on('error', () => undefined);
      call.on('status', (s: grpc.StatusObject) => resolve({ answers, status: s.code }));
      for (const m of messages) call.write(m);
      call.end();
    });
  }

  it('answers all four messages of a first request when Envoy half-closes right after the last one', async () => {
    const { answers, status } = await exchange(firstRequestMessages('"k-1"'));
    assert.equal(status, grpc.status.OK);
    assert.deepEqual(
      answers.map((a) => Object.keys(a).filter((k) => k !== 'mode_override')[0]),
      ['request_headers', 'request_body', 'response_headers', 'response_body'],
    );
    const metrics = await registry.getSingleMetricAsString('portico_idempotency_responses_total');
    assert.match(metrics, /result="stored"\} 1/);
    assert.doesNotMatch(metrics, /result="released"/);
  });

  it('replays the stored response to a repeat with the same key and body', async () => {
    const [headersMsg, bodyMsg] = firstRequestMessages('"k-1"');
    const { answers, status } = await exchange([headersMsg!, bodyMsg!]);
    assert.equal(status, grpc.status.OK);
    const replay = answers.find((a) => 'immediate_response' in a)?.immediate_response as { status: { code: string }; body: Uint8Array } | undefined;
    assert.ok(replay, `no immediate response in ${JSON.stringify(answers)}`);
    assert.equal(Buffer.from(replay.body).toString(), '{"id":"o-1"}');
  });
});

// Why Envoy's bootstrap sets ext_proc_graceful_grpc_close (src/xds/bootstrap.ts): without it Envoy's
// ext_proc client resets every stream when it has its last answer, and Node's HTTP/2 server
// (nghttp2's rapid-reset guard) ends a connection that resets 1,000 streams faster than 33 a second.
describe("Node's HTTP/2 server and client resets", () => {
  it('sends GOAWAY after about 1,000 streams reset on one connection', async () => {
    const server = new UnaryGrpcServer();
    new IdempotencyProcessor({ store: new MemoryIdempotencyStore(), registry: new Registry(), logger: createLogger('silent') }).register(server);
    const port = await server.listen('127.0.0.1', await freePort());
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    try {
      const goaway = new Promise<{ code: number; last: number }>((resolve) => session.once('goaway', (code, last) => resolve({ code, last })));
      await new Promise<void>((resolve) => session.once('connect', () => resolve()));
      // 3,000 resets in a burst: the guard's refill (33 a second) cannot make up for the excess in any plausible run time.
      for (let i = 0; i < 3_000 && !session.closed && !session.destroyed; i++) {
        const stream = session.request({ ':method': 'POST', ':path': METHOD, 'content-type': 'application/grpc' });
        stream.on('error', () => undefined);
        stream.close(http2.constants.NGHTTP2_CANCEL);
        if (i % 100 === 99) await new Promise((r) => setImmediate(r));
      }
      const { code, last } = await goaway;
      assert.equal(code, http2.constants.NGHTTP2_INTERNAL_ERROR);
      // Stream ids are odd: about the 1,000th stream (plus what the refill allowed meanwhile).
      assert.ok(last >= 1_999 && last < 5_999, `last stream id ${last}`);
    } finally {
      session.destroy();
      await server.close(0);
    }
  });
});
