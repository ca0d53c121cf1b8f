// Small servers for tests on free loopback ports: an HTTP server around any handler, and a gRPC
// server answering one unary method with raw bytes (an echo upstream, a trace collector…).
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';

export interface LoopbackServer {
  port: number;
  close(): Promise<void>;
}

/**
 * An HTTP server on a free loopback port. close() also drops idle keep-alive connections: Envoy
 * keeps its upstream connections open, and server.close() alone would wait for them.
 */
export async function listenHttp(handler: RequestListener, opts: { keepAliveTimeoutMs?: number } = {}): Promise<LoopbackServer> {
  const server = createServer(handler);
  if (opts.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = opts.keepAliveTimeoutMs;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const raw = (b: Buffer): Buffer => b;

/**
 * A gRPC server answering one unary method (full path, e.g. /pkg.Service/Method) with whatever
 * `answer` returns for the request bytes: no protobuf needed when the test only compares payloads.
 */
export async function startRawGrpcServer(method: string, answer: (request: Buffer) => Buffer): Promise<LoopbackServer> {
  const server = new grpc.Server();
  server.addService(
    { call: { path: method, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
    { call: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, answer(c.request)) },
  );
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  // Forced: clients under test (Envoy, an xDS-resolved channel) may still hold connections at teardown.
  return { port, close: async () => server.forceShutdown() };
}

export const ECHO_METHOD = '/portico.test.Echo/Say';

/** A gRPC upstream answering ECHO_METHOD with `<name>:<request>`, so a test sees which one it reached. */
export function startGrpcEcho(name: string): Promise<LoopbackServer> {
  return startRawGrpcServer(ECHO_METHOD, (request) => Buffer.from(`${name}:${request.toString()}`));
}

/** One unary call with a text payload; resolves with the answer as text. */
export function callRaw(client: grpc.Client, text: string, method = ECHO_METHOD, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(method, raw, raw, Buffer.from(text), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res!.toString()))),
  );
}
