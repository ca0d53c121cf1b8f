// Determinism: the same model gives byte-identical resources, whatever order its maps and records
// were filled in and whatever its bookkeeping (revision, meta) says.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseDocumentText, parseModelDocument } from '../../src/model/declarative.ts';
import { KIND_ORDER, type AnyResource, type ModelSnapshot, type ResourceMeta } from '../../src/model/model.ts';
import { translate } from '../../src/translate/index.ts';

const OPTIONS = { calloutAddress: '127.0.0.1:18001' };

function load(name: string): ModelSnapshot {
  const text = readFileSync(new URL(`../golden/testdata/${name}/model.yaml`, import.meta.url), 'utf8');
  const hashApiKey = (key: string) => ({ prefix: key.slice(4, 12), hash: createHash('sha256').update(key).digest('base64url') });
  const { model, errors } = parseModelDocument(parseDocumentText(text), { hashApiKey });
  assert.deepEqual(errors, []);
  return model;
}

function bytes(m: ModelSnapshot): string {
  return JSON.stringify([...translate(m, OPTIONS)]);
}

/** A small seeded shuffle, so a failure can be reproduced. */
function shuffle<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1_103_515_245 + 12_345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Reverses the key order of every plain object (header records, CORS settings…) inside a value. */
function reverseKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v as Record<string, unknown>)
      .reverse()
      .map(([k, x]) => [k, reverseKeys(x)]),
  );
}

function reshuffled(m: ModelSnapshot, seed: number): ModelSnapshot {
  const out: Record<string, unknown> = { revision: m.revision + 17, meta: new Map<string, ResourceMeta>() };
  const meta = out.meta as Map<string, ResourceMeta>;
  for (const kind of KIND_ORDER) {
    const entries = shuffle([...(m[kind] as ReadonlyMap<string, AnyResource>)], seed + kind.length);
    out[kind] = new Map(entries.map(([k, r]) => [k, reverseKeys(r) as AnyResource]));
    for (const [k] of entries) meta.set(`${kind}/${k}`, { revision: seed, createdAt: new Date(seed).toISOString(), updatedAt: new Date().toISOString() });
  }
  return out as ModelSnapshot;
}

describe('determinism', () => {
  for (const name of ['routing', 'https-mtls', 'upstreams', 'groups']) {
    it(`${name}: translating twice gives the same bytes`, () => {
      const m = load(name);
      assert.equal(bytes(m), bytes(m));
    });

    it(`${name}: map insertion order, record key order, revision and meta do not matter`, () => {
      const m = load(name);
      const expected = bytes(m);
      for (const seed of [1, 2, 3]) {
        const other = reshuffled(m, seed);
        // The shuffle really changed an insertion order, or the test proves nothing.
        const keys = (s: ModelSnapshot) => KIND_ORDER.map((k) => [...(s[k] as ReadonlyMap<string, unknown>).keys()].join());
        assert.notDeepEqual(keys(other), keys(m), `seed ${seed} changed nothing`);
        assert.equal(bytes(other), expected, `seed ${seed}`);
      }
    });
  }

  it('groups come out in name order, and every resource list is sorted by name', () => {
    const out = translate(load('groups'), OPTIONS);
    assert.deepEqual([...out.keys()], ['edge', 'idle', 'ops']);
    for (const r of out.values()) {
      for (const [kind, list] of Object.entries(r) as Array<[string, Array<Record<string, unknown>>]>) {
        const names = list.map((x) => String(kind === 'endpoints' ? x.cluster_name : x.name));
        assert.deepEqual(names, [...names].sort(), kind);
      }
    }
  });
});
