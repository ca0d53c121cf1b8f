// Declarative documents: parsing, canonical export, apply plans (whole model and tag slices).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { documentToYaml, modelToDocument, parseDocumentText, parseModelDocument, planApply, fieldChanges } from '../../src/model/declarative.ts';
import { applyMutations } from '../../src/model/model.ts';
import { mergePatch } from '../../src/admin/resources.ts';

const hashApiKey = (key: string) => ({ prefix: key.split('_')[1]!, hash: 'h'.repeat(43) });
const example = readFileSync(path.resolve(import.meta.dirname, '../../examples/gateway.yaml'), 'utf8');

function parse(text: string, existing?: Parameters<typeof parseModelDocument>[1]['existing']) {
  return parseModelDocument(parseDocumentText(text), { hashApiKey, ...(existing ? { existing } : {}) });
}

describe('declarative documents', () => {
  it('parse the example with nested children keyed under their parents', () => {
    const { model, errors } = parse(example);
    assert.deepEqual(errors, []);
    assert.ok(model.routes.has('orders/orders'));
    assert.equal(model.routes.get('orders/orders')!.product, 'orders');
    assert.equal(model.subscriptions.get('web-app/catalog')!.plan, 'standard');
  });

  it('export canonically: key order and entry order do not depend on the input', () => {
    const a = parse('portico: v1\nservices:\n  - endpoints: [{port: 80, host: 10.0.0.1}]\n    name: b\n  - name: a\n    endpoints: [{host: 10.0.0.2, port: 81}]\n').model;
    const b = parse('portico: v1\nservices:\n  - name: a\n    endpoints: [{port: 81, host: 10.0.0.2}]\n  - name: b\n    endpoints: [{host: 10.0.0.1, port: 80}]\n').model;
    const ya = documentToYaml(modelToDocument(a));
    assert.equal(ya, documentToYaml(modelToDocument(b)));
    assert.equal(ya, 'portico: v1\nservices:\n  - name: a\n    endpoints:\n      - host: 10.0.0.2\n        port: 81\n  - name: b\n    endpoints:\n      - host: 10.0.0.1\n        port: 80\n');
  });

  it('round-trip the example through export', () => {
    const m1 = parse(example).model;
    const text = documentToYaml(modelToDocument(m1));
    const m2 = parse(text).model;
    assert.equal(documentToYaml(modelToDocument(m2)), text);
  });

  it('import API keys by plaintext (hashed) or by exported hash, never both', () => {
    const key = `ptk_abcdefgh_${'x'.repeat(43)}`;
    const ok = parse(`portico: v1\npartners:\n  - name: a\n    apiKeys:\n      - name: k\n        key: ${key}\n`);
    assert.deepEqual(ok.errors, []);
    assert.equal(ok.model.apiKeys.get('a/k')!.prefix, 'abcdefgh');
    const both = parse(`portico: v1\npartners:\n  - name: a\n    apiKeys:\n      - name: k\n        key: ${key}\n        prefix: abcdefgh\n        hash: ${'h'.repeat(43)}\n`);
    assert.equal(both.errors[0]!.field, 'partners[0].apiKeys[0].key');
    const neither = parse('portico: v1\npartners:\n  - name: a\n    apiKeys:\n      - name: k\n');
    assert.match(neither.errors[0]!.message, /a new API key needs key/);
    // Omitted key material keeps what the store already holds.
    const kept = parse('portico: v1\npartners:\n  - name: a\n    apiKeys:\n      - name: k\n', ok.model);
    assert.deepEqual(kept.errors, []);
    assert.equal(kept.model.apiKeys.get('a/k')!.prefix, 'abcdefgh');
  });

  it('report document-level errors with their location', () => {
    assert.deepEqual(parse('services: []\n').errors, [{ field: 'portico', message: "must be 'v1' (the document format version)" }]);
    assert.deepEqual(parse('portico: v1\nproducts:\n  - name: p\n    gatewayGroups: [g]\n    routes: {}\n').errors, [{ field: 'products[0].routes', message: 'must be a list' }]);
    assert.throws(() => parseDocumentText('a: 1\na: 2\n'), /unique|duplicate/i);
  });

  it('plan deletes for what the document drops, including children of kept parents', () => {
    const current = parse(example).model;
    const text = example.replace(/ {6}- name: register\n(?: {8}.*\n| {10}.*\n)+?(?= {6}- name: health)/, '');
    const desired = parse(text).model;
    assert.equal(desired.routes.has('accounts/register'), false);
    const { mutations, errors } = planApply(current, desired, { prune: true });
    assert.deepEqual(errors, []);
    const deletes = mutations.filter((m) => m.op === 'delete').map((m) => `${m.kind} ${m.key}`);
    assert.deepEqual(deletes, ['routes accounts/register']);
    const next = applyMutations(current, mutations);
    assert.equal(next.routes.size, current.routes.size - 1);
    // Without prune nothing is deleted; the route is named as what a prune would delete.
    const kept = planApply(current, desired);
    assert.deepEqual(
      kept.mutations.filter((m) => m.op === 'delete'),
      [],
    );
    assert.deepEqual(kept.leftOut, [{ kind: 'routes', key: 'accounts/register' }]);
    assert.equal(applyMutations(current, kept.mutations).routes.size, current.routes.size);
  });

  it('limit plans to a tag slice', () => {
    const current = parse('portico: v1\npartners:\n  - name: a\n    tags: [t]\n  - name: b\n').model;
    const desired = parse('portico: v1\npartners:\n  - name: c\n    tags: [t]\n').model;
    const { mutations } = planApply(current, desired, { tag: 't', prune: true });
    assert.deepEqual(
      mutations.map((m) => `${m.op} ${m.key}`),
      ['delete a', 'put c'],
    );
    const kept = planApply(current, desired, { tag: 't' });
    assert.deepEqual(
      kept.mutations.map((m) => `${m.op} ${m.key}`),
      ['put c'],
    );
    assert.deepEqual(kept.leftOut, [{ kind: 'partners', key: 'a' }], 'b is outside the slice: not even named');
  });

  it('describe field-level changes', () => {
    const a = parse('portico: v1\nservices:\n  - name: s\n    endpoints: [{host: 10.0.0.1, port: 80}]\n    lbPolicy: random\n').model.services.get('s')!;
    const b = parse('portico: v1\nservices:\n  - name: s\n    endpoints: [{host: 10.0.0.1, port: 80}]\n    connectTimeoutMs: 500\n').model.services.get('s')!;
    assert.deepEqual(fieldChanges('services', a, b), [
      { field: 'lbPolicy', before: 'random' },
      { field: 'connectTimeoutMs', after: 500 },
    ]);
  });
});

describe('mergePatch (RFC 7396)', () => {
  it('merges objects, replaces arrays and deletes with null', () => {
    assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 }, e: [1, 2] }, { b: { c: null, x: 1 }, e: [3], f: 'new', a: null }), { b: { d: 3, x: 1 }, e: [3], f: 'new' });
    assert.deepEqual(mergePatch({ a: 1 }, 'scalar'), 'scalar');
  });
});
