// `portico demo`: the quick start in one process tree — control plane on embedded defaults, the
// example model, echo upstreams, a development token issuer, and an Envoy fed over ADS.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocumentText } from '../model/index.ts';
import { applyDocument } from '../store/index.ts';
import { startPortico } from '../main.ts';
import type { Settings } from '../settings.ts';
import { createLogger } from '../telemetry/index.ts';
import { renderBootstrap } from '../xds/index.ts';
import { startDevIssuer, startEchoService } from './upstreams.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const EXAMPLE_FILE = path.join(ROOT, 'examples/gateway.yaml');

export async function runDemo(base: Settings, _opts: { reset?: boolean } = {}): Promise<void> {
  const log = createLogger(base.logLevel === 'info' ? 'warn' : base.logLevel);
  // A fresh admin token per run: the demo prints it, nothing else needs it.
  const adminToken = base.adminToken ?? `demo-${randomBytes(18).toString('base64url')}`;
  const settings: Settings = { ...base, adminToken };
  const services = await Promise.all([startEchoService('users', 3001), startEchoService('orders', 3002), startEchoService('products', 3003)]);
  const issuer = await startDevIssuer({ port: 3009, issuer: 'https://auth.example.com', audience: 'api.example.com' });
  const portico = await startPortico(settings, { logger: log });

  // The example model, applied idempotently (a second run changes nothing); keys from earlier runs stay.
  const store = portico.store;
  const hasher = store.apiKeyHasher();
  await applyDocument(store, parseDocumentText(readFileSync(EXAMPLE_FILE, 'utf8')), {
    actor: 'portico demo',
    summary: 'apply examples/gateway.yaml',
    keepUnlistedApiKeys: true,
  });

  // A new demo API key for the web-app team each run (the secret can only be shown at creation).
  const minted = hasher.mint('ptk');
  await store.commit({
    actor: 'portico demo',
    summary: 'demo API key',
    mutations: [{ kind: 'apiKeys', op: 'put', key: 'web-app/demo', resource: { partner: 'web-app', name: 'demo', prefix: minted.prefix, hash: minted.hash } }],
  });
  const token = await issuer.mint({ sub: 'usr_8a3f', team: 'web-app', role: 'customer' });

  const envoyDir = path.join(settings.dataDir.startsWith('memory://') ? path.join(ROOT, '.data') : settings.dataDir, 'envoy');
  mkdirSync(envoyDir, { recursive: true });
  const bootstrapFile = path.join(envoyDir, 'edge.json');
  // Plaintext channels: the control plane listens on loopback (its default), where that is allowed.
  const bootstrap = renderBootstrap({ role: 'edge', nodeId: 'demo-edge-1', group: 'edge', xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], adminPort: 9901 });
  writeFileSync(bootstrapFile, JSON.stringify(bootstrap, null, 2));
  const envoy: ChildProcess = spawn(process.env.ENVOY_BIN || 'envoy', ['-c', bootstrapFile, '--log-level', 'warn', '--base-id', String(process.pid % 1000)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  envoy.on('error', (e) => {
    process.stderr.write(`portico demo: cannot start envoy (${e.message}); run scripts/setup.sh to install it\n`);
    void shutdown(1);
  });

  process.stdout.write(`
Portico demo is running.
  gateway (Envoy):  http://127.0.0.1:10000      Envoy admin: http://127.0.0.1:9901
  admin API:        ${portico.adminUrl}   (token: ${adminToken})
  API docs:         ${portico.adminUrl}/docs

Try:
  curl -s localhost:10000/api/health
  curl -s -H 'Authorization: Bearer ${token}' localhost:10000/api/orders/ord_x7k9
  curl -s -H 'x-api-key: ${minted.secret}' localhost:10000/api/users/usr_8a3f
  curl -s -X DELETE -H 'x-api-key: ${minted.secret}' localhost:10000/api/orders/ord_x7k9   # 405: not allowed
  curl -s localhost:10000/api/orders/ord_x7k9                                                # 401: no credential
  curl -s -H 'Authorization: Bearer ${adminToken}' ${portico.adminUrl}/api/v1/fleet
  PORTICO_URL=${portico.adminUrl} PORTICO_TOKEN=${adminToken} ./bin/portico export

Mint more tokens: curl -s -X POST localhost:3009/token -d '{"sub":"u1","team":"web-app","role":"admin"}'
Envoy ↔ control plane (xDS, callouts, access logs) is plaintext here: it stays on 127.0.0.1, the only
place Portico allows that by default. Anywhere else it is mTLS (\`portico certs\`, docs/operations.md).
Ctrl-C stops everything.
`);

  let stopping = false;
  async function shutdown(code: number): Promise<void> {
    if (stopping) return;
    stopping = true;
    envoy.kill('SIGTERM');
    await portico.close();
    await Promise.all([...services.map((s) => s.close()), issuer.close()]);
    process.exit(code);
  }
  envoy.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`portico demo: envoy exited (${signal ?? code})\n`);
      void shutdown(1);
    }
  });
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
}
