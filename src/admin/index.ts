// Public surface of src/admin: the fastify admin API server, and the rendering of apply results the
// CLI shares with it.
export { buildAdminServer, type AdminServerOptions } from './server.ts';
export { renderChanges, type ApplyResult } from './config.ts';
