// Accounts: registration, login and password change. Login failures are throttled per
// (account, address); an unknown or disabled account costs the same hashing work and gets the same
// answer as a wrong password.
import { randomUUID } from 'node:crypto'
import { type Db, isUniqueViolation } from '../db/client.js'
import { clientAddressKey } from './client-address.js'
import { InvalidCredentials, UsernameTaken, ValidationFailed, WeakPassword, rateLimited } from '../errors.js'
import { type AuthEventSink, IGNORE_AUTH_EVENTS } from './events.js'
import type { LoginThrottle } from './login-throttle.js'
import { type PasswordHasher, passwordWeakness } from './passwords.js'
import { type AccountView, CredentialsChanged, type IssuedTokens, type SessionContext, type SessionService } from './sessions.js'
import type { Clock } from './token-rules.js'
import { displayUsername, usernameKey, usernameProblem, usernameSkeleton } from './usernames.js'

/** A login whose session start keeps losing to logouts-everywhere gives up after this many tries. */
const MAX_SESSION_START_ATTEMPTS = 3

export interface AccountServiceDeps {
  db: Db
  clock: Clock
  hasher: PasswordHasher
  throttle: LoginThrottle
  sessions: SessionService
  /** IPv6 clients are throttled per network of this prefix length (src/auth/client-address.ts). */
  ipv6PrefixLength?: number
  /** Told of each login outcome, lockout and password change (metrics, logs). */
  events?: AuthEventSink
}

type LoginRefused = (outcome: 'failed' | 'locked', userId: string | null) => void

export class AccountService {
  private readonly events: AuthEventSink

  constructor (private readonly deps: AccountServiceDeps) {
    this.events = deps.events ?? IGNORE_AUTH_EVENTS
  }

  async register (username: string, password: string): Promise<AccountView> {
    const problem = usernameProblem(username)
    if (problem !== null) {
      // A compatibility form of a taken name (𝐚𝐥𝐢𝐜𝐞, ⓐⓛⓘⓒⓔ, ﬁ) reads as that name: say it is taken.
      const folded = username.normalize('NFKC')
      if (usernameProblem(folded) === null && await this.lookAlikeTaken(usernameKey(folded))) throw new UsernameTaken()
      throw new ValidationFailed(problem)
    }
    const weakness = passwordWeakness(password, username)
    if (weakness !== null) throw new WeakPassword(weakness)
    const key = usernameKey(username)
    const skeleton = usernameSkeleton(key)
    const { db } = this.deps
    // The same name, or one that looks the same (UTS #39), is taken. The unique indexes on both hold
    // this when two registrations race; this read only saves the hashing work in the common case.
    if (await this.lookAlikeTaken(key)) throw new UsernameTaken()
    const passwordHash = await this.deps.hasher.hash(password)
    const now = new Date(this.deps.clock())
    try {
      const user = await db.user.create({
        data: { id: randomUUID(), username: displayUsername(username), usernameKey: key, usernameSkeleton: skeleton, passwordHash, createdAt: now, updatedAt: now },
        select: { id: true, username: true }
      })
      return user
    } catch (error) {
      if (isUniqueViolation(error)) throw new UsernameTaken()
      throw error
    }
  }

  /**
   * Checks the password and starts a session bound to the token version and password hash the check
   * read. If a logout-everywhere committed in between, the same password still holds and the session
   * starts under the new version; if the password changed, the password checked is no longer the
   * account's and the login fails.
   */
  async login (username: string, password: string, address: string, context: SessionContext): Promise<IssuedTokens> {
    let user = await this.checkPassword(usernameKey(username), password, address, (outcome, userId) => {
      this.events.report({ type: 'login', outcome, userId, requestId: context.requestId })
    })
    for (let attempt = 1; ; attempt++) {
      try {
        const issued = await this.deps.sessions.startSession(user, context)
        this.events.report({ type: 'login', outcome: 'ok', userId: user.id, sessionId: issued.sessionId, requestId: context.requestId })
        return issued
      } catch (error) {
        if (!(error instanceof CredentialsChanged)) throw error
      }
      const now = await this.deps.db.user.findUnique({ where: { id: user.id }, select: { tokenVersion: true, passwordHash: true, disabled: true } })
      if (now === null || now.disabled || now.passwordHash !== user.passwordHash || attempt >= MAX_SESSION_START_ATTEMPTS) throw new InvalidCredentials()
      user = { ...user, tokenVersion: now.tokenVersion }
    }
  }

  /**
   * Changes the password and ends every session and every access token of the user, the caller's
   * included; the caller gets a fresh session in the same transaction.
   */
  async changePassword (userId: string, currentPassword: string, newPassword: string, address: string, context: SessionContext): Promise<IssuedTokens> {
    const { db, sessions, hasher } = this.deps
    const account = await db.user.findUnique({ where: { id: userId }, select: { usernameKey: true, username: true } })
    if (account === null) throw new InvalidCredentials()
    const checked = await this.checkPassword(account.usernameKey, currentPassword, address)
    if (checked.id !== userId) throw new InvalidCredentials()
    const weakness = passwordWeakness(newPassword, account.username)
    if (weakness !== null) throw new WeakPassword(weakness)
    const passwordHash = await hasher.hash(newPassword)
    try {
      return await sessions.changePassword({ id: userId, username: account.username }, checked.passwordHash, passwordHash, context)
    } catch (error) {
      // Another change committed since the check: the current password given is no longer the account's.
      if (error instanceof CredentialsChanged) throw new InvalidCredentials()
      throw error
    }
  }

  private async lookAlikeTaken (key: string): Promise<boolean> {
    const taken = await this.deps.db.user.findFirst({ where: { OR: [{ usernameKey: key }, { usernameSkeleton: usernameSkeleton(key) }] }, select: { id: true } })
    return taken !== null
  }

  /**
   * Users registered before skeletons were stored get theirs (at start, in batches). Their names are
   * kept as they are. Where two older users already look alike, one of them (the first by id) holds
   * the skeleton and the other keeps none: one is enough to keep a third look-alike out. Safe to run on several instances at
   * once (each write is conditional).
   */
  async backfillUsernameSkeletons (batchSize = 500): Promise<number> {
    const { db } = this.deps
    let after = ''
    let filled = 0
    for (;;) {
      const users = await db.user.findMany({
        where: { usernameSkeleton: null, id: { gt: after } }, orderBy: { id: 'asc' }, take: batchSize, select: { id: true, usernameKey: true }
      })
      for (const user of users) {
        try {
          const { count } = await db.user.updateMany({ where: { id: user.id, usernameSkeleton: null }, data: { usernameSkeleton: usernameSkeleton(user.usernameKey) } })
          filled += count
        } catch (error) {
          if (!isUniqueViolation(error)) throw error
        }
      }
      if (users.length < batchSize) return filled
      after = users[users.length - 1]!.id
    }
  }

  async findAccount (userId: string): Promise<AccountView | null> {
    return this.deps.db.user.findUnique({ where: { id: userId }, select: { id: true, username: true } })
  }

  /** `refused` hears of a login that failed or was locked out (with the account's id, when there is one). */
  /**
   * The account whose password this is, with the token version and hash the check read. Only a
   * completed check counts: a wrong password is a failure, a right one wipes the pair's failures,
   * and a check the database (or anything else) interrupted counts for nothing.
   * `refused` hears of a login that failed or was locked out (with the account's id, when there is one).
   */
  private async checkPassword (key: string, password: string, address: string, refused?: LoginRefused): Promise<AccountView & { tokenVersion: number, passwordHash: string }> {
    const { db, hasher, throttle } = this.deps
    address = clientAddressKey(address, this.deps.ipv6PrefixLength)
    const attempt = await throttle.begin(key, address)
    const retryAfter = attempt.retryAfter
    if (retryAfter > 0) {
      this.events.report({ type: 'rate-limited', limiter: 'login-lockout' })
      // Which account is under attack is worth an indexed lookup on this (already limited) path.
      if (refused !== undefined) {
        const account = await db.user.findUnique({ where: { usernameKey: key }, select: { id: true } }).catch(() => null)
        refused('locked', account?.id ?? null)
      }
      throw rateLimited(retryAfter)
    }
    let user, valid
    try {
      // Only what the check and the session need (no dates to convert on the login path).
      user = await db.user.findUnique({ where: { usernameKey: key }, select: { id: true, username: true, passwordHash: true, tokenVersion: true, disabled: true } })
      valid = user !== null && !user.disabled
        ? await hasher.verify(user.passwordHash, password)
        : await hasher.verifyAgainstDummy(password)
    } catch (error) {
      await attempt.abandoned()
      throw error
    }
    if (!valid || user === null) {
      await attempt.failed()
      refused?.('failed', user?.id ?? null)
      throw new InvalidCredentials()
    }
    await attempt.succeeded()
    return { id: user.id, username: user.username, tokenVersion: user.tokenVersion, passwordHash: user.passwordHash }
  }
}
