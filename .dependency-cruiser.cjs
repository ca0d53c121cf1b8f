// The layer rules of src/ (docs/ARCHITECTURE.md draws them): imports point down the table below,
// never sideways within a layer, never up; a folder is entered only through its index.ts; no cycles.
// `npm run lint` runs this; a new folder must be given a layer here before anything may import it.

/** Layers from the ground up. A folder may import folders of lower layers only (and itself). */
const LAYERS = [
  // ground floors: protobuf loading and codecs; the data-plane contract; gRPC transport; secret crypto
  ['proto', 'contract', 'grpc', 'crypto'],
  // the domain model
  ['model'],
  // what stores, observes and serves the model, each on its own
  ['store', 'telemetry', 'xds'],
  // what the model becomes: Envoy config, limits, flows; and the admin API over the store
  ['translate', 'ratelimit', 'flows', 'admin'],
  // ext_authz (it also counts through the rate limiter in combined mode)
  ['authz'],
];
/** Composition (may import any folder, through its index.ts): src/*.ts and these folders. */
const COMPOSITION_FOLDERS = ['demo'];

const ALL = LAYERS.flat();
const alt = (names) => `(${names.join('|')})`;

const layerRules = LAYERS.flatMap((layer, i) => {
  const above = LAYERS.slice(i + 1).flat();
  return layer.flatMap((folder) => {
    const sameLayer = layer.filter((f) => f !== folder);
    const rules = [];
    if (above.length) {
      rules.push({
        name: `layer-up-${folder}`,
        comment: `src/${folder} (layer ${i}) may not import a higher layer: ${above.join(', ')}`,
        severity: 'error',
        from: { path: `^src/${folder}/` },
        to: { path: `^src/${alt([...above, ...COMPOSITION_FOLDERS])}/` },
      });
    }
    if (sameLayer.length) {
      rules.push({
        name: `layer-sideways-${folder}`,
        comment: `src/${folder} may not import its own layer's other folders (${sameLayer.join(', ')}): move the shared part down`,
        severity: 'error',
        from: { path: `^src/${folder}/` },
        to: { path: `^src/${alt(sameLayer)}/` },
      });
    }
    return rules;
  });
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle makes two modules one: break it by moving the shared part down a layer.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'folder-to-composition',
      comment: 'Folders never import the composition root (src/*.ts: main, pipeline, cli, serve, settings).',
      severity: 'error',
      from: { path: '^src/[^/]+/', pathNot: `^src/${alt(COMPOSITION_FOLDERS)}/` },
      to: { path: '^src/[^/]+\\.ts$' },
    },
    {
      name: 'public-surface',
      comment: 'Another folder is entered only through its index.ts (its public surface), never at a module inside it.',
      severity: 'error',
      from: { path: '^src/([^/]+)' },
      to: { path: '^src/[^/]+/.+', pathNot: ['^src/[^/]+/index\\.ts$', '^src/$1/'] },
    },
    {
      name: 'no-own-index',
      comment: "Inside a folder, import the module itself, not the folder's index.ts (that is a cycle through the barrel).",
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/$1/index\\.ts$' },
    },
    {
      name: 'folder-has-a-layer',
      comment: 'Every folder of src/ has a layer in .dependency-cruiser.cjs (and docs/ARCHITECTURE.md).',
      severity: 'error',
      from: { path: '^src/', pathNot: `^src/(${[...ALL, ...COMPOSITION_FOLDERS].join('|')})/|^src/[^/]+\\.ts$` },
      to: {},
    },
    {
      name: 'src-not-to-tests',
      comment: 'Product code never imports tests, test support or benchmarks.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-dev-dependencies',
      comment: 'Product code uses runtime dependencies only.',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
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
