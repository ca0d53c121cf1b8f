// Declarative configuration over HTTP: export the model (or a tag's slice) as one document and
// apply one — all-or-nothing, idempotent, with a dry run that returns the diff.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { childKinds, documentToYaml, fieldChanges, modelToDocument, TOP_LEVEL_KINDS, type ApplyResult, type KindName } from '../model/index.ts';
import { applyDocument, DocumentError, ModelValidationError, type ModelStore } from '../store/index.ts';
import { json } from './openapi.ts';
import { modelProblem, problems } from './problem.ts';
import { refTo, SCHEMA_NAME } from './schemas.ts';

const ConfigQuery = Type.Object(
  {
    tag: Type.Optional(Type.String({ maxLength: 63, description: 'limit to resources carrying this tag (children follow their parent)' })),
    dryRun: Type.Optional(Type.Boolean({ description: 'validate and return the diff without writing' })),
    prune: Type.Optional(Type.Boolean({ description: 'also delete what the document leaves out (in the tag slice); without it those resources are kept and listed in leftOut' })),
    format: Type.Optional(Type.Union([Type.Literal('yaml'), Type.Literal('json')])),
  },
  { additionalProperties: false },
);

const Entries = (kind: KindName) =>
  Type.Optional(
    Type.Array(Type.Object({}, { additionalProperties: true }), {
      description: `${SCHEMA_NAME[kind]}Input entries${childKinds(kind).length ? ', each with its children nested' : ''}${kind === 'apiKeys' || kind === 'partners' ? '; API keys carry their prefix and hash (for admins), never the key' : ''}`,
    }),
  );
const ResourceRef = Type.Object({ kind: Type.String(), key: Type.String() }, { additionalProperties: false });

const ConfigDocument = Type.Object(
  { portico: Type.String({ description: 'the document format version' }), ...Object.fromEntries(TOP_LEVEL_KINDS.map((k) => [k, Entries(k)])) },
  { $id: 'ConfigDocument', title: 'ConfigDocument', description: 'The model (or a tag slice) as one document, secrets left out', additionalProperties: false },
);
const ApplyResultSchema = Type.Object(
  {
    dryRun: Type.Boolean(),
    prune: Type.Boolean({ description: 'whether what the document leaves out was deleted (or, in a dry run, would be)' }),
    changed: Type.Boolean(),
    revision: Type.Integer({ description: 'the model revision after the apply (before it, in a dry run)' }),
    summary: Type.Object({ create: Type.Integer(), update: Type.Integer(), delete: Type.Integer() }, { additionalProperties: false }),
    changes: Type.Array(
      Type.Object(
        {
          action: Type.Union([Type.Literal('create'), Type.Literal('update'), Type.Literal('delete')]),
          kind: Type.String(),
          key: Type.String(),
          fields: Type.Optional(
            Type.Array(
              Type.Object(
                { field: Type.String(), before: Type.Optional(Type.Unknown()), after: Type.Optional(Type.Unknown()) },
                { additionalProperties: false, description: 'secrets show as a digest, never as themselves' },
              ),
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    leftOut: Type.Array(ResourceRef, { description: 'resources the document leaves out, kept because prune was not set' }),
  },
  { $id: 'ApplyResult', title: 'ApplyResult', description: 'What an apply changed (or, in a dry run, would change)', additionalProperties: false },
);

/** Named schemas of the declarative endpoints (registered by server.ts). */
export const CONFIG_SCHEMAS = [ConfigDocument, ApplyResultSchema];

/** Export and apply of the declarative document. */
export const configRoutes: FastifyPluginAsyncTypebox<{ store: ModelStore }> = async (app, opts) => {
  const { store } = opts;

  app.get(
    '/api/v1/config',
    {
      schema: {
        tags: ['Declarative config'],
        summary: 'Export the model as one document',
        operationId: 'exportConfig',
        querystring: ConfigQuery,
        security: [{ bearer: [] }],
        response: {
          200: {
            description: 'The document: YAML unless format=json or Accept: application/json',
            content: { 'application/json': { schema: refTo(ConfigDocument) }, 'application/yaml': { schema: Type.String() } },
          },
        },
      },
    },
    async (request, reply) => {
      // Key hashes let an offline guess be checked against them: only the admin role sees them.
      const doc = modelToDocument(store.current(), { ...(request.query.tag ? { tag: request.query.tag } : {}), keyHashes: request.principal?.role === 'admin' });
      const wantsJson = request.query.format === 'json' || (request.query.format === undefined && /application\/json/.test(request.headers.accept ?? ''));
      reply.header('x-portico-revision', String(store.current().revision));
      if (wantsJson) return reply.type('application/json').send(doc);
      return reply.type('application/yaml; charset=utf-8').send(documentToYaml(doc));
    },
  );

  app.post(
    '/api/v1/config',
    {
      schema: {
        tags: ['Declarative config'],
        operationId: 'applyConfig',
        summary: 'Apply a document: its resources are created or replaced; with prune=true the model (or the tag slice) becomes exactly what it describes',
        description:
          'Body: the document as application/yaml or application/json. All-or-nothing; applying the same document twice changes nothing. Nothing the document leaves out is deleted unless prune=true (leftOut lists what a prune would delete).',
        querystring: ConfigQuery,
        security: [{ bearer: [] }],
        response: { 200: json('Applied (or, with dryRun, checked)', refTo(ApplyResultSchema)) },
      },
    },
    async (request): Promise<ApplyResult> => {
      const { tag, dryRun = false, prune = false } = request.query;
      const current = store.current();
      try {
        const result = await applyDocument(store, request.body, {
          actor: request.principal?.name ?? 'unknown',
          summary: `apply document${tag ? ` (tag ${tag})` : ''}${prune ? ' (prune)' : ''}`,
          ...(tag ? { tag } : {}),
          dryRun,
          prune,
        });
        const changes = result.changes.map((c) => ({
          action: c.action,
          kind: c.kind,
          key: c.key,
          ...(c.action === 'update' ? { fields: fieldChanges(c.kind, c.before!, c.after!) } : {}),
        }));
        const count = (a: string) => changes.filter((c) => c.action === a).length;
        return {
          dryRun,
          prune,
          changed: changes.length > 0,
          revision: dryRun ? current.revision : result.snapshot.revision,
          summary: { create: count('create'), update: count('update'), delete: count('delete') },
          changes,
          leftOut: result.leftOut,
        };
      } catch (e) {
        if (e instanceof ModelValidationError) throw modelProblem(e);
        if (e instanceof DocumentError) throw problems.validation(e.errors, e.message);
        throw e;
      }
    },
  );
};
