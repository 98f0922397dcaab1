// Builds the Prisma client for the configured provider. Both generated clients come from the same
// models (prisma/models.prisma), so the app is typed against one of them: `Db`.
import type { DatabaseConfig } from '../config.js'
import type { Prisma, PrismaClient as SqliteClient } from '../generated/sqlite/client.js'

export type Db = SqliteClient
/** The client handed to `$transaction(async (tx) => …)` callbacks. */
export type DbTransaction = Prisma.TransactionClient
export type { RefreshToken, Session, User } from '../generated/sqlite/client.js'

/**
 * Only the configured provider's client, adapter and driver are loaded: the other provider's would
 * hold some 10 MB of memory for nothing.
 */
export async function createDbClient (database: DatabaseConfig): Promise<Db> {
  if (database.provider === 'sqlite') {
    const [{ PrismaClient }, { IsolatedSqlite }] = await Promise.all([import('../generated/sqlite/client.js'), import('./sqlite-adapter.js')])
    // timeout is SQLite's busy timeout: a writer waits this long for another process's lock.
    return new PrismaClient({ adapter: new IsolatedSqlite({ url: database.file, timeout: 5000 }) })
  }
  const [{ PrismaClient }, { PrismaPg }] = await Promise.all([import('../generated/postgresql/client.js'), import('@prisma/adapter-pg')])
  // search_path makes raw queries (src/auth/sessions.ts) address the same schema as generated ones.
  const adapter = new PrismaPg({ connectionString: database.url, max: 10, options: `-c search_path="${database.schema}"` }, { schema: database.schema })
  // Same models, other provider: the two generated clients differ only in provider-specific extras we do not use.
  return new PrismaClient({ adapter }) as unknown as Db
}

/** Prisma's codes for "the database cannot be reached right now" (connection, timeout, pool, lock). */
const UNAVAILABLE_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2034'])
const UNAVAILABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'TransactionWriteConflict'])
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', '57P01', '57P03'])
/** node-postgres reports a connection lost mid-query as a plain Error, which Prisma passes through. */
const PG_CONNECTION_LOST = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/

/**
 * True when a query failed because the database is unreachable or busy rather than because of the
 * query: such requests get a 503 and may be retried.
 */
export function isDatabaseUnavailable (error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const { name, code, meta } = error as { name?: string, code?: string, meta?: { driverAdapterError?: { cause?: { kind?: string, extendedCode?: number } } } }
  if (name === 'PrismaClientInitializationError') return true
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || NETWORK_CODES.has(code))) return true
  if (error instanceof Error && PG_CONNECTION_LOST.test(error.message)) return true
  const cause = meta?.driverAdapterError?.cause
  // SQLITE_BUSY (5) and its extended codes: another process holds the write lock past the busy timeout.
  return cause !== undefined && (UNAVAILABLE_KINDS.has(cause.kind ?? '') || (cause.kind === 'sqlite' && ((cause.extendedCode ?? 0) & 0xff) === 5))
}

/** True when a write collided with a unique constraint (Prisma P2002), e.g. a username taken meanwhile. */
export function isUniqueViolation (error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: string }).code === 'P2002'
}

/**
 * True when a write referred to a row that no longer exists (Prisma P2003, or the driver adapter's
 * ForeignKeyConstraintViolation from a raw query): e.g. the user was deleted under a live session.
 */
export function isForeignKeyViolation (error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const { code, meta } = error as { code?: string, meta?: { driverAdapterError?: { cause?: { kind?: string } } } }
  return code === 'P2003' || meta?.driverAdapterError?.cause?.kind === 'ForeignKeyConstraintViolation'
}
