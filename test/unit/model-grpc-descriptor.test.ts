// gRPC descriptor sets: built from .proto files by `portico protoset` (protobufjs, no protoc) with
// their google.api.http annotations, decoded, narrowed to some methods; and the model's refusals of
// routes that name what a service's descriptor set lacks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { decodeDescriptorSet, descriptorSetFromRoot, grpcMethods, loadProtoSources, narrowDescriptorSet } from '../../src/model/grpc-descriptor.ts';
import { validateModel } from '../../src/model/validate.ts';
import { ORDERS_PROTO, ORDERS_SERVICE, ordersDescriptorSet } from '../support/grpc-orders.ts';
import { modelOf } from '../support/ratelimit-fixtures.ts';

type Methods = Array<{ name: string; options?: { googleApiHttp?: Record<string, unknown> } }>;
const methodsOf = (b64: string): Methods => {
  const set = decodeDescriptorSet(b64);
  assert.notEqual(typeof set, 'string', String(set));
  return ((set as { file: Array<{ service?: Array<{ method: Methods }> }> }).file.flatMap((f) => f.service ?? []).flatMap((s) => s.method) ?? []) as Methods;
};

describe('descriptor sets', () => {
  it('keeps google.api.http annotations and lists services and methods; leaves out what Envoy knows', () => {
    const set = decodeDescriptorSet(ordersDescriptorSet);
    assert.deepEqual([...grpcMethods(set as never)], [[ORDERS_SERVICE, ['GetOrder', 'CreateOrder', 'ListOrders', 'Ping']]]);
    const byName = Object.fromEntries(methodsOf(ordersDescriptorSet).map((m) => [m.name, m.options?.googleApiHttp]));
    assert.deepEqual(byName, { GetOrder: { get: '/v1/orders/{id}' }, CreateOrder: { post: '/v1/orders', body: 'order' }, ListOrders: { get: '/v1/customers/{customer}/orders' }, Ping: undefined });
    const files = (set as { file: Array<{ package: string }> }).file.map((f) => f.package);
    assert.deepEqual(files, ['portico.test.shop'], 'no google.api or google.protobuf file');
  });

  it('imports across packages come first and are listed as dependencies', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-proto-'));
    writeFileSync(path.join(dir, 'common.proto'), 'syntax = "proto3"; package acme.common; message Money { int64 cents = 1; }');
    writeFileSync(
      path.join(dir, 'billing.proto'),
      'syntax = "proto3"; package acme.billing; import "common.proto"; import "google/protobuf/timestamp.proto"; message Invoice { acme.common.Money total = 1; google.protobuf.Timestamp due = 2; } service Billing { rpc Get(Invoice) returns (Invoice); }',
    );
    const set = decodeDescriptorSet(descriptorSetFromRoot(loadProtoSources([path.join(dir, 'billing.proto')])));
    const files = (set as { file: Array<{ name: string; package: string; dependency?: string[] }> }).file;
    const billing = files.findIndex((f) => f.package === 'acme.billing');
    for (const dep of files[billing]!.dependency ?? []) assert.ok(files.findIndex((f) => f.name === dep) < billing, `${dep} before billing`);
    assert.deepEqual(files.map((f) => f.package).sort(), ['acme.billing', 'acme.common', 'google.protobuf']);
  });

  it('narrows to the listed methods, annotations intact', () => {
    const narrowed = narrowDescriptorSet(ordersDescriptorSet, [`${ORDERS_SERVICE}/ListOrders`]);
    assert.deepEqual(methodsOf(narrowed), [
      {
        name: 'ListOrders',
        inputType: '.portico.test.shop.ListOrdersRequest',
        outputType: '.portico.test.shop.Order',
        serverStreaming: true,
        options: { googleApiHttp: { get: '/v1/customers/{customer}/orders' } },
      },
    ]);
    assert.equal(narrowDescriptorSet(ordersDescriptorSet, undefined), ordersDescriptorSet);
  });

  it('refuses what is not a descriptor set', () => {
    assert.match(String(decodeDescriptorSet('AAAA')), /^is not a protobuf FileDescriptorSet/);
    assert.match(String(decodeDescriptorSet('/////w==')), /^is not a protobuf FileDescriptorSet/);
    assert.equal(decodeDescriptorSet(Buffer.from([0x10, 0x01]).toString('base64')), 'holds no .proto file');
    assert.equal(decodeDescriptorSet('a b'), 'is not base64');
  });

  it('`portico protoset` prints the same set', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'protoset', ORDERS_PROTO], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), ordersDescriptorSet);
    const none = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'protoset'], { encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(none.status, 0);
    assert.match(none.stderr, /name one or more \.proto files/);
  });
});

describe('gRPC routes: model validation', () => {
  const base = (service: object, route: object) =>
    modelOf([
      ['gatewayGroups', { name: 'edge', listeners: [{ name: 'http', port: 8080 }] }],
      ['services', { name: 'orders', protocol: 'http2', endpoints: [{ host: '10.0.0.1', port: 50051 }], grpc: { descriptorSet: ordersDescriptorSet }, ...service }],
      ['services', { name: 'web', endpoints: [{ host: '10.0.0.2', port: 80 }] }],
      ['products', { name: 'p', gatewayGroups: ['edge'], auth: { accept: ['none'] } }],
      ['routes', { product: 'p', name: 'r', match: { path: { type: 'prefix', value: '/v1' } }, service: 'orders', ...route }],
    ]);
  const errors = (service: object, route: object) => validateModel(base(service, route)).map((e) => `${e.kind} ${e.key} ${e.field}: ${e.message}`);

  it('accepts services and methods of the descriptor set', () => {
    assert.deepEqual(errors({}, { transcode: { services: [ORDERS_SERVICE], methods: [`${ORDERS_SERVICE}/GetOrder`] }, grpcWeb: true }), []);
  });

  it('names the method or service the descriptor set lacks, and what it has', () => {
    assert.deepEqual(errors({}, { transcode: { services: [ORDERS_SERVICE, 'acme.Nope'], methods: [`${ORDERS_SERVICE}/Delete`, 'acme.Nope/X', 'other.S/Y'] } }), [
      "routes p/r transcode.services[1]: service 'acme.Nope' is not in the descriptor set of 'orders' (it has portico.test.shop.Orders)",
      `routes p/r transcode.methods[0]: method 'portico.test.shop.Orders/Delete' is not in the descriptor set of 'orders' (portico.test.shop.Orders has GetOrder, CreateOrder, ListOrders, Ping)`,
      "routes p/r transcode.methods[2]: method 'other.S/Y' is not of a service listed in transcode.services",
    ]);
  });

  it('needs a gRPC upstream with a descriptor set', () => {
    assert.deepEqual(errors({ grpc: undefined }, { transcode: { services: [ORDERS_SERVICE] } }), ["routes p/r transcode: service 'orders' has no grpc.descriptorSet describing its API"]);
    assert.deepEqual(errors({}, { service: 'web', transcode: { services: [ORDERS_SERVICE] }, grpcWeb: true }), [
      "routes p/r transcode: needs a gRPC upstream: service 'web' must have protocol http2",
      "routes p/r grpcWeb: needs a gRPC upstream: service 'web' must have protocol http2",
    ]);
    assert.deepEqual(errors({ protocol: 'http1', grpc: { descriptorSet: 'AAAA' } }, {}), [
      'services orders grpc.descriptorSet: is not a protobuf FileDescriptorSet (index out of range: 3 + 1 > 3)',
      'services orders protocol: must be http2 for a gRPC service (grpc is set)',
    ]);
  });
});
