// `npm run tokens:prune`: deletes expired sessions, refresh tokens and revocation events, and erases
// sealed successors past their grace window. The server does the same hourly; this is for cron.
import { RevocationList } from '../auth/revocation-list.js'
import { SessionService } from '../auth/sessions.js'
import { SuccessorSeal } from '../auth/successor-seal.js'
import { ConfigError, loadConfig } from '../config.js'
import { createDbClient } from '../db/client.js'
import { applyMigrations } from '../db/migrate.js'

try {
  process.loadEnvFile()
} catch {}

try {
  const config = loadConfig()
  await applyMigrations(config.database)
  const db = await createDbClient(config.database)
  const sessions = new SessionService({
    db,
    clock: Date.now,
    lifetimes: config.ttl,
    seal: new SuccessorSeal(config.jwt.secret),
    revocations: new RevocationList(db, Date.now),
    signAccessToken: () => { throw new Error('pruning issues no tokens') }
  })
  console.log(await sessions.prune())
  await db.$disconnect()
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error)
  process.exit(1)
}
