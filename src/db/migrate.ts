// Applies the Prisma migration folders in prisma/<provider>/migrations that the database has not seen,
// recording each in Prisma's own `_prisma_migrations` table (same columns and checksum as
// `prisma migrate deploy`), so the two agree wherever Prisma's schema engine is available.
// Runs at start and by `npm run db:migrate`. On PostgreSQL an advisory lock serializes instances that
// start together; on SQLite the write transaction does.
import { createHash, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { DatabaseConfig } from '../config.js'

/** Arbitrary constant shared by every instance: the key of the migration advisory lock. */
const MIGRATION_LOCK_KEY = 724_311_908

interface Migration { name: string, sql: string, checksum: string }

function prismaDir (): string {
  // Sources run from src/db, the build from dist/src/db: both sit under the project root.
  const here = fileURLToPath(import.meta.url)
  const root = here.slice(0, here.lastIndexOf('/src/db/')).replace(/\/dist$/, '')
  return join(root, 'prisma')
}

export function readMigrations (provider: DatabaseConfig['provider']): Migration[] {
  const dir = join(prismaDir(), provider, 'migrations')
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, 'migration.sql'), 'utf8')
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') }
    })
}

const SQLITE_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`

const POSTGRES_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`

export class MigrationError extends Error {}

function checkHistory (applied: Map<string, string>, migrations: Migration[]): Migration[] {
  for (const [name, checksum] of applied) {
    const known = migrations.find((migration) => migration.name === name)
    if (known === undefined) throw new MigrationError(`The database has migration ${name}, which this build does not know: is the build older than the database?`)
    if (known.checksum !== checksum) throw new MigrationError(`Migration ${name} was changed after it was applied (checksum differs)`)
  }
  return migrations.filter((migration) => !applied.has(migration.name))
}

/** Returns the names of the migrations applied by this call. */
export async function applyMigrations (database: DatabaseConfig): Promise<string[]> {
  const migrations = readMigrations(database.provider)
  return database.provider === 'sqlite'
    ? migrateSqlite(database.file, migrations)
    : migratePostgres(database.url, database.schema, migrations)
}

// Each provider's driver is loaded only when it is the configured one.
async function migrateSqlite (file: string, migrations: Migration[]): Promise<string[]> {
  const { default: Database } = await import('better-sqlite3')
  mkdirSync(dirname(file), { recursive: true })
  const db = new Database(file, { timeout: 10_000 })
  try {
    // WAL lets readers run beside the single writer; the setting is stored in the file.
    db.pragma('journal_mode = WAL')
    db.exec(SQLITE_MIGRATIONS_TABLE)
    const applyAll = db.transaction(() => {
      const rows = db.prepare('SELECT migration_name, checksum FROM "_prisma_migrations" WHERE rolled_back_at IS NULL AND finished_at IS NOT NULL').all() as Array<{ migration_name: string, checksum: string }>
      const pending = checkHistory(new Map(rows.map((row) => [row.migration_name, row.checksum])), migrations)
      const record = db.prepare('INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES (?, ?, ?, ?, ?, 1)')
      for (const migration of pending) {
        const startedAt = new Date().toISOString()
        db.exec(migration.sql)
        record.run(randomUUID(), migration.checksum, new Date().toISOString(), migration.name, startedAt)
      }
      return pending.map((migration) => migration.name)
    })
    return applyAll.immediate()
  } finally {
    db.close()
  }
}

async function migratePostgres (url: string, schema: string, migrations: Migration[]): Promise<string[]> {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY])
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`)
      await client.query(`SET search_path TO "${schema}"`)
      await client.query(POSTGRES_MIGRATIONS_TABLE)
      const { rows } = await client.query<{ migration_name: string, checksum: string }>(
        'SELECT migration_name, checksum FROM "_prisma_migrations" WHERE rolled_back_at IS NULL AND finished_at IS NOT NULL')
      const pending = checkHistory(new Map(rows.map((row) => [row.migration_name, row.checksum])), migrations)
      for (const migration of pending) {
        await client.query('BEGIN')
        try {
          const startedAt = new Date()
          await client.query(migration.sql)
          await client.query(
            'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES ($1, $2, now(), $3, $4, 1)',
            [randomUUID(), migration.checksum, migration.name, startedAt])
          await client.query('COMMIT')
        } catch (error) {
          await client.query('ROLLBACK')
          throw error
        }
      }
      return pending.map((migration) => migration.name)
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY])
    }
  } finally {
    await client.end()
  }
}

export interface MigrationStatus {
  /** Applied, in order, as the database records them. */
  applied: string[]
  /** In this build, not yet applied. */
  pending: string[]
  /** Recorded by the database, unknown to this build (it is older than the database). */
  unknown: string[]
  /** Applied, but the file has changed since. */
  changed: string[]
}

/** Compares the database's migration history with this build's folders, changing nothing. */
export async function migrationStatus (database: DatabaseConfig): Promise<MigrationStatus> {
  const migrations = readMigrations(database.provider)
  const rows = database.provider === 'sqlite' ? await appliedSqlite(database.file) : await appliedPostgres(database.url, database.schema)
  const applied = new Map(rows.map((row) => [row.migration_name, row.checksum]))
  const known = new Map(migrations.map((migration) => [migration.name, migration.checksum]))
  return {
    applied: rows.map((row) => row.migration_name),
    pending: migrations.filter((migration) => !applied.has(migration.name)).map((migration) => migration.name),
    unknown: rows.filter((row) => !known.has(row.migration_name)).map((row) => row.migration_name),
    changed: rows.filter((row) => known.has(row.migration_name) && known.get(row.migration_name) !== row.checksum).map((row) => row.migration_name)
  }
}

interface AppliedRow { migration_name: string, checksum: string }
const APPLIED = 'SELECT migration_name, checksum FROM "_prisma_migrations" WHERE rolled_back_at IS NULL AND finished_at IS NOT NULL ORDER BY started_at, migration_name'

async function appliedSqlite (file: string): Promise<AppliedRow[]> {
  if (!existsSync(file)) return []
  const { default: Database } = await import('better-sqlite3')
  const db = new Database(file, { readonly: true, fileMustExist: true, timeout: 10_000 })
  try {
    const table = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_prisma_migrations'`).get()
    return table === undefined ? [] : db.prepare(APPLIED).all() as AppliedRow[]
  } finally {
    db.close()
  }
}

async function appliedPostgres (url: string, schema: string): Promise<AppliedRow[]> {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows: [found] } = await client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [`"${schema}"."_prisma_migrations"`])
    if (found?.exists !== true) return []
    await client.query(`SET search_path TO "${schema}"`)
    return (await client.query<AppliedRow>(APPLIED)).rows
  } finally {
    await client.end()
  }
}
