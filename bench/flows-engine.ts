// Benchmark: the flow engine's own cost per request, I/O excluded. Runs seed 003's /api/home flow
// (three parallel calls, a transform, a respond) over in-memory services that answer at once, and
// the pieces it is made of (and the same flow with the designer's step detail on): JSONata evaluation (and the plain-path shortcut), a route-level
// transform, JSON → XML, and a code step in the QuickJS sandbox. Prints JSON.
// Usage: tsx bench/flows-engine.ts [--runs 20000] [--concurrency 32]
// For allocation figures run with NODE_OPTIONS=--max-semi-space-size=64 (fewer scavenges mid-batch).
import os from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { parse as parseYaml } from 'yaml';
import { runFlow, CodeSandbox, type CompiledFlow, type FlowIO, type FlowRequest } from '../src/flows/index.ts';
import { checkFlow, checkRouteTransform } from '../test/support/flows.ts';
import { compileExpression } from '../src/flows/expressions.ts';
import { jsonToXml, xmlToJson } from '../src/flows/xml.ts';
import { homeFlow, homeRequest, json, memoryIO, SEED_HOME_BODY, SEED_ORDERS, SEED_RECOMMENDATIONS, SEED_USER } from '../src/flows/fixtures.ts';
import { flags, printJson, round2 } from './harness.ts';

const args = flags({ runs: 20_000, concurrency: 32 });
const services = ['users', 'orders', 'products'];

let gcs = 0;
new PerformanceObserver((list) => (gcs += list.getEntries().length)).observe({ entryTypes: ['gc'] });

function ok<T>(r: { ok: true; flow: T } | { ok: false; errors: unknown }): T {
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.flow;
}

/** Microseconds per call of an async function, after a warm-up; sequential. */
async function perRun(fn: () => unknown, runs: number): Promise<number> {
  for (let i = 0; i < Math.min(2000, runs); i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await fn();
  return round2(((performance.now() - t0) * 1000) / runs);
}

/** Flow runs per second of CPU with `concurrency` in flight (what one runtime core can do). */
async function throughput(flow: CompiledFlow, req: FlowRequest, io: FlowIO, runs: number, concurrency: number): Promise<number> {
  const cpu0 = process.cpuUsage();
  let next = 0;
  const worker = async () => {
    while (next++ < runs) await runFlow(flow, req, io);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const c = process.cpuUsage(cpu0);
  return Math.round(runs / ((c.user + c.system) / 1e6));
}

/** Heap bytes allocated per call, over a batch that saw no garbage collection (or null if every batch did). */
async function allocationPerRun(fn: () => Promise<unknown>, batch = 200): Promise<number | null> {
  for (let attempt = 0; attempt < 20; attempt++) {
    await new Promise((r) => setImmediate(r));
    const g = gcs;
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < batch; i++) await fn();
    const after = process.memoryUsage().heapUsed;
    await new Promise((r) => setImmediate(r));
    if (gcs === g && after > before) return Math.round((after - before) / batch);
  }
  return null;
}

// The services answer at once with prepared bodies: what is left is the engine's own work.
const answers = { users: json(SEED_USER), orders: json(SEED_ORDERS), products: json(SEED_RECOMMENDATIONS) };
const io = memoryIO({ users: () => answers.users, orders: () => answers.orders, products: () => answers.products });
io.calls.length = 0;
const quietIO: FlowIO = { call: (c) => Promise.resolve(answers[c.service as keyof typeof answers]) };

const spec = homeFlow();
const t0 = performance.now();
const home = ok(checkFlow(spec, { services: new Set(services) }));
const compileMs = round2(performance.now() - t0);
const compileRuns = 500;
// Warm: a new snapshot with the same flow (its expressions are cached by source).
const tc = performance.now();
for (let i = 0; i < compileRuns; i++) ok(checkFlow(structuredClone(spec), { services: new Set(services) }));
const compileUs = round2(((performance.now() - tc) * 1000) / compileRuns);
// Changed: the respond body differs each time, so its expression is parsed anew.
const changed = Array.from({ length: compileRuns }, (_, i) => {
  const s = structuredClone(spec);
  const reply = s.steps[s.steps.length - 1]!.respond!;
  reply.body = reply.body!.replace('"recommendations": steps.recommendations.body', `"recommendations": steps.recommendations.body, "v": ${i}`);
  return s;
});
const tn = performance.now();
for (const s of changed) ok(checkFlow(s, { services: new Set(services) }));
const compileChangedUs = round2(((performance.now() - tn) * 1000) / compileRuns);

const req = homeRequest();
const check = await runFlow(home, req, quietIO);
if (JSON.stringify(JSON.parse(check.body)) !== JSON.stringify(SEED_HOME_BODY)) throw new Error(`unexpected body ${check.body}`);

const homeUs = await perRun(() => runFlow(home, req, quietIO), args.runs);
const homePerCpuSecond = await throughput(home, req, quietIO, args.runs, args.concurrency);
const homeAllocBytes = await allocationPerRun(() => runFlow(home, req, quietIO));
// The designer's "try it" detail (each step's input and output kept) beside the runtime's runs, which never ask for it.
const detailIO: FlowIO = { ...quietIO, detail: true };
const homeDetailPerCpuSecond = await throughput(home, req, detailIO, args.runs, args.concurrency);
const homeAgainPerCpuSecond = await throughput(home, req, quietIO, args.runs, args.concurrency);

// A flow of one call and a respond that only passes fields along (plain paths: no JSONata at all).
const passthrough = ok(
  checkFlow(parseYaml(`steps:\n  - name: user\n    call: { service: users, path: '/users/{request.identity.claims.sub}' }\n  - name: reply\n    respond: { body: steps.user.body }\n`), {}),
);
const oneCallUs = await perRun(() => runFlow(passthrough, req, quietIO), args.runs);

// The pieces.
const input = { request: { method: 'GET', identity: { claims: { sub: 'usr_8a3f' } } }, steps: { user: { status: 200, body: SEED_USER } } };
const plainPath = compileExpression('request.identity.claims.sub');
const viaJsonata = compileExpression('request.identity.claims.sub & ""');
const objectCtor = compileExpression('{"user": steps.user.body, "status": steps.user.status}');
const pathUs = await perRun(() => plainPath.evaluate(input), 200_000);
const jsonataUs = await perRun(() => viaJsonata.evaluate(input), 50_000);
const objectUs = await perRun(() => objectCtor.evaluate(input), 50_000);

const routeTransform = ok(checkRouteTransform('users', { response: { remove: ['internal_id', 'db_shard', 'feature_flags', 'created_by_admin'], rename: { email_address: 'email' } } }));
const usersReq: FlowRequest = { method: 'GET', path: '/api/users/usr_8a3f', headers: {} };
const routeTransformUs = await perRun(() => runFlow(routeTransform, usersReq, quietIO), args.runs);

const xml = jsonToXml(SEED_HOME_BODY, { root: 'home' });
const toXmlUs = await perRun(() => jsonToXml(SEED_HOME_BODY, { root: 'home' }), 20_000);
const fromXmlUs = await perRun(() => xmlToJson(xml, { arrays: ['recent_orders', 'recommendations'] }), 20_000);

const tcreate = performance.now();
const sandbox = await CodeSandbox.create();
const sandboxCreateMs = round2(performance.now() - tcreate);
const source = 'return { spent: input.orders.reduce((a, o) => a + o.total, 0) }';
const limits = { timeMs: 50, memoryBytes: 16 << 20, maxOutputBytes: 1 << 20 };
const tp = performance.now();
sandbox.run(source, JSON.stringify({ orders: SEED_ORDERS }), limits);
const codePrepareMs = round2(performance.now() - tp);
const codeUs = await perRun(() => sandbox.run(source, JSON.stringify({ orders: SEED_ORDERS }), limits), 20_000);
const tl = performance.now();
const loop = sandbox.run('while (true) {}', 'null', limits);
const loopStoppedMs = round2(performance.now() - tl);
if (loop.ok || loop.kind !== 'timeout') throw new Error('the loop was not stopped');

printJson({
  benchmark: 'flows-engine',
  node: process.version,
  loadAverage: os.loadavg().map(round2),
  runs: args.runs,
  homeFlow: {
    what: 'seed 003 /api/home: 3 parallel calls + pick transform + respond, in-memory services',
    usPerRun: homeUs,
    runsPerCpuSecond: homePerCpuSecond,
    concurrency: args.concurrency,
    heapBytesPerRun: homeAllocBytes,
    firstCompileMs: compileMs,
    compileUsSameFlow: compileUs,
    compileUsOneExpressionChanged: compileChangedUs,
    withTryItDetail: { runsPerCpuSecond: homeDetailPerCpuSecond, runsPerCpuSecondWithoutAgain: homeAgainPerCpuSecond },
  },
  oneCallPassthroughUsPerRun: oneCallUs,
  routeTransformUsPerRun: routeTransformUs,
  expressions: { plainPathUs: pathUs, sameViaJsonataUs: jsonataUs, objectConstructorUs: objectUs },
  xml: { homeBodyToXmlUs: toXmlUs, homeBodyFromXmlUs: fromXmlUs, bytes: xml.length },
  code: { sandboxCreateMs, firstRunOfASourceMs: codePrepareMs, warmRunUs: codeUs, infiniteLoopStoppedAfterMs: loopStoppedMs, limitMs: limits.timeMs },
});
