// Public surface of src/contract, the ground floor of what Envoy, the callouts, the access-log reader
// and flows agree on: error bodies, rate-limit descriptors, names of headers, filters, metadata and
// tags, the Envoy side of the mTLS channels to the control plane, bearer-secret shapes, partner
// label values, and the resource set a gateway group is served.
export * from './auth-replies.ts';
export * from './channel.ts';
export * from './credentials.ts';
export * from './descriptors.ts';
export * from './errors.ts';
export * from './names.ts';
export * from './partner-labels.ts';
export * from './resources.ts';
export * from './grpc-errors.ts';
export * from './idempotency.ts';
