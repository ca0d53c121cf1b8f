// Benchmark: where a scenario's Envoy instructions go, by subtraction. The configuration the control
// plane serves for one scenario of bench/gateway-scenarios.ts (read from Envoy's config_dump) is run
// as a static bootstrap, once as served and once per variant that removes or changes one part of it
// (a filter, the access logs, the route's headers…); each runs under callgrind like
// bench/gateway-instructions.ts (one worker, only the measured requests counted, ±1%). The release
// Envoy binary has no symbols, so callgrind_annotate cannot name the functions: a part's cost is the
// base minus the variant without it. Variants only explain costs; most of them break a behaviour.
// Prints JSON: instructions per request of each, and each variant's difference to the base.
//
// Usage: ENVOY_BIN=/path/to/envoy node --import tsx bench/gateway-variants.ts [--scenario jwt-native]
//   [--variants base,no-access-log,…] [--file variants.mjs] [--requests 2000] [--connections 4] [--keep DIR]
// --file: an ES module whose default export maps more variant names to functions (bootstrap, caller's
// headers, caller) => void that edit the bootstrap (JSON) in place and may change the headers sent.
// send-token (what the bearer token alone costs) runs only when named: use it on a scenario without JWT.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { countRequests, send } from './callgrind.ts';
import { flags, headerObject, printJson } from './harness.ts';
import { benchToken, documentFor, GROUP, headersFor, type Scenario } from './gateway-scenarios.ts';
import { newApiKey, startControlPlane, startDirectUpstream, startGatewayEnvoy, workspace } from './stack.ts';

type Variant = (bootstrap: any, headers: string[], caller: { key: string; token: string }) => void;

const hcm = (b: any): any => b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
const routes = (b: any): any[] => hcm(b).route_config.virtual_hosts.flatMap((v: any) => v.routes);
/** Removes the chain's filters whose name starts with `prefix`, and their per-route configs. */
function dropFilters(b: any, prefix: string): void {
  hcm(b).http_filters = hcm(b).http_filters.filter((f: any) => !f.name.startsWith(prefix));
  for (const r of routes(b)) for (const k of Object.keys(r.typed_per_filter_config ?? {})) if (k.startsWith(prefix)) delete r.typed_per_filter_config[k];
}
function keepLogs(b: any, keep: (name: string) => boolean): void {
  hcm(b).access_log = (hcm(b).access_log ?? []).filter((a: any) => keep(a.name));
}
const jwtProviders = (b: any): any[] => Object.values(hcm(b).http_filters.find((f: any) => f.name === 'envoy.filters.http.jwt_authn')?.typed_config.providers ?? {});

const BUILT_IN: Record<string, Variant> = {
  base: () => {},
  'no-access-log': (b) => keepLogs(b, () => false),
  'no-grpc-access-log': (b) => keepLogs(b, (n) => n !== 'envoy.access_loggers.http_grpc'),
  'no-stdout-access-log': (b) => keepLogs(b, (n) => n === 'envoy.access_loggers.http_grpc'),
  'no-route-headers': (b) => {
    for (const r of routes(b)) delete r.request_headers_to_add;
  },
  'no-header-mutation': (b) => dropFilters(b, 'envoy.filters.http.header_mutation'),
  'no-access-filters': (b) => {
    dropFilters(b, 'envoy.filters.http.rbac');
    dropFilters(b, 'portico.access.');
  },
  'no-plan-limits': (b) => {
    dropFilters(b, 'portico.local_ratelimit.plans.');
    for (const r of routes(b)) if (r.route) delete r.route.rate_limits;
  },
  'no-local-replies': (b) => {
    delete hcm(b).local_reply_config;
  },
  // The token's own cost: the caller sends the partner header jwt_authn would have set, and no token
  // (the header_mutation that strips x-portico-* from callers goes too).
  'no-jwt-authn': (b, h) => {
    if (!jwtProviders(b).length) return;
    dropFilters(b, 'envoy.filters.http.jwt_authn');
    dropFilters(b, 'envoy.filters.http.header_mutation');
    h.splice(0, h.length, 'x-portico-partner: acme');
  },
  // What reading the bench's bearer token alone costs (on a route without jwt_authn; the route removes it, as jwt_authn does).
  'send-token': (b, h, caller) => {
    h.push(`authorization: Bearer ${caller.token}`);
    for (const r of routes(b)) r.request_headers_to_remove = [...(r.request_headers_to_remove ?? []), 'authorization'];
  },
  'jwt-forward-token': (b) => {
    for (const p of jwtProviders(b)) p.forward = true;
  },
};

// send-token only where no jwt_authn reads the token: asked for by name.
const args = flags({
  scenario: 'jwt-native',
  variants: Object.keys(BUILT_IN)
    .filter((v) => v !== 'send-token')
    .join(','),
  file: '',
  requests: 2000,
  connections: 4,
  keep: '',
});

/** The served configuration as a static bootstrap: the active listener with its routes inline, the clusters (EDS ones made static). */
async function servedBootstrap(adminPort: number, upstreamPort: number): Promise<any> {
  const dump = (await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json()) as { configs: any[] };
  const of = (type: string): any => dump.configs.find((c) => c['@type'] === `type.googleapis.com/envoy.admin.v3.${type}`);
  const listener = of('ListenersConfigDump').dynamic_listeners.find((l: any) => l.active_state).active_state.listener;
  const routeConfig = of('RoutesConfigDump').dynamic_route_configs[0].route_config;
  const clusters = of('ClustersConfigDump').dynamic_active_clusters.map((c: any) => c.cluster);
  for (const c of clusters) {
    delete c['@type'];
    if (c.type !== 'EDS') continue;
    delete c.eds_cluster_config;
    c.type = 'STATIC';
    c.load_assignment = { cluster_name: c.name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: upstreamPort } } } }] }] };
  }
  delete listener['@type'];
  delete routeConfig['@type'];
  const manager = listener.filter_chains[0].filters[0].typed_config;
  delete manager.rds;
  manager.route_config = routeConfig;
  const { stats_config, overload_manager } = of('BootstrapConfigDump').bootstrap;
  return { node: { id: 'bench-variants', cluster: GROUP }, stats_config, overload_manager, static_resources: { listeners: [listener], clusters } };
}

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed (set ENVOY_BIN to the binary, not a wrapper script)');
  const extra = args.file ? ((await import(path.resolve(args.file))).default as Record<string, Variant>) : {};
  const variants = { ...BUILT_IN, ...extra };
  const names = args.variants.split(',').map((v) => v.trim());
  if (args.file) names.push(...Object.keys(extra));
  for (const n of names) if (!variants[n]) throw new Error(`unknown variant ${n} (built in: ${Object.keys(BUILT_IN).join(', ')})`);
  const s = args.scenario as Scenario;
  const ws = workspace('portico-bench-variants-');
  try {
    const upstream = await startDirectUpstream(ws, envoyBin);
    // The served configuration's gRPC access log streams to this control plane in every variant.
    const cp = await startControlPlane(ws, { PORTICO_ACCESS_LOG: 'true' });
    const gateway = await startGatewayEnvoy(ws, envoyBin, { nodeId: 'bench-variants', group: GROUP, xds: `127.0.0.1:${cp.grpcPort}`, concurrency: 1 });
    const caller = { key: newApiKey(), token: await benchToken() };
    const servedPort = await freePort();
    await cp.apply(documentFor(s, { listenerPort: servedPort, upstreamPort: upstream.port, key: caller.key }));
    await waitFor(
      `Envoy to serve the ${s} configuration`,
      async () =>
        (await cp.settled('bench-variants')) && (await fetch(`http://127.0.0.1:${servedPort}/bench/item`, { headers: headerObject(headersFor(s, caller)) }).catch(() => undefined))?.status === 200
          ? true
          : undefined,
      120_000,
      250,
    );
    const base = JSON.stringify(await servedBootstrap(gateway.adminPort, upstream.port));
    await gateway.proc.stop();
    const results: Array<{ variant: string; instructionsPerRequest: number }> = [];
    for (const name of names) {
      const bootstrap = JSON.parse(base);
      const headers = headersFor(s, caller);
      variants[name]!(bootstrap, headers, caller);
      const [port, adminPort] = [await freePort(), await freePort()];
      bootstrap.static_resources.listeners[0].address.socket_address.port_value = port;
      bootstrap.admin = { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } };
      const file = path.join(ws.dir, `${name}.json`);
      writeFileSync(file, JSON.stringify(bootstrap));
      const out = path.join(ws.dir, `${name}.callgrind`);
      const envoy = ws.run('valgrind', ['--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${out}`, envoyBin, '-c', file, '--concurrency', '1', '--use-dynamic-base-id', '-l', 'error']);
      const url = `http://127.0.0.1:${port}/bench/item`;
      await waitFor(`${name}: Envoy ready`, async () => ((await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined))?.status === 200 ? true : undefined), 180_000, 250);
      await waitFor(`${name}: every request of the warm-up to pass`, () => (send(url, headers, 300, args.connections).ok ? true : undefined), 30_000, 1000);
      const counted = countRequests({ pid: envoy.child.pid!, dir: ws.dir, prefix: `${name}.callgrind.`, url, headers, n: args.requests, c: args.connections, what: name });
      if (args.keep) {
        mkdirSync(args.keep, { recursive: true });
        copyFileSync(counted.file, path.join(args.keep, `${s}.${name}.callgrind`));
        copyFileSync(file, path.join(args.keep, `${s}.${name}.json`));
      }
      await envoy.stop();
      results.push({ variant: name, instructionsPerRequest: Math.round(counted.ir / args.requests) });
      process.stderr.write(`${name}: ${results.at(-1)!.instructionsPerRequest} instructions per request\n`);
    }
    const baseIr = results.find((r) => r.variant === 'base')?.instructionsPerRequest;
    printJson({
      benchmark: 'gateway-variants',
      note: "The gateway Envoy's user-space instructions per request (callgrind, one worker) with the served configuration of the scenario as a static bootstrap, and with each variant of it.",
      settings: { scenario: s, requests: args.requests, connections: args.connections },
      results,
      ...(baseIr ? { differenceToBase: Object.fromEntries(results.filter((r) => r.variant !== 'base').map((r) => [r.variant, r.instructionsPerRequest - baseIr])) } : {}),
    });
  } finally {
    await ws.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
