// The Dockerfile and .dockerignore, checked without a Docker engine: multi-stage, a slim runtime
// running as a numeric non-root user, a HEALTHCHECK whose script exists, COPY sources that exist
// and that .dockerignore lets through, runtime settings that loadSettings accepts, production
// packages only for what src/ imports — and the runtime stage's file set, laid out as the image
// would have it, runs `portico serve` (ENTRYPOINT + CMD) to readiness.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadSettings } from '../../src/settings.ts';
import { freePort, serveListenEnv } from '../support/components.ts';
import { exists, repoPath, startPorticoProcess, stopWithCode } from './support.ts';

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** Dockerfile → stages of instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    assert.ok(m, `instruction: ${line}`);
    const op = m![1]!.toUpperCase();
    const rest = m![2]!.trim();
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)!;
      stages.push({ from: f[1]!.replace(/\$\{(\w+)\}/g, (_, n: string) => args[n] ?? ''), ...(f[2] ? { name: f[2] } : {}), instructions: [] });
    } else if (stages.length === 0) {
      assert.equal(op, 'ARG', 'only ARG before the first FROM');
      const [k, v] = rest.split('=');
      args[k!] = v ?? '';
    } else {
      stages[stages.length - 1]!.instructions.push({ op, args: rest });
    }
  }
  return { args, stages };
}

const dockerfile = parseDockerfile(readFileSync(repoPath('Dockerfile'), 'utf8'));
const runtime = dockerfile.stages[dockerfile.stages.length - 1]!;
const all = (stage: Stage, op: string) => stage.instructions.filter((i) => i.op === op);
const one = (stage: Stage, op: string) => {
  const list = all(stage, op);
  assert.equal(list.length, 1, `one ${op} in the final stage`);
  return list[0]!.args;
};
const json = (s: string) => JSON.parse(s) as string[];
/** ENV instructions of a stage as a map (KEY=VALUE pairs). */
const envOf = (stage: Stage) => Object.fromEntries(all(stage, 'ENV').flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])));

/** .dockerignore as Docker applies it: last matching pattern wins, `!` re-includes. */
function dockerignored(file: string): boolean {
  const patterns = readFileSync(repoPath('.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const toRegex = (p: string) =>
    new RegExp(
      `^${p
        .replace(/\/$/, '')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '(?:.*/)?')
        .replace(/\*/g, '[^/]*')}(?:/.*)?$`,
    );
  let ignored = false;
  for (const p of patterns) {
    const negate = p.startsWith('!');
    if (toRegex(negate ? p.slice(1) : p).test(file)) ignored = !negate;
  }
  return ignored;
}

/** `npm run build` (scripts/build.ts: the esbuild bundle) into `outDir`, as the builder stage makes /app/dist. */
function build(outDir: string): void {
  const b = spawnSync(process.execPath, ['--import', 'tsx', repoPath('scripts/build.ts'), '--outdir', outDir], { encoding: 'utf8', cwd: repoPath() });
  assert.equal(b.status, 0, `build: ${b.stdout}${b.stderr}`);
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(repoPath(dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...filesUnder(rel));
    else out.push(rel);
  }
  return out;
}

describe('Dockerfile', () => {
  it('builds in stages: a builder with every package and the Prisma client, a slim runtime', () => {
    assert.ok(dockerfile.stages.length >= 2, 'multi-stage');
    const builder = dockerfile.stages.find((s) => s.name === 'builder');
    assert.ok(builder, 'a builder stage');
    const runs = all(builder!, 'RUN')
      .map((r) => r.args)
      .join('\n');
    assert.match(runs, /npm ci\b/);
    assert.match(runs, /prisma generate/);
    assert.match(runs, /npm prune --omit=dev/);
    assert.match(runtime.from, /^node:20(\.\d+)*-[a-z]+-slim$/, 'a slim Node 20 runtime');
    assert.equal(runtime.from, dockerfile.stages.find((s) => s.name === 'builder')!.from, 'same base: native packages built in the builder run in the runtime');
    // The Prisma client is generated where the schema says and copied from the builder.
    const output = /output\s*=\s*"([^"]+)"/.exec(readFileSync(repoPath('prisma/schema.prisma'), 'utf8'))![1]!;
    const generated = path.relative(repoPath(), path.resolve(repoPath('prisma'), output));
    assert.ok(
      all(runtime, 'COPY').some((c) => c.args === `--from=builder /app/${generated} ./${generated}`),
      `runtime copies /app/${generated} from the builder`,
    );
    assert.ok(all(runtime, 'COPY').some((c) => c.args === '--from=builder /app/node_modules ./node_modules'));
    assert.equal(
      all(runtime, 'RUN').some((r) => /npm (ci|install)/.test(r.args)),
      false,
      'no package install in the runtime stage',
    );
  });

  it('runs as a numeric non-root user, with a health check and the portico entry point', () => {
    const user = one(runtime, 'USER');
    assert.match(user, /^\d+(:\d+)?$/, 'numeric (Kubernetes runAsNonRoot can check it)');
    assert.notEqual(Number(user.split(':')[0]), 0, 'not root');
    const hc = one(runtime, 'HEALTHCHECK');
    const cmd = /CMD\s+(\[.*\])$/.exec(hc);
    assert.ok(cmd, 'HEALTHCHECK CMD [exec form]');
    const probe = json(cmd![1]!);
    assert.equal(probe[0], 'node');
    assert.ok(probe[1]!.startsWith('/app/') && exists(probe[1]!.slice('/app/'.length)), `${probe[1]} exists in the repository`);
    assert.match(hc, /--interval=\d+s/);
    assert.match(hc, /--start-period=\d+s/);
    const entry = json(one(runtime, 'ENTRYPOINT'));
    assert.deepEqual(entry, ['/app/bin/portico']);
    assert.ok(statSync(repoPath('bin/portico')).mode & 0o111, 'bin/portico is executable');
    assert.deepEqual(json(one(runtime, 'CMD')), ['serve']);
    assert.match(readFileSync(repoPath('src/cli.ts'), 'utf8'), /case 'serve':/);
  });

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    for (const stage of dockerfile.stages) {
      for (const c of all(stage, 'COPY')) {
        const parts = c.args.split(/\s+/);
        const from = parts.find((p) => p.startsWith('--from='));
        const paths = parts.filter((p) => !p.startsWith('--'));
        const sources = paths.slice(0, -1);
        if (from) {
          assert.ok(
            dockerfile.stages.some((s) => s.name === from.slice('--from='.length)),
            `${c.args}: the stage exists`,
          );
          continue;
        }
        for (const src of sources) {
          assert.ok(exists(src), `COPY ${src}: exists`);
          const files = statSync(repoPath(src)).isDirectory() ? filesUnder(src) : [src];
          const sent = files.filter((f) => !dockerignored(f));
          assert.ok(sent.length > 0, `COPY ${src}: .dockerignore lets it through`);
        }
      }
    }
    // And keeps out what must not be in the image or the context.
    for (const f of [
      'node_modules/tsx/package.json',
      '.git/HEAD',
      'src/store/generated/client.ts',
      'test/e2e/ha-replicas.test.ts',
      '.data/portico.key',
      'helm/portico/values.yaml',
      'bench/authz.ts',
    ]) {
      assert.equal(dockerignored(f), true, `${f} stays out of the build context`);
    }
    for (const f of ['src/main.ts', 'bin/portico', 'prisma/schema.prisma', 'package-lock.json', 'deploy/docker/healthcheck.mjs', 'deploy/docker/demo-upstreams.ts']) {
      assert.equal(dockerignored(f), false, `${f} is in the build context`);
    }
  });

  it('sets listeners loadSettings accepts, on the ports it exposes', () => {
    const env = envOf(runtime);
    const settings = loadSettings(env);
    assert.equal(settings.adminHost, '0.0.0.0');
    assert.equal(settings.grpcHost, '0.0.0.0');
    assert.equal(settings.calloutListenHost, '0.0.0.0');
    // The gRPC ports are mTLS by default: the image names the files a mounted TLS Secret provides.
    assert.deepEqual(settings.tls, { certFile: '/etc/portico/tls/tls.crt', keyFile: '/etc/portico/tls/tls.key', caFile: '/etc/portico/tls/ca.crt' });
    assert.equal(settings.grpcInsecure, false);
    const exposed = one(runtime, 'EXPOSE').split(/\s+/).map(Number).sort();
    assert.deepEqual(exposed, [settings.adminPort, settings.grpcPort, settings.calloutListenPort].sort());
  });

  it('needs only production packages at run time (npm prune --omit=dev keeps what src/ imports)', () => {
    const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const missing = new Set<string>();
    const files = [...filesUnder('src'), ...filesUnder('deploy/docker'), 'prisma.config.ts'].filter((f) => /\.(ts|mjs)$/.test(f) && !f.startsWith('src/store/generated/'));
    for (const f of files) {
      if (f === 'prisma.config.ts') continue; // read by the Prisma CLI only, never by the server
      for (const m of readFileSync(repoPath(f), 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)\s(?:type\s)?[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/g)) {
        const spec = (m[1] ?? m[2])!;
        if (spec.startsWith('.') || builtins.has(spec) || /^(?:import|export)\s+type\s/.test(m[0].trim())) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!pkg.dependencies[name]) missing.add(`${name} (${f})`);
      }
    }
    assert.deepEqual([...missing], [], 'imported at run time but not a production dependency');
  });

  it('compiles the sources in the builder and runs the build in production', () => {
    const builder = dockerfile.stages.find((s) => s.name === 'builder')!;
    assert.ok(
      all(builder, 'RUN').some((r) => /npm run build\b/.test(r.args)),
      'the builder runs npm run build',
    );
    assert.ok(
      all(runtime, 'COPY').some((c) => c.args === '--from=builder /app/dist ./dist'),
      'the runtime copies dist from the builder',
    );
    assert.equal(envOf(runtime).NODE_ENV, 'production', 'bin/portico runs dist/ when NODE_ENV=production');
  });

  it("the runtime stage's files alone run `portico serve` to readiness (ENTRYPOINT + CMD)", async (t) => {
    // Lay out /app as the runtime stage's COPY instructions do (node_modules linked, not copied).
    const app = mkdtempSync(path.join(os.tmpdir(), 'portico-image-'));
    t.after(() => rmSync(app, { recursive: true, force: true }));
    for (const c of all(runtime, 'COPY')) {
      const parts = c.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      const dest = parts[parts.length - 1]!;
      for (const raw of parts.slice(0, -1)) {
        // The builder's /app is the repository plus what it generated.
        const src = raw.startsWith('/app/') ? raw.slice('/app/'.length) : raw;
        const target = dest.endsWith('/') || parts.length > 2 ? path.join(app, dest, path.basename(src)) : path.join(app, dest);
        mkdirSync(path.dirname(target), { recursive: true });
        if (src.endsWith('node_modules')) symlinkSync(repoPath('node_modules'), target);
        else if (src === 'dist') build(target);
        else cpSync(repoPath(src), target, { recursive: true });
      }
    }
    assert.ok(exists('src/store/generated/client.ts'), 'the Prisma client is generated (scripts/setup.sh)');
    const env = envOf(runtime);
    // The TLS Secret the image expects at /etc/portico/tls, made with the image's own `portico certs`.
    const tls = path.join(app, 'tls');
    const made = spawnSync(path.join(app, 'bin/portico'), ['certs', 'dev', '--out', tls, '--host', 'localhost', '--group', 'edge'], { encoding: 'utf8', cwd: app });
    assert.equal(made.status, 0, made.stderr);
    for (const k of ['PORTICO_TLS_CERT_FILE', 'PORTICO_TLS_KEY_FILE', 'PORTICO_TLS_CLIENT_CA_FILE']) env[k] = env[k]!.replace('/etc/portico/tls', path.join(tls, 'control-plane'));
    const admin = await freePort();
    const proc = await startPorticoProcess(
      json(one(runtime, 'CMD')),
      {
        ...env,
        ...(await serveListenEnv()),
        PORTICO_ADMIN_ADDR: `127.0.0.1:${admin}`,
        PORTICO_GRPC_ADDR: `127.0.0.1:${await freePort()}`,
        PORTICO_CALLOUT_LISTEN_ADDR: `127.0.0.1:${await freePort()}`,
        // Not the default 18002: another checkout's server may hold it on this host.
        PORTICO_FLOWS_LISTEN_ADDR: `127.0.0.1:${await freePort()}`,
        PORTICO_DATA_DIR: 'memory://',
        PORTICO_ADMIN_TOKEN: 'image-test-token',
        PORTICO_LOG_LEVEL: 'warn',
      },
      `http://127.0.0.1:${admin}`,
      app,
    );
    t.after(() => proc.stop('SIGKILL'));
    assert.equal(proc.child.spawnargs[0], path.join(app, 'bin/portico'));
    // bin/portico exec'd node on the compiled build, with --expose-gc (serve collects the start's
    // garbage once ready), V8's default young generation (role all answers requests: test/unit/cli.test.ts), and no tsx loader in
    // the serving process.
    const argv = readFileSync(`/proc/${proc.child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    assert.deepEqual(argv.slice(1), ['--expose-gc', path.join(app, 'dist/cli.js'), 'serve'], `serving process: ${argv.join(' ')}`);
    // Code steps run on worker threads, which the compiled build starts on dist/flows/code-worker.js.
    const tried = await fetch(`http://127.0.0.1:${admin}/api/v1/flows/try`, {
      method: 'POST',
      headers: { authorization: 'Bearer image-test-token', 'content-type': 'application/json' },
      body: JSON.stringify({ flow: { steps: [{ name: 'c', code: { source: 'return input.request.method + " " + 6 * 7', timeMs: 1000 } }] } }),
    });
    const answer = (await tried.json()) as { status: number; body: string };
    assert.equal(tried.status, 200, JSON.stringify(answer));
    assert.deepEqual([answer.status, answer.body], [200, 'GET 42'], JSON.stringify(answer));
    // The image carries the flows Wasm filter where the build looks for it: a flow Envoy runs is
    // accepted (without the module it is a 422 at flow.execution).
    const envoyFlow = {
      portico: 'v1',
      gatewayGroups: [{ name: 'edge', listeners: [{ name: 'http', port: 10000 }] }],
      services: [{ name: 'users', endpoints: [{ host: '127.0.0.1', port: 3001 }] }],
      products: [
        {
          name: 'home',
          gatewayGroups: ['edge'],
          auth: { accept: ['none'] },
          routes: [
            {
              name: 'home',
              match: { path: { type: 'exact', value: '/home' }, methods: ['GET'] },
              flow: {
                execution: 'envoy',
                steps: [
                  { name: 'user', call: { service: 'users', path: '/users/{request.query.user}' } },
                  { name: 'reply', respond: { body: '{"user": steps.user.body}' } },
                ],
              },
            },
          ],
        },
      ],
    };
    const applied = await fetch(`http://127.0.0.1:${admin}/api/v1/config?dryRun=true`, {
      method: 'POST',
      headers: { authorization: 'Bearer image-test-token', 'content-type': 'application/json' },
      body: JSON.stringify(envoyFlow),
    });
    assert.equal(applied.status, 200, await applied.text());
    assert.equal(await stopWithCode(proc, 'SIGTERM'), 0, proc.output().slice(-2000));
  });
});
