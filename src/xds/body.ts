// Discovery responses as pieces: the framing written here, large resource encodings by reference. A
// response body shared by a thousand streams then holds no copy of the cache's buffers (a route
// configuration of 10k routes is ~7 MB, and a concatenated body was a second copy per view and plan).
import protobuf from 'protobufjs';

/** One message as the concatenation of its pieces (written in order behind one gRPC prefix). */
export type Body = readonly Buffer[];

/** Resources at least this large are referenced, not copied (below it a piece costs more than the copy). */
const BY_REFERENCE = 16 * 1024;

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/**
 * DiscoveryResponse / DeltaDiscoveryResponse: the fields both share are numbered alike (version 1,
 * resources 2, type_url 4, nonce 5); removed_resources (6) is Delta's. Empty strings are not written.
 * The small fields come before the resources (protobuf readers take fields in any order), so a body
 * around one large resource is two pieces, the framing and the resource: a stream writes it in as
 * many writes as one Buffer behind its prefix.
 */
export function responseBody(version: string, resources: readonly Uint8Array[], typeUrl: string, nonce: string, removed: readonly string[] = []): Body {
  const pieces: Buffer[] = [];
  let w = protobuf.Writer.create();
  if (version) w.uint32(10).string(version);
  if (typeUrl) w.uint32(34).string(typeUrl);
  if (nonce) w.uint32(42).string(nonce);
  for (const n of removed) w.uint32(50).string(n);
  for (const res of resources) {
    if (res.length < BY_REFERENCE) {
      w.uint32(18).bytes(res);
      continue;
    }
    w.uint32(18).uint32(res.length);
    pieces.push(toBuffer(w.finish()), toBuffer(res));
    w = protobuf.Writer.create();
  }
  const tail = w.finish();
  if (tail.length > 0 || pieces.length === 0) pieces.push(toBuffer(tail));
  return pieces;
}

/** Bytes of a body. */
export function bodyLength(body: Body): number {
  let n = 0;
  for (const b of body) n += b.length;
  return n;
}

/** The body as one Buffer (a copy unless it is one piece): for unary answers and tests. */
export function joinBody(body: Body): Buffer {
  return body.length === 1 ? body[0]! : Buffer.concat(body as Buffer[]);
}
