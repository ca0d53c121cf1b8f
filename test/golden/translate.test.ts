// Golden tests of the translator, one layer per stage: each testdata/<case>/model.yaml in, the IR
// out (<case>/ir.json: model → IR) and each gateway group's Envoy resources out (<case>/<group>/*.json:
// IR → Envoy), compared byte for byte, so a change to either stage is reviewed on its own.
// UPDATE_GOLDEN=1 rewrites the expected files instead.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseDocumentText, parseModelDocument } from '../../src/model/declarative.ts';
import type { ModelSnapshot } from '../../src/model/model.ts';
import { validateModel } from '../../src/model/validate.ts';
import { modelToIr, RESOURCE_TYPES, translate, validateTranslation, type GroupResources } from '../../src/translate/index.ts';
import { RESOURCE_KINDS } from '../../src/contract/index.ts';
import { encodeResource } from '../../src/proto/index.ts';
import { requireComponent } from '../support/components.ts';
import { staticBootstrap } from './static-bootstrap.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const testdata = path.join(here, 'testdata');
const update = process.env.UPDATE_GOLDEN === '1';
// A fixed clock: native authorization judges subscription and key expiries at it.
// The flows Wasm module is a stand-in (the 8-byte header of an empty module): goldens never depend on a
// build. Envoy's validation loads the module, so it is given the built one instead (flows-wasm/).
const WASM_STAND_IN = 'AGFzbQEAAAA=';
const OPTIONS = {
  calloutAddress: '127.0.0.1:18001',
  now: Date.parse('2026-06-01T00:00:00Z'),
  flows: { address: '127.0.0.1:18002', stepAddress: '127.0.0.1:18003', wasmModule: { base64: WASM_STAND_IN, sha256: createHash('sha256').update(Buffer.from(WASM_STAND_IN, 'base64')).digest('hex') } },
};

/** A fixed stand-in for the store's keyed hash, so golden inputs never depend on a secret. */
function hashApiKey(key: string): { prefix: string; hash: string; secret: string } {
  return { prefix: key.slice(4, 12), hash: createHash('sha256').update(key).digest('base64url'), secret: key };
}

const cases = readdirSync(testdata)
  .filter((d) => existsSync(path.join(testdata, d, 'model.yaml')))
  .sort();

function loadCase(name: string): ModelSnapshot {
  const text = readFileSync(path.join(testdata, name, 'model.yaml'), 'utf8');
  const { model, errors } = parseModelDocument(parseDocumentText(text), { hashApiKey });
  assert.deepEqual(errors, [], `${name}/model.yaml does not parse`);
  assert.deepEqual(validateModel(model), [], `${name}/model.yaml is not a valid model`);
  assert.deepEqual(validateTranslation(model), [], `${name}/model.yaml is refused by validateTranslation`);
  return model;
}

function render(list: readonly unknown[]): string {
  return `${JSON.stringify(list, null, 2)}\n`;
}

const translated = new Map<string, Map<string, GroupResources>>();
function translatedCase(name: string): Map<string, GroupResources> {
  let out = translated.get(name);
  if (!out) {
    out = translate(loadCase(name), OPTIONS);
    translated.set(name, out);
  }
  return out;
}

test('there are golden cases, seed-003 among them', () => {
  assert.ok(cases.includes('seed-003'));
  assert.ok(cases.length >= 5, `only ${cases.length} cases`);
});

test('seed-003 is a copy of examples/gateway.yaml', () => {
  const example = readFileSync(path.join(here, '../../examples/gateway.yaml'), 'utf8');
  assert.equal(readFileSync(path.join(testdata, 'seed-003', 'model.yaml'), 'utf8'), example, 'copy examples/gateway.yaml over testdata/seed-003/model.yaml');
});

for (const name of cases) {
  test(`golden: ${name}`, () => {
    const out = translatedCase(name);
    const dir = path.join(testdata, name);
    const groupDirs = readdirSync(dir)
      .filter((d) => statSync(path.join(dir, d)).isDirectory())
      .sort();
    if (update) {
      for (const d of groupDirs) if (!out.has(d)) rmSync(path.join(dir, d), { recursive: true });
      for (const [group, resources] of out) {
        mkdirSync(path.join(dir, group), { recursive: true });
        for (const kind of RESOURCE_KINDS) writeFileSync(path.join(dir, group, `${kind}.json`), render(resources[kind]));
      }
      return;
    }
    assert.deepEqual(groupDirs, [...out.keys()], `gateway groups of ${name} (run with UPDATE_GOLDEN=1 to accept)`);
    for (const [group, resources] of out) {
      for (const kind of RESOURCE_KINDS) {
        const file = path.join(dir, group, `${kind}.json`);
        assert.equal(render(resources[kind]), readFileSync(file, 'utf8'), `${name}/${group}/${kind}.json differs (run with UPDATE_GOLDEN=1 and review the diff)`);
      }
    }
  });
}

for (const name of cases) {
  test(`golden IR: ${name}`, () => {
    const file = path.join(testdata, name, 'ir.json');
    const ir = `${JSON.stringify(modelToIr(loadCase(name), OPTIONS), null, 2)}\n`;
    if (update) {
      writeFileSync(file, ir);
      return;
    }
    assert.equal(ir, readFileSync(file, 'utf8'), `${name}/ir.json differs (run with UPDATE_GOLDEN=1 and review the diff)`);
  });
}

test('every golden resource encodes with the xDS proto3-JSON codec', () => {
  let count = 0;
  for (const name of cases) {
    for (const [group, resources] of translatedCase(name)) {
      for (const kind of RESOURCE_KINDS) {
        for (const r of resources[kind]) {
          assert.doesNotThrow(() => encodeResource(RESOURCE_TYPES[kind], r), `${name}/${group}/${kind} ${String(r.name ?? r.cluster_name)}`);
          count++;
        }
      }
    }
  }
  assert.ok(count > 50, `only ${count} resources encoded`);
});

test('Envoy accepts every golden case (envoy --mode validate on a static rendering)', (t) => {
  const envoy = requireComponent(t, 'envoy');
  const wasmFile = requireComponent(t, 'flows-wasm');
  if (!envoy || !wasmFile) return;
  const wasm = readFileSync(wasmFile).toString('base64');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'portico-golden-'));
  try {
    for (const name of cases) {
      for (const [group, resources] of translatedCase(name)) {
        const file = path.join(dir, `${name}-${group}.json`);
        // The built filter also parses each plan (on_configure): a plan it cannot read fails here.
        writeFileSync(file, JSON.stringify(staticBootstrap(resources)).replaceAll(`"${WASM_STAND_IN}"`, `"${wasm}"`));
        const r: SpawnSyncReturns<string> = spawnSync(envoy, ['--mode', 'validate', '-c', file, '-l', 'error'], { encoding: 'utf8', timeout: 60_000 });
        assert.equal(r.status, 0, `Envoy refuses ${name}/${group}:\n${r.stdout}${r.stderr}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
