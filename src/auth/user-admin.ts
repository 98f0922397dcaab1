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
    if (disabled) return await sessions.endAllSessions(user.id, 'disabled', { change: { where: { disabled: false }, data: { disabled: true } } }) !== null
    const enabled = await db.user.updateMany({ where: { id: user.id, disabled: true }, data: { disabled: false, updatedAt: new Date(clock()) } })
    return enabled.count === 1
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
    const { hasher, sessions } = this.deps
    const user = await this.findUser(username)
    const weakness = passwordWeakness(password, user.username)
    if (weakness !== null) throw new WeakPassword(weakness)
    const passwordHash = await hasher.hash(password)
    const ended = await sessions.endAllSessions(user.id, 'password-reset', { change: { data: { passwordHash } } })
    // Deleted since it was found.
    if (ended === null) throw new NotFound(`No user named "${username}"`)
    return { user: { id: user.id, username: user.username }, sessionsEnded: ended.sessionsEnded }
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
    const user = await this.findUser(username)
    const ended = await this.deps.sessions.endAllSessions(user.id, 'operator')
    return { user: { id: user.id, username: user.username }, sessionsEnded: ended.sessionsEnded }
  }
}
