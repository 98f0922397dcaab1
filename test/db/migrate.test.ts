import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import t from 'tap'
import type { DatabaseConfig } from '../../src/config.js'
import { MigrationError, applyMigrations } from '../../src/db/migrate.js'
// The models of prisma/models.prisma (both providers share them): every one must have its table.
import { ModelName } from '../../src/generated/sqlite/internal/prismaNamespaceBrowser.js'
import { type TestDatabase, freshDatabaseUrl, testConfig, testDatabases } from '../helpers.js'

interface MigrationRow {
  id: string
  checksum: string
  finished_at: unknown
  migration_name: string
  rolled_back_at: unknown
  started_at: unknown
  applied_steps_count: number
}

/** The migration folders and the checksums Prisma would record, read independently of migrate.ts. */
function migrationsOnDisk (provider: TestDatabase): Array<{ name: string, checksum: string }> {
  const dir = join(import.meta.dirname, '..', '..', 'prisma', provider, 'migrations')
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
    .map((name) => ({ name, checksum: createHash('sha256').update(readFileSync(join(dir, name, 'migration.sql'))).digest('hex') }))
}

/** Runs one statement against the test database (in its schema on PostgreSQL). */
async function query<T> (database: DatabaseConfig, sql: string, params: unknown[] = []): Promise<T[]> {
  if (database.provider === 'sqlite') {
    const db = new Database(database.file)
    try {
      const statement = db.prepare(sql)
      return (statement.reader ? statement.all(...params) : (statement.run(...params), [])) as T[]
    } finally {
      db.close()
    }
  }
  const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL })
  await client.connect()
  try {
    await client.query(`SET search_path TO "${database.schema}"`)
    return (await client.query(sql.replace(/\?/g, (_, offset: number) => `$${sql.slice(0, offset).split('?').length}`), params)).rows as T[]
  } finally {
    await client.end()
  }
}

async function freshDatabase (t: Parameters<typeof freshDatabaseUrl>[0], database: TestDatabase): Promise<DatabaseConfig> {
  return testConfig(await freshDatabaseUrl(t, database)).database
}

for (const database of testDatabases()) {
  t.test(`a fresh database gets every migration, recorded as Prisma records it (${database})`, async (t) => {
    const config = await freshDatabase(t, database)
    const onDisk = migrationsOnDisk(database)
    t.ok(onDisk.length > 0)
    t.same(await applyMigrations(config), onDisk.map((migration) => migration.name), 'applies all, in order')

    const rows = await query<MigrationRow>(config, 'SELECT * FROM "_prisma_migrations" ORDER BY migration_name')
    t.equal(rows.length, onDisk.length, 'one row per migration')
    for (const [index, migration] of onDisk.entries()) {
      const row = rows[index]
      t.equal(row?.migration_name, migration.name)
      t.equal(row?.checksum, migration.checksum, `${migration.name}: checksum is the SHA-256 hex of migration.sql`)
      t.match(row?.checksum, /^[0-9a-f]{64}$/)
      t.not(row?.finished_at, null, 'finished_at set')
      t.ok(row?.started_at, 'started_at set')
      t.equal(row?.rolled_back_at, null)
      t.equal(Number(row?.applied_steps_count), 1)
      t.match(row?.id, /^[0-9a-f-]{36}$/)
    }
    const tables = database === 'sqlite'
      ? await query<{ name: string }>(config, "SELECT name FROM sqlite_master WHERE type = 'table'")
      : await query<{ name: string }>(config, 'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = ?', [config.provider === 'postgresql' ? config.schema : ''])
    const names = tables.map((table) => table.name)
    t.ok(Object.values(ModelName).length >= 6, 'the schema\'s models are known')
    for (const table of Object.values(ModelName)) t.ok(names.includes(table), `table ${table} exists`)

    t.same(await applyMigrations(config), [], 'a second call applies nothing')
    t.equal((await query(config, 'SELECT * FROM "_prisma_migrations"')).length, onDisk.length, 'and records nothing more')
  })

  t.test(`20261202070000: sessions started before it get their login's client as the last one (${database})`, async (t) => {
    const config = await freshDatabase(t, database)
    await applyMigrations(config)
    // The database as the migration finds it: applied up to the one before, sessions written then.
    const migration = '20261202070000_session_last_client_from_login'
    await query(config, 'DELETE FROM "_prisma_migrations" WHERE migration_name = ?', [migration])
    await query(config, `INSERT INTO "User" ("id", "username", "usernameKey", "passwordHash", "createdAt", "updatedAt")
      VALUES ('u1', 'alice', 'alice', 'hash', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`)
    const session = (id: string, ip: string | null, userAgent: string | null, lastIp: string | null, lastUserAgent: string | null) => query(config,
      `INSERT INTO "Session" ("id", "userId", "client", "ip", "userAgent", "lastIp", "lastUserAgent", "createdAt", "lastUsedAt", "expiresAt")
       VALUES (?, 'u1', 'mobile', ?, ?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`, [id, ip, userAgent, lastIp, lastUserAgent])
    await session('never-moved', '198.51.100.1', 'phone/1', null, null)
    await session('no-agent-at-login', '198.51.100.1', null, null, null)
    await session('moved', '198.51.100.1', 'phone/1', '203.0.113.9', null)
    t.same(await applyMigrations(config), [migration], 'the migration runs')
    t.same(await query(config, 'SELECT "id", "lastIp", "lastUserAgent" FROM "Session" ORDER BY "id"'), [
      { id: 'moved', lastIp: '203.0.113.9', lastUserAgent: null },
      { id: 'never-moved', lastIp: '198.51.100.1', lastUserAgent: 'phone/1' },
      { id: 'no-agent-at-login', lastIp: '198.51.100.1', lastUserAgent: null }
    ], 'a session no other client refreshed gets the login\'s; one that moved keeps its last client')
  })

  t.test(`a migration changed after it was applied is refused (${database})`, async (t) => {
    const config = await freshDatabase(t, database)
    await applyMigrations(config)
    const [first] = migrationsOnDisk(database)
    await query(config, 'UPDATE "_prisma_migrations" SET checksum = ? WHERE migration_name = ?', ['0'.repeat(64), first?.name])
    const error = await applyMigrations(config).then(() => null, (reason: unknown) => reason)
    t.type(error, MigrationError)
    t.match(error, { message: new RegExp(`Migration ${first?.name} was changed after it was applied`) }, 'names the migration and the problem')
    t.same(await query(config, 'SELECT checksum FROM "_prisma_migrations" WHERE migration_name = ?', [first?.name]), [{ checksum: '0'.repeat(64) }], 'the record is left alone')
  })

  t.test(`a database with a migration this build does not know is refused (${database})`, async (t) => {
    const config = await freshDatabase(t, database)
    await applyMigrations(config)
    await query(config, 'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES (?, ?, ?, ?, ?, 1)',
      ['00000000-0000-4000-8000-000000000000', 'f'.repeat(64), new Date().toISOString(), '29991231000000_from_the_future', new Date().toISOString()])
    await t.rejects(applyMigrations(config), { message: /29991231000000_from_the_future, which this build does not know/ })
  })
}

t.test('the SQLite file uses WAL', async (t) => {
  const config = await freshDatabase(t, 'sqlite')
  await applyMigrations(config)
  if (config.provider !== 'sqlite') throw new Error('unreachable')
  const db = new Database(config.file, { readonly: true })
  t.teardown(() => db.close())
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal')
})

t.test('SQLite: concurrent calls apply each migration once', async (t) => {
  const config = await freshDatabase(t, 'sqlite')
  const results = await Promise.all([applyMigrations(config), applyMigrations(config), applyMigrations(config)])
  t.same(results.flat(), migrationsOnDisk('sqlite').map((migration) => migration.name))
  t.equal((await query(config, 'SELECT * FROM "_prisma_migrations"')).length, migrationsOnDisk('sqlite').length)
})

if (process.env.TEST_DATABASE_URL) {
  t.test('PostgreSQL: three instances starting together apply each migration exactly once', async (t) => {
    const config = await freshDatabase(t, 'postgresql')
    const results = await Promise.all([applyMigrations(config), applyMigrations(config), applyMigrations(config)])
    const names = migrationsOnDisk('postgresql').map((migration) => migration.name)
    t.same(results.flat(), names, 'all succeed; between them each migration applied once')
    const rows = await query<{ migration_name: string, count: string }>(config,
      'SELECT migration_name, count(*) AS count FROM "_prisma_migrations" GROUP BY migration_name ORDER BY migration_name')
    t.same(rows.map((row) => [row.migration_name, Number(row.count)]), names.map((name) => [name, 1]), 'exactly one row per migration')
  })
}
