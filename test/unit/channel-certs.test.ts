// Certificates for the control-plane channels (src/grpc/certs.ts, `portico certs`) and the identities
// the guard reads from them: chains verify with Node's own X.509 code, SANs carry the group
// identities, keys are private to their owner on disk, and crafted SANs do not pass for identities.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runCerts } from '../../src/certs.ts';
import { createCa, issueControlPlaneCertificate, issueNodeCertificate } from '../../src/grpc/certs.ts';
import { ChannelGuard, PERMISSION_DENIED, UNAUTHENTICATED } from '../../src/grpc/channel.ts';
import { peerIdentity } from '../../src/grpc/identity.ts';
import { selfSigned, signedBy } from '../support/certs.ts';

describe('certificate issuance', () => {
  it('issues a CA, a control-plane server certificate and a node certificate that verify against it', async () => {
    const ca = await createCa({ commonName: 'Test CA' });
    const server = await issueControlPlaneCertificate(ca, { trustDomain: 'acme', hosts: ['portico.svc', '10.0.0.7'] });
    const node = await issueNodeCertificate(ca, { trustDomain: 'acme', groups: ['edge', 'internal'], name: 'edge-1' });
    const caCert = new X509Certificate(ca.certificate);
    assert.equal(caCert.ca, true);
    for (const leaf of [server, node]) {
      const c = new X509Certificate(leaf.certificate);
      assert.equal(c.ca, false);
      assert.ok(c.checkIssued(caCert) && c.verify(caCert.publicKey), 'signed by the CA');
    }
    const s = new X509Certificate(server.certificate);
    assert.equal(s.subjectAltName, 'DNS:portico.svc, IP Address:10.0.0.7, URI:spiffe://acme/control-plane');
    assert.deepEqual(s.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'server authentication only');
    const n = new X509Certificate(node.certificate);
    assert.equal(n.subjectAltName, 'URI:spiffe://acme/gateway-group/edge, URI:spiffe://acme/gateway-group/internal');
    assert.deepEqual(n.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'client authentication only');
    assert.ok(n.checkPrivateKey((await import('node:crypto')).createPrivateKey(node.privateKey)));
  });

  it('refuses group names that are not gateway group names', async () => {
    const ca = await createCa({ commonName: 'Test CA' });
    await assert.rejects(issueNodeCertificate(ca, { trustDomain: 'acme', groups: ['Edge/../admin'] }), /not a gateway group name/);
    await assert.rejects(issueNodeCertificate(ca, { trustDomain: 'acme', groups: [] }), /at least one gateway group/);
  });
});

describe('node identities', () => {
  it('reads the gateway groups of its own trust domain only, and nothing smuggled in another SAN', () => {
    const cert = (san: string) => ({ subject: { CN: 'n' }, subjectaltname: san, serialNumber: '0A', valid_to: 'Jan  1 00:00:00 2030 GMT' });
    assert.deepEqual(peerIdentity(cert('URI:spiffe://acme/gateway-group/edge, URI:spiffe://other/gateway-group/internal'), 'acme').groups, ['edge']);
    // Node quotes values holding separators, so a DNS name cannot fake a second entry.
    assert.deepEqual(peerIdentity(cert('DNS:"x, URI:spiffe://acme/gateway-group/admin"'), 'acme').groups, []);
    assert.deepEqual(peerIdentity(cert('URI:spiffe://acme/gateway-group/edge/extra, URI:spiffe://acme/control-plane'), 'acme').groups, []);
  });

  it('the guard: no certificate → UNAUTHENTICATED, no group identity or another group → PERMISSION_DENIED, and every refusal is recorded', async () => {
    const guard = new ChannelGuard({ security: 'mtls', trustDomain: 'portico' });
    const seen: string[] = [];
    guard.onRefusal((r) => seen.push(r.reason));
    const none = guard.authenticate(false, undefined);
    assert.equal(none.ok, false);
    assert.equal(!none.ok && none.code, UNAUTHENTICATED);
    const ca = await selfSigned('CA');
    const plain = new X509Certificate((await signedBy(ca, 'x', { client: true })).certificate);
    const noGroup = guard.authenticate(true, { subject: { CN: 'x' }, subjectaltname: plain.subjectAltName, serialNumber: plain.serialNumber, valid_to: plain.validTo });
    assert.equal(!noGroup.ok && noGroup.code, PERMISSION_DENIED);
    const edge = guard.authenticate(true, { subjectaltname: 'URI:spiffe://portico/gateway-group/edge' });
    assert.ok(edge.ok);
    const other = guard.authorize(edge.identity, 'internal');
    assert.equal(!other.ok && other.code, PERMISSION_DENIED);
    assert.match(!other.ok ? other.message : '', /allows gateway group\(s\) 'edge', not 'internal'/);
    assert.ok(guard.authorize(edge.identity, 'edge').ok);
    if (!none.ok) guard.refuse(none, { service: 'ads', peer: '10.0.0.9:5000' });
    if (!other.ok) guard.refuse(other, { service: 'ads', peer: '10.0.0.9:5001', nodeId: 'n1', group: 'internal' });
    assert.deepEqual(seen, ['no_client_certificate', 'group_not_allowed']);
    assert.deepEqual(
      guard.recent().map((r) => [r.code, r.nodeId, r.group]),
      [
        ['PERMISSION_DENIED', 'n1', 'internal'],
        ['UNAUTHENTICATED', undefined, undefined],
      ],
    );
    assert.ok(new ChannelGuard({ security: 'plaintext', trustDomain: 'portico' }).authorize(undefined, 'anything').ok);
  });
});

describe('portico certs', () => {
  it('dev writes a CA, the control plane and one node per group; keys are 0600; --if-missing keeps them; existing files need --force', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-certs-'));
    try {
      const base = { hosts: ['portico', '127.0.0.1'], groups: ['edge'], trustDomain: 'portico', ifMissing: true, force: false };
      await runCerts({ action: 'dev', out: dir, ...base });
      const ca = readFileSync(path.join(dir, 'ca/ca.crt'), 'utf8');
      for (const f of ['ca/ca.key', 'control-plane/tls.key', 'nodes/edge/tls.key']) assert.equal(statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
      assert.equal(readFileSync(path.join(dir, 'nodes/edge/ca.crt'), 'utf8'), ca);
      assert.deepEqual(await runCerts({ action: 'dev', out: dir, ...base }), [`${dir}: a CA exists; nothing written`]);
      assert.equal(readFileSync(path.join(dir, 'ca/ca.crt'), 'utf8'), ca, 'unchanged');
      await assert.rejects(runCerts({ action: 'node', out: path.join(dir, 'nodes/edge'), ca: path.join(dir, 'ca'), ...base }), /exists; pass --force/);
      await runCerts({ action: 'node', out: path.join(dir, 'nodes/edge'), ca: path.join(dir, 'ca'), ...base, groups: ['edge', 'batch'], force: true });
      const node = new X509Certificate(readFileSync(path.join(dir, 'nodes/edge/tls.crt')));
      assert.equal(node.subjectAltName, 'URI:spiffe://portico/gateway-group/edge, URI:spiffe://portico/gateway-group/batch');
      assert.ok(node.verify(new X509Certificate(ca).publicKey));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
