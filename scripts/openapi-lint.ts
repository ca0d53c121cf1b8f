// `npm run lint:openapi`: writes the admin API's OpenAPI document as the server generates it (the
// fastify app on an in-memory store, never listening) and lints it with Redocly (redocly.yaml).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { openApiDocument } from '../console/tools/openapi.ts';

const out = process.argv[2] ?? '.data/openapi.json';
mkdirSync(out.replace(/\/[^/]*$/, '') || '.', { recursive: true });
writeFileSync(out, `${JSON.stringify(await openApiDocument(), null, 2)}\n`);
// Redocly's telemetry and update check would reach out to the network: both off.
const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };
const lint = spawnSync('npx', ['--no-install', 'redocly', 'lint', '--config', 'redocly.yaml', out], { stdio: 'inherit', env });
process.exit(lint.status ?? 1);
