// The layer rules of src/ (docs/ARCHITECTURE.md draws them): imports point down the table below,
// never sideways within a layer, never up; a folder is entered only through its index.ts; no cycles.
// `npm run lint` runs this; a new folder must be given a layer here before anything may import it.

/** Layers from the ground up. A folder may import folders of lower layers only (and itself). */
const LAYERS = [
  // ground floors: protobuf loading and codecs; the data-plane contract; gRPC transport; secret crypto
  ['proto', 'contract', 'grpc', 'crypto'],
  // the domain model
  ['model'],
  // what stores and what observes the model: the database, logs and metrics
  ['store', 'telemetry'],
  // what the model becomes and how it is served: Envoy config, xDS, limits, flows, the admin API; the idempotency processor
  ['translate', 'xds', 'ratelimit', 'flows', 'admin', 'idempotency'],
  // ext_authz (it also counts through the rate limiter in combined mode)
  ['authz'],
];
/** Composition (may import any folder, through its index.ts): src/*.ts and these folders. */
const COMPOSITION_FOLDERS = ['demo'];

const ALL = LAYERS.flat();
const rule = (name, comment, from, to) => ({ name, comment, severity: 'error', from, to });
const alt = (names) => `(${names.join('|')})`;

const layerRules = LAYERS.flatMap((layer, i) => {
  const above = LAYERS.slice(i + 1).flat();
  return layer.flatMap((folder) => {
    const sameLayer = layer.filter((f) => f !== folder);
    const rules = [];
    if (above.length) {
      rules.push(
        rule(
          `layer-up-${folder}`,
          `src/${folder} (layer ${i}) may not import a higher layer: ${above.join(', ')}`,
          { path: `^src/${folder}/` },
          { path: `^src/${alt([...above, ...COMPOSITION_FOLDERS])}/` },
        ),
      );
    }
    if (sameLayer.length) {
      rules.push(
        rule(
          `layer-sideways-${folder}`,
          `src/${folder} may not import its own layer's other folders (${sameLayer.join(', ')}): move the shared part down`,
          { path: `^src/${folder}/` },
          { path: `^src/${alt(sameLayer)}/` },
        ),
      );
    }
    return rules;
  });
});

module.exports = {
  forbidden: [
    rule('no-circular', 'A cycle makes two modules one: break it by moving the shared part down a layer.', {}, { circular: true }),
    ...layerRules,
    rule(
      'folder-to-composition',
      'Folders never import the composition root (src/*.ts: main, pipeline, cli, serve, settings).',
      { path: '^src/[^/]+/', pathNot: `^src/${alt(COMPOSITION_FOLDERS)}/` },
      { path: '^src/[^/]+\\.ts$' },
    ),
    rule(
      'public-surface',
      'Another folder is entered only through its index.ts (its public surface), never at a module inside it.',
      { path: '^src/([^/]+)' },
      { path: '^src/[^/]+/.+', pathNot: ['^src/[^/]+/index\\.ts$', '^src/$1/'] },
    ),
    rule('no-own-index', "Inside a folder, import the module itself, not the folder's index.ts (that is a cycle through the barrel).", { path: '^src/([^/]+)/' }, { path: '^src/$1/index\\.ts$' }),
    rule(
      'folder-has-a-layer',
      'Every folder of src/ has a layer in .dependency-cruiser.cjs (and docs/ARCHITECTURE.md).',
      { path: '^src/', pathNot: `^src/(${[...ALL, ...COMPOSITION_FOLDERS].join('|')})/|^src/[^/]+\\.ts$` },
      {},
    ),
    rule('src-not-to-tests', 'Product code never imports tests, test support or benchmarks.', { path: '^src/' }, { path: '^(test|bench)/' }),
    rule('not-to-dev-dependencies', 'Product code uses runtime dependencies only.', { path: '^src/' }, { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] }),
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: ['node_modules'] },
    exclude: { path: ['^src/store/generated/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.json'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
