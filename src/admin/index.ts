// Public surface of src/admin: the fastify admin API server.
export { buildAdminServer, type AdminServerOptions } from './server.ts';
export type { FlowTools } from './flows.ts';
