// Public surface of src/model: resource schemas, the immutable ModelSnapshot, whole-model validation,
// policy facts several stages share, canonical forms and declarative documents.
export * from './canonical.ts';
export * from './declarative.ts';
export * from './header-values.ts';
export * from './flow-schema.ts';
export * from './idempotency-schema.ts';
export * from './input.ts';
export * from './model.ts';
export * from './policy.ts';
export * from './schemas.ts';
export * from './validate.ts';
export * from './grpc-descriptor.ts';
export * from './plan-rules.ts';
export * from './jwt-keys.ts';
export * from './mtls-match.ts';
export * from './modes.ts';
export * from './native-flow.ts';
