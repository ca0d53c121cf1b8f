// How a gRPC error reaches an HTTP client of a transcoded route: the HTTP status and the `error` code
// of the gateway's JSON error shape for each gRPC status (the message is the upstream's grpc-message).

/** gRPC status code → [HTTP status, error code]; OK (0) is not an error. */
export const GRPC_ERRORS: Readonly<Record<number, readonly [number, string]>> = {
  1: [499, 'cancelled'],
  2: [500, 'unknown'],
  3: [400, 'invalid_argument'],
  4: [504, 'deadline_exceeded'],
  5: [404, 'not_found'],
  6: [409, 'already_exists'],
  7: [403, 'permission_denied'],
  8: [429, 'resource_exhausted'],
  9: [400, 'failed_precondition'],
  10: [409, 'aborted'],
  11: [400, 'out_of_range'],
  12: [501, 'unimplemented'],
  13: [500, 'internal'],
  14: [503, 'unavailable'],
  15: [500, 'data_loss'],
  16: [401, 'unauthenticated'],
};
