// Builds the Prisma client for the configured provider. Both generated clients come from the same
// models (prisma/models.prisma), so the app is typed against one of them: `Db`.
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3'
import { PrismaPg } from '@prisma/adapter-pg'
import type { DatabaseConfig } from '../config.js'
import { PrismaClient as PostgresClient } from '../generated/postgresql/client.js'
import { type Prisma, PrismaClient as SqliteClient } from '../generated/sqlite/client.js'

export type Db = SqliteClient
/** The client handed to `$transaction(async (tx) => …)` callbacks. */
export type DbTransaction = Prisma.TransactionClient
export type { RefreshToken, Session, User } from '../generated/sqlite/client.js'

export function createDbClient (database: DatabaseConfig): Db {
  if (database.provider === 'sqlite') {
    // timeout is SQLite's busy timeout: a writer waits this long for another process's lock.
    return new SqliteClient({ adapter: new PrismaBetterSqlite3({ url: database.file, timeout: 5000 }) })
  }
  const adapter = new PrismaPg({ connectionString: database.url, max: 10 }, { schema: database.schema })
  // Same models, other provider: the two generated clients differ only in provider-specific extras we do not use.
  return new PostgresClient({ adapter }) as unknown as Db
}
