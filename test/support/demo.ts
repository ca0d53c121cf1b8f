// `portico demo` as a user runs it (a real process: control plane, demo upstreams, a real Envoy),
// moved to ports in the test's range and a data directory of the test's own.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { freePort, freePortBlock, requireComponent, serveListenEnv, startProcess, waitFor, type RunningProcess } from './components.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

export interface DemoRun {
  proc: RunningProcess;
  /** PORTICO_DEMO_PORT_BASE: the gateway's port; Envoy admin +1, users +2, orders +3, products +4, issuer +5. */
  portBase: number;
  adminPort: number;
  adminUrl: string;
  gateway: string;
  dataDir: string;
  /** The environment the demo ran with (ports and data directory). */
  env: NodeJS.ProcessEnv;
  /** What the demo printed until its banner was complete. */
  banner: string;
  credentials(): Record<string, string>;
  stop(): Promise<void>;
}

export interface DemoPortsInUse {
  portBase: number;
  adminPort: number;
  grpcPort: number;
  calloutPort: number;
  /** The control plane's other listeners (flow runtime, step listener, idempotency), the same for every start. */
  listenEnv: Record<string, string>;
}

export async function demoPorts(): Promise<DemoPortsInUse> {
  return { portBase: await freePortBlock(6), adminPort: await freePort(), grpcPort: await freePort(), calloutPort: await freePort(), listenEnv: await serveListenEnv() };
}

/** Starts the demo (with `args`, e.g. --reset) and waits until it printed its banner and Envoy serves. */
export async function startDemo(t: TestContext, dataDir: string, ports: DemoPortsInUse, args: string[] = []): Promise<DemoRun | undefined> {
  const envoyBin = requireComponent(t, 'envoy');
  if (!envoyBin) return undefined;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ENVOY_BIN: envoyBin,
    ...ports.listenEnv,
    PORTICO_DATA_DIR: dataDir,
    PORTICO_DEMO_PORT_BASE: String(ports.portBase),
    PORTICO_ADMIN_ADDR: `127.0.0.1:${ports.adminPort}`,
    PORTICO_GRPC_ADDR: `127.0.0.1:${ports.grpcPort}`,
    PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${ports.calloutPort}`,
    PORTICO_ADMIN_TOKEN: '',
  };
  delete env.PORTICO_ADMIN_TOKEN;
  const proc = startProcess(path.join(ROOT, 'bin/portico'), ['demo', ...args], { env, cwd: ROOT });
  const gateway = `http://127.0.0.1:${ports.portBase}`;
  try {
    const banner = await waitFor(
      'the demo banner',
      () => (proc.output().includes('Ctrl-C stops everything.') ? proc.output() : proc.child.exitCode !== null ? Promise.reject(new Error(`demo exited: ${proc.output()}`)) : undefined),
      180_000,
      200,
    );
    // Envoy has the listener once the example's health route answers.
    await waitFor('the gateway to answer', async () => ((await fetch(`${gateway}/api/health`).catch(() => undefined))?.status === 200 ? true : undefined), 120_000, 200);
    return {
      proc,
      portBase: ports.portBase,
      adminPort: ports.adminPort,
      adminUrl: `http://127.0.0.1:${ports.adminPort}`,
      gateway,
      dataDir,
      env,
      banner,
      credentials: () => {
        const out: Record<string, string> = {};
        for (const m of readFileSync(path.join(dataDir, 'demo-credentials.env'), 'utf8').matchAll(/^export ([A-Z_]+)='([^']*)'$/gm)) out[m[1]!] = m[2]!;
        return out;
      },
      stop: () => proc.stop('SIGINT'),
    };
  } catch (e) {
    await proc.stop('SIGINT');
    throw new Error(`${(e as Error).message}\n${proc.output().slice(-3000)}`);
  }
}
