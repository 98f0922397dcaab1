// Test helpers: a fresh app per test on a throw-away database, SQLite always and PostgreSQL too when
// TEST_DATABASE_URL is set (each app gets its own schema there, dropped at teardown).
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
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

/** The few tap assertions the shared helpers use (a tap test object satisfies it). */
export interface Asserts {
  equal: (found: any, wanted: any, ...message: [] | [string]) => unknown
  same: (found: any, wanted: any, ...message: [] | [string]) => unknown
  type: (found: any, wanted: string, ...message: [] | [string]) => unknown
}

const ERROR_KEYS = ['code', 'error', 'message', 'statusCode']
/** Why a session ended, as a refusal of its refresh token says (@auth-server/client's onSessionEnded). */
const SESSION_END_REASONS = ['logout', 'reused', 'revoked', 'expired', 'password-changed']

/**
 * An error answer in the contract's shape, and nothing else: this status; a JSON body of exactly
 * { statusCode, code, error, message } with this code, the status's own reason phrase as `error`
 * and a message. The one extra member the contract has is `reason` on AUTH_REFRESH_INVALID (why the
 * token's session ended): allowed there only, with a known value, and checked when `reason` is given.
 */
export function assertError (t: Asserts, response: LightMyRequestResponse, statusCode: number, code: string, what = '', expected: { reason?: string } = {}): void {
  const label = what === '' ? `${statusCode} ${code}` : `${what}: ${statusCode} ${code}`
  t.equal(response.statusCode, statusCode, `${label}: status (got ${response.statusCode}: ${response.body.slice(0, 200)})`)
  t.equal(/^application\/json(;|$)/.test(String(response.headers['content-type'])), true, `${label}: a JSON body`)
  let body: Record<string, unknown> = {}
  try {
    body = json(response)
  } catch {}
  const { reason, ...rest } = body
  t.same(Object.keys(rest).sort(), ERROR_KEYS, `${label}: exactly statusCode, code, error, message`)
  t.equal(body.statusCode, statusCode, `${label}: body statusCode`)
  t.equal(body.code, code, `${label}: code`)
  t.equal(body.error, STATUS_CODES[statusCode], `${label}: error is the status's reason phrase`)
  t.equal(typeof body.message === 'string' && body.message !== '', true, `${label}: a message`)
  if (reason !== undefined || expected.reason !== undefined) {
    t.equal(code === 'AUTH_REFRESH_INVALID' && SESSION_END_REASONS.includes(String(reason)), true, `${label}: reason "${String(reason)}" is a session-end reason of AUTH_REFRESH_INVALID`)
    if (expected.reason !== undefined) t.equal(reason, expected.reason, `${label}: reason`)
  }
}

/** An access-token rejection on a protected route: 401, the code, and the RFC 6750 challenge. */
export function assertTokenRejected (t: Asserts, response: LightMyRequestResponse, code: string, what = ''): void {
  assertError(t, response, 401, code, what)
  t.equal(response.headers['www-authenticate'], 'Bearer error="invalid_token"', `${what === '' ? code : `${what}: ${code}`}: WWW-Authenticate`)
}

/**
 * Counts calls into the app's password hasher (hash and verify; the dummy check for an unknown user
 * goes through verify), to show that refused input never reaches argon2. A count of 0 means something
 * only next to its positive control, assertHashingCounted (and test/helpers.test.ts).
 */
export function countHashing (app: FastifyInstance): () => number {
  const hasher = app.passwordHasher as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  let calls = 0
  for (const method of ['hash', 'verify']) {
    const original = hasher[method]!.bind(hasher)
    hasher[method] = async (...args: unknown[]) => {
      calls += 1
      return original(...args)
    }
  }
  return () => calls
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

/**
 * The positive control of a "no password was hashed" check: the same counter, on the same app, sees
 * the password check of a login (an unknown user's: nothing is created, one failure is counted).
 */
export async function assertHashingCounted (t: Asserts, app: FastifyInstance, hashing: () => number, what = 'control'): Promise<void> {
  const before = hashing()
  const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: 'hashing-control', password: 'the password of nobody at all' } })
  t.equal(response.statusCode, 401, `${what}: the control login is refused`)
  t.equal(hashing() > before, true, `${what}: the counter sees the control login's password check`)
}
