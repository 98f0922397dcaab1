// Test helpers: a fresh app per test on a throw-away database, SQLite always and PostgreSQL too when
// TEST_DATABASE_URL is set (each app gets its own schema there, dropped at teardown).
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { loggerOptions } from '../src/logging.js'
import { type Config, loadConfig } from '../src/config.js'

export type TestDatabase = 'sqlite' | 'postgresql'

/** The databases this run covers: SQLite always, PostgreSQL when TEST_DATABASE_URL is set. */
export function testDatabases (): TestDatabase[] {
  return process.env.TEST_DATABASE_URL ? ['sqlite', 'postgresql'] : ['sqlite']
}

export const TEST_ORIGIN = 'https://app.example.com'
export const TEST_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz'

/** A clock the test moves by hand; starts at the real time so JWT timestamps stay plausible. */
export function testClock (start = Date.now()) {
  let now = start
  const clock = () => now
  clock.advance = (ms: number) => { now += ms }
  clock.set = (ms: number) => { now = ms }
  return clock
}
export type TestClock = ReturnType<typeof testClock>

export interface Teardown { teardown: (fn: () => unknown) => void }

export interface TestAppOptions {
  database?: TestDatabase
  env?: Record<string, string>
  clock?: TestClock
  /** Collect the app's log lines (as parsed JSON objects) into this array. */
  logLines?: Array<Record<string, unknown>>
  /** Share the database of an earlier testApp (scale-out tests). */
  sameDatabaseAs?: FastifyInstance
}

/** A database URL private to one test: a temp SQLite file or a fresh PostgreSQL schema. */
export async function freshDatabaseUrl (t: Teardown, database: TestDatabase): Promise<string> {
  if (database === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'auth-test-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    return `file:${join(dir, 'auth.db')}`
  }
  const base = process.env.TEST_DATABASE_URL
  if (!base) throw new Error('TEST_DATABASE_URL is not set')
  const schema = `test_${randomBytes(6).toString('hex')}`
  const url = new URL(base)
  url.searchParams.set('schema', schema)
  t.teardown(async () => {
    const client = new pg.Client({ connectionString: base })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await client.end()
  })
  return url.toString()
}

export function testConfig (databaseUrl: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    JWT_SECRET: TEST_SECRET,
    LOG_LEVEL: 'silent',
    ALLOWED_ORIGINS: TEST_ORIGIN,
    RATE_LIMIT_MAX: '10000',
    PASSWORD_HASH_CONCURRENCY: '2',
    ...env
  })
}

export async function testApp (t: Teardown, options: TestAppOptions = {}): Promise<FastifyInstance> {
  const databaseUrl = options.sameDatabaseAs?.config.database.url ?? await freshDatabaseUrl(t, options.database ?? 'sqlite')
  const config = testConfig(databaseUrl, options.env)
  let logger
  if (options.logLines !== undefined) {
    const lines = options.logLines
    const stream = new Writable({
      write (chunk, _encoding, callback) {
        for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line))
        callback()
      }
    })
    logger = { ...(loggerOptions({ ...config, logLevel: 'trace' }) as object), stream }
  }
  const app = await buildApp(config, { clock: options.clock, logger })
  t.teardown(() => app.close())
  return app
}

export function json<T = any> (response: LightMyRequestResponse): T {
  return JSON.parse(response.body) as T
}

export const PASSWORD = 'correct horse battery staple'

export async function register (app: FastifyInstance, username = `user${randomBytes(4).toString('hex')}`, password = PASSWORD) {
  const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username, password } })
  if (response.statusCode !== 201) throw new Error(`register failed: ${response.statusCode} ${response.body}`)
  return { username, password, user: json(response).user as { id: string, username: string } }
}

export interface TokenResponse {
  accessToken: string
  tokenType: 'Bearer'
  expiresIn: number
  refreshToken: string
  refreshExpiresIn: number
  user: { id: string, username: string }
}

export async function login (app: FastifyInstance, username: string, password = PASSWORD, extra: Record<string, unknown> = {}): Promise<TokenResponse> {
  const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password, ...extra } })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.statusCode} ${response.body}`)
  return json(response)
}

/** Registers a fresh user and logs in (mobile client). */
export async function signedIn (app: FastifyInstance) {
  const account = await register(app)
  const tokens = await login(app, account.username, account.password)
  return { ...account, tokens }
}

export function bearer (accessToken: string) {
  return { authorization: `Bearer ${accessToken}` }
}

export async function refresh (app: FastifyInstance, refreshToken: string) {
  return app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken } })
}
