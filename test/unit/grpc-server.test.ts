// The lean gRPC server on node:http2 (src/grpc) as xDS and the access-log service use it: large messages
// written without a copy (one Buffer shared by many calls), keepalive pings that drop a dead peer, a
// maximum connection age (GOAWAY), and services written for grpc-js hosted on it (client streaming, unary).
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { hostService, UnaryGrpcServer, type BidiCall } from '../../src/grpc/index.ts';

const raw = (b: Buffer) => b;

/** Splits a gRPC response body into its messages (checks every prefix). */
function messages(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    assert.equal(body[at], 0, 'uncompressed');
    const len = body.readUInt32BE(at + 1);
    out.push(body.subarray(at + 5, at + 5 + len));
    at += 5 + len;
  }
  assert.equal(at, body.length, 'no trailing bytes');
  return out;
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

async function call(port: number, path: string): Promise<{ body: Buffer; status: string | undefined }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  try {
    const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc' });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('trailers', resolve));
    req.end(Buffer.from([0, 0, 0, 0, 0])); // one empty message
    const t = await trailers;
    await new Promise((r) => req.once('close', r));
    return { body: Buffer.concat(chunks), status: t['grpc-status'] as string | undefined };
  } finally {
    session.close();
  }
}

describe('lean gRPC server (node:http2)', () => {
  it('writes one shared large Buffer to several calls (prefix + the same bytes), mixed with small messages, in order', async () => {
    const shared = pattern(300_000, 7);
    const sizes = [10, 20_000, 0, 16 * 1024, 16 * 1024 - 1];
    const server = new UnaryGrpcServer();
    let writtenCallbacks = 0;
    server.handleStream('/t.S/Stream', (c: BidiCall) => {
      c.handlers = {
        message: () => {
          for (const [i, n] of sizes.entries()) c.write(pattern(n, i));
          c.write(shared, () => writtenCallbacks++);
          c.write(Buffer.from('last'), () => writtenCallbacks++);
          c.end();
        },
      };
    });
    const port = await server.listen('127.0.0.1', 0);
    try {
      const results = await Promise.all([1, 2, 3].map(() => call(port, '/t.S/Stream')));
      for (const r of results) {
        assert.equal(r.status, '0');
        const got = messages(r.body);
        assert.equal(got.length, sizes.length + 2);
        for (const [i, n] of sizes.entries()) assert.ok(got[i]!.equals(pattern(n, i)), `message ${i} (${n} bytes)`);
        assert.ok(got[sizes.length]!.equals(shared), 'the shared message');
        assert.equal(got[sizes.length + 1]!.toString(), 'last');
      }
      assert.equal(writtenCallbacks, 6, 'every write was reported taken');
      // The writer's Buffer is untouched (nothing was framed into it).
      assert.ok(shared.equals(pattern(300_000, 7)));
    } finally {
      await server.close(100);
    }
  });

  it('keepalive: a peer that never answers PINGs is dropped; a live client is kept', { timeout: 30_000 }, async () => {
    const server = new UnaryGrpcServer({ keepalive: { timeMs: 50, timeoutMs: 3000 } });
    const port = await server.listen('127.0.0.1', 0);
    try {
      // A live client answers PINGs (nghttp2 does): it sees several and keeps its connection.
      const live = http2.connect(`http://127.0.0.1:${port}`);
      live.on('error', () => undefined);
      await new Promise<void>((resolve) => {
        let pings = 0;
        live.on('ping', () => {
          if (++pings === 5) resolve();
        });
      });
      assert.equal(live.closed || live.destroyed, false);
      // A dead peer: speaks the HTTP/2 preface and an empty SETTINGS frame, then reads nothing and answers nothing.
      const dead = net.connect(port, '127.0.0.1');
      dead.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
      dead.on('error', () => undefined);
      dead.on('data', () => undefined);
      await new Promise((r) => dead.once('close', r));
      assert.equal(live.closed || live.destroyed, false, 'the live client is still connected');
      live.close();
    } finally {
      await server.close(100);
    }
  });

  it('maximum connection age: GOAWAY, and a call still open on the old connection completes', { timeout: 30_000 }, async () => {
    const server = new UnaryGrpcServer({ maxConnectionAgeMs: 100, maxConnectionAgeGraceMs: 60_000 });
    let answer: (() => void) | undefined;
    server.handleStream('/t.S/Slow', (c) => {
      c.handlers = {
        message: () => {
          answer = () => {
            c.write(Buffer.from('late'));
            c.end();
          };
        },
      };
    });
    const port = await server.listen('127.0.0.1', 0);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    try {
      const goaway = new Promise((r) => session.once('goaway', r));
      const req = session.request({ ':method': 'POST', ':path': '/t.S/Slow', 'content-type': 'application/grpc' });
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('trailers', resolve));
      req.write(Buffer.from([0, 0, 0, 0, 0]));
      await goaway;
      answer!();
      assert.equal((await trailers)['grpc-status'], '0');
      assert.equal(messages(Buffer.concat(chunks))[0]!.toString(), 'late');
    } finally {
      session.destroy();
      await server.close(100);
    }
  });

  it('hosts a grpc-js client-streaming service: messages in order, its callback answers, its error status arrives', async () => {
    const def = {
      Collect: {
        path: '/t.Logs/Collect',
        requestStream: true,
        responseStream: false,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
        originalName: 'collect',
      },
    } as grpc.ServiceDefinition;
    const server = new UnaryGrpcServer();
    hostService(server, def, {
      Collect: (c: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const got: string[] = [];
        c.on('data', (b: Buffer) => got.push(b.toString()));
        c.on('end', () => (got.includes('fail') ? cb({ code: grpc.status.FAILED_PRECONDITION, details: 'told to fail: é%' }) : cb(null, Buffer.from(got.join(',')))));
      },
    });
    const port = await server.listen('127.0.0.1', 0);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const run = (items: string[]) =>
      new Promise<{ error: grpc.ServiceError | null; value?: Buffer }>((resolve) => {
        const s = client.makeClientStreamRequest('/t.Logs/Collect', raw, raw, (error, value) => resolve({ error, value }));
        for (const i of items) s.write(Buffer.from(i));
        s.end();
      });
    try {
      const ok = await run(['a', 'b', 'c']);
      assert.equal(ok.error, null);
      assert.equal(ok.value!.toString(), 'a,b,c');
      const failed = await run(['a', 'fail']);
      assert.equal(failed.error?.code, grpc.status.FAILED_PRECONDITION);
      assert.equal(failed.error?.details, 'told to fail: é%');
      const unknown = await new Promise<grpc.ServiceError | null>((resolve) => client.makeUnaryRequest('/t.Logs/Nope', raw, raw, Buffer.alloc(0), (e) => resolve(e)));
      assert.equal(unknown?.code, grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
      await server.close(100);
    }
  });
});
