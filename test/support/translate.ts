// Translator unit-test helpers: a model from [kind, resource] entries that is checked valid first (so
// a test about the translator cannot pass on a model the admin API would refuse), and a path walker
// over the plain JSON objects the translator emits.
import assert from 'node:assert/strict';
import type { ModelSnapshot } from '../../src/model/model.ts';
import { validateModel } from '../../src/model/validate.ts';
import { modelOf, type Entries } from './ratelimit-fixtures.ts';
import type { Json } from '../../src/translate/envoy/common.ts';

export function validModel(entries: Entries): ModelSnapshot {
  const m = modelOf(entries);
  assert.deepEqual(validateModel(m), [], 'test model is valid');
  return m;
}

/** The value at a path of object keys and array indexes; undefined where the path leaves the JSON. */
export function jsonAt(o: Json | undefined, ...path: Array<string | number>): Json | undefined {
  let v: Json | undefined = o;
  for (const k of path) {
    if (Array.isArray(v) && typeof k === 'number') v = v[k];
    else v = v && typeof v === 'object' && !Array.isArray(v) ? v[String(k)] : undefined;
  }
  return v;
}
