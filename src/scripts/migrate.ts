// `npm run db:migrate`: applies pending migrations to DATABASE_URL without starting the server
// (the server also does this at start).
import { ConfigError, loadConfig } from '../config.js'
import { applyMigrations } from '../db/migrate.js'

try {
  process.loadEnvFile()
} catch {}

try {
  const config = loadConfig()
  const applied = await applyMigrations(config.database)
  console.log(applied.length === 0 ? 'Database is up to date.' : `Applied: ${applied.join(', ')}`)
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error)
  process.exit(1)
}
