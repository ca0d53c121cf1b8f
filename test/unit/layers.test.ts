// The layer rules (.dependency-cruiser.cjs) catch what they exist for: a throwaway tree with one
// cycle, one upward import, one sideways import and one reach into another folder's internals is
// cruised with the real configuration, and each breaks exactly the rule named for it.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult } from 'dependency-cruiser';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const config = createRequire(import.meta.url)(path.join(root, '.dependency-cruiser.cjs'));

const files: Record<string, string> = {
  'src/proto/index.ts': "export * from './codec.ts';",
  'src/proto/codec.ts': 'export const codec = 1;',
  'src/model/index.ts': "export * from './model.ts';",
  'src/model/model.ts': "import { codec } from '../proto/index.ts';\nexport const model = codec;",
  // upward: the model reaching the translator
  'src/model/upward.ts': "import { translate } from '../translate/index.ts';\nexport const up = translate;",
  'src/translate/index.ts': "export * from './translate.ts';",
  'src/translate/translate.ts': "import { model } from '../model/index.ts';\nexport const translate = model;",
  // internals: past the model's index.ts
  'src/translate/internals.ts': "import { model } from '../model/model.ts';\nexport const inner = model;",
  // sideways: two folders of one layer
  'src/ratelimit/index.ts': "import { translate } from '../translate/index.ts';\nexport const limits = translate;",
  // a cycle inside one folder
  'src/store/index.ts': "export * from './a.ts';",
  'src/store/a.ts': "import { b } from './b.ts';\nexport const a = () => b;",
  'src/store/b.ts': "import { a } from './a.ts';\nexport const b = () => a;",
  // a folder nobody gave a layer
  'src/nowhere/index.ts': "import { model } from '../model/index.ts';\nexport const n = model;",
};

describe('layer rules', () => {
  let dir: string;
  let result: ICruiseResult;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'portico-layers-'));
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      writeFileSync(path.join(dir, f), `${text}\n`);
    }
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { allowImportingTsExtensions: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext' } }));
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const out = await cruise(['src'], { ruleSet: { forbidden: config.forbidden }, ...config.options, validate: true });
      result = out.output as ICruiseResult;
    } finally {
      process.chdir(cwd);
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const broken = (rule: string): string[] => result.summary.violations.filter((v) => v.rule.name === rule).map((v) => `${v.from} → ${v.to}`);

  it('refuses an upward import', () => {
    assert.deepEqual(broken('layer-up-model'), ['src/model/upward.ts → src/translate/index.ts']);
  });

  it('refuses an import of a folder in the same layer', () => {
    assert.deepEqual(broken('layer-sideways-ratelimit'), ['src/ratelimit/index.ts → src/translate/index.ts']);
  });

  it("refuses a reach past another folder's index.ts", () => {
    assert.deepEqual(broken('public-surface'), ['src/translate/internals.ts → src/model/model.ts']);
  });

  it('refuses a cycle', () => {
    assert.ok(broken('no-circular').length > 0, 'the store/a ↔ store/b cycle is reported');
    assert.ok(broken('no-circular').every((v) => v.startsWith('src/store/')));
  });

  it('refuses a folder without a layer', () => {
    assert.deepEqual(broken('folder-has-a-layer'), ['src/nowhere/index.ts → src/model/index.ts']);
  });

  it('finds nothing else in the tree', () => {
    const named = new Set(['layer-up-model', 'layer-sideways-ratelimit', 'public-surface', 'no-circular', 'folder-has-a-layer']);
    assert.deepEqual(
      result.summary.violations.filter((v) => !named.has(v.rule.name)).map((v) => `${v.rule.name}: ${v.from} → ${v.to}`),
      [],
    );
  });
});
