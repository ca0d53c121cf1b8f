// The `portico` command: serve the control plane, manage the model declaratively through the
// admin API (apply, diff, export), translate a model file offline, migrate, rotate the master key.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { renderChanges, type ApplyResult } from './model/index.ts';
import { parseDocumentText } from './model/index.ts';
import { loadSettings, SettingsError } from './settings.ts';

const USAGE = `usage: portico <command> [options]

commands:
  serve [--apply FILE]            run the control plane (admin API, xDS, callouts); optionally apply a document at start
  demo                            the quick start: control plane, example model, demo upstreams and an Envoy on :10000
  apply -f FILE [--tag T] [--dry-run]
                                  make the model exactly what FILE describes (all-or-nothing)
  diff -f FILE [--tag T]          show what apply would change
  translate -f FILE [--group G] [--callout-address HOST:PORT]
                                  print the Envoy resources a model file produces (offline)
  export [--tag T] [--format yaml|json]
                                  print the model as a document
  migrate [--status]              apply pending database migrations (or only report them)
  rotate-master-key               re-seal stored secrets under PORTICO_MASTER_KEY
                                  (the old key goes in PORTICO_PREVIOUS_MASTER_KEYS)
  protoset FILE.proto… [-I DIR]…  print the FileDescriptorSet (base64) of .proto files, google.api.http
                                  annotations included, for a gRPC service's grpc.descriptorSet
  certs ca|control-plane|node|dev create a CA and certificates for the mTLS channels between
                                  Envoys and the control plane (\`portico certs --help\`)

apply, diff and export talk to a running server: PORTICO_URL (default http://127.0.0.1:8081)
and PORTICO_TOKEN (an admin token). Everything else is configured by environment variables;
see the README.`;

class UsageError extends Error {}

function fail(message: string, code = 1): never {
  process.stderr.write(`portico: ${message}\n`);
  process.exit(code);
}

interface ApiProblem {
  status: number;
  detail?: string;
  errors?: Array<{ field: string; message: string; resource?: string }>;
}

async function api(method: string, path: string, body?: string, contentType?: string): Promise<Response> {
  const base = (process.env.PORTICO_URL ?? 'http://127.0.0.1:8081').replace(/\/+$/, '');
  const token = process.env.PORTICO_TOKEN;
  if (!token) throw new UsageError('set PORTICO_TOKEN to an admin token');
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(contentType ? { 'content-type': contentType } : {}), accept: 'application/json, application/yaml' },
      ...(body !== undefined ? { body } : {}),
    });
  } catch (e) {
    throw new Error(`cannot reach ${base}: ${(e as Error).cause ? String((e as Error & { cause: Error }).cause.message) : (e as Error).message}`);
  }
  if (!res.ok) {
    const p = (await res.json().catch(() => ({ status: res.status }))) as ApiProblem;
    const lines = [`${res.status}: ${p.detail ?? res.statusText}`];
    for (const e of p.errors ?? []) lines.push(`  ${e.resource ? `${e.resource}: ` : ''}${e.field} ${e.message}`);
    throw new Error(lines.join('\n'));
  }
  return res;
}

function readDocument(file: string | undefined): string {
  if (!file) throw new UsageError('-f FILE is required');
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  parseDocumentText(text); // syntax errors are reported locally, with the line
  return text;
}

async function main(argv: string[]): Promise<void> {
  const [command = 'serve', ...rest] = argv;
  if (command === 'certs') return certs(rest);
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      file: { type: 'string', short: 'f' },
      tag: { type: 'string' },
      'dry-run': { type: 'boolean' },
      format: { type: 'string' },
      group: { type: 'string' },
      apply: { type: 'string' },
      status: { type: 'boolean' },
      'callout-address': { type: 'string' },
      include: { type: 'string', short: 'I', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: command === 'protoset',
  });
  if (values.help || command === 'help' || command === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const tagQuery = values.tag ? `tag=${encodeURIComponent(values.tag)}` : '';

  switch (command) {
    case 'serve': {
      const { serve } = await import('./serve.ts');
      await serve(loadSettings(), values.apply);
      return;
    }
    case 'demo': {
      const { runDemo } = await import('./demo/index.ts');
      await runDemo(loadSettings());
      return;
    }
    case 'apply':
    case 'diff': {
      const text = readDocument(values.file);
      const dry = command === 'diff' || values['dry-run'] === true;
      const q = [tagQuery, dry ? 'dryRun=true' : ''].filter(Boolean).join('&');
      const res = await api('POST', `/api/v1/config${q ? `?${q}` : ''}`, text, 'application/yaml');
      const result = (await res.json()) as ApplyResult;
      process.stdout.write(`${renderChanges(result)}\n`);
      if (command === 'diff' && result.changed) process.exitCode = 2; // like diff(1): 2 = differences
      return;
    }
    case 'export': {
      const format = values.format ?? 'yaml';
      if (format !== 'yaml' && format !== 'json') throw new UsageError('--format must be yaml or json');
      const q = [tagQuery, `format=${format}`].filter(Boolean).join('&');
      const res = await api('GET', `/api/v1/config?${q}`);
      process.stdout.write(format === 'json' ? `${JSON.stringify(await res.json(), null, 2)}\n` : await res.text());
      return;
    }
    case 'translate': {
      // Offline: the same translation the server serves, from a file, with no database.
      const { parseModelDocument } = await import('./model/index.ts');
      const { validateModel } = await import('./model/index.ts');
      const { translate, validateTranslation } = await import('./translate/index.ts');
      const { KINDS } = await import('./model/index.ts');
      const parsed = parseModelDocument(parseDocumentText(readDocument(values.file)), {
        hashApiKey: () => ({ prefix: 'offline0', hash: 'offline'.padEnd(43, '0') }),
      });
      const errors = [...parsed.errors, ...(parsed.errors.length ? [] : validateModel(parsed.model).map((e) => ({ field: `${KINDS[e.kind].singular} '${e.key}' ${e.field}`, message: e.message })))];
      if (!errors.length) errors.push(...validateTranslation(parsed.model).map((e) => ({ field: `${KINDS[e.kind].singular} '${e.key}' ${e.field}`, message: e.message })));
      if (errors.length) throw new Error(`the model is invalid:\n${errors.map((e) => `  ${e.field} ${e.message}`).join('\n')}`);
      const groups = translate(parsed.model, { calloutAddress: values['callout-address'] ?? loadSettings().calloutAddress ?? '127.0.0.1:18000' });
      if (values.group && !groups.has(values.group)) throw new UsageError(`no gateway group '${values.group}' in the file`);
      const out = values.group ? groups.get(values.group) : Object.fromEntries(groups);
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return;
    }
    case 'protoset': {
      const { descriptorSetFromRoot, loadProtoSources } = await import('./model/index.ts');
      if (!positionals.length) throw new UsageError('name one or more .proto files');
      process.stdout.write(`${descriptorSetFromRoot(loadProtoSources(positionals, values.include ?? []))}\n`);
      return;
    }
    case 'migrate': {
      const settings = loadSettings();
      const { openDatabase } = await import('./store/index.ts');
      const { loadKeyRing } = await import('./store/index.ts');
      const db = await openDatabase({ ...settings, migrate: !values.status, keys: loadKeyRing(settings) }).catch((e: Error) => fail(e.message));
      process.stdout.write(`${JSON.stringify(db.migrations, null, 2)}\n`);
      await db.close();
      return;
    }
    case 'rotate-master-key': {
      const settings = loadSettings();
      const { openDatabase } = await import('./store/index.ts');
      const { loadKeyRing } = await import('./store/index.ts');
      const db = await openDatabase({ ...settings, keys: loadKeyRing(settings) });
      const n = await db.store.resealSecrets();
      process.stdout.write(`re-sealed ${n} secret(s) under master key ${loadKeyRing(settings).current.id}\n`);
      await db.close();
      return;
    }
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

async function certs(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  const { CERTS_USAGE, CertsUsageError, runCerts } = await import('./certs.ts');
  const { values } = parseArgs({
    args: rest,
    options: {
      out: { type: 'string' },
      ca: { type: 'string' },
      host: { type: 'string', multiple: true },
      group: { type: 'string', multiple: true },
      name: { type: 'string' },
      days: { type: 'string' },
      'trust-domain': { type: 'string' },
      'if-missing': { type: 'boolean' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: false,
  });
  if (values.help || !action || action === 'help' || action === '--help') {
    process.stdout.write(`usage: ${CERTS_USAGE}\n`);
    return;
  }
  const days = values.days === undefined ? undefined : Number(values.days);
  if (days !== undefined && !(Number.isInteger(days) && days > 0 && days <= 36500)) throw new UsageError('--days must be a whole number of days (1 to 36500)');
  try {
    const lines = await runCerts({
      action,
      ...(values.out ? { out: values.out } : {}),
      ...(values.ca ? { ca: values.ca } : {}),
      hosts: values.host ?? [],
      groups: values.group ?? [],
      ...(values.name ? { name: values.name } : {}),
      ...(days !== undefined ? { days } : {}),
      trustDomain: values['trust-domain'] ?? (process.env.PORTICO_TRUST_DOMAIN || 'portico'),
      ifMissing: values['if-missing'] === true,
      force: values.force === true,
    });
    process.stdout.write(`${lines.join('\n')}\n`);
  } catch (e) {
    if (e instanceof CertsUsageError) throw new UsageError(`${e.message}\n\nusage: ${CERTS_USAGE}`);
    throw e;
  }
}

main(process.argv.slice(2)).catch((e: Error) => {
  if (e instanceof UsageError) fail(`${e.message}\n\n${USAGE}`, 2);
  if (e instanceof SettingsError) fail(`configuration: ${e.message}`, 2);
  if ((e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) fail(`${e.message}\n\n${USAGE}`, 2);
  fail(e.message);
});
