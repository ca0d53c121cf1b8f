// A bidi gRPC call on node:http2 (src/grpc/bidi.ts) ended by the server. Envoy's ext_proc client never
// half-closes a processor stream: it resets it once it has its last answer (INTERNAL_ERROR in Envoy
// 1.40), and that reset became an Error with a stack trace on every stream. So the server closes the
// stream itself (NO_ERROR) right after its trailers, which must still arrive.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { BidiCall } from '../../src/grpc/index.ts';

const { NGHTTP2_NO_ERROR } = http2.constants;

function frame(message: string): Buffer {
  const body = Buffer.from(message);
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

describe('BidiCall ended by the server', () => {
  it('sends its message and trailers, then closes the stream with NO_ERROR although the client never half-closed', async () => {
    const server = http2.createServer();
    const serverSide = new Promise<{ rstCode: number | undefined; errors: Error[] }>((resolve) => {
      server.on('stream', (stream, headers) => {
        const errors: Error[] = [];
        stream.on('error', (e) => errors.push(e));
        stream.on('close', () => resolve({ rstCode: stream.rstCode, errors }));
        const call = new BidiCall(stream, headers, 1024);
        call.handlers = {
          message: (m) => {
            call.write(Buffer.from(`echo ${m.toString()}`));
            call.end();
          },
        };
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    session.on('error', () => undefined);
    try {
      // The client writes one message and keeps its side open, as Envoy does.
      const req = session.request({ ':method': 'POST', ':path': '/svc/Method', 'content-type': 'application/grpc' }, { endStream: false });
      req.on('error', () => undefined);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('trailers', resolve));
      const clientClosed = new Promise<number | undefined>((resolve) => req.once('close', () => resolve(req.rstCode)));
      req.write(frame('hi'));
      assert.equal((await trailers)['grpc-status'], '0');
      assert.equal(Buffer.concat(chunks).subarray(5).toString(), 'echo hi');
      // Without the server's own close the stream would stay open until the client reset it.
      const closed = await Promise.race([clientClosed, new Promise<'still open'>((r) => setTimeout(() => r('still open'), 10_000))]);
      assert.equal(closed, NGHTTP2_NO_ERROR);
      const { rstCode, errors } = await serverSide;
      assert.equal(rstCode, NGHTTP2_NO_ERROR);
      assert.deepEqual(
        errors.map((e) => e.message),
        [],
      );
    } finally {
      session.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
