// The `portico` command: serve the control plane, manage the model declaratively through the
// admin API (apply, diff, export), translate a model file offline, migrate, rotate the master key.
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CLI_COMMANDS, commandHelp, EXIT, plainError, UsageError, USAGE } from './cli-help.ts';
import { renderChanges, type ApplyResult } from './model/index.ts';
import { parseDocumentText } from './model/index.ts';
import { loadSettings, SettingsError } from './settings.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

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
    const code = (e as Error & { cause?: { code?: string } }).cause?.code;
    if (code === 'ECONNREFUSED') throw new Error(`nothing answers at ${base}: is Portico running? (set PORTICO_URL to its admin API)`);
    throw new Error(`cannot reach ${base}: ${(e as Error).cause ? String((e as Error & { cause: Error }).cause.message) : (e as Error).message}`);
  }
  if (!res.ok) {
    const p = (await res.json().catch(() => ({ status: res.status }))) as ApiProblem;
    if (res.status === 401) throw new Error(`${base} refused the token (401): set PORTICO_TOKEN to a valid admin token`);
    const lines = [`${res.status}: ${p.detail ?? res.statusText}`];
    for (const e of p.errors ?? []) lines.push(`  ${e.resource ? `${e.resource}: ` : ''}${e.field} ${e.message}`);
    throw new Error(lines.join('\n'));
  }
  return res;
}

function readDocument(file: string | undefined, command: string): string {
  if (!file) throw new UsageError('-f FILE is required', command);
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  parseDocumentText(text); // syntax errors are reported locally, with the line
  return text;
}

type Values = Record<string, string | boolean | string[] | undefined> & { _: string[] };

/** Parses one command's options (and, for protoset, its files); -h/--help is every command's. */
function options(command: string, args: string[]): Values {
  const opts: ParseArgsConfig['options'] = { ...CLI_COMMANDS[command]!.options, help: { type: 'boolean', short: 'h' } };
  try {
    const parsed = parseArgs({ args, options: opts, allowPositionals: command === 'protoset' || command === 'partner-token' || command === 'purge' });
    return { ...(parsed.values as Record<string, string | boolean | string[] | undefined>), _: parsed.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, '').replace(/^Unknown option/, 'unknown option'), command);
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  // Nothing starts without an explicit command: bare `portico` only explains itself.
  if (command === undefined || command === '--help' || command === '-h') return void process.stdout.write(`${USAGE}\n`);
  if (command === '--version' || command === '-V' || command === 'version') return void process.stdout.write(`portico ${VERSION}\n`);
  if (command === 'help') {
    const about = rest[0];
    if (about && !CLI_COMMANDS[about]) throw new UsageError(`unknown command '${about}'`);
    return void process.stdout.write(`${about ? commandHelp(about) : USAGE}\n`);
  }
  if (!CLI_COMMANDS[command]) throw new UsageError(command.startsWith('-') ? `unknown option '${command}' (options go after the command)` : `unknown command '${command}'`);
  if (command === 'certs') return certs(rest);
  const values = options(command, rest);
  if (values.help) return void process.stdout.write(`${commandHelp(command)}\n`);
  const str = (name: string) => values[name] as string | undefined;
  const tagQuery = str('tag') ? `tag=${encodeURIComponent(str('tag')!)}` : '';

  switch (command) {
    case 'serve': {
      const { serve } = await import('./serve.ts');
      await serve(loadSettings(), str('apply'), values.prune === true);
      return;
    }
    case 'demo': {
      const { runDemo } = await import('./demo/index.ts');
      await runDemo(loadSettings(), { reset: values.reset === true });
      return;
    }
    case 'apply':
    case 'diff': {
      const text = readDocument(str('file'), command);
      const dry = command === 'diff' || values['dry-run'] === true;
      const q = [tagQuery, dry ? 'dryRun=true' : '', values.prune ? 'prune=true' : ''].filter(Boolean).join('&');
      const res = await api('POST', `/api/v1/config${q ? `?${q}` : ''}`, text, 'application/yaml').catch((e: Error) => {
        // With --prune the file is the whole model (or its tag slice): a file of one product that names
        // a gateway group it does not hold refers to something the prune would delete.
        if (values.prune && /which does not exist/.test(e.message))
          e.message += `\n--prune deletes what the file leaves out, so what it refers to must be in it too (export the model, edit that, or apply a --tag slice)`;
        throw e;
      });
      const result = (await res.json()) as ApplyResult;
      process.stdout.write(`${renderChanges(result)}\n`);
      // Like `terraform plan -detailed-exitcode`: 2 = differences found, distinct from 1 = error.
      if (command === 'diff' && result.changed) process.exitCode = EXIT.differences;
      return;
    }
    case 'export': {
      const format = str('format') ?? 'yaml';
      if (format !== 'yaml' && format !== 'json') throw new UsageError('--format must be yaml or json', command);
      const q = [tagQuery, `format=${format}`].filter(Boolean).join('&');
      const res = await api('GET', `/api/v1/config?${q}`);
      process.stdout.write(format === 'json' ? `${JSON.stringify(await res.json(), null, 2)}\n` : await res.text());
      return;
    }
    case 'purge': {
      const [target, ...extra] = values._;
      if (extra.length || (target === undefined) === (str('prefix') === undefined)) throw new UsageError('give either PRODUCT/ROUTE or --prefix P', command);
      const [product, route, ...more] = (target ?? '').split('/');
      if (target !== undefined && (!product || !route || more.length)) throw new UsageError('PRODUCT/ROUTE names one route, e.g. shop/catalog', command);
      const res =
        target !== undefined
          ? await api('POST', `/api/v1/products/${encodeURIComponent(product!)}/routes/${encodeURIComponent(route!)}/cache/purge`)
          : await api('POST', '/api/v1/cache/purge', JSON.stringify({ prefix: str('prefix') }), 'application/json');
      const { purged } = (await res.json()) as { purged: Array<{ product: string; route: string; generation: number }> };
      process.stdout.write(`${purged.map((p) => `purged ${p.product}/${p.route} (generation ${p.generation})`).join('\n')}\n`);
      return;
    }
    case 'translate': {
      // Offline: the same translation the server serves, from a file, with no database.
      const { parseModelDocument, validateModel, KINDS } = await import('./model/index.ts');
      const { translate, validateTranslation } = await import('./translate/index.ts');
      const parsed = parseModelDocument(parseDocumentText(readDocument(str('file'), command)), {
        hashApiKey: () => ({ prefix: 'offline0', hash: 'offline'.padEnd(43, '0') }),
      });
      const errors = [...parsed.errors, ...(parsed.errors.length ? [] : validateModel(parsed.model).map((e) => ({ field: `${KINDS[e.kind].singular} '${e.key}' ${e.field}`, message: e.message })))];
      if (!errors.length) errors.push(...validateTranslation(parsed.model).map((e) => ({ field: `${KINDS[e.kind].singular} '${e.key}' ${e.field}`, message: e.message })));
      if (errors.length) throw new Error(`the model is invalid:\n${errors.map((e) => `  ${e.field} ${e.message}`).join('\n')}`);
      const settings = loadSettings();
      const flows = { address: settings.flowsAddress ?? `${settings.flowsListenHost}:${settings.flowsListenPort}`, stepAddress: settings.flowsStepAddress };
      const groups = translate(parsed.model, { calloutAddress: str('callout-address') ?? settings.calloutAddress ?? '127.0.0.1:18000', flows });
      const group = str('group');
      if (group && !groups.has(group)) throw new UsageError(`no gateway group '${group}' in the file`, command);
      const out = group ? groups.get(group) : Object.fromEntries(groups);
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return;
    }
    case 'partner-token': {
      const [action, partner, name, ...extra] = values._;
      if (!partner || extra.length || !['create', 'list', 'revoke'].includes(action ?? '')) throw new UsageError('want create|list|revoke PARTNER [NAME]', command);
      const base = `/api/v1/partners/${encodeURIComponent(partner)}/portal-tokens`;
      if (action === 'list') {
        const { items } = (await (await api('GET', base)).json()) as { items: Array<{ name: string; expiresAt?: string; createdBy: string }> };
        for (const t of items) process.stdout.write(`${t.name}\t${t.expiresAt ?? 'no expiry'}\tcreated by ${t.createdBy}\n`);
        return;
      }
      if (!name) throw new UsageError(`${action} needs the token's NAME`, command);
      if (action === 'revoke') {
        await api('DELETE', `${base}/${encodeURIComponent(name)}`);
        process.stdout.write(`revoked ${name}\n`);
        return;
      }
      const body = { name, ...(str('expires-at') ? { expiresAt: str('expires-at') } : {}), ...(str('description') ? { description: str('description') } : {}) };
      const { token } = (await (await api('POST', base, JSON.stringify(body), 'application/json')).json()) as { token: string };
      process.stdout.write(`${token}\n`);
      process.stderr.write(`partner token ${name} for ${partner}: shown only now; give it to the partner to sign in to the portal\n`);
      return;
    }
    case 'protoset': {
      const { descriptorSetFromRoot, loadProtoSources } = await import('./model/index.ts');
      if (!values._.length) throw new UsageError('name one or more .proto files', command);
      process.stdout.write(`${descriptorSetFromRoot(loadProtoSources(values._, (values.include as string[] | undefined) ?? []))}\n`);
      return;
    }
    case 'migrate': {
      const settings = loadSettings();
      const { openDatabase, loadKeyRing } = await import('./store/index.ts');
      const db = await openDatabase({ ...settings, migrate: !values.status, keys: loadKeyRing(settings) });
      process.stdout.write(`${JSON.stringify(db.migrations, null, 2)}\n`);
      await db.close();
      return;
    }
    case 'rotate-master-key': {
      const settings = loadSettings();
      const { openDatabase, loadKeyRing } = await import('./store/index.ts');
      const db = await openDatabase({ ...settings, keys: loadKeyRing(settings) });
      const n = await db.store.resealSecrets();
      process.stdout.write(`re-sealed ${n} secret(s) under master key ${loadKeyRing(settings).current.id}\n`);
      await db.close();
      return;
    }
  }
}

async function certs(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  const { CERTS_USAGE, CertsUsageError, runCerts } = await import('./certs.ts');
  const values = options('certs', rest);
  if (values.help || !action || action === 'help' || action === '--help' || action === '-h') {
    process.stdout.write(`usage: ${CERTS_USAGE}\n`);
    return;
  }
  const days = values.days === undefined ? undefined : Number(values.days);
  if (days !== undefined && !(Number.isInteger(days) && days > 0 && days <= 36500)) throw new UsageError('--days must be a whole number of days (1 to 36500)', 'certs');
  try {
    const lines = await runCerts({
      action,
      ...(values.out ? { out: values.out as string } : {}),
      ...(values.ca ? { ca: values.ca as string } : {}),
      hosts: (values.host as string[] | undefined) ?? [],
      groups: (values.group as string[] | undefined) ?? [],
      ...(values.name ? { name: values.name as string } : {}),
      ...(days !== undefined ? { days } : {}),
      trustDomain: (values['trust-domain'] as string | undefined) ?? (process.env.PORTICO_TRUST_DOMAIN || 'portico'),
      ifMissing: values['if-missing'] === true,
      force: values.force === true,
    });
    process.stdout.write(`${lines.join('\n')}\n`);
  } catch (e) {
    if (e instanceof CertsUsageError) throw new UsageError(e.message, 'certs');
    throw e;
  }
}

main(process.argv.slice(2)).catch((e: Error) => {
  const message = e instanceof SettingsError ? `configuration: ${e.message}` : plainError(e);
  process.stderr.write(`portico: ${message}\n`);
  process.exit(EXIT.error);
});
