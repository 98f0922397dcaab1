// Accounts: registration, login and password change. Login failures are throttled per
// (account, address); an unknown or disabled account costs the same hashing work and gets the same
// answer as a wrong password.
import { randomUUID } from 'node:crypto'
import { type Db, isUniqueViolation } from '../db/client.js'
import { InvalidCredentials, UsernameTaken, ValidationFailed, WeakPassword, rateLimited } from '../errors.js'
import type { LoginThrottle } from './login-throttle.js'
import { type PasswordHasher, passwordWeakness } from './passwords.js'
import type { AccountView, IssuedTokens, SessionContext, SessionService } from './sessions.js'
import type { Clock } from './token-rules.js'
import { usernameKey, usernameProblem } from './usernames.js'

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
   * Checks the password and starts a session. The failure is counted before the check, so that
   * concurrent attempts cannot slip past the limit; a success clears the count.
   */
  async login (username: string, password: string, address: string, context: SessionContext): Promise<IssuedTokens> {
    const user = await this.checkPassword(usernameKey(username), password, address)
    return this.deps.sessions.startSession(user, context)
  }

  /**
   * Changes the password and ends every session and every access token of the user, the caller's
   * included; the caller gets a fresh session in the same transaction.
   */
  async changePassword (userId: string, currentPassword: string, newPassword: string, address: string, context: SessionContext): Promise<IssuedTokens> {
    const { db, sessions, hasher, clock } = this.deps
    const account = await db.user.findUnique({ where: { id: userId }, select: { usernameKey: true, username: true } })
    if (account === null) throw new InvalidCredentials()
    await this.checkPassword(account.usernameKey, currentPassword, address)
    const weakness = passwordWeakness(newPassword, account.username)
    if (weakness !== null) throw new WeakPassword(weakness)
    const passwordHash = await hasher.hash(newPassword)
    const now = clock()
    const { issued, event } = await db.$transaction(async (tx) => {
      await tx.user.update({ where: { id: userId }, data: { passwordHash, updatedAt: new Date(now) } })
      const { tokenVersion, event } = await sessions.endAllSessions(tx, userId, 'password-change', now, context)
      const issued = await sessions.startSession({ id: userId, username: account.username, tokenVersion }, context, tx)
      return { issued, event }
    })
    sessions.applyRevocation(event)
    return issued
  }

  async findAccount (userId: string): Promise<AccountView | null> {
    return this.deps.db.user.findUnique({ where: { id: userId }, select: { id: true, username: true } })
  }

  private async checkPassword (key: string, password: string, address: string): Promise<AccountView & { tokenVersion: number }> {
    const { db, hasher, throttle } = this.deps
    const retryAfter = await throttle.attempt(key, address)
    if (retryAfter > 0) throw rateLimited(retryAfter)
    const user = await db.user.findUnique({ where: { usernameKey: key } })
    const valid = user !== null && !user.disabled
      ? await hasher.verify(user.passwordHash, password)
      : await hasher.verifyAgainstDummy(password)
    if (!valid || user === null) throw new InvalidCredentials()
    await throttle.forgive(key, address)
    return { id: user.id, username: user.username, tokenVersion: user.tokenVersion }
  }
}
