// Builds the session domain straight on a migrated throw-away database: no app, no HTTP. The access
// token "signer" returns the claims as JSON so tests can read what would have been signed.
import { randomUUID } from 'node:crypto'
import { RevocationList } from '../../src/auth/revocation-list.js'
import { type AccessTokenSigner, SessionService } from '../../src/auth/sessions.js'
import { SuccessorSeal } from '../../src/auth/successor-seal.js'
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

export interface Instance { sessions: SessionService, revocations: RevocationList }

/** One server's worth of session domain on `db` (several may share one database). */
export function instanceOn (db: Db, clock: TestClock, lifetimes: Lifetimes = LIFETIMES): Instance {
  const revocations = new RevocationList(db, clock)
  const sessions = new SessionService({ db, clock, lifetimes, seal: new SuccessorSeal(TEST_SECRET), revocations, signAccessToken })
  return { sessions, revocations }
}

export async function sessionFixture (t: Teardown, database: TestDatabase, lifetimes: Lifetimes = LIFETIMES) {
  const db = await migratedDb(t, database)
  const clock = testClock()
  const { sessions, revocations } = instanceOn(db, clock, lifetimes)

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

  return { db, clock, sessions, revocations, lifetimes, createUser, tokenRow }
}
