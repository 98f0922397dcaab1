// The SQLite driver adapter the app's Prisma client uses: Prisma's better-sqlite3 adapter, made safe
// for one connection shared by concurrent requests, and faster (see IsolatedSqlite).
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3'
import { Mutex } from 'async-mutex'
import type Database from 'better-sqlite3'

/**
 * The SQLite connection Prisma uses, with two changes to its better-sqlite3 adapter:
 * - Isolation: the app shares one connection, and the adapter serializes transactions only with each
 *   other. A query from another request that ran while a transaction was open would run inside it
 *   (seeing its uncommitted rows, and lost if it rolled back). Here every query waits for the open
 *   transaction to end, as it would on a connection of its own.
 * - Speed: the adapter compiles every statement anew; compiled statements are reused from a bounded
 *   cache instead, each use binding its own arguments.
 */
export class IsolatedSqlite extends PrismaBetterSqlite3 {
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
