// ext_authz for the gateway: the public surface the composition root, the translator's tests and
// the benchmarks use (credential index, decisions, JWT verification, the gRPC Check service).
export {
  buildCredentialIndex,
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_JWT_ALGORITHMS,
  type CredentialIndex,
  type CredentialIndexOptions,
} from './credential-index.ts';
export { CREDENTIAL_ORDER, decide, jwtToVerify, type Allow, type AuthzRequest, type Decision, type Deny, type JwtOutcome } from './decide.ts';
export { DEFAULT_JWT_SETTINGS, type JwtSettings } from './jwks.ts';
export { JwtVerifier } from './jwt.ts';
export { AuthzMetrics } from './metrics.ts';
export {
  AUTHZ_SERVICE,
  AuthzService,
  authzClientDefinition,
  authzServiceDefinition,
  registerAuthzService,
  registerAuthzUnary,
  type AuthzServiceOptions,
  type CheckResult,
  type ServiceHost,
} from './service.ts';
export { CheckRequestDecodeError, decodeCheckRequest, encodeCheckResponse } from './wire.ts';
