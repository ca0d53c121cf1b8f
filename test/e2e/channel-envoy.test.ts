// A real Envoy on the mTLS channels: ADS, the ext_authz callout (an API-key route) and the access-log
// stream all run over TLS with the node certificate Envoy reads through its channel SDS file. Then
// both sides' certificates are replaced on disk under constant load: the control plane and Envoy
// take the new ones without a restart (new connections use them, proven by serial numbers on both
// ends) and not one request fails.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import { describe, it } from 'node:test';
import { calloutStats, createApiKey, startAuthzGateway } from '../support/authz-gateway.ts';
import { channelPki } from '../support/channel.ts';
import { waitFor } from '../support/components.ts';
import { describeFailures, startLoad } from '../support/load.ts';
import { parseScrape, sum } from './observability-promql.ts';

const NODE = 'edge-mtls-1';
const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;

/** The serial of the certificate a TLS server presents now (a fresh connection, with a node certificate: not an intruder). */
function servedSerial(port: number, ca: string, client: { certificate: string; privateKey: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, cert: client.certificate, key: client.privateKey, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.end();
    });
    s.on('error', reject);
  });
}

describe('a real Envoy over mTLS to the control plane', () => {
  it('gets config, answers an API-key route through the callout and streams access logs over mTLS; rotation under load fails nothing', { timeout: 300_000 }, async (t) => {
    const pki = await channelPki();
    t.after(() => pki.close());
    const node = await pki.node(NODE, ['edge']);
    const g = await startAuthzGateway(t, {
      nodeId: NODE,
      mutate: (doc) => {
        doc.plans.push({ name: 'unlimited' });
        doc.partners.push({ name: 'rotor', kind: 'service_account', subscriptions: [{ product: 'orders', plan: 'unlimited' }] });
      },
      // Connections age out every few seconds, so new TLS handshakes happen all through the test.
      channel: { env: { ...pki.env, PORTICO_ENVOY_CHANNEL_SDS_DIR: node.sdsDir, PORTICO_MAX_CONNECTION_AGE_MS: '3000' }, envoySdsDir: node.sdsDir },
    });
    if (!g) return;
    const { portico, envoy, api } = g;

    await t.test('ADS over mTLS: the fleet shows the node with the certificate it connected with', async () => {
      const n = portico.xds.fleet.node(NODE);
      assert.ok(n, 'connected');
      assert.equal(n.certificate?.serial, serialOf(node.cert.certificate));
      assert.deepEqual(n.certificate?.groups, ['edge']);
      assert.equal(portico.xds.fleet.status().channelSecurity, 'mtls');
    });

    await t.test('the callout and access-log clusters Envoy got present the node certificate from the SDS file', async () => {
      const clusters = ((await envoy.configDump('dynamic_active_clusters')).configs ?? []) as Array<{ cluster: Record<string, any> }>;
      for (const name of ['portico.callouts', 'portico.telemetry']) {
        const c = clusters.find((x) => x.cluster.name === name)?.cluster;
        assert.ok(c, `${name} present`);
        const tls = c.transport_socket?.typed_config?.common_tls_context;
        assert.equal(tls?.tls_certificate_sds_secret_configs?.[0]?.name, 'portico.node', name);
        assert.equal(tls?.tls_certificate_sds_secret_configs?.[0]?.sds_config?.path_config_source?.path, `${node.sdsDir}/portico-node-sds.yaml`, name);
      }
    });

    const key = await createApiKey(api, 'rotor', 'primary');
    await t.test('an API-key route is decided by the callout over mTLS, and its access log arrives over mTLS', async () => {
      const r = await g.call('/api/orders/o_1', { headers: { 'x-api-key': key } });
      assert.equal(r.status, 200, `${r.text} ${await calloutStats(envoy)}`);
      const denied = await g.call('/api/orders/o_1', { headers: { 'x-api-key': `ptk_zzzzzzzz_${'A'.repeat(43)}` } });
      assert.equal(denied.status, 401);
      await waitFor('access log counted', async () => {
        const m = parseScrape(await (await fetch(`${portico.adminUrl}/metrics`)).text());
        return sum(m, 'portico_http_requests_total', { product: 'orders', partner: 'rotor' }) >= 1 || undefined;
      });
      assert.equal(portico.xds.fleet.status().refused.length, 0, 'nothing of the real Envoy was refused');
    });

    await t.test('both certificates replaced on disk under load: picked up without a restart, zero failed requests', async () => {
      const load = startLoad({ targets: [{ name: 'orders', url: `${g.gw}/api/orders/o_1`, headers: { 'x-api-key': key }, expect: [200] }], concurrency: 4 });
      try {
        await load.waitForRequests(100, 60_000);
        load.mark('server certificate replaced');
        const server = await pki.rotateServer();
        await waitFor('control plane reloaded', () => portico.channels.tls?.current().serial === serialOf(server.certificate) || undefined, 20_000);
        assert.equal(await servedSerial(portico.grpcPort, pki.ca.certificate, node.cert), serialOf(server.certificate), 'xDS listener serves the new certificate');
        assert.equal(await servedSerial(portico.calloutPort, pki.ca.certificate, node.cert), serialOf(server.certificate), 'callout listener serves the new certificate');
        await load.waitForRequests(100, 60_000);

        load.mark('node certificate replaced');
        const next = await pki.rotateNode(node, ['edge']);
        const serial = serialOf(next.certificate);
        // Envoy re-reads the files; its next connections present the new certificate.
        await waitFor(
          'Envoy holds the new node certificate',
          async () => {
            const certs = (await (await fetch(`${envoy.adminUrl}/certs`)).json()) as { certificates: Array<{ cert_chain?: Array<{ serial_number: string }> }> };
            return certs.certificates.some((c) => c.cert_chain?.some((x) => x.serial_number.toUpperCase() === serial)) || undefined;
          },
          30_000,
          200,
        );
        portico.callouts.recycleConnections();
        await waitFor('xDS reconnected with the new node certificate', () => portico.xds.fleet.node(NODE)?.certificate?.serial === serial || undefined, 30_000, 100);
        await load.waitForRequests(200, 60_000);
      } finally {
        const report = await load.stop();
        assert.deepEqual(report.failures, [], describeFailures(report.failures, report.marks));
        assert.ok(report.requests >= 400, `load ran across both rotations (${report.requests} requests)`);
        t.diagnostic(`rotation under load: ${report.requests} requests in ${report.durationMs} ms, ${report.failures.length} failed`);
      }
      assert.equal(portico.xds.fleet.status().refused.length, 0, 'no connection of the rotating Envoy was refused');
    });
  });
});
