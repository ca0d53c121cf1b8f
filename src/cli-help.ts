// What the `portico` command says about itself: its commands and their options, the help texts,
// the exit codes, and how an error becomes one plain line for the terminal.
import type { ParseArgsConfig } from 'node:util';

/** Exit codes, documented in the help and the README. */
export const EXIT = {
  ok: 0,
  /** Anything went wrong: bad usage, bad configuration, invalid document, server unreachable or refusing. */
  error: 1,
  /** `portico diff` only: the file differs from the model (what apply would change). */
  differences: 2,
} as const;

/** A mistake in how the command was called; the message names it, the help of the command follows. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

interface CommandSpec {
  /** The synopsis after `portico `. */
  usage: string;
  summary: string;
  /** More lines for `portico <command> --help`. */
  details?: string;
  options: NonNullable<ParseArgsConfig['options']>;
}

const FILE = { file: { type: 'string', short: 'f' } } as const;
const SERVER_NOTE = 'Talks to a running Portico: PORTICO_URL (default http://127.0.0.1:8081) and PORTICO_TOKEN (an admin token).';

export const CLI_COMMANDS: Record<string, CommandSpec> = {
  serve: {
    usage: 'serve [--apply FILE [--prune]]',
    summary: 'run the control plane (admin API, xDS, callouts)',
    details:
      'Configured by environment variables (README, "Configuration reference"); the defaults run embedded\n(PGlite in .data/). --apply FILE applies a document before serving; like `apply`, it keeps what the\nfile leaves out unless --prune is given.',
    options: { apply: { type: 'string' }, prune: { type: 'boolean' } },
  },
  demo: {
    usage: 'demo [--reset]',
    summary: 'the quick start: control plane, example model, demo upstreams and an Envoy on :10000',
    details:
      'Keeps its model and credentials in PORTICO_DATA_DIR (.data/) across restarts: the admin token and\nAPI key are written to .data/demo-credentials.env (mode 0600, `source` it) and shown again on every\nstart. Envoy logs go to .data/envoy-access.log (requests) and .data/envoy.log. --reset deletes the demo data and starts over.',
    options: { reset: { type: 'boolean' } },
  },
  apply: {
    usage: 'apply -f FILE [--prune] [--tag T] [--dry-run]',
    summary: "create or replace the file's resources (all-or-nothing)",
    details: `Nothing the file leaves out is deleted unless --prune is given; then the model (or, with --tag, the
slice carrying tag T) becomes exactly the file. FILE may be - for stdin. ${SERVER_NOTE}`,
    options: { ...FILE, tag: { type: 'string' }, prune: { type: 'boolean' }, 'dry-run': { type: 'boolean' } },
  },
  diff: {
    usage: 'diff -f FILE [--prune] [--tag T]',
    summary: 'show what apply (with the same options) would change',
    details: `Exit status: 0 no differences, ${EXIT.differences} differences found, ${EXIT.error} error. Without --prune it also lists what the
file leaves out (kept; apply --prune would delete it). ${SERVER_NOTE}`,
    options: { ...FILE, tag: { type: 'string' }, prune: { type: 'boolean' } },
  },
  export: {
    usage: 'export [--tag T] [--format yaml|json]',
    summary: 'print the model as a document (secrets left out)',
    details: SERVER_NOTE,
    options: { tag: { type: 'string' }, format: { type: 'string' } },
  },
  purge: {
    usage: 'purge PRODUCT/ROUTE | --prefix P',
    summary: "purge cached responses on every Envoy: one route's, or every cached route whose product/route starts with P",
    details: SERVER_NOTE,
    options: { prefix: { type: 'string' } },
  },
  translate: {
    usage: 'translate -f FILE [--group G] [--callout-address HOST:PORT]',
    summary: 'print the Envoy resources a model file produces (offline, no server)',
    options: { ...FILE, group: { type: 'string' }, 'callout-address': { type: 'string' } },
  },
  'partner-token': {
    usage: 'partner-token create|list|revoke PARTNER [NAME] [--expires-at T] [--description D]',
    summary: 'mint (shown once), list or revoke the tokens a partner signs in to the partner portal with',
    details: `create PARTNER NAME prints the token once; a partner token reaches only the partner portal
(/api/v1/portal/…, and the console, which then shows the portal). ${SERVER_NOTE}`,
    options: { 'expires-at': { type: 'string' }, description: { type: 'string' } },
  },
  migrate: {
    usage: 'migrate [--status]',
    summary: 'apply pending database migrations (or only report them)',
    options: { status: { type: 'boolean' } },
  },
  'rotate-master-key': {
    usage: 'rotate-master-key',
    summary: 're-seal stored secrets under PORTICO_MASTER_KEY (old key in PORTICO_PREVIOUS_MASTER_KEYS)',
    options: {},
  },
  protoset: {
    usage: 'protoset FILE.proto… [-I DIR]…',
    summary: "print the FileDescriptorSet (base64) of .proto files, google.api.http annotations included, for a gRPC service's grpc.descriptorSet",
    options: { include: { type: 'string', short: 'I', multiple: true } },
  },
  certs: {
    usage: 'certs ca|control-plane|node|dev [options]',
    summary: 'create a CA and certificates for the mTLS channels (`portico certs --help`)',
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
    },
  },
};

const EXIT_NOTE = `exit status: 0 success, ${EXIT.error} error, ${EXIT.differences} differences found (diff only)`;

export const USAGE = `usage: portico <command> [options]

commands:
${Object.values(CLI_COMMANDS)
  .map((c) => `  ${c.usage.padEnd(46)}${c.usage.length >= 46 ? `\n  ${' '.repeat(46)}` : ''}${c.summary}`)
  .join('\n')}

  portico <command> --help     more about one command
  portico --version            the version

apply, diff, export and purge talk to a running server: PORTICO_URL (default http://127.0.0.1:8081)
and PORTICO_TOKEN (an admin token). Everything else is configured by environment variables;
see the README.

${EXIT_NOTE}.`;

export function commandHelp(command: string): string {
  const c = CLI_COMMANDS[command]!;
  return `usage: portico ${c.usage}\n\n${c.summary}.${c.details ? `\n\n${c.details}` : ''}\n\n${EXIT_NOTE}.`;
}

/** One line for the terminal: no stack, no raw library strings where we know better. */
export function plainError(e: Error): string {
  if (e instanceof UsageError) return `${e.message} (see 'portico ${e.command ? `${e.command} ` : ''}--help')`;
  return e.message;
}
