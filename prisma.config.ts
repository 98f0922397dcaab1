// Prisma CLI configuration. The provider is fixed per schema, so the schema folder follows DATABASE_URL:
// prisma/sqlite for a file: URL (the default), prisma/postgresql for postgres(ql)://.
// The application applies migrations itself at start (src/db/migrate.ts); this file lets
// `prisma migrate deploy/status` agree with it on a machine that has Prisma's schema engine.
import 'dotenv/config'
import { defineConfig } from 'prisma/config'

const url = process.env.DATABASE_URL ?? 'file:./data/auth.db'
const provider = /^postgres(ql)?:\/\//.test(url) ? 'postgresql' : 'sqlite'

export default defineConfig({
  schema: `prisma/${provider}`,
  migrations: { path: `prisma/${provider}/migrations` },
  datasource: { url }
})
