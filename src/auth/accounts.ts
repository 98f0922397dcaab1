// Accounts: registration, login and password change. Login failures are throttled per
// (account, address); an unknown or disabled account costs the same hashing work and gets the same
// answer as a wrong password.
import { randomUUID } from 'node:crypto'
import { type Db, isUniqueViolation } from '../db/client.js'
import { InvalidCredentials, UsernameTaken, ValidationFailed, WeakPassword, rateLimited } from '../errors.js'
import type { LoginThrottle } from './login-throttle.js'
import { type PasswordHasher, passwordWeakness } from './passwords.js'
import { type AccountView, CredentialsChanged, type IssuedTokens, type SessionContext, type SessionService } from './sessions.js'
import type { Clock } from './token-rules.js'
import { usernameKey, usernameProblem } from './usernames.js'

/** A login whose session start keeps losing to logouts-everywhere gives up after this many tries. */
const MAX_SESSION_START_ATTEMPTS = 3

export interface AccountServiceDeps {
  db: Db
  clock: Clock
  hasher: PasswordHasher
  throttle: LoginThrottle
  sessions: SessionService
}

export class AccountService {
  constructor (private readonly deps: AccountServiceDeps) {}

  async register (username: string, password: string): Promise<AccountView> {
    const problem = usernameProblem(username)
    if (problem !== null) throw new ValidationFailed(problem)
    const weakness = passwordWeakness(password, username)
    if (weakness !== null) throw new WeakPassword(weakness)
    const key = usernameKey(username)
    const { db } = this.deps
    if (await db.user.findUnique({ where: { usernameKey: key }, select: { id: true } }) !== null) throw new UsernameTaken()
    const passwordHash = await this.deps.hasher.hash(password)
    const now = new Date(this.deps.clock())
    try {
      const user = await db.user.create({
        data: { id: randomUUID(), username: username.normalize('NFKC'), usernameKey: key, passwordHash, createdAt: now, updatedAt: now },
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
    let user = await this.checkPassword(usernameKey(username), password, address)
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.deps.sessions.startSession(user, context)
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

  async findAccount (userId: string): Promise<AccountView | null> {
    return this.deps.db.user.findUnique({ where: { id: userId }, select: { id: true, username: true } })
  }

  /**
   * The account whose password this is, with the token version and hash the check read. Only a
   * completed check counts: a wrong password is a failure, a right one wipes the pair's failures,
   * and a check the database (or anything else) interrupted counts for nothing.
   */
  private async checkPassword (key: string, password: string, address: string): Promise<AccountView & { tokenVersion: number, passwordHash: string }> {
    const { db, hasher, throttle } = this.deps
    const attempt = await throttle.begin(key, address)
    if (attempt.retryAfter > 0) throw rateLimited(attempt.retryAfter)
    let user, valid
    try {
      user = await db.user.findUnique({ where: { usernameKey: key } })
      valid = user !== null && !user.disabled
        ? await hasher.verify(user.passwordHash, password)
        : await hasher.verifyAgainstDummy(password)
    } catch (error) {
      await attempt.abandoned()
      throw error
    }
    if (!valid || user === null) {
      await attempt.failed()
      throw new InvalidCredentials()
    }
    await attempt.succeeded()
    return { id: user.id, username: user.username, tokenVersion: user.tokenVersion, passwordHash: user.passwordHash }
  }
}
