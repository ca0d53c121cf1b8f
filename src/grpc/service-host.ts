// Hosts services written for grpc-js (a ServiceDefinition with its codecs, handlers taking grpc-js-style
// calls) on the lean HTTP/2 server, so that they share its port: the access-log service, tests' callouts.
// Only what those handlers use: unary and client-streaming methods; request, getPeer, getAuthContext,
// the data/end/cancelled events and the callback.
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { BidiCall } from './bidi.ts';
import type { AuthContextLike } from './channel.ts';
import type { UnaryGrpcServer, UnaryResult } from './unary-server.ts';

const UNKNOWN = 2;

type Method = grpc.MethodDefinition<unknown, unknown>;
type Callback = (error: { code?: number; details?: string; message?: string } | null, value?: unknown) => void;
type Handler = (call: EventEmitter, callback: Callback) => void;

/** A failed call's status as grpc-js would send it (a plain Error is UNKNOWN with its message). */
function statusOf(e: { code?: number; details?: string; message?: string }): { code: number; details: string } {
  return { code: typeof e.code === 'number' ? e.code : UNKNOWN, details: e.details ?? e.message ?? '' };
}

/** Registers every implemented method of `definition` on `server`; streaming responses are not supported here. */
export function hostService(server: Pick<UnaryGrpcServer, 'handle' | 'handleStream'>, definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
  for (const [name, m] of Object.entries(definition) as [string, Method][]) {
    const handler = (implementation[name] ?? (m.originalName ? implementation[m.originalName] : undefined)) as Handler | undefined;
    if (!handler) continue; // unknown paths are answered UNIMPLEMENTED by the server
    if (m.responseStream) throw new Error(`${m.path}: server-streaming methods need their own handler on this server (see XdsServer's ADS)`);
    if (m.requestStream) server.handleStream(m.path, (call) => clientStreaming(m, handler, call));
    else server.handle(m.path, (request, peer, auth) => unary(m, handler, request, peer, auth));
  }
}

function unary(m: Method, handler: Handler, request: Buffer, peer: () => string, auth: () => AuthContextLike): Promise<UnaryResult> {
  return new Promise((resolve) => {
    const call = Object.assign(new EventEmitter(), { request: m.requestDeserialize(request), cancelled: false, getPeer: peer, getAuthContext: auth });
    handler(call, (error, value) => resolve(error ? { ok: false, ...statusOf(error) } : { ok: true, response: m.responseSerialize(value) }));
  });
}

function clientStreaming(m: Method, handler: Handler, bidi: BidiCall): void {
  const call = Object.assign(new EventEmitter(), { cancelled: false, getPeer: () => bidi.peer(), getAuthContext: () => bidi.authContext() });
  bidi.handlers = {
    message: (b) => call.emit('data', m.requestDeserialize(b)),
    end: () => call.emit('end'),
    abort: () => {
      call.cancelled = true;
      call.emit('cancelled');
    },
  };
  handler(call, (error, value) => {
    if (error) return bidi.end(statusOf(error).code, statusOf(error).details);
    bidi.write(m.responseSerialize(value));
    bidi.end();
  });
}
