// The demo upstreams as their own process, for docker-compose (and any run without `portico demo`):
// echo services for users, orders and products and the development token issuer (JWKS + POST /token)
// that examples/gateway.yaml points at. Never part of a production deployment.
//
//   node --import tsx deploy/docker/demo-upstreams.ts
//
// DEMO_HOST (default 127.0.0.1; 0.0.0.0 in a container), DEMO_USERS_PORT (3001), DEMO_ORDERS_PORT
// (3002), DEMO_PRODUCTS_PORT (3003), DEMO_ISSUER_PORT (3009); 0 picks a free port. Prints one JSON
// line per service with the port it bound, then serves until SIGTERM/SIGINT.
import { startDevIssuer, startEchoService } from '../../src/demo/upstreams.ts';

const host = process.env.DEMO_HOST || '127.0.0.1';
function port(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} must be a port number, got '${raw}'`);
  return n;
}

const services = [
  { name: 'users', port: port('DEMO_USERS_PORT', 3001) },
  { name: 'orders', port: port('DEMO_ORDERS_PORT', 3002) },
  { name: 'products', port: port('DEMO_PRODUCTS_PORT', 3003) },
];
const closers: Array<() => Promise<void>> = [];
for (const s of services) {
  const echo = await startEchoService(s.name, s.port, host);
  closers.push(echo.close);
  process.stdout.write(`${JSON.stringify({ service: s.name, host, port: echo.port })}\n`);
}
const issuer = await startDevIssuer({
  host,
  port: port('DEMO_ISSUER_PORT', 3009),
  issuer: process.env.DEMO_ISSUER || 'https://auth.example.com',
  audience: process.env.DEMO_AUDIENCE || 'api.example.com',
});
closers.push(issuer.close);
process.stdout.write(`${JSON.stringify({ service: 'issuer', host, port: issuer.port, issuer: issuer.issuer, audience: issuer.audience })}\n`);

const stop = () => {
  // Keep-alive connections would hold close() open: exit once listeners are closed or after 5 s.
  setTimeout(() => process.exit(0), 5_000).unref();
  void Promise.allSettled(closers.map((c) => c())).then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
