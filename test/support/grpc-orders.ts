// The order service of test/fixtures/orders.proto as a real grpc-js upstream (protobufjs codecs),
// its descriptor set as `portico protoset` builds it, and gRPC-Web framing for clients: the 5-byte
// message prefix (flag, big-endian length) and the trailer frame, hand-framed (no Node gRPC-Web client
// library fits: grpc-web's runtime is for browsers and generated code).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { descriptorSetFromRoot, loadProtoSources } from '../../src/model/grpc-descriptor.ts';
import type { LoopbackServer } from './servers.ts';

export const ORDERS_PROTO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/orders.proto');
export const ORDERS_SERVICE = 'portico.test.shop.Orders';

export const ordersRoot = loadProtoSources([ORDERS_PROTO]);
export const ordersDescriptorSet = descriptorSetFromRoot(ordersRoot);
export const ordersType = (name: string): protobuf.Type => ordersRoot.lookupType(`portico.test.shop.${name}`);

export interface Order {
  id: string;
  item: string;
  quantity: number;
  tags: string[];
}

function codec(type: string) {
  const t = ordersType(type);
  return {
    serialize: (o: object) => Buffer.from(t.encode(t.fromObject(o)).finish()),
    deserialize: (b: Buffer) => t.toObject(t.decode(b), { defaults: true }) as Record<string, any>,
  };
}

function method(name: string, req: string, res: string, responseStream = false) {
  const i = codec(req);
  const o = codec(res);
  return {
    path: `/${ORDERS_SERVICE}/${name}`,
    requestStream: false,
    responseStream,
    requestSerialize: i.serialize,
    requestDeserialize: i.deserialize,
    responseSerialize: o.serialize,
    responseDeserialize: o.deserialize,
  };
}

export const ORDERS_DEFINITION = {
  GetOrder: method('GetOrder', 'GetOrderRequest', 'Order'),
  CreateOrder: method('CreateOrder', 'CreateOrderRequest', 'Order'),
  ListOrders: method('ListOrders', 'ListOrdersRequest', 'Order', true),
  Ping: method('Ping', 'Empty', 'Empty'),
};

/** An order by id; ids starting with `missing` are NOT_FOUND, `bad` INVALID_ARGUMENT, `boom` INTERNAL. */
function order(id: string): Order | grpc.ServiceError {
  const fail = (code: grpc.status, details: string) => Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
  if (id.startsWith('missing')) return fail(grpc.status.NOT_FOUND, `order ${id} not found`);
  if (id.startsWith('bad')) return fail(grpc.status.INVALID_ARGUMENT, `order id ${id} is malformed`);
  if (id.startsWith('boom')) return fail(grpc.status.INTERNAL, 'the order store failed');
  return { id, item: `item-of-${id}`, quantity: id.length, tags: ['a', 'b'] };
}

/** A real gRPC server for the order service on a free loopback port. */
export async function startOrdersServer(): Promise<LoopbackServer & { calls: number }> {
  const server = new grpc.Server();
  const state = { calls: 0 };
  server.addService(ORDERS_DEFINITION, {
    GetOrder: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      state.calls++;
      const o = order(call.request.id);
      if (o instanceof Error) cb(o);
      else cb(null, o);
    },
    CreateOrder: (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      state.calls++;
      cb(null, { ...call.request.order, id: call.request.order?.id || 'o-new' });
    },
    ListOrders: (call: grpc.ServerWritableStream<any, any>) => {
      state.calls++;
      const n = call.request.limit || 2;
      for (let i = 1; i <= n; i++) call.write(order(`${call.request.customer}-${i}`));
      call.end();
    },
    Ping: (_call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      state.calls++;
      cb(null, {});
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  return {
    port,
    get calls() {
      return state.calls;
    },
    close: async () => server.forceShutdown(),
  };
}

/** A gRPC-Web request body: one uncompressed message frame. */
export function grpcWebFrame(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** A gRPC-Web response body: its message frames and its trailers (flag 0x80 frame, `name: value` lines). */
export function parseGrpcWeb(body: Buffer): { messages: Buffer[]; trailers: Record<string, string> } {
  const messages: Buffer[] = [];
  const trailers: Record<string, string> = {};
  for (let i = 0; i + 5 <= body.length; ) {
    const flag = body[i]!;
    const len = body.readUInt32BE(i + 1);
    const payload = body.subarray(i + 5, i + 5 + len);
    if (payload.length !== len) throw new Error(`truncated gRPC-Web frame: ${payload.length} of ${len} bytes`);
    if (flag & 0x80) {
      for (const line of payload.toString().split('\r\n')) {
        const at = line.indexOf(':');
        if (at > 0) trailers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
      }
    } else messages.push(Buffer.from(payload));
    i += 5 + len;
  }
  return { messages, trailers };
}

/** A grpc-web-text body to bytes: the server base64-encodes each write on its own, so padding may end any chunk. */
export function decodeGrpcWebText(text: string): Buffer {
  return Buffer.concat((text.match(/[A-Za-z0-9+/]+={0,2}/g) ?? []).map((chunk) => Buffer.from(chunk, 'base64')));
}
