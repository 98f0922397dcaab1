// The database: migrations are applied before the app serves, then one Prisma client is shared by
// the app and closed with it.
import fp from 'fastify-plugin'
import type { DatabaseConfig } from '../config.js'
import { type Db, createDbClient } from '../db/client.js'
import { applyMigrations } from '../db/migrate.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Db
  }
}

export default fp(async function database (fastify, options: { database: DatabaseConfig }) {
  const applied = await applyMigrations(options.database)
  if (applied.length > 0) fastify.log.info({ migrations: applied }, 'database migrated')
  const db = await createDbClient(options.database)
  await db.$connect()
  fastify.decorate('db', db)
  fastify.addHook('onClose', async () => {
    await db.$disconnect()
  })
}, { name: 'database' })
