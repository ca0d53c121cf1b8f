// The production build (`npm run build`): src/ bundled by esbuild into dist/cli.js, and each worker
// thread's module into its own file. One file instead of ~1,000 modules cuts about half of the
// module loading at every start. Type checking is `npm run typecheck`.
// Usage: tsx scripts/build.ts [--outdir DIR]   (default dist/)
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'src');
const { values } = parseArgs({ options: { outdir: { type: 'string' } } });
const outdir = path.resolve(values.outdir ?? path.join(ROOT, 'dist'));

/**
 * Packages left to node_modules: those that read files beside their own code (WebAssembly, data,
 * static assets, worker scripts), which a bundle would move away from them; optional native addons;
 * and development tools.
 */
const EXTERNAL = [
  '@electric-sql/pglite',
  '@electric-sql/pglite-socket',
  '@prisma/schema-engine-wasm',
  '@jitl/quickjs-wasmfile-release-sync',
  'quickjs-emscripten-core',
  '@fastify/swagger-ui',
  '@fastify/static',
  'pino',
  'thread-stream',
  'pg-native',
  'tsx',
  'esbuild',
  'typescript',
];

/**
 * Our modules find files from their own location (../../prisma, ../../.cache, ../package.json): each
 * keeps the URL it has in a file-per-module layout (dist/<same path>.js), so those paths hold inside
 * a bundle too. `bundleDir` is where the bundle being built lies, relative to dist/.
 */
function ownLocation(bundleDir: string): esbuild.Plugin {
  return {
    name: 'own-location',
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (!args.path.startsWith(SRC + path.sep)) return undefined;
        const source = await readFile(args.path, 'utf8');
        if (!source.includes('import.meta.url')) return { contents: source, loader: 'ts' };
        const own = path.relative(SRC, args.path).replace(/\.ts$/, '.js');
        const rel = `./${path.relative(bundleDir, own).split(path.sep).join('/')}`;
        return { contents: source.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`), loader: 'ts' };
      });
    },
  };
}

/**
 * Prisma's query compiler is a module holding its WebAssembly as one base64 string (2.3 MB): bundled,
 * V8 keeps that text twice for the life of the process (in the bundle's source and as the string the
 * module exported). Here the module reads it from the package's file when Prisma asks, once per
 * client, and nothing holds it after the WebAssembly is compiled (~4.5 MB less heap).
 */
const prismaWasmFromFile: esbuild.Plugin = {
  name: 'prisma-wasm-from-file',
  setup(build) {
    // A name ending in .cjs, in a namespace of its own: esbuild takes a .mjs file for ESM, whatever it holds.
    build.onResolve({ filter: /^@prisma\/client\/runtime\/query_compiler_\w+_bg\.\w+\.wasm-base64\.mjs$/ }, (args) => ({ path: `${args.path}.cjs`, namespace: 'prisma-wasm-from-file' }));
    build.onLoad({ filter: /.*/, namespace: 'prisma-wasm-from-file' }, (args) => {
      const read = `/"([^"]+)"/.exec(require('node:fs').readFileSync(require.resolve(${JSON.stringify(args.path.slice(0, -'.cjs'.length))}), 'latin1'))[1]`;
      // CommonJS with a getter: the bundle's import of it reads the property each time, holding nothing.
      return { contents: `Object.defineProperty(module.exports, 'wasm', { enumerable: true, get: () => ${read} });`, loader: 'js' };
    });
  },
};

await rm(outdir, { recursive: true, force: true });
// Worker threads start from their own files (where the module would be: dist/store/migrate-worker.js,
// dist/flows/code-worker.js), so each is a bundle of its own.
const bundles = [
  { entry: 'cli.ts', out: 'cli.js' },
  { entry: 'store/migrate-worker.ts', out: 'store/migrate-worker.js' },
  { entry: 'flows/code-worker.ts', out: 'flows/code-worker.js' },
];
const results = await Promise.all(
  bundles.map((b) =>
    esbuild.build({
      entryPoints: [path.join(SRC, b.entry)],
      outfile: path.join(outdir, b.out),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: EXTERNAL,
      plugins: [ownLocation(path.dirname(b.out)), prismaWasmFromFile],
      // Bundled CommonJS packages call require() (Node built-ins, JSON) and read __dirname.
      banner: {
        js: [
          "import { createRequire as __portico_createRequire } from 'node:module';",
          "import { fileURLToPath as __portico_fileURLToPath } from 'node:url';",
          'const require = __portico_createRequire(import.meta.url);',
          'const __filename = __portico_fileURLToPath(import.meta.url);',
          "const __dirname = __portico_fileURLToPath(new URL('.', import.meta.url));",
        ].join('\n'),
      },
      // Whitespace and comments out: V8 keeps every script's source in memory, and the comments'
      // non-ASCII characters made it a two-byte string (18 MB for 9.6 MB). Names stay, for stack traces.
      minifyWhitespace: true,
      minifySyntax: true,
      charset: 'ascii',
      legalComments: 'none',
      logLevel: 'warning',
      metafile: true,
    }),
  ),
);
const sizes = results.flatMap((r) => Object.entries(r.metafile.outputs)).map(([file, o]) => `${path.relative(ROOT, file)} ${(o.bytes / 1e6).toFixed(1)} MB`);
process.stderr.write(`build: ${sizes.join(', ')}\n`);
