// The seed-003 example (examples/gateway.yaml) as a live test gateway: echo upstreams on free
// ports, the document rewritten to them (and to a free loopback listener port), ready to apply.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { startEchoService } from '../../src/demo/upstreams.ts';
import { freePort } from './components.ts';

const EXAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/gateway.yaml');

export interface Upstream {
  name: string;
  port: number;
  close(): Promise<void>;
}

/** An echo service on a free loopback port; it answers {service, method, path, headers}. */
export async function echo(name: string): Promise<Upstream> {
  const s = await startEchoService(name, 0);
  return { name, ...s };
}

export interface Seed003 {
  /** The example as a plain object (the test's copy: change it freely, then YAML.stringify). */
  document: Record<string, any>;
  /** Upstreams by service name: users, orders, products. */
  upstreams: Record<string, Upstream>;
  /** The edge listener's port on 127.0.0.1. */
  listenerPort: number;
  /** Base URL of the gateway (the edge listener). */
  gatewayUrl: string;
  yaml(): string;
  close(): Promise<void>;
}

export interface Seed003Options {
  /**
   * Keep the example's own auth (JWT and API keys on catalog, orders and users; accounts public)
   * instead of making every product public. Default false.
   */
  keepAuth?: boolean;
  /** Where the example's JWT issuer fetches its keys (default: the example's own URI). */
  jwksUri?: string;
  /** Keep the example's rate limits (public plans). Default false: constant-load tests must not hit them. */
  keepLimits?: boolean;
  /**
   * State the callout modes on the edge group (authz exact, rateLimit combined) where it states none.
   * Default: with keepAuth or keepLimits (those tests were written for the callouts; the example
   * itself states no mode, so it runs native).
   */
  exactModes?: boolean;
}

/**
 * examples/gateway.yaml with every service's endpoints moved to an echo service of the same name,
 * the edge listener on a free 127.0.0.1 port, no public plans (`keepLimits` keeps them), and every product public (`auth.accept: [none]`):
 * these tests are about routing and config delivery, and ext_authz was still being finished by the
 * authz work when they were written. `keepAuth` gives the authenticated example (the authz tests).
 */
export async function seed003(opts: Seed003Options = {}): Promise<Seed003> {
  const document = YAML.parse(readFileSync(EXAMPLE, 'utf8')) as Record<string, any>;
  const upstreams: Record<string, Upstream> = {};
  for (const s of document.services as Array<{ name: string; endpoints: Array<{ host: string; port: number }> }>) {
    const u = await echo(s.name);
    upstreams[s.name] = u;
    s.endpoints = [{ host: '127.0.0.1', port: u.port }];
  }
  const listenerPort = await freePort();
  const edge = (document.gatewayGroups as Array<{ name: string; listeners: Array<Record<string, unknown>> }>).find((g) => g.name === 'edge')!;
  edge.listeners = [{ ...edge.listeners[0]!, port: listenerPort, address: '127.0.0.1' }];
  if (!opts.keepAuth) for (const p of document.products as Array<{ auth?: { accept: string[] } }>) p.auth = { accept: ['none'] };
  if (!opts.keepLimits) for (const p of document.products as Array<{ publicPlan?: string }>) delete p.publicPlan;
  if (opts.exactModes ?? (opts.keepAuth === true || opts.keepLimits === true)) {
    const g = edge as Record<string, any>;
    g.authz = { mode: 'exact', ...g.authz };
    g.rateLimit = { mode: 'combined', ...g.rateLimit };
  }
  if (opts.jwksUri) for (const j of document.jwtIssuers as Array<{ jwksUri?: string }>) j.jwksUri = opts.jwksUri;
  return {
    document,
    upstreams,
    listenerPort,
    gatewayUrl: `http://127.0.0.1:${listenerPort}`,
    yaml: () => YAML.stringify(document),
    close: async () => {
      await Promise.all(Object.values(upstreams).map((u) => u.close()));
    },
  };
}

export interface GatewayResponse {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON body, when there is one. */
  json?: any;
}

/** One request through the gateway (a fresh connection each time: no pool shared with the load). */
export async function call(url: string, init: RequestInit = {}): Promise<GatewayResponse> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000), headers: { connection: 'close', ...(init.headers as Record<string, string> | undefined) } });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}
