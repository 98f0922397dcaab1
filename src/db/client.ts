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
  const db = await createProviderClient(database)
  providers.set(db, database.provider)
  return db
}

export type DbProvider = DatabaseConfig['provider']
const providers = new WeakMap<Db, DbProvider>()

/** The provider a client made by createDbClient talks to (raw SQL that differs per provider asks this). */
export function providerOf (db: Db): DbProvider {
  const provider = providers.get(db)
  if (provider === undefined) throw new Error('providerOf: not a client made by createDbClient')
  return provider
}

async function createProviderClient (database: DatabaseConfig): Promise<Db> {
  if (database.provider === 'sqlite') {
    const [{ PrismaClient }, { IsolatedSqlite }] = await Promise.all([import('../generated/sqlite/client.js'), import('./sqlite-adapter.js')])
    // timeout is SQLite's busy timeout: a writer waits this long for another process's lock.
    return new PrismaClient({ adapter: new IsolatedSqlite({ url: database.file, timeout: 5000 }) })
  }
  const [{ PrismaClient }, { PrismaPg }, { RecognizingPool }] = await Promise.all([
    import('../generated/postgresql/client.js'), import('@prisma/adapter-pg'), import('./pg-pool.js')])
  // search_path makes raw queries (src/db/session-store.ts) address the same schema as generated ones.
  // A connection that cannot be opened within the timeout fails the request (503) instead of hanging it.
  const pool = new RecognizingPool({
    connectionString: database.url, max: 10, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, options: `-c search_path="${database.schema}"`
  })
  // The pool is the adapter's to end with the client (disposeExternalPool).
  const adapter = new PrismaPg(pool, { schema: database.schema, disposeExternalPool: true })
  // Same models, other provider: the two generated clients differ only in provider-specific extras we do not use.
  return new PrismaClient({ adapter }) as unknown as Db
}

/** How long opening a PostgreSQL connection may take before the request fails (ms). */
const PG_CONNECT_TIMEOUT_MS = 5000

/**
 * Prisma's codes for "the database cannot be reached or cannot serve right now": cannot reach (P1001),
 * timed out reaching (P1002), operation timed out (P1008, also SQLite's busy timeout), connection
 * closed (P1017), pool timeout (P2024), a transaction that could not start or ran out of time (P2028),
 * write conflict or deadlock (P2034).
 */
const PRISMA_UNAVAILABLE = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028', 'P2034'])
/** The driver adapters' kinds for the same. */
const ADAPTER_UNAVAILABLE = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'TransactionWriteConflict'])
/** Node's socket errors, and the pool's own code for a connection it could not open or lost (src/db/pg-pool.ts). */
const NODE_UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'DATABASE_CONNECTION_LOST'])
/**
 * PostgreSQL SQLSTATEs: by class, connection exception (08), insufficient resources (53: disk full,
 * out of memory, too many connections), operator intervention (57: shutdown, terminated, cannot
 * connect now, statement timeout), system error (58: I/O); and read-only transaction (25006, a
 * standby or a read-only database), lock timeout (55P03).
 */
const PG_UNAVAILABLE_CLASSES = new Set(['08', '53', '57', '58'])
const PG_UNAVAILABLE_CODES = new Set(['25006', '55P03'])
/**
 * SQLite primary result codes (an extended code such as SQLITE_BUSY_SNAPSHOT or SQLITE_IOERR_WRITE
 * starts with its primary one): locked past the busy timeout, out of disk, read-only (file system,
 * file mode, query_only), I/O failure, cannot open the file.
 */
const SQLITE_UNAVAILABLE = ['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_FULL', 'SQLITE_READONLY', 'SQLITE_IOERR', 'SQLITE_CANTOPEN']

interface DriverCause { kind?: string, code?: string, originalCode?: string, severity?: string }

function isSqliteUnavailable (code: unknown): boolean {
  return typeof code === 'string' && SQLITE_UNAVAILABLE.some((primary) => code === primary || code.startsWith(`${primary}_`))
}

function isPostgresUnavailable (code: unknown, severity: unknown): boolean {
  // A FATAL (or PANIC) answer ends the connection: the server would not serve this session
  // (not accepting connections, shutting down, …), whatever the code.
  if (severity === 'FATAL' || severity === 'PANIC') return true
  return typeof code === 'string' && code.length === 5 && (PG_UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || PG_UNAVAILABLE_CODES.has(code))
}

/**
 * True when a query failed because the database is unreachable or unusable right now rather than
 * because of the query: such requests get a 503 and may be retried. Decided by error class and
 * code (Prisma's, the driver adapter's, PostgreSQL's SQLSTATE, SQLite's result code, Node's),
 * never by message text. Follows `cause` a few levels (a wrapped driver error).
 */
export function isDatabaseUnavailable (error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 3) return false
  const { name, code, severity, meta, cause } = error as {
    name?: string, code?: unknown, severity?: unknown, meta?: { driverAdapterError?: { cause?: DriverCause } }, cause?: unknown
  }
  if (name === 'PrismaClientInitializationError') return true
  if (typeof code === 'string' && (PRISMA_UNAVAILABLE.has(code) || NODE_UNAVAILABLE.has(code))) return true
  // A driver's own error (better-sqlite3's SqliteError, node-postgres's DatabaseError) passed through.
  if (isSqliteUnavailable(code) || (typeof severity === 'string' && isPostgresUnavailable(code, severity))) return true
  // A driver adapter's error comes inside Prisma's (meta), or bare when a transaction fails to commit.
  const adapter = meta?.driverAdapterError?.cause ?? (name === 'DriverAdapterError' ? cause as DriverCause | undefined : undefined)
  if (adapter !== undefined) {
    if (ADAPTER_UNAVAILABLE.has(adapter.kind ?? '')) return true
    if (adapter.kind === 'sqlite' && isSqliteUnavailable(adapter.originalCode)) return true
    if (adapter.kind === 'postgres' && isPostgresUnavailable(adapter.code ?? adapter.originalCode, adapter.severity)) return true
  }
  return isDatabaseUnavailable(cause, depth + 1)
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
