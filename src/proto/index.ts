// Public surface of src/proto, the ground floor every gRPC user shares: Envoy's API loaded at run
// time, the strict proto3-JSON codec, hand-written wire helpers for the hot paths, and type URLs.
export { findType, lookupService, lookupType, protoRoot } from './load.ts';
export { ProtoJsonError, type Json, type JsonObject, type JsonValue } from './json.ts';
export { EncodedMessage, EncodedParts, encodeMessage, encodeResource } from './encode.ts';
export { decodeMessage, decodeResource, messageToJson } from './decode.ts';
export { LEN, MAP_KEY, MAP_VALUE, VARINT, fieldNumber, readStringMapEntry, tag } from './wire.ts';
export { RESOURCE_TYPES, TYPE_URL_PREFIX, TYPE_URLS, typeNameOfUrl, type XdsTypeUrl } from './type-urls.ts';
