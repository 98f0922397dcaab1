// Builds the Prisma client for the configured provider. Both generated clients come from the same
// models (prisma/models.prisma), so the app is typed against one of them: `Db`.
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3'
import { PrismaPg } from '@prisma/adapter-pg'
import { Mutex } from 'async-mutex'
import type Database from 'better-sqlite3'
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
    return new SqliteClient({ adapter: new IsolatedSqlite({ url: database.file, timeout: 5000 }) })
  }
  // search_path makes raw queries (src/auth/sessions.ts) address the same schema as generated ones.
  const adapter = new PrismaPg({ connectionString: database.url, max: 10, options: `-c search_path="${database.schema}"` }, { schema: database.schema })
  // Same models, other provider: the two generated clients differ only in provider-specific extras we do not use.
  return new PostgresClient({ adapter }) as unknown as Db
}

/**
 * The SQLite connection Prisma uses, with two changes to its better-sqlite3 adapter:
 * - Isolation: the app shares one connection, and the adapter serializes transactions only with each
 *   other. A query from another request that ran while a transaction was open would run inside it
 *   (seeing its uncommitted rows, and lost if it rolled back). Here every query waits for the open
 *   transaction to end, as it would on a connection of its own.
 * - Speed: the adapter compiles every statement anew; compiled statements are reused from a bounded
 *   cache instead, each use binding its own arguments.
 */
class IsolatedSqlite extends PrismaBetterSqlite3 {
  override async connect (): ReturnType<PrismaBetterSqlite3['connect']> {
    const adapter = await super.connect()
    reusePreparedStatements((adapter as unknown as { client: Database.Database }).client)
    const lock = new Mutex()
    const { queryRaw, executeRaw, startTransaction } = adapter
    adapter.queryRaw = async (query) => lock.runExclusive(() => queryRaw.call(adapter, query))
    adapter.executeRaw = async (query) => lock.runExclusive(() => executeRaw.call(adapter, query))
    adapter.startTransaction = async (isolationLevel) => {
      const release = await lock.acquire()
      try {
        const transaction = await startTransaction.call(adapter, isolationLevel)
        const { commit, rollback } = transaction
        transaction.commit = async () => { try { await commit.call(transaction) } finally { release() } }
        transaction.rollback = async () => { try { await rollback.call(transaction) } finally { release() } }
        return transaction
      } catch (error) {
        release()
        throw error
      }
    }
    return adapter
  }
}

const STATEMENTS_KEPT = 256

function reusePreparedStatements (db: Database.Database): void {
  const prepare = db.prepare.bind(db)
  const statements = new Map<string, Database.Statement>()
  const cached = (sql: string) => {
    let statement = statements.get(sql)
    if (statement === undefined) {
      statement = prepare(sql)
      if (statements.size >= STATEMENTS_KEPT) statements.delete(statements.keys().next().value!)
      statements.set(sql, statement)
    }
    return new ReusableStatement(statement)
  }
  db.prepare = cached as unknown as typeof db.prepare
}

/** The part of a better-sqlite3 statement the adapter uses, with arguments kept per use, not bound to the statement. */
class ReusableStatement {
  constructor (private readonly statement: Database.Statement, private readonly args: unknown[] = []) {}
  get reader (): boolean { return this.statement.reader }
  bind (args: unknown[]): ReusableStatement { return new ReusableStatement(this.statement, args) }
  run (): Database.RunResult { return this.statement.run(this.args) }
  columns (): Database.ColumnDefinition[] { return this.statement.columns() }
  raw (): { all: () => unknown[] } { return { all: () => this.statement.raw(true).all(this.args) } }
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
