// The SQLite driver adapter the app's Prisma client uses: Prisma's better-sqlite3 adapter, made safe
// for one connection shared by concurrent requests, and faster (see IsolatedSqlite).
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3'
import type {
  ConnectionInfo, IsolationLevel, SqlDriverAdapter, SqlDriverAdapterFactory, SqlQuery, SqlResultSet, Transaction
} from '@prisma/driver-adapter-utils'
import { Mutex } from 'async-mutex'
import Database from 'better-sqlite3'

type AdapterConfig = ConstructorParameters<typeof PrismaBetterSqlite3>[0]
type AdapterOptions = ConstructorParameters<typeof PrismaBetterSqlite3>[1]

/**
 * Prisma's better-sqlite3 adapter behind Prisma's public driver-adapter interface, with two changes:
 * - Isolation: the app shares one connection, and the adapter serializes transactions only with each
 *   other. A query from another request that ran while a transaction was open would run inside it
 *   (seeing its uncommitted rows, and lost if it rolled back). Here every query waits for the open
 *   transaction to end, as it would on a connection of its own (IsolatedSqliteAdapter).
 * - Speed: the adapter compiles every statement anew; compiled statements are reused from a bounded
 *   cache instead, each use binding its own arguments (reusePreparedStatements).
 */
export class IsolatedSqlite implements SqlDriverAdapterFactory {
  private readonly inner: PrismaBetterSqlite3
  readonly provider: PrismaBetterSqlite3['provider']
  readonly adapterName: string

  constructor (config: AdapterConfig, options?: AdapterOptions) {
    this.inner = new PrismaBetterSqlite3(config, options)
    this.provider = this.inner.provider
    this.adapterName = this.inner.adapterName
  }

  async connect (): Promise<SqlDriverAdapter> {
    const adapter = await this.inner.connect()
    reusePreparedStatements(adapter)
    return new IsolatedSqliteAdapter(adapter)
  }
}

/** Every query outside a transaction waits while one is open; a transaction holds the lock until it ends. */
class IsolatedSqliteAdapter implements SqlDriverAdapter {
  private readonly lock = new Mutex()
  readonly provider: SqlDriverAdapter['provider']
  readonly adapterName: string
  /** Only where the inner adapter has it: Prisma reads its absence as "the defaults". */
  declare readonly getConnectionInfo?: () => ConnectionInfo

  constructor (private readonly inner: SqlDriverAdapter) {
    this.provider = inner.provider
    this.adapterName = inner.adapterName
    if (inner.getConnectionInfo !== undefined) this.getConnectionInfo = inner.getConnectionInfo.bind(inner)
  }

  // Plain (not async) delegations: no promise of their own on the path of every query.
  queryRaw (query: SqlQuery): Promise<SqlResultSet> {
    return this.lock.runExclusive(() => this.inner.queryRaw(query))
  }

  executeRaw (query: SqlQuery): Promise<number> {
    return this.lock.runExclusive(() => this.inner.executeRaw(query))
  }

  executeScript (script: string): Promise<void> {
    return this.lock.runExclusive(() => this.inner.executeScript(script))
  }

  async startTransaction (isolationLevel?: IsolationLevel): Promise<Transaction> {
    const release = await this.lock.acquire()
    try {
      return new IsolatedTransaction(await this.inner.startTransaction(isolationLevel), release)
    } catch (error) {
      release()
      throw error
    }
  }

  dispose (): Promise<void> {
    return this.inner.dispose()
  }
}

/** The adapter's transaction, releasing the connection's lock when it commits or rolls back. */
class IsolatedTransaction implements Transaction {
  readonly provider: Transaction['provider']
  readonly adapterName: string
  readonly options: Transaction['options']
  // Savepoints (nested transactions) exactly as the inner transaction has them.
  declare readonly createSavepoint?: (name: string) => Promise<void>
  declare readonly rollbackToSavepoint?: (name: string) => Promise<void>
  declare readonly releaseSavepoint?: (name: string) => Promise<void>

  constructor (private readonly inner: Transaction, private readonly release: () => void) {
    this.provider = inner.provider
    this.adapterName = inner.adapterName
    this.options = inner.options
    if (inner.createSavepoint !== undefined) this.createSavepoint = inner.createSavepoint.bind(inner)
    if (inner.rollbackToSavepoint !== undefined) this.rollbackToSavepoint = inner.rollbackToSavepoint.bind(inner)
    if (inner.releaseSavepoint !== undefined) this.releaseSavepoint = inner.releaseSavepoint.bind(inner)
  }

  queryRaw (query: SqlQuery): Promise<SqlResultSet> { return this.inner.queryRaw(query) }
  executeRaw (query: SqlQuery): Promise<number> { return this.inner.executeRaw(query) }

  async commit (): Promise<void> {
    try { await this.inner.commit() } finally { this.release() }
  }

  async rollback (): Promise<void> {
    try { await this.inner.rollback() } finally { this.release() }
  }
}

const STATEMENTS_KEPT = 256

/**
 * The statement methods @prisma/adapter-better-sqlite3 calls on `client.prepare(sql)`: the only
 * reach into its internals (no public interface lets one cache statements). If the adapter changes
 * shape, connect fails here, and test/db/sqlite-adapter-shape.test.ts fails on any statement member
 * it starts to use that ReusableStatement does not have.
 */
export const STATEMENT_MEMBERS_USED = ['bind', 'reader', 'run', 'columns', 'raw'] as const

/** The better-sqlite3 connection the adapter queries through (its `client` field; see STATEMENT_MEMBERS_USED). */
export function adapterClient (adapter: SqlDriverAdapter): Database.Database {
  const client = (adapter as unknown as { client?: unknown }).client
  if (!(client instanceof Database)) {
    throw new Error('@prisma/adapter-better-sqlite3 changed shape: its adapter has no better-sqlite3 `client`; update src/db/sqlite-adapter.ts')
  }
  return client
}

function reusePreparedStatements (adapter: SqlDriverAdapter): void {
  const db = adapterClient(adapter)
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
export class ReusableStatement {
  constructor (private readonly statement: Database.Statement, private readonly args: unknown[] = []) {}
  get reader (): boolean { return this.statement.reader }
  bind (args: unknown[]): ReusableStatement { return new ReusableStatement(this.statement, args) }
  run (): Database.RunResult { return this.statement.run(this.args) }
  columns (): Database.ColumnDefinition[] { return this.statement.columns() }
  raw (): { all: () => unknown[] } { return { all: () => this.statement.raw(true).all(this.args) } }
}
