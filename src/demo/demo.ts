// `portico demo`: the quick start in one process tree — control plane on embedded defaults, the
// example model, echo upstreams, a development token issuer, and an Envoy fed over ADS. The model
// and credentials live in the data directory and survive restarts; `--reset` starts over.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocumentText } from '../model/index.ts';
import { applyDocument, dataDirOwner } from '../store/index.ts';
import { bind, startPortico } from '../main.ts';
import type { Settings } from '../settings.ts';
import { createLogger } from '../telemetry/index.ts';
import { renderBootstrap } from '../xds/index.ts';
import { ACCESS_LOG_FILE, ENVOY_LOG_FILE, readCredentials, resetDataDir, writeCredentials } from './credentials.ts';
import { SEED_ORDERS, SEED_RECOMMENDATIONS, SEED_USER } from '../flows/index.ts';
import { startDevIssuer, startEchoService } from './upstreams.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const EXAMPLE_FILE = path.join(ROOT, 'examples/gateway.yaml');

/** The demo's fixed ports (those examples/gateway.yaml names), or a block from PORTICO_DEMO_PORT_BASE. */
export interface DemoPorts {
  gateway: number;
  envoyAdmin: number;
  users: number;
  orders: number;
  products: number;
  issuer: number;
}

export const DEFAULT_DEMO_PORTS: DemoPorts = { gateway: 10000, envoyAdmin: 9901, users: 3001, orders: 3002, products: 3003, issuer: 3009 };

/** PORTICO_DEMO_PORT_BASE=N moves every demo port to N…N+5 (a second demo, or tests in their own range). */
export function demoPorts(env: NodeJS.ProcessEnv): DemoPorts {
  const raw = env.PORTICO_DEMO_PORT_BASE;
  if (!raw) return DEFAULT_DEMO_PORTS;
  const base = Number(raw);
  if (!Number.isInteger(base) || base < 1024 || base > 65530) throw new Error(`PORTICO_DEMO_PORT_BASE must be a port between 1024 and 65530, got '${raw}'`);
  return { gateway: base, envoyAdmin: base + 1, users: base + 2, orders: base + 3, products: base + 4, issuer: base + 5 };
}

/** The example file with its ports moved to `ports` (the file names the default ones). */
export function exampleDocument(ports: DemoPorts): string {
  const d = DEFAULT_DEMO_PORTS;
  return readFileSync(EXAMPLE_FILE, 'utf8')
    .replace(`port: ${d.gateway}\n`, `port: ${ports.gateway}\n`)
    .replace(`port: ${d.users}\n`, `port: ${ports.users}\n`)
    .replace(`port: ${d.orders}\n`, `port: ${ports.orders}\n`)
    .replace(`port: ${d.products}\n`, `port: ${ports.products}\n`)
    .replace(`127.0.0.1:${d.issuer}/`, `127.0.0.1:${ports.issuer}/`);
}

export async function runDemo(base: Settings, opts: { reset?: boolean } = {}): Promise<void> {
  const log = createLogger(base.logLevel === 'info' ? 'warn' : base.logLevel);
  const ports = demoPorts(process.env);
  const dataDir = base.dataDir.startsWith('memory://') ? path.join(ROOT, '.data') : base.dataDir;
  // One demo per data directory: say so before anything binds a port.
  const owner = dataDirOwner(path.join(dataDir, 'pglite'));
  if (owner !== undefined) throw new Error(`a Portico demo (pid ${owner}) is already running on ${dataDir}: stop it, or set PORTICO_DATA_DIR to another directory`);
  if (opts.reset) resetDataDir(dataDir);
  mkdirSync(dataDir, { recursive: true });
  const saved = readCredentials(dataDir);
  // The admin token is the control plane's bootstrap token: the same one every run, until --reset.
  const adminToken = base.adminToken ?? saved.PORTICO_TOKEN ?? `demo-${randomBytes(18).toString('base64url')}`;
  const settings: Settings = { ...base, adminToken };
  const demoBind = <T>(what: string, port: number, start: () => Promise<T>) => bind(`the demo's ${what}`, 'PORTICO_DEMO_PORT_BASE', '127.0.0.1', port, start);
  // Seed 003's data where its /api/home flow (examples/gateway.yaml) looks for it; echoes elsewhere.
  const services = await Promise.all([
    demoBind('users service', ports.users, () => startEchoService('users', ports.users, '127.0.0.1', { [`/users/${SEED_USER.id}`]: SEED_USER })),
    demoBind('orders service', ports.orders, () => startEchoService('orders', ports.orders, '127.0.0.1', { '/orders': SEED_ORDERS })),
    demoBind('products service', ports.products, () => startEchoService('products', ports.products, '127.0.0.1', { '/recommendations': SEED_RECOMMENDATIONS })),
  ]);
  const issuer = await demoBind('token issuer', ports.issuer, () => startDevIssuer({ port: ports.issuer, issuer: 'https://auth.example.com', audience: 'api.example.com' }));
  const portico = await startPortico(settings, { logger: log });
  const store = portico.store;

  // The example model on a first start only: afterwards the model is what the user made of it.
  const firstStart = store.current().gatewayGroups.size === 0 && store.current().services.size === 0;
  if (firstStart) {
    await applyDocument(store, parseDocumentText(exampleDocument(ports)), { actor: 'portico demo', summary: 'apply examples/gateway.yaml' });
  }

  // The web-app team's API key: the saved one while it still matches what is stored, else a new one.
  const hasher = store.apiKeyHasher();
  const stored = store.current().apiKeys.get('web-app/demo');
  let apiKey = saved.DEMO_API_KEY;
  if (!(apiKey && stored && hasher.verify(apiKey, stored.hash))) {
    if (!store.current().partners.has('web-app')) {
      await store.commit({ actor: 'portico demo', summary: 'demo partner', mutations: [{ kind: 'partners', op: 'put', key: 'web-app', resource: { name: 'web-app' } }] });
    }
    const minted = hasher.mint('ptk');
    await store.commit({
      actor: 'portico demo',
      summary: 'demo API key',
      mutations: [{ kind: 'apiKeys', op: 'put', key: 'web-app/demo', resource: { partner: 'web-app', name: 'demo', prefix: minted.prefix, hash: minted.hash, secret: minted.secret } }],
    });
    apiKey = minted.secret;
  }
  const jwt = await issuer.mint({ sub: 'usr_8a3f', team: 'web-app', role: 'customer' });
  const credentialsFile = writeCredentials(dataDir, { PORTICO_URL: portico.adminUrl, PORTICO_TOKEN: adminToken, DEMO_API_KEY: apiKey, DEMO_JWT: jwt });

  const envoyDir = path.join(dataDir, 'envoy');
  mkdirSync(envoyDir, { recursive: true });
  const bootstrapFile = path.join(envoyDir, 'edge.json');
  // Plaintext channels: the control plane listens on loopback (its default), where that is allowed.
  const bootstrap = renderBootstrap({ role: 'edge', nodeId: 'demo-edge-1', group: 'edge', xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], adminPort: ports.envoyAdmin });
  writeFileSync(bootstrapFile, JSON.stringify(bootstrap, null, 2));
  // Envoy's access log (one JSON line per request, on its stdout) and its own log go to files, so
  // the terminal keeps the banner.
  const accessLog = path.join(dataDir, ACCESS_LOG_FILE);
  const envoyLog = path.join(dataDir, ENVOY_LOG_FILE);
  const [outFd, errFd] = [openSync(accessLog, 'a'), openSync(envoyLog, 'a')];
  const envoy: ChildProcess = spawn(process.env.ENVOY_BIN || 'envoy', ['-c', bootstrapFile, '--log-level', 'warn', '--base-id', String(process.pid % 1000)], {
    stdio: ['ignore', outFd, errFd],
  });
  closeSync(outFd);
  closeSync(errFd);
  envoy.on('error', (e) => {
    process.stderr.write(`portico demo: cannot start envoy (${e.message}); run scripts/setup.sh to install it\n`);
    void shutdown(1);
  });

  // Paths as the user would type them: relative below the working directory, else absolute.
  const rel = (f: string) => (path.relative(process.cwd(), f).startsWith('..') ? f : path.relative(process.cwd(), f) || f);
  const gw = `localhost:${ports.gateway}`;
  process.stdout.write(`
Portico demo is running${firstStart ? ' (first start: examples/gateway.yaml applied)' : ` (model and credentials kept in ${rel(dataDir)}; --reset starts over)`}.
  gateway (Envoy):  http://${gw}       Envoy admin: http://127.0.0.1:${ports.envoyAdmin}
  admin API:        ${portico.adminUrl}    API docs: ${portico.adminUrl}/docs
  credentials:      ${rel(credentialsFile)}   (mode 0600; \`source\` it in a shell)
    PORTICO_TOKEN=${adminToken}
    DEMO_API_KEY=${apiKey}
    DEMO_JWT=<in the file; a new one each start>
  logs:             ${rel(accessLog)} (requests), ${rel(envoyLog)} (Envoy)

Try (in another shell):
  source ${rel(credentialsFile)}
  curl -s ${gw}/api/health
  curl -s -H "Authorization: Bearer $DEMO_JWT" ${gw}/api/orders/ord_x7k9
  curl -s -H "x-api-key: $DEMO_API_KEY" ${gw}/api/users/usr_8a3f
  curl -s -H "Authorization: Bearer $DEMO_JWT" ${gw}/api/home                # a flow: user, orders, recommendations in one call
  curl -s -H "x-api-key: $DEMO_API_KEY" ${gw}/api/profile/usr_8a3f           # internal fields removed, email_address renamed
  curl -s -H "x-api-key: $DEMO_API_KEY" -H 'accept: application/xml' ${gw}/api/profile/usr_8a3f   # …as XML
  curl -s ${gw}/api/orders/ord_x7k9                                     # 401: no credential
  curl -s -X DELETE -H "x-api-key: $DEMO_API_KEY" ${gw}/api/orders/ord_x7k9   # 405: not allowed
  curl -s -H "Authorization: Bearer $PORTICO_TOKEN" $PORTICO_URL/api/v1/fleet
  ./bin/portico export                                                  # the model as YAML

A 429: login allows 10 a minute per client address, so the 11th and 12th are refused:
  for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code} ' -X POST ${gw}/api/auth/login; done; echo
  curl -si -X POST ${gw}/api/auth/login      # Retry-After, X-RateLimit-* and the JSON body

Mint more tokens: curl -s -X POST localhost:${ports.issuer}/token -d '{"sub":"u1","team":"web-app","role":"admin"}'
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
      const tail = existsSync(envoyLog) ? readFileSync(envoyLog, 'utf8').trimEnd().split('\n').slice(-5).join('\n') : '';
      process.stderr.write(`portico demo: envoy exited (${signal ?? code}); the end of ${rel(envoyLog)}:\n${tail}\n`);
      void shutdown(1);
    }
  });
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
}
