// What an operator does to accounts (the operator CLI): list, create, disable, enable, delete, reset a
// password, end sessions. The same rules as the HTTP API (usernames, password strength), and every
// change that must reach access tokens writes its revocation in the same transaction (or, for delete
// and disable, the database triggers of migration user_removal_revokes_tokens do), so every running
// instance refuses the old tokens at its next read of the log.
import { NotFound, WeakPassword } from '../errors.js'
import type { Db } from '../db/client.js'
import type { AccountService } from './accounts.js'
import { type PasswordHasher, passwordWeakness } from './passwords.js'
import type { AccountView, SessionService } from './sessions.js'
import type { Clock } from './token-rules.js'
import { usernameKey } from './usernames.js'

export interface UserAdminDeps {
  db: Db
  clock: Clock
  hasher: PasswordHasher
  accounts: AccountService
  sessions: SessionService
}

export interface UserSummary {
  id: string
  username: string
  disabled: boolean
  createdAt: Date
  liveSessions: number
}

export interface OperatorSession {
  id: string
  client: string
  createdAt: Date
  lastUsedAt: Date
  expiresAt: Date
  ip: string | null
  userAgent: string | null
  refreshCount: number
}

export class UserAdmin {
  constructor (private readonly deps: UserAdminDeps) {}

  async listUsers (): Promise<UserSummary[]> {
    const now = new Date(this.deps.clock())
    const users = await this.deps.db.user.findMany({
      orderBy: { createdAt: 'asc' },
      select: {
        id: true, username: true, disabled: true, createdAt: true,
        _count: { select: { sessions: { where: { revokedAt: null, expiresAt: { gt: now } } } } }
      }
    })
    return users.map(({ _count, ...user }) => ({ ...user, liveSessions: _count.sessions }))
  }

  /** Registers a user as POST /auth/register does (same username and password rules). */
  async createUser (username: string, password: string): Promise<AccountView> {
    return this.deps.accounts.register(username, password)
  }

  /** The account a username names (compared as logins compare it); NotFound when there is none. */
  async findUser (username: string): Promise<AccountView & { disabled: boolean }> {
    const user = await this.deps.db.user.findUnique({ where: { usernameKey: usernameKey(username) }, select: { id: true, username: true, disabled: true } })
    if (user === null) throw new NotFound(`No user named "${username}"`)
    return user
  }

  /**
   * Disabling refuses the user's logins and refreshes, and (by the trigger) raises the token version,
   * so access tokens die everywhere; it also ends every session, so re-enabling does not bring old
   * refresh tokens back. Returns false when the user already was in that state.
   */
  async setDisabled (username: string, disabled: boolean): Promise<boolean> {
    const { db, clock, sessions } = this.deps
    const user = await this.findUser(username)
    const now = clock()
    const { changed, event } = await db.$transaction(async (tx) => {
      const updated = await tx.user.updateMany({ where: { id: user.id, disabled: !disabled }, data: { disabled, updatedAt: new Date(now) } })
      if (updated.count === 0 || !disabled) return { changed: updated.count === 1, event: null }
      return { changed: true, event: (await sessions.endAllSessions(tx, user.id, 'disabled', now)).event }
    })
    if (event !== null) sessions.applyRevocation(event)
    if (!changed) return false
    return true
  }

  /** Deletes the user with their sessions, tokens, orders and history; the trigger revokes every token. */
  async deleteUser (username: string): Promise<AccountView> {
    const user = await this.findUser(username)
    const deleted = await this.deps.db.user.deleteMany({ where: { id: user.id } })
    if (deleted.count === 0) throw new NotFound(`No user named "${username}"`)
    return { id: user.id, username: user.username }
  }

  /** Sets a new password (same strength rules as the API) and ends every session and access token. */
  async resetPassword (username: string, password: string): Promise<{ user: AccountView, sessionsEnded: number }> {
    const { db, clock, hasher, sessions } = this.deps
    const user = await this.findUser(username)
    const weakness = passwordWeakness(password, user.username)
    if (weakness !== null) throw new WeakPassword(weakness)
    const passwordHash = await hasher.hash(password)
    const now = clock()
    const { event, sessionsEnded } = await db.$transaction(async (tx) => {
      await tx.user.update({ where: { id: user.id }, data: { passwordHash, updatedAt: new Date(now) } })
      return sessions.endAllSessions(tx, user.id, 'password-reset', now)
    })
    sessions.applyRevocation(event)
    return { user: { id: user.id, username: user.username }, sessionsEnded }
  }

  async listSessions (username: string): Promise<{ user: AccountView, sessions: OperatorSession[] }> {
    const user = await this.findUser(username)
    const now = new Date(this.deps.clock())
    const sessions = await this.deps.db.session.findMany({
      where: { userId: user.id, revokedAt: null, expiresAt: { gt: now } },
      orderBy: { createdAt: 'desc' },
      select: { id: true, client: true, createdAt: true, lastUsedAt: true, expiresAt: true, ip: true, userAgent: true, refreshCount: true }
    })
    return { user: { id: user.id, username: user.username }, sessions }
  }

  /** Ends one live session (any user's); NotFound when there is no such live session. */
  async revokeSession (sessionId: string): Promise<void> {
    if (!await this.deps.sessions.revokeSession(sessionId, 'operator')) throw new NotFound(`No live session "${sessionId}"`)
  }

  /** Ends every session and access token of the user. */
  async revokeUserSessions (username: string): Promise<{ user: AccountView, sessionsEnded: number }> {
    const { db, clock, sessions } = this.deps
    const user = await this.findUser(username)
    const now = clock()
    const { event, sessionsEnded } = await db.$transaction(async (tx) => sessions.endAllSessions(tx, user.id, 'operator', now))
    sessions.applyRevocation(event)
    return { user: { id: user.id, username: user.username }, sessionsEnded }
  }
}
