// Builds the auth domain (accounts, sessions, the revocation list and what they need) from a database,
// a clock, the configuration and the stores. One factory for every user of the domain: the server's
// auth plugin, the operator CLI and the tests, so that each sees the same rules with the same settings.
import type { Config } from '../config.js'
import type { Db } from '../db/client.js'
import { AccountService } from './accounts.js'
import type { AuthEventSink } from './events.js'
import { type LoginAttemptStore, LoginThrottle, MemoryLoginAttemptStore } from './login-throttle.js'
import { PasswordHasher } from './passwords.js'
import { RevocationList } from './revocation-list.js'
import { type AccessTokenSigner, SessionService } from './sessions.js'
import { SuccessorSeal } from './successor-seal.js'
import { type Clock, revocationRelevantUntil } from './token-rules.js'
import { UserAdmin } from './user-admin.js'

export interface AuthDomainOptions {
  db: Db
  clock: Clock
  config: Config
  /** Where login attempts are counted (Redis on the server when configured); this process's memory otherwise. */
  loginAttempts?: LoginAttemptStore
  /** Told of logins, refreshes and revocations (the server's metrics and logs). */
  events?: AuthEventSink
  /** Signs access tokens (the server passes @fastify/jwt's); tools that issue none leave it out. */
  signAccessToken?: AccessTokenSigner
  /** The hasher of passwords; one with the configured concurrency when left out (tests pass one they can hold). */
  passwordHasher?: PasswordHasher
}

export interface AuthDomain {
  revocations: RevocationList
  passwordHasher: PasswordHasher
  throttle: LoginThrottle
  sessions: SessionService
  accounts: AccountService
  /** What the operator CLI does to accounts. */
  admin: UserAdmin
}

const issuesNoTokens: AccessTokenSigner = () => { throw new Error('this process issues no access tokens') }

export function buildAuthDomain ({
  db, clock, config, loginAttempts, events, signAccessToken = issuesNoTokens, passwordHasher = new PasswordHasher(config.passwordHashConcurrency)
}: AuthDomainOptions): AuthDomain {
  const revocations = new RevocationList(db, clock, (createdAt) => revocationRelevantUntil(createdAt, config.ttl))
  const throttle = new LoginThrottle(loginAttempts ?? new MemoryLoginAttemptStore(clock), clock, config.login.maxFailures, config.login.lockWindow)
  const sessions = new SessionService({
    db,
    clock,
    lifetimes: config.ttl,
    seal: new SuccessorSeal(config.jwt.secret),
    signAccessToken,
    // After commit: refused on this instance at once (and the others are told), then reported.
    onRevoked: (event, report) => {
      revocations.record(event)
      events?.report({ type: 'revocation', ...report })
    },
    sessionEventsRetentionDays: config.sessionEventsRetentionDays,
    events
  })
  const accounts = new AccountService({ db, clock, hasher: passwordHasher, throttle, sessions, ipv6PrefixLength: config.ipv6PrefixLength, events })
  const admin = new UserAdmin({ db, clock, hasher: passwordHasher, accounts, sessions })
  return { revocations, passwordHasher, throttle, sessions, accounts, admin }
}
