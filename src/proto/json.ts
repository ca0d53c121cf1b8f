// Proto3 JSON as the codec reads and writes it (snake_case field names, durations as "5s", Any as an
// object with "@type"), and the error naming where a JSON value does not fit its message type.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };
/** A proto3-JSON value (what encode accepts and decode returns). */
export type JsonValue = Json;

/** Proto3-JSON that does not fit the schema; `path` is a JSON path like `$.filters[0].typed_config`. */
export class ProtoJsonError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'ProtoJsonError';
  }
}
