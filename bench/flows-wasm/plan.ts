// bench/flows.ts's Envoy-native contender: builds the Rust filter (proxy-wasm) in this folder, turns a
// flow into the plan it runs (what a translator would emit), and writes the static Envoy bootstrap.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlowSpec, FlowStepSpec } from '../../src/flows/index.ts';

const CRATE = fileURLToPath(new URL('./', import.meta.url));

/** cargo build of the filter for wasm32-wasip1 (rustup's target); the .wasm's path. */
export function buildWasmFilter(): string {
  const r = spawnSync('cargo', ['build', '--release', '--target', 'wasm32-wasip1', '--quiet'], { cwd: CRATE, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error || r.status !== 0) {
    throw new Error(`building bench/flows-wasm failed (Rust with \`rustup target add wasm32-wasip1\`?): ${r.error?.message ?? `exit ${r.status}`}`);
  }
  return path.join(CRATE, 'target/wasm32-wasip1/release/flows_wasm.wasm');
}

interface PlanCall {
  name: string;
  cluster: string;
  path: string;
  query: Array<[string, string]>;
  timeoutMs: number;
  fallback?: unknown;
  pick?: string[];
  remove?: string[];
  rename?: Record<string, string>;
}
export interface WasmPlan {
  calls: PlanCall[];
  reply: Array<{ key: string; step: string }>;
}

const TEMPLATE_VALUE = /\{([^}]*)\}/g;
const ALLOWED_VALUE = /^request\.(query|headers)\.[^.\s]+$/;

/**
 * The plan for a flow simple enough for the filter: GET calls (top level or in parallel) whose
 * templates read only the request's query and headers, transforms of one call's body by pick/remove/
 * rename of top-level fields, and a last respond step whose body is an object of step bodies. Throws
 * naming what does not qualify.
 */
export function wasmPlan(flow: FlowSpec, clusterOf: (service: string) => string): WasmPlan {
  const no = (why: string): never => {
    throw new Error(`flow does not qualify for the Wasm filter: ${why}`);
  };
  const calls = new Map<string, PlanCall>();
  const transforms = new Map<string, string>();
  const template = (where: string, t: string) => {
    for (const m of t.matchAll(TEMPLATE_VALUE)) if (!ALLOWED_VALUE.test(m[1]!.trim())) no(`${where} reads {${m[1]}}`);
    return t;
  };
  const addCall = (s: FlowStepSpec) => {
    const c = s.call!;
    if (s.when || c.forward || (c.method && c.method !== 'GET') || c.headers || c.body || c.xml || (c.parse && c.parse !== 'json' && c.parse !== 'auto')) no(`step ${s.name}: only plain GET calls`);
    if (c.okStatus && !(c.okStatus.length === 1 && c.okStatus[0] === '2xx')) no(`step ${s.name}: okStatus`);
    const timeoutMs = Math.min(c.timeoutMs ?? 5000, flow.timeoutMs ?? Number.POSITIVE_INFINITY);
    calls.set(s.name, {
      name: s.name,
      cluster: clusterOf(c.service),
      path: template(`step ${s.name}'s path`, c.path ?? '/'),
      query: Object.entries(c.query ?? {}).map(([k, v]) => [k, template(`step ${s.name}'s query ${k}`, v)]),
      timeoutMs,
      ...(s.onError === 'continue' ? { fallback: s.fallback ?? null } : {}),
    });
  };
  let reply: WasmPlan['reply'] | undefined;
  flow.steps.forEach((s, i) => {
    if (reply) no(`step ${s.name} comes after the respond step`);
    if (s.call) addCall(s);
    else if (s.parallel) {
      for (const p of s.parallel.steps)
        if (p.call) addCall(p);
        else no(`step ${p.name}: only calls run in parallel`);
    } else if (s.transform) {
      const t = s.transform;
      const from = /^\s*steps\.([A-Za-z_][\w-]*)\.body\s*$/.exec(t.from)?.[1];
      const call = from ? calls.get(from) : undefined;
      if (!call || t.map || call.pick || call.remove || call.rename) no(`step ${s.name}: a transform must reshape one call's body by pick/remove/rename`);
      const fields = [...(t.pick ?? []), ...(t.remove ?? []), ...Object.keys(t.rename ?? {})];
      if (fields.some((f) => f.includes('.'))) no(`step ${s.name}: only top-level fields`);
      Object.assign(call!, { ...(t.pick ? { pick: t.pick } : {}), ...(t.remove ? { remove: t.remove } : {}), ...(t.rename ? { rename: t.rename } : {}) });
      transforms.set(s.name, from!);
    } else if (s.respond && i === flow.steps.length - 1) {
      const r = s.respond;
      if (r.status !== undefined || r.headers || (r.format && r.format !== 'json') || !r.body) no('the respond step must be a JSON body, default status and headers');
      const inner = /^\s*\{([\s\S]*)\}\s*$/.exec(r.body!)?.[1] ?? no('the respond body must be an object');
      reply = inner.split(',').map((pair) => {
        const m = /^\s*"([^"\\]+)"\s*:\s*steps\.([A-Za-z_][\w-]*)\.body\s*$/.exec(pair) ?? no(`respond body entry ${pair.trim()} is not "key": steps.NAME.body`);
        const step = transforms.get(m[2]!) ?? m[2]!;
        if (!calls.has(step)) no(`respond body reads unknown step ${m[2]}`);
        // The filter keeps one shape per call: its raw body and a transform of it cannot both be sent.
        if (step === m[2] && [...transforms.values()].includes(step)) no(`step ${step} is used raw and transformed`);
        return { key: m[1]!, step };
      });
    } else no(`step ${s.name}: only calls, transforms and a last respond`);
  });
  if (!reply) no('no respond step');
  return { calls: [...calls.values()], reply: reply! };
}

/**
 * A static Envoy (one worker) with three listeners sharing one Wasm VM: the flow, the same filter
 * answering a fixed body with no call (the VM's own share), and a plain route to `proxyCluster` (this
 * Envoy's hop alone, against Portico's Envoy).
 */
export function writeWasmEnvoyConfig(
  file: string,
  o: { wasmFile: string; plan: WasmPlan; staticBody: unknown; clusters: Record<string, number>; proxyCluster: string; ports: { flow: number; static: number; proxy: number } },
): void {
  const vm = { vm_id: 'flows', runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: o.wasmFile } } };
  const wasm = (name: string, configuration: unknown) => ({
    name: 'envoy.filters.http.wasm',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: { name, vm_config: vm, configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: JSON.stringify(configuration) }, fail_open: false },
    },
  });
  const router = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
  const listener = (name: string, port: number, filters: unknown[]) => {
    const hcm = {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: name,
      route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: o.proxyCluster } }] }] },
      http_filters: [...filters, router],
    };
    const address = { socket_address: { address: '127.0.0.1', port_value: port } };
    return { name, address, filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }] };
  };
  const clusters = Object.entries(o.clusters).map(([name, port]) => ({
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    circuit_breakers: { thresholds: [{ max_connections: 100_000, max_pending_requests: 100_000, max_requests: 100_000 }] },
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  }));
  const config = {
    static_resources: {
      listeners: [listener('flow', o.ports.flow, [wasm('flow', o.plan)]), listener('static', o.ports.static, [wasm('static', { static: o.staticBody })]), listener('proxy', o.ports.proxy, [])],
      clusters,
    },
  };
  writeFileSync(file, JSON.stringify(config));
}
