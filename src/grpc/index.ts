// Public surface of src/grpc: the lean HTTP/2 server the unary callouts (ext_authz, rate limit) run on.
export * from './unary-server.ts';
