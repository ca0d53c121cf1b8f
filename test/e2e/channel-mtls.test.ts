// The control plane's gRPC channels under mTLS, probed with grpc-js clients speaking ADS and the
// access-log service as an attacker on the network would: without a certificate, with one from
// another CA, with one naming no gateway group, or with a node certificate of another group. Each
// gets a gRPC status and nothing else: no DiscoveryResponse, no Secret. A node of the right group
// gets its own group's resources and secrets only. Refusals show in fleet status and metrics.
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import YAML from 'yaml';
import { TYPE_URLS, type JsonObject } from '../../src/proto/index.ts';
import { typeSnapshot } from '../../src/xds/cache.ts';
import { DISCOVERY_SERVICES, discoveryServiceDefinition, unpackAny, unpackDeltaResource } from '../../src/xds/services.ts';
import type { DeltaResponse, SotwResponse } from '../../src/xds/stream.ts';
import { createCa } from '../../src/grpc/certs.ts';
import { channelPki, clientCredentials, plainClientCertificate, type ChannelPki } from '../support/channel.ts';
import { waitFor } from '../support/components.ts';
import { startTestPortico, type TestPortico } from '../support/portico.ts';
import { selfSigned, signedBy } from '../support/certs.ts';
import { parseScrape, sum } from './observability-promql.ts';

const ADS = DISCOVERY_SERVICES.ads.service;

interface Probe {
  received: unknown[];
  status: Promise<grpc.StatusObject>;
  close(): void;
}

/**
 * Opens an ADS stream (SotW or Delta) as `node`, asks for listeners and both groups' secrets, and ACKs
 * every response as Envoy does: the server sends a type's next response only once the previous one
 * is answered, so a probe that never ACKed would keep the first (possibly empty) answer forever.
 */
function adsProbe(addr: string, creds: grpc.ChannelCredentials, node: { id: string; cluster: string }, delta = false): Probe {
  const method = delta ? 'DeltaAggregatedResources' : 'StreamAggregatedResources';
  const def = discoveryServiceDefinition(ADS)[method]!;
  const client = new grpc.Client(addr, creds);
  const call = client.makeBidiStreamRequest(def.path, def.requestSerialize as (r: JsonObject) => Buffer, def.responseDeserialize as (b: Buffer) => unknown);
  const received: unknown[] = [];
  const secrets = ['tls/edge-server', 'tls/internal-server'];
  const names: Record<string, string[]> = { [TYPE_URLS.secret]: secrets, [TYPE_URLS.listener]: [] };
  let closed = false;
  call.on('data', (r: SotwResponse & DeltaResponse) => {
    received.push(r);
    if (closed) return;
    if (delta) call.write({ type_url: r.type_url, response_nonce: r.nonce });
    else call.write({ version_info: r.version_info, type_url: r.type_url, response_nonce: r.nonce, resource_names: names[r.type_url] ?? [] });
  });
  call.on('error', () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  if (delta) {
    call.write({ node, type_url: TYPE_URLS.secret, resource_names_subscribe: secrets });
    call.write({ type_url: TYPE_URLS.listener, resource_names_subscribe: ['*'] });
  } else {
    call.write({ node, type_url: TYPE_URLS.secret, resource_names: secrets });
    call.write({ node, type_url: TYPE_URLS.listener, resource_names: [] });
  }
  return {
    received,
    status,
    close: () => {
      closed = true;
      call.cancel();
      client.close();
    },
  };
}

/** Opens an access-log stream as `node` and sends one (empty) message naming it. */
function accessLogProbe(addr: string, creds: grpc.ChannelCredentials, node: { id: string; cluster: string }): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(addr, creds);
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs',
      (b: Buffer) => b,
      (b: Buffer) => b,
      (e) => {
        client.close();
        resolve(e);
      },
    );
    // StreamAccessLogsMessage{identifier{node{id, cluster}, log_name}}: encoded by hand (a few bytes).
    const str = (field: number, s: string) => Buffer.concat([Buffer.from([(field << 3) | 2, Buffer.byteLength(s)]), Buffer.from(s)]);
    const nodeMsg = Buffer.concat([str(1, node.id), str(2, node.cluster)]);
    const identifier = Buffer.concat([Buffer.from([(1 << 3) | 2, nodeMsg.length]), nodeMsg, str(2, 'portico')]);
    call.write(Buffer.concat([Buffer.from([(1 << 3) | 2, identifier.length]), identifier]));
    call.end();
  });
}

/** The `typeUrl` resources received, over every response (SotW or Delta), as proto3 JSON. */
function resources(r: unknown[], typeUrl: string): JsonObject[] {
  const out: JsonObject[] = [];
  for (const m of r as Array<SotwResponse & DeltaResponse>) {
    if (m.type_url !== typeUrl) continue;
    for (const b of m.resources) out.push('system_version_info' in m ? unpackDeltaResource(b).resource : unpackAny(b));
  }
  return out;
}

const secretNames = (r: unknown[]) => [...new Set(resources(r, TYPE_URLS.secret).map((s) => String(s.name)))].sort();

/** Listeners as name:port (both groups name theirs 'https'; the edge one listens on 18443). */
function listenerPorts(r: unknown[]): string[] {
  const port = (l: JsonObject) => (l.address as { socket_address?: { port_value?: number } } | undefined)?.socket_address?.port_value;
  return [...new Set(resources(r, TYPE_URLS.listener).map((l) => `${l.name}:${port(l)}`))].sort();
}

describe('mTLS on the control-plane channels', { timeout: 120_000 }, () => {
  let pki: ChannelPki;
  let portico: TestPortico;
  let addr: string;

  before(async () => {
    pki = await channelPki();
    portico = await startTestPortico({ env: pki.env });
    addr = `127.0.0.1:${portico.grpcPort}`;
    // Two groups, each with an HTTPS listener and so a TLS secret (certificate and private key) of its own.
    const certCa = await selfSigned('Listener CA');
    const edgeCert = await signedBy(certCa, 'edge.example.com');
    const internalCert = await signedBy(certCa, 'internal.example.com');
    const doc = {
      portico: 'v1',
      gatewayGroups: [
        { name: 'edge', listeners: [{ name: 'https', port: 18443, address: '127.0.0.1', protocol: 'https', tls: { certificate: 'edge-server' } }] },
        { name: 'internal', listeners: [{ name: 'https', port: 18444, address: '127.0.0.1', protocol: 'https', tls: { certificate: 'internal-server' } }] },
      ],
      certificates: [
        { name: 'edge-server', certificate: edgeCert.certificate, privateKey: edgeCert.privateKey },
        { name: 'internal-server', certificate: internalCert.certificate, privateKey: internalCert.privateKey },
      ],
    };
    const r = await portico.api.post('/api/v1/config', YAML.stringify(doc), { 'content-type': 'application/yaml' });
    assert.equal(r.status, 200, r.text);
    // Handed to the cache is not yet published (the cache debounces): wait until both groups' secrets are served.
    const served = (group: string, secret: string) => typeSnapshot(portico.xds.cache.getSnapshot(group), TYPE_URLS.secret).resources.has(secret);
    await waitFor('the config published', () => (served('edge', 'tls/edge-server') && served('internal', 'tls/internal-server')) || undefined);
  });

  after(async () => {
    await portico?.close();
    pki?.close();
  });

  it('serves TLS with the control plane certificate (it carries the control-plane identity Envoys check)', async () => {
    const serial = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: portico.grpcPort, ca: pki.ca.certificate, ALPNProtocols: ['h2'], servername: 'localhost' }, () => {
        resolve(s.getPeerCertificate().serialNumber);
        s.end();
      });
      s.on('error', reject);
    });
    assert.equal(serial, new (await import('node:crypto')).X509Certificate(pki.server.certificate).serialNumber);
  });

  it('a node of the group gets its listeners and its own secret, never the other group’s', async () => {
    const edge = await pki.node('edge-1', ['edge']);
    for (const delta of [false, true]) {
      const p = adsProbe(addr, clientCredentials(pki.ca, edge.cert), { id: 'edge-1', cluster: 'edge' }, delta);
      try {
        const how = delta ? 'delta' : 'sotw';
        await waitFor(`${how}: a Secret and a Listener`, () => (secretNames(p.received).length > 0 && listenerPorts(p.received).length > 0) || undefined);
        assert.deepEqual(secretNames(p.received), ['tls/edge-server'], `${how}: only the edge group's secret`);
        assert.deepEqual(listenerPorts(p.received), ['https:18443'], `${how}: only the edge group's listeners`);
      } finally {
        p.close();
      }
    }
    const fleet = portico.xds.fleet.status();
    assert.equal(fleet.channelSecurity, 'mtls');
  });

  it('attackers get a gRPC status and nothing else: no resource, no secret', async () => {
    const otherCa = await createCa({ commonName: 'Someone else', days: 30 });
    const foreign = await pki.node('foreign', ['edge'], { ca: otherCa });
    const internal = await pki.node('internal-1', ['internal']);
    const plain = await plainClientCertificate(pki.ca);
    const before = portico.xds.fleet.status().refused.length;
    const cases: Array<[string, grpc.ChannelCredentials, grpc.status, RegExp]> = [
      ['no client certificate', clientCredentials(pki.ca), grpc.status.UNAUTHENTICATED, /client certificate issued by the control plane's CA is required/],
      ['a certificate from another CA', clientCredentials(pki.ca, foreign.cert), grpc.status.UNAUTHENTICATED, /client certificate issued by the control plane's CA is required/],
      ['a certificate naming no gateway group', clientCredentials(pki.ca, plain), grpc.status.PERMISSION_DENIED, /names no gateway group/],
      ["another group's node certificate", clientCredentials(pki.ca, internal.cert), grpc.status.PERMISSION_DENIED, /allows gateway group\(s\) 'internal', not 'edge'/],
    ];
    for (const [what, creds, code, message] of cases) {
      for (const delta of [false, true]) {
        const p = adsProbe(addr, creds, { id: `attacker-${delta ? 'delta' : 'sotw'}`, cluster: 'edge' }, delta);
        try {
          const status = await p.status;
          assert.equal(status.code, code, `${what}: ${status.details}`);
          assert.match(status.details, message, what);
          assert.equal(p.received.length, 0, `${what}: nothing was sent`);
        } finally {
          p.close();
        }
      }
      const als = await accessLogProbe(addr, creds, { id: 'attacker-als', cluster: 'edge' });
      assert.equal(als?.code, code, `${what} (access log): ${als?.details}`);
    }
    // Fleet status lists every refusal: who, why, when.
    const fleet = portico.xds.fleet.status();
    const refused = fleet.refused.slice(0, fleet.refused.length - before);
    assert.equal(refused.length, cases.length * 3);
    const cross = refused.find((r) => r.reason === 'group_not_allowed' && r.service === 'ads');
    assert.ok(cross, JSON.stringify(refused));
    assert.equal(cross.group, 'edge');
    assert.match(cross.nodeId ?? '', /^attacker-/);
    assert.deepEqual(cross.certificate?.groups, ['internal']);
    assert.ok(Date.parse(cross.at) > Date.now() - 120_000);
    assert.ok(refused.some((r) => r.service === 'access_log' && r.reason === 'no_client_certificate'));
    assert.ok(!fleet.nodes.some((n) => n.nodeId.startsWith('attacker-')), 'a refused caller never appears as a connected node');
    // And in metrics.
    const text = await (await fetch(`${portico.adminUrl}/metrics`)).text();
    const samples = parseScrape(text);
    assert.equal(sum(samples, 'portico_grpc_refused_total', { reason: 'group_not_allowed' }), 3);
    assert.equal(sum(samples, 'portico_grpc_refused_total', { reason: 'no_client_certificate' }), 6);
    assert.equal(sum(samples, 'portico_grpc_refused_total', { reason: 'no_group_identity', service: 'access_log' }), 1);
  });

  it("the callout listener refuses clients without the CA's node certificate with UNAUTHENTICATED", async () => {
    const authz = 'envoy.service.auth.v3.Authorization';
    const check = (creds: grpc.ChannelCredentials) =>
      new Promise<grpc.ServiceError | null>((resolve) => {
        const client = new grpc.Client(`127.0.0.1:${portico.calloutPort}`, creds);
        client.makeUnaryRequest(
          `/${authz}/Check`,
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.alloc(0),
          (e) => {
            client.close();
            resolve(e);
          },
        );
      });
    const refused = await check(clientCredentials(pki.ca));
    assert.equal(refused?.code, grpc.status.UNAUTHENTICATED, refused?.details);
    const edge = await pki.node('edge-callout', ['edge']);
    const answered = await check(clientCredentials(pki.ca, edge.cert));
    // An empty CheckRequest is answered (a denial or OK), not refused at the channel.
    assert.ok(answered === null || ![grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED, grpc.status.UNAVAILABLE].includes(answered.code), answered?.details);
    assert.ok(portico.xds.fleet.status().refused.some((r) => r.service === 'callouts' && r.reason === 'no_client_certificate'));
  });
});
