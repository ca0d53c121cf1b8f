// Observability through the whole pipeline with a real Envoy: two partners on two products send
// known traffic (allowed, 401/403, 429 from a tiny plan, upstream 500s, a 404); then the control
// plane's /metrics has the per product × partner series with exactly the counts the clients saw
// (from Envoy's access-log stream), Envoy's /stats/prometheus has them per product and route, every
// PromQL expression of the shipped dashboards uses only names and labels these live scrapes
// export, the JSON access-log lines carry partner and product, control-plane logs carry the request
// ids, and no API key or admin token appears in any log line.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '../support/components.ts';
import { startEnvoy, waitInSync } from '../support/envoy.ts';
import { ADMIN_TOKEN, startTestPortico } from '../support/portico.ts';
import { call, type GatewayResponse } from '../support/seed003.ts';
import { listenHttp, type LoopbackServer } from '../support/servers.ts';
import { checkExpression, dashboardQueries, parseScrape, sum, type Scrape } from './observability-promql.ts';

const GROUP = 'edge';
const NODE = 'edge-observability';
const DASHBOARDS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../deploy/grafana/dashboards');

/** A key in Portico's API key format, imported through the document (hashed on arrival). */
function newApiKey(): string {
  return `ptk_${randomBytes(4).toString('hex')}_${randomBytes(32).toString('base64url')}`;
}

/** How long billing's failing route takes upstream: its time must land in the upstream's histogram, not Envoy's. */
const SLOW_UPSTREAM_MS = 1_500;

/** An upstream that answers 500 on any path containing /fail (billing's after SLOW_UPSTREAM_MS) and echoes everything else. */
function startUpstream(): Promise<LoopbackServer> {
  return listenHttp((req, res) => {
    const failing = (req.url ?? '').includes('/fail');
    const body = JSON.stringify(failing ? { error: 'boom' } : { service: 'echo', path: req.url });
    const answer = () => res.writeHead(failing ? 500 : 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    if ((req.url ?? '').startsWith('/billing/fail')) setTimeout(answer, SLOW_UPSTREAM_MS);
    else answer();
  });
}

function model(o: { listenerPort: number; upstreamPort: number; acmeKey: string; globexKey: string }): Record<string, unknown> {
  const route = (name: string) => ({ name, match: { path: { type: 'prefix', value: `/${name}` } }, service: 'echo' });
  return {
    portico: 'v1',
    gatewayGroups: [
      {
        name: GROUP,
        listeners: [{ name: 'http', port: o.listenerPort, address: '127.0.0.1' }],
        // Generous timeouts: a slow machine must not turn a decision into a callout failure.
        authz: { mode: 'exact', failureMode: 'closed', timeoutMs: 5_000 },
        rateLimit: { mode: 'combined', failureMode: 'closed', timeoutMs: 5_000 },
      },
    ],
    services: [{ name: 'echo', endpoints: [{ host: '127.0.0.1', port: o.upstreamPort }] }],
    products: [
      { name: 'orders', gatewayGroups: [GROUP], basePath: '/orders', auth: { accept: ['api_key'] }, routes: [route('list'), route('fail')] },
      { name: 'billing', gatewayGroups: [GROUP], basePath: '/billing', auth: { accept: ['api_key'] }, routes: [route('read'), route('fail')] },
    ],
    plans: [
      { name: 'gold', description: 'no limits' },
      // Per hour: nothing refills while the test runs, whatever the machine's speed.
      { name: 'tiny', limits: [{ requests: 2, per: 'hour' }], countBy: { kind: 'partner' } },
    ],
    partners: [
      {
        name: 'acme',
        apiKeys: [{ name: 'main', key: o.acmeKey }],
        subscriptions: [
          { product: 'orders', plan: 'gold' },
          { product: 'billing', plan: 'gold' },
        ],
      },
      // Not subscribed to billing: its calls there are refused with 403.
      { name: 'globex', apiKeys: [{ name: 'main', key: o.globexKey }], subscriptions: [{ product: 'orders', plan: 'tiny' }] },
    ],
  };
}

/** What the test expects of one request, and what the client saw. */
interface Sent {
  path: string;
  product: string;
  partner: string;
  status: number;
  requestId: string;
}

const OUTCOME_OF_STATUS: Record<number, string> = { 200: 'ok', 401: 'authz_denied', 403: 'authz_denied', 404: 'no_route', 429: 'rate_limited', 500: 'upstream_error' };

/** Collects pino's JSON lines. */
function logSink(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  let partial = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts.filter(Boolean));
      cb();
    },
  });
  return { stream, lines };
}

describe('observability: metrics, access logs and dashboards through a real Envoy', () => {
  it('counts known traffic per product and partner in both scrapes, and the dashboards only use what is exported', async (t) => {
    const upstream = await startUpstream();
    const acmeKey = newApiKey();
    const globexKey = newApiKey();
    const wrongKey = newApiKey();
    const cpLog = logSink();
    // Debug: every decision and failed request is logged, so the no-credential check sees the most.
    const portico = await startTestPortico({ env: { PORTICO_LOG_LEVEL: 'debug' }, logTo: cpLog.stream });
    t.after(async () => {
      await portico.close();
      await upstream.close();
    });
    const api = portico.api;
    // Access-log lines are flushed to stdout every 10 s by default; the test reads them sooner.
    const envoy = await startEnvoy(t, { xdsAddresses: [`127.0.0.1:${portico.grpcPort}`], group: GROUP, nodeId: NODE, extraArgs: ['--file-flush-interval-msec', '200'] });
    if (!envoy) return;
    try {
      const listenerPort = await freePort();
      const gw = `http://127.0.0.1:${listenerPort}`;
      const applied = await api.post('/api/v1/config', model({ listenerPort, upstreamPort: upstream.port, acmeKey, globexKey }), { 'x-request-id': 'obs-admin-apply' });
      assert.equal(applied.status, 200, applied.text);
      await envoy.waitForListener('http', 60_000);
      await waitInSync(portico, GROUP, NODE);

      // ── known traffic ──────────────────────────────────────────────────────
      const sent: Sent[] = [];
      const send = async (p: string, key: string | undefined, product: string, partner: string, times: number): Promise<GatewayResponse[]> => {
        const out: GatewayResponse[] = [];
        for (let i = 0; i < times; i++) {
          const r = await call(`${gw}${p}`, key ? { headers: { 'x-api-key': key } } : {});
          const requestId = r.headers.get('x-request-id') ?? '';
          assert.ok(requestId, `${p}: Envoy returns the request id`);
          sent.push({ path: p, product, partner, status: r.status, requestId });
          out.push(r);
        }
        return out;
      };
      const statuses = (rs: GatewayResponse[]) => rs.map((r) => r.status);
      assert.deepEqual(statuses(await send('/orders/list/1', acmeKey, 'orders', 'acme', 5)), [200, 200, 200, 200, 200]);
      assert.deepEqual(statuses(await send('/orders/fail/1', acmeKey, 'orders', 'acme', 2)), [500, 500]);
      assert.deepEqual(statuses(await send('/billing/read/1', acmeKey, 'billing', 'acme', 4)), [200, 200, 200, 200]);
      assert.deepEqual(statuses(await send('/billing/fail/1', acmeKey, 'billing', 'acme', 1)), [500]);
      const limited = statuses(await send('/orders/list/2', globexKey, 'orders', 'globex', 6));
      assert.ok(limited.includes(200) && limited.includes(429) && limited.every((s) => s === 200 || s === 429), `the tiny plan allows some, then 429: ${limited}`);
      assert.deepEqual(statuses(await send('/billing/read/2', globexKey, 'billing', 'globex', 2)), [403, 403]);
      assert.deepEqual(statuses(await send('/orders/list/3', undefined, 'orders', 'none', 2)), [401, 401]);
      assert.deepEqual(statuses(await send('/billing/read/3', wrongKey, 'billing', 'none', 1)), [401]);
      assert.deepEqual(statuses(await send('/nowhere', undefined, 'none', 'none', 1)), [404]);

      /** Expected counts per product × partner × outcome, from what the clients saw. */
      const expected = new Map<string, number>();
      for (const s of sent) {
        const k = `${s.product}|${s.partner}|${OUTCOME_OF_STATUS[s.status]}`;
        expected.set(k, (expected.get(k) ?? 0) + 1);
      }

      // ── the control plane's scrape (fed by Envoy's access-log stream) ──────────
      const cpScrape = async (): Promise<Scrape> => parseScrape((await api.get('/metrics')).text);
      const cp = await waitFor(
        `the control plane to count all ${sent.length} requests from the access-log stream`,
        async () => {
          const s = await cpScrape();
          return sum(s, 'portico_http_requests_total') >= sent.length ? s : undefined;
        },
        30_000,
        250,
      );
      assert.equal(sum(cp, 'portico_http_requests_total'), sent.length, 'every request once');
      const actual = new Map<string, number>();
      for (const v of cp.values.filter((x) => x.name === 'portico_http_requests_total' && x.value > 0)) {
        assert.equal(v.labels.group, GROUP);
        const k = `${v.labels.product}|${v.labels.partner}|${v.labels.outcome}`;
        actual.set(k, (actual.get(k) ?? 0) + v.value);
      }
      assert.deepEqual(Object.fromEntries([...actual].sort()), Object.fromEntries([...expected].sort()), 'portico_http_requests_total by product|partner|outcome');
      // Status classes and the duration histogram per product × partner.
      assert.equal(sum(cp, 'portico_http_requests_total', { product: 'orders', partner: 'acme', code_class: '5xx' }), 2);
      assert.equal(sum(cp, 'portico_http_requests_total', { product: 'orders', partner: 'globex', code_class: '4xx' }), limited.filter((s) => s === 429).length);
      for (const [product, partner] of [
        ['orders', 'acme'],
        ['billing', 'acme'],
        ['orders', 'globex'],
        ['billing', 'globex'],
      ] as const) {
        const n = sent.filter((s) => s.product === product && s.partner === partner).length;
        assert.equal(sum(cp, 'portico_http_request_duration_seconds_count', { product, partner, group: GROUP }), n, `duration count ${product}/${partner}`);
        assert.equal(sum(cp, 'portico_http_request_duration_seconds_bucket', { product, partner, le: '+Inf' }), n);
      }
      // Envoy's own part and the upstream's, per product: every request has the former, only the
      // forwarded ones the latter; billing's slow failure is the upstream's time, not Envoy's.
      for (const product of ['orders', 'billing']) {
        const mine = sent.filter((s) => s.product === product);
        assert.equal(sum(cp, 'portico_gateway_latency_seconds_count', { product, group: GROUP }), mine.length, `gateway latency count ${product}`);
        const forwarded = mine.filter((s) => s.status === 200 || s.status === 500).length;
        assert.equal(sum(cp, 'portico_upstream_latency_seconds_count', { product, group: GROUP }), forwarded, `upstream latency count ${product}`);
      }
      const billing = sent.filter((s) => s.product === 'billing');
      assert.equal(sum(cp, 'portico_gateway_latency_seconds_bucket', { product: 'billing', le: '1' }), billing.length, "the slow upstream's time is not Envoy's");
      assert.equal(
        sum(cp, 'portico_upstream_latency_seconds_bucket', { product: 'billing', le: '1' }),
        billing.filter((s) => s.status === 200).length,
        `the failing route's ${SLOW_UPSTREAM_MS} ms are the upstream's`,
      );
      assert.ok(sum(cp, 'portico_upstream_latency_seconds_sum', { product: 'billing' }) >= SLOW_UPSTREAM_MS / 1000);
      assert.ok(sum(cp, 'portico_access_log_streams') >= 1, 'Envoy keeps an access-log stream open');
      assert.equal(sum(cp, 'portico_access_log_errors_total'), 0);
      // The callouts' own decisions, per product and partner.
      assert.equal(sum(cp, 'portico_authz_decisions_total', { product: 'orders', partner: 'acme', outcome: 'allow' }), 7);
      assert.equal(sum(cp, 'portico_authz_decisions_total', { product: 'billing', partner: 'globex', outcome: 'deny' }), 2);
      assert.equal(sum(cp, 'portico_authz_decisions_total', { product: 'orders', partner: 'none', outcome: 'deny' }), 2);
      assert.ok(sum(cp, 'portico_ratelimit_decisions_total', { product: 'orders', partner: 'globex' }) >= limited.length, 'the limiter counted globex on orders');
      // Control-plane health: admin API requests by route pattern, convergence change → ACK.
      assert.equal(sum(cp, 'portico_admin_requests_total', { method: 'POST', route: '/api/v1/config', status: '200' }), 1);
      assert.ok(sum(cp, 'portico_admin_request_duration_seconds_count', { method: 'GET', route: '/api/v1/fleet' }) >= 1);
      assert.ok(sum(cp, 'portico_xds_convergence_seconds_count', { group: GROUP, type: 'routes' }) >= 1, 'the applied model converged');
      assert.ok(sum(cp, 'portico_xds_connected_streams', { group: GROUP }) >= 1);

      // ── Envoy's scrape: per product and route ─────────────────────────────────────
      const envoyScrape = async (): Promise<Scrape> => {
        const res = await fetch(`${envoy.adminUrl}/stats/prometheus`);
        assert.equal(res.status, 200);
        return parseScrape(await res.text());
      };
      // Histograms reach the admin endpoint at the stats flush (5 s): wait for the route timings.
      const upstreamCalls = sent.filter((s) => s.status === 200 || s.status === 500).length;
      const ev = await waitFor(
        "Envoy's route histograms to be flushed",
        async () => {
          const s = await envoyScrape();
          return sum(s, 'envoy_vhost_route_upstream_rq_time_count') >= upstreamCalls ? s : undefined;
        },
        30_000,
        500,
      );
      const routeCount = (route: string, code: string) => sum(ev, 'envoy_vhost_route_upstream_rq', { envoy_route: route, envoy_response_code: code });
      const count = (p: string, status: number) => sent.filter((s) => s.path.startsWith(p) && s.status === status).length;
      assert.equal(routeCount('orders/list', '200'), count('/orders/list', 200));
      assert.equal(routeCount('orders/fail', '500'), 2);
      assert.equal(routeCount('billing/read', '200'), 4);
      assert.equal(routeCount('billing/fail', '500'), 1);
      assert.equal(sum(ev, 'envoy_vhost_route_upstream_rq_xx', { portico_product: 'orders', envoy_response_code_class: '5' }), 2, 'per product from the portico_product tag');
      assert.equal(sum(ev, 'envoy_vhost_route_upstream_rq_xx', { portico_product: 'billing', envoy_response_code_class: '2' }), 4);
      assert.equal(sum(ev, 'envoy_vhost_route_upstream_rq_time_count', { portico_product: 'orders' }), count('/orders/list', 200) + 2);
      // Everything the listener answered, by status class.
      for (const cls of ['2', '4', '5']) {
        assert.equal(
          sum(ev, 'envoy_http_downstream_rq_xx', { envoy_http_conn_manager_prefix: GROUP, envoy_response_code_class: cls }),
          sent.filter((s) => String(s.status)[0] === cls).length,
          `downstream ${cls}xx`,
        );
      }

      // ── dashboards: every expression only uses exported names and labels ──────────
      const files = readdirSync(DASHBOARDS)
        .filter((f) => f.endsWith('.json'))
        .sort();
      assert.ok(files.length >= 4, `dashboards in ${DASHBOARDS}: ${files.join(', ')}`);
      const declared = (name: string) => (portico.registry.getSingleMetric(name) as unknown as { labelNames?: string[] } | undefined)?.labelNames;
      const finalCp = await cpScrape();
      const problems: string[] = [];
      let checked = 0;
      for (const f of files) {
        const dashboard = JSON.parse(readFileSync(path.join(DASHBOARDS, f), 'utf8')) as Record<string, any>;
        const queries = dashboardQueries(dashboard);
        assert.ok(queries.length > 0, `${f} has queries`);
        for (const q of queries) {
          checked++;
          for (const p of checkExpression(q.expr, [finalCp, ev], declared)) problems.push(`${f} ${q.where}: ${p} in ${q.expr}`);
        }
      }
      assert.deepEqual(problems, [], `dashboard queries against the live scrapes (${checked} checked)`);

      // ── access log lines (Envoy's stdout) ────────────────────────────────────
      const accessLines = () =>
        envoy
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .filter((l) => l.listener === 'http');
      const byId = await waitFor(
        'an access-log line for every request',
        () => {
          const m = new Map(accessLines().map((l) => [l.request_id, l]));
          return sent.every((s) => m.has(s.requestId)) ? m : undefined;
        },
        30_000,
        200,
      );
      for (const s of sent) {
        const l = byId.get(s.requestId);
        assert.ok(l, `an access-log line for ${s.path} (${s.requestId})`);
        assert.equal(l.status, s.status, s.path);
        assert.equal(l.product, s.product === 'none' ? null : s.product, `product of ${s.path}`);
        assert.equal(l.partner, s.partner === 'none' ? null : s.partner, `partner of ${s.path} (${s.status})`);
        assert.equal(l.gateway_group, GROUP);
        for (const k of ['method', 'path', 'duration_ms', 'bytes_sent', 'route_name', 'response_flags', 'response_code_details']) assert.ok(k in l, `${k} in ${JSON.stringify(l)}`);
        if (s.status === 200 || s.status === 500) assert.match(String(l.upstream_host), /^127\.0\.0\.1:\d+$/, 'upstream host');
        if (s.status === 200 && s.partner === 'acme') assert.equal(l.plan, 'gold');
        if (s.status === 200) assert.equal(l.credential, 'api_key');
        if (s.status === 429) assert.equal(l.response_code_details, 'ext_authz_denied');
      }

      // ── control-plane logs: request ids, no credentials ─────────────────────────
      const cpLines = cpLog.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(
        cpLines.some((l) => l.reqId === 'obs-admin-apply' && l.msg === 'admin request'),
        'the admin API logs the caller-given x-request-id',
      );
      const denied = sent.find((s) => s.status === 403)!;
      assert.ok(
        cpLines.some((l) => l.component === 'authz' && l.requestId === denied.requestId && l.msg === 'authz: decision'),
        "the callout's decision log carries Envoy's request id",
      );
      const failed = sent.find((s) => s.status === 500)!;
      await waitFor('the failed request in the control-plane log', () => (cpLog.lines.some((l) => l.includes(failed.requestId) && l.includes('request failed')) ? true : undefined), 10_000);
      const secrets = [acmeKey, globexKey, wrongKey, ADMIN_TOKEN];
      const leaks = (text: string) => secrets.filter((s) => text.includes(s)).map((s) => `${s.slice(0, 8)}…`);
      assert.deepEqual(leaks(envoy.output()), [], 'no credential in Envoy output');
      assert.deepEqual(leaks(cpLog.lines.join('\n')), [], 'no credential in control-plane logs');
      assert.ok(cpLog.lines.length > 20, 'the control plane logged');
    } catch (e) {
      t.diagnostic(envoy.output().slice(-4000));
      throw e;
    }
  });
});
