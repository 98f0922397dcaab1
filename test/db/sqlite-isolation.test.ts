// The app shares one SQLite connection. A query made while another request's transaction is open must
// not run inside that transaction: it must neither see its uncommitted rows nor vanish with its rollback.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { createDbClient } from '../../src/db/client.js'
import { applyMigrations } from '../../src/db/migrate.js'
import { TEST_SECRET, freshDatabaseUrl } from '../helpers.js'

t.test('a query during an open transaction waits for it to end', async (t) => {
  const { database } = loadConfig({ DATABASE_URL: await freshDatabaseUrl(t, 'sqlite'), JWT_SECRET: TEST_SECRET })
  await applyMigrations(database)
  const db = await createDbClient(database)
  t.teardown(() => db.$disconnect())
  const user = (username: string) => {
    const now = new Date()
    return { id: randomUUID(), username, usernameKey: username, passwordHash: 'x', createdAt: now, updatedAt: now }
  }

  let seenDuringTransaction: number | undefined
  const failing = db.$transaction(async (tx) => {
    await tx.user.create({ data: user('inside') })
    await sleep(50)
    throw new Error('roll back')
  }).catch((error: Error) => error.message)
  await sleep(10)
  const outside = (async () => {
    seenDuringTransaction = await db.user.count({ where: { usernameKey: 'inside' } })
    await db.user.create({ data: user('outside') })
  })()

  t.equal(await failing, 'roll back')
  await outside
  t.equal(seenDuringTransaction, 0, 'the uncommitted row was not visible outside the transaction')
  t.equal(await db.user.count({ where: { usernameKey: 'inside' } }), 0, 'the transaction rolled back')
  t.equal(await db.user.count({ where: { usernameKey: 'outside' } }), 1, 'the other write survived the rollback')
})
