// src/db/sqlite-adapter.ts reuses compiled statements by replacing better-sqlite3's prepare on the
// connection @prisma/adapter-better-sqlite3 creates: the one reach into that library's internals (no
// public interface allows it). This test runs the real adapter over recording proxies of real
// statements and fails loudly when the adapter starts using a statement member the reusable
// statement does not implement, or stops exposing its connection, e.g. after an upgrade.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3'
import type { SqlDriverAdapter, SqlQuery } from '@prisma/driver-adapter-utils'
import t, { type Test } from 'tap'
import { IsolatedSqlite, ReusableStatement, STATEMENT_MEMBERS_USED, adapterClient } from '../../src/db/sqlite-adapter.js'

const query = (sql: string, args: unknown[] = []): SqlQuery => ({
  sql, args, argTypes: args.map((arg) => ({ scalarType: typeof arg === 'number' ? 'int' : 'string', arity: 'scalar' }))
})

function databaseFile (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'adapter-shape-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return `file:${join(dir, 'shape.db')}`
}

/** Every kind of call Prisma makes on the adapter: scripts, writes, reads, a non-reading query, a transaction with savepoints. */
async function exercise (adapter: SqlDriverAdapter) {
  await adapter.executeScript('CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL)')
  const inserted = await adapter.executeRaw(query('INSERT INTO item (id, name) VALUES (?, ?)', [1, 'one']))
  const read = await adapter.queryRaw(query('SELECT id, name FROM item WHERE id = ?', [1]))
  const notReading = await adapter.queryRaw(query('UPDATE item SET name = ? WHERE id = 1', ['uno']))
  const tx = await adapter.startTransaction()
  await tx.executeRaw(query('INSERT INTO item (id, name) VALUES (?, ?)', [2, 'two']))
  await tx.createSavepoint?.('inner')
  await tx.executeRaw(query('INSERT INTO item (id, name) VALUES (?, ?)', [3, 'three']))
  await tx.rollbackToSavepoint?.('inner')
  await tx.releaseSavepoint?.('inner')
  const inside = await tx.queryRaw(query('SELECT count(*) AS n FROM item'))
  await tx.executeRaw(query('COMMIT'))
  await tx.commit()
  const after = await adapter.queryRaw(query('SELECT id, name FROM item ORDER BY id'))
  return { inserted, read: read.rows, columns: read.columnNames, notReading: notReading.rows, inside: inside.rows, after: after.rows }
}

t.test('the adapter uses no statement member that ReusableStatement lacks', async (t) => {
  const adapter = await new PrismaBetterSqlite3({ url: databaseFile(t) }).connect()
  t.teardown(() => adapter.dispose())
  const db = adapterClient(adapter)
  const used = new Set<string>()
  const prepare = db.prepare.bind(db)
  db.prepare = ((sql: string) => {
    const statement = prepare(sql)
    const recorder: object = new Proxy(statement, {
      get (target, member) {
        used.add(String(member))
        const value: unknown = Reflect.get(target, member, target)
        if (typeof value !== 'function') return value
        // Chained calls (bind, raw) return the statement itself: keep recording through them.
        return (...args: unknown[]) => {
          const result: unknown = (value as (...args: unknown[]) => unknown).apply(target, args)
          return result === target ? recorder : result
        }
      }
    })
    return recorder
  }) as typeof db.prepare
  await exercise(adapter)

  // Positive control: the recorder saw the calls the reusable statement was written for.
  for (const member of ['bind', 'run', 'reader', 'columns', 'raw']) t.ok(used.has(member), `the adapter calls ${member}`)
  const implemented = new Set([...STATEMENT_MEMBERS_USED, 'all'])
  const unknown = [...used].filter((member) => !implemented.has(member as never))
  t.same(unknown, [], 'every statement member the adapter touches is one ReusableStatement implements (raw() returns { all })')
  for (const member of STATEMENT_MEMBERS_USED) {
    t.ok(member in ReusableStatement.prototype, `ReusableStatement has ${member}`)
  }
})

t.test('through IsolatedSqlite the same calls give the same answers', async (t) => {
  const plain = await new PrismaBetterSqlite3({ url: databaseFile(t) }).connect()
  t.teardown(() => plain.dispose())
  const isolated = await new IsolatedSqlite({ url: databaseFile(t) }).connect()
  t.teardown(() => isolated.dispose())
  const expected = await exercise(plain)
  t.same(await exercise(isolated), expected)
  t.same(expected.after, [[1, 'uno'], [2, 'two']], 'control: the savepoint rolled back the third row')
  t.equal(isolated.provider, 'sqlite')
  t.equal(isolated.adapterName, plain.adapterName)
})

t.test('an adapter without its better-sqlite3 connection is refused at connect, by name', async (t) => {
  t.throws(() => adapterClient({} as SqlDriverAdapter), /@prisma\/adapter-better-sqlite3 changed shape/)
})
