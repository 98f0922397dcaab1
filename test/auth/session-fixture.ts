// Builds the auth domain straight on a migrated throw-away database, with the server's own factory
// (buildAuthDomain): no app, no HTTP. The access token "signer" returns the claims as JSON so tests
// can read what would have been signed.
import { randomUUID } from 'node:crypto'
import { type AuthDomain, buildAuthDomain } from '../../src/auth/domain.js'
import type { PasswordHasher } from '../../src/auth/passwords.js'
import type { AccessTokenSigner } from '../../src/auth/sessions.js'
import { type AccessTokenClaims, type Lifetimes, hashRefreshToken } from '../../src/auth/token-rules.js'
import { type Db, createDbClient } from '../../src/db/client.js'
import { applyMigrations } from '../../src/db/migrate.js'
import { TEST_SECRET, type TestClock, type TestDatabase, freshDatabaseUrl, testClock, testConfig } from '../helpers.js'

export const SECOND = 1000
export const MINUTE = 60 * SECOND
export const HOUR = 60 * MINUTE

/** Short enough to step through with the clock, far enough apart to tell apart. */
export const LIFETIMES: Lifetimes = { accessToken: 900, refreshIdle: 3600, refreshAbsolute: 4 * 3600, reuseGrace: 10 }

interface Teardown { teardown: (fn: () => unknown) => void }

export const signAccessToken: AccessTokenSigner = (claims) => JSON.stringify(claims)
export function claimsOf (accessToken: string): AccessTokenClaims {
  return JSON.parse(accessToken) as AccessTokenClaims
}

/** A migrated database and a client on it, closed at teardown. */
export async function migratedDb (t: Teardown, database: TestDatabase): Promise<Db> {
  const config = testConfig(await freshDatabaseUrl(t, database))
  await applyMigrations(config.database)
  const db = await createDbClient(config.database)
  t.teardown(() => db.$disconnect())
  return db
}

export interface DomainOptions {
  lifetimes?: Lifetimes
  /** Settings as environment variables (LOGIN_MAX_FAILURES, …), read as the server reads them. */
  env?: Record<string, string>
  /** A hasher the test can hold (see accounts.test.ts); the configured one otherwise. */
  passwordHasher?: PasswordHasher
}

/** One server's worth of auth domain on `db` (several may share one database). */
export function instanceOn (db: Db, clock: TestClock, { lifetimes = LIFETIMES, env, passwordHasher }: DomainOptions = {}): AuthDomain {
  // The domain takes its rules from the configuration; its database is the one given, not the URL.
  const config = { ...testConfig('file:./data/unused-by-the-domain.db', env), ttl: lifetimes }
  return buildAuthDomain({ db, clock, config, signAccessToken, passwordHasher })
}

export async function sessionFixture (t: Teardown, database: TestDatabase, options: DomainOptions = {}) {
  const db = await migratedDb(t, database)
  const clock = testClock()
  const domain = instanceOn(db, clock, options)
  const lifetimes = options.lifetimes ?? LIFETIMES

  async function createUser (tokenVersion = 0) {
    const id = randomUUID()
    const username = `user-${id.slice(0, 8)}`
    await db.user.create({
      data: { id, username, usernameKey: username, passwordHash: 'not a hash', tokenVersion, createdAt: new Date(clock()), updatedAt: new Date(clock()) }
    })
    return { id, username, tokenVersion }
  }

  async function tokenRow (token: string) {
    return db.refreshToken.findUniqueOrThrow({ where: { tokenHash: hashRefreshToken(token) } })
  }

  return { ...domain, db, clock, lifetimes, createUser, tokenRow }
}
