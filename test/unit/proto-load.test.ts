// Envoy's API is loaded in part at start (the packages Portico uses, with their imports) and the rest
// on demand: every type the sources name or the goldens emit is in the part loaded at start, and a
// type outside it still encodes and decodes, from a root built for its file at its first lookup.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { decodeMessage, encodeMessage, findType, lookupType, protoRoot } from '../../src/proto/index.ts';
import { rootsLoadedOnDemand } from '../../src/proto/load.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function filesUnder(dir: string, ext: RegExp): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => ext.test(f))
    .map((f) => path.join(dir, f));
}

/** Envoy, xDS, Google and validate declarations named in quotes or in type URLs. */
function namesIn(text: string): string[] {
  const quoted = [...text.matchAll(/['"`]((?:envoy|google|xds|udpa)\.[a-z0-9_.]+\.[A-Z][A-Za-z0-9]*)/g)].map((m) => m[1]!);
  const urls = [...text.matchAll(/type\.googleapis\.com\/([A-Za-z0-9_.]+)/g)].map((m) => m[1]!);
  return [...quoted, ...urls];
}

describe('Envoy API loading', () => {
  it('holds every declaration the sources name and every type the goldens emit without loading more', () => {
    const names = new Set<string>();
    for (const f of filesUnder(path.join(ROOT, 'src'), /\.ts$/)) for (const n of namesIn(readFileSync(f, 'utf8'))) names.add(n);
    const fromGoldens = new Set<string>();
    for (const f of filesUnder(path.join(ROOT, 'test/golden/testdata'), /\.(json|yaml)$/)) for (const n of namesIn(readFileSync(f, 'utf8'))) fromGoldens.add(n);
    // The scan finds what it should (a broken pattern would make this test pass on nothing).
    assert.ok(names.size > 60 && fromGoldens.size > 30, `${names.size} names in src, ${fromGoldens.size} in goldens`);
    assert.ok(fromGoldens.has('envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication'));
    const missing = [...names, ...fromGoldens].filter((n) => {
      const o = protoRoot().lookup(n);
      return !(o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service);
    });
    assert.deepEqual(missing, [], 'not in PRELOADED_PACKAGES (src/proto/load.ts)');
    for (const n of fromGoldens) assert.ok(findType(n), n);
    assert.equal(rootsLoadedOnDemand(), 0);
  });

  it('loads a type outside those packages at its first lookup, once per file, and encodes it inside an Any', () => {
    const buffer = 'envoy.extensions.filters.http.buffer.v3.Buffer';
    assert.equal(protoRoot().lookup(buffer), null, 'the buffer filter is not preloaded (pick another type for this test)');
    const before = rootsLoadedOnDemand();
    const filter = { name: 'envoy.filters.http.buffer', typed_config: { '@type': `type.googleapis.com/${buffer}`, max_request_bytes: 1024 } };
    const hcm = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter';
    assert.deepEqual(decodeMessage(hcm, encodeMessage(hcm, filter)), filter);
    assert.equal(rootsLoadedOnDemand(), before + 1);
    // Another type of the same file comes from that root.
    assert.ok(lookupType(`${buffer}PerRoute`));
    assert.equal(rootsLoadedOnDemand(), before + 1);
    // A name the API lacks, or a package name, is no type, and builds nothing.
    assert.equal(findType('envoy.extensions.filters.http.buffer.v3.NoSuchThing'), undefined);
    assert.equal(findType('envoy.extensions.filters.http.buffer.v3'), undefined);
    assert.throws(() => lookupType('envoy.nothing.v3.Here'), /is not loaded/);
    assert.equal(rootsLoadedOnDemand(), before + 1);
  });
});
