// The Check service answering a real Envoy 1.40 ext_authz filter (static bootstrap, no translator),
// over both transports: identity headers set and spoofed copies stripped upstream, the API key
// header and query parameter dropped, dynamic metadata visible to Envoy, denials with the gateway's
// JSON body and challenge, and client certificates Envoy verified mapped to partners. The
// translator-driven tests through xDS come with the next part of issue 4.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { mintApiKey, modelOf, testHasher } from '../support/authz-fixtures.ts';
import { AuthzService, registerAuthzService, registerAuthzUnary } from '../../src/authz/service.ts';
import { UnaryGrpcServer } from '../../src/grpc/unary-server.ts';
import { selfSigned, signedBy, type TestCertificate } from '../support/certs.ts';
import { freePort, requireComponent, startProcess, waitFor, type RunningProcess } from '../support/components.ts';

const EXT_AUTHZ = 'envoy.filters.http.ext_authz';

function cluster(name: string, port: number, http2: boolean): Record<string, unknown> {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    ...(http2
      ? {
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        }
      : {}),
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  };
}

function route(prefix: string, ctx: Record<string, string>): Record<string, unknown> {
  return {
    match: { prefix },
    route: { cluster: 'echo' },
    // What Envoy holds after the Check: the upstream sees it, so the test can.
    request_headers_to_add: ['partner', 'plan', 'credential'].map((k) => ({
      header: { key: `x-test-meta-${k}`, value: `%DYNAMIC_METADATA(${EXT_AUTHZ}:${k})%` },
      append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
    })),
    typed_per_filter_config: {
      [EXT_AUTHZ]: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute', check_settings: { context_extensions: ctx } },
    },
  };
}

function mtlsListener(name: string, port: number, authzCluster: string, server: TestCertificate, clientCa: string): Record<string, unknown> {
  const l = listener(name, port, authzCluster, [route('/', { product: 'ledger', route: 'post', accept: 'mtls' })]);
  (l.filter_chains as Array<Record<string, unknown>>)[0]!.transport_socket = {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      require_client_certificate: true,
      common_tls_context: {
        tls_certificates: [{ certificate_chain: { inline_string: server.certificate }, private_key: { inline_string: server.privateKey } }],
        validation_context: { trusted_ca: { inline_string: clientCa } },
      },
    },
  };
  return l;
}

function listener(name: string, port: number, authzCluster: string, routes?: Array<Record<string, unknown>>): Record<string, unknown> {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: name,
              generate_request_id: true,
              route_config: {
                name: 'routes',
                virtual_hosts: [
                  {
                    name: 'all',
                    domains: ['*'],
                    routes: routes ?? [route('/billing', { product: 'billing', route: 'read', accept: 'api_key' }), route('/', { product: 'orders', route: 'list', accept: 'api_key,jwt' })],
                  },
                ],
              },
              http_filters: [
                {
                  name: EXT_AUTHZ,
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
                    grpc_service: { envoy_grpc: { cluster_name: authzCluster }, timeout: '2s' },
                    transport_api_version: 'V3',
                    failure_mode_allow: false,
                    status_on_error: { code: 'ServiceUnavailable' },
                    include_peer_certificate: true,
                  },
                },
                { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
              ],
            },
          },
        ],
      },
    ],
  };
}

test('a real Envoy ext_authz filter enforces the Check answers (grpc-js and lean HTTP/2 transports, mTLS)', async (t) => {
  const envoyBin = requireComponent(t, 'envoy');
  if (!envoyBin) return;

  const hasher = testHasher();
  const key = mintApiKey(hasher, 'acme', 'primary');
  const serverCa = await selfSigned('Portico Test Server CA');
  const serverCert = await signedBy(serverCa, 'localhost', { san: 'DNS:localhost,IP:127.0.0.1' });
  const clientCa = await selfSigned('Portico Test Client CA');
  const spiffeClient = await signedBy(clientCa, 'ledger-writer', { client: true, san: 'URI:spiffe://example.org/ns/prod/sa/ledger,DNS:ledger.internal' });
  const subjectClient = await signedBy(clientCa, 'billing-batch', { client: true, san: 'DNS:batch.internal' });
  const strangerClient = await signedBy(clientCa, 'stranger', { client: true, san: 'DNS:stranger.internal' });
  const service = new AuthzService({ hasher, registry: new Registry() });
  service.update(
    modelOf({
      products: [
        { name: 'orders', gatewayGroups: ['edge'] },
        { name: 'billing', gatewayGroups: ['edge'], auth: { accept: ['api_key'] }, apiKey: { queryParameter: 'api_key' } },
        { name: 'ledger', gatewayGroups: ['edge'], auth: { accept: ['mtls'] } },
      ],
      routes: [
        { product: 'orders', name: 'list', match: { path: { type: 'prefix', value: '/' } }, service: 'svc' },
        { product: 'billing', name: 'read', match: { path: { type: 'prefix', value: '/billing' } }, service: 'svc' },
        { product: 'ledger', name: 'post', match: { path: { type: 'prefix', value: '/' } }, service: 'svc' },
      ],
      partners: [{ name: 'acme' }, { name: 'globex' }],
      plans: [{ name: 'gold' }],
      subscriptions: [
        { partner: 'acme', product: 'orders', plan: 'gold' },
        { partner: 'acme', product: 'billing', plan: 'gold' },
        { partner: 'acme', product: 'ledger', plan: 'gold' },
        { partner: 'globex', product: 'ledger', plan: 'gold' },
      ],
      apiKeys: [key.resource],
      mtlsIdentities: [
        { partner: 'acme', name: 'ledger-writer', match: { type: 'spiffe_id', value: 'spiffe://example.org/ns/prod/sa/ledger' } },
        { partner: 'globex', name: 'batch', match: { type: 'subject', value: 'CN=billing-batch' } },
      ],
      jwtIssuers: [{ name: 'idp', issuer: 'https://idp.example/', audiences: ['x'], jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] }, forwardClaims: { sub: 'X-User-Id' } }],
    }),
  );

  // Upstream: echoes what it received.
  const echo: Server = createServer((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url, headers: req.headers })));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const grpcServer = new grpc.Server();
  registerAuthzService(grpcServer, service);
  const grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const lean = new UnaryGrpcServer();
  registerAuthzUnary(lean, service);
  const leanPort = await lean.listen('127.0.0.1', 0);

  const [adminPort, viaGrpcJs, viaLean, viaMtls] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'portico-authz-envoy-'));
  const bootstrap = path.join(tmp, 'envoy.json');
  writeFileSync(
    bootstrap,
    JSON.stringify({
      admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
      static_resources: {
        listeners: [
          listener('via-grpc-js', viaGrpcJs, 'authz-grpc-js'),
          listener('via-lean', viaLean, 'authz-lean'),
          mtlsListener('via-mtls', viaMtls, 'authz-lean', serverCert, clientCa.certificate),
        ],
        clusters: [cluster('echo', (echo.address() as AddressInfo).port, false), cluster('authz-grpc-js', grpcPort, true), cluster('authz-lean', leanPort, true)],
      },
    }),
  );
  let envoy: RunningProcess | undefined;
  try {
    envoy = startProcess(envoyBin, ['-c', bootstrap, '--use-dynamic-base-id', '-l', 'warning']);
    await waitFor('envoy to listen', async () => {
      if (envoy!.child.exitCode !== null) throw new Error(`envoy exited: ${envoy!.output()}`);
      const r = await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined);
      return r?.status === 200 ? true : undefined;
    });

    for (const [name, port] of [
      ['grpc-js', viaGrpcJs],
      ['lean HTTP/2', viaLean],
    ] as const) {
      const base = `http://127.0.0.1:${port}`;
      const ok = await fetch(`${base}/orders/1`, { headers: { 'x-api-key': key.secret, 'x-portico-partner': 'evil', 'x-portico-plan': 'platinum', 'x-user-id': 'admin' } });
      assert.equal(ok.status, 200, `${name}: ${await ok.clone().text()}`);
      const seen = (await ok.json()) as { url: string; headers: Record<string, string> };
      assert.equal(seen.headers['x-portico-partner'], 'acme', name);
      assert.equal(seen.headers['x-portico-plan'], 'gold', name);
      assert.equal(seen.headers['x-portico-product'], 'orders', name);
      assert.equal(seen.headers['x-user-id'], undefined, `${name}: a spoofed claim header is stripped`);
      assert.equal(seen.headers['x-api-key'], undefined, `${name}: the API key does not reach the upstream`);
      assert.ok(seen.headers['x-request-id'], `${name}: the request id is kept`);
      assert.equal(seen.headers['x-test-meta-partner'], 'acme', `${name}: dynamic metadata reaches Envoy`);
      assert.equal(seen.headers['x-test-meta-credential'], 'api_key', name);

      const q = await fetch(`${base}/billing/x?a=1&api_key=${key.secret}&b=2`);
      assert.equal(q.status, 200, name);
      assert.equal(((await q.json()) as { url: string }).url, '/billing/x?a=1&b=2', `${name}: the API key query parameter is removed`);

      const bad = await fetch(`${base}/orders/1`, { headers: { 'x-api-key': `ptk_abcdefgh_${'C'.repeat(43)}` } });
      assert.equal(bad.status, 401, name);
      assert.equal(bad.headers.get('content-type'), 'application/json', name);
      assert.match(bad.headers.get('www-authenticate') ?? '', /^ApiKey realm="portico", header="x-api-key", Bearer realm="portico"$/, name);
      assert.deepEqual(await bad.json(), { error: 'invalid_api_key', message: 'The API key is not recognised.' }, name);

      const none = await fetch(`${base}/orders/1`);
      assert.equal(none.status, 401, name);
      assert.equal(((await none.json()) as { error: string }).error, 'missing_credentials', name);
    }

    // mTLS: Envoy verifies the chain and forwards the certificate (include_peer_certificate).
    const viaCert = (client: TestCertificate) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: viaMtls, path: '/entries', servername: 'localhost', ca: serverCa.certificate, cert: client.certificate, key: client.privateKey, agent: false },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const bySpiffe = await viaCert(spiffeClient);
    assert.equal(bySpiffe.status, 200, bySpiffe.body);
    assert.equal((JSON.parse(bySpiffe.body) as { headers: Record<string, string> }).headers['x-portico-partner'], 'acme');
    const bySubject = await viaCert(subjectClient);
    assert.equal(bySubject.status, 200, bySubject.body);
    assert.equal((JSON.parse(bySubject.body) as { headers: Record<string, string> }).headers['x-test-meta-credential'], 'mtls');
    assert.equal((JSON.parse(bySubject.body) as { headers: Record<string, string> }).headers['x-portico-partner'], 'globex');
    const stranger = await viaCert(strangerClient);
    assert.equal(stranger.status, 401);
    assert.equal((JSON.parse(stranger.body) as { error: string }).error, 'unknown_certificate');
  } catch (e) {
    if (envoy) t.diagnostic(envoy.output().slice(-4000));
    throw e;
  } finally {
    await envoy?.stop();
    grpcServer.forceShutdown();
    await lean.close(100);
    echo.close();
    service.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});
