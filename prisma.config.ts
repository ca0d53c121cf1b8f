// Prisma CLI configuration, for users who run `prisma migrate deploy` themselves; Portico applies
// the same migrations at start without the CLI (src/store/migrate.ts).
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://localhost:5432/portico' },
});
