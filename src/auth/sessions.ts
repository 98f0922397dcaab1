// Sessions and their refresh tokens: login starts a session, refresh rotates its token, logout and
// reuse end it, logout-everywhere and password change raise the user's token version.
// The decisions come from token-rules.ts; this file carries them out against the database, each
// change in one transaction, and feeds every revocation into the in-memory RevocationList.
import { randomUUID } from 'node:crypto'
import type { Db, DbTransaction } from '../db/client.js'
import { SessionStore } from '../db/session-store.js'
import { DpopInvalid, RefreshInvalid, RefreshReused } from '../errors.js'
import { type AuthEventSink, IGNORE_AUTH_EVENTS, type RefreshOutcome } from './events.js'
import type { RevocationEventRecord } from './revocation-list.js'
import type { SuccessorSeal } from './successor-seal.js'
import {
  type AccessTokenClaims, type Clock, type Lifetimes, type PresentedToken, type SuccessorState, type TokenSession,
  generateRefreshToken, hashRefreshToken, judgeRefreshToken,
  refreshExpiresIn, refreshTokenExpiry, revocationRelevantUntil, sessionExpiry
} from './token-rules.js'

export type ClientKind = 'mobile' | 'web'
export type AccessTokenSigner = (claims: AccessTokenClaims) => string
/** Who made a request (for session history): its address and user agent, as far as known. */
export interface ClientContext {
  userAgent?: string | undefined
  ip?: string | undefined
  /**
   * The RFC 7638 thumbprint of the key of a DPoP proof that came with the request and passed every
   * check (src/auth/dpop.ts). A login binds its session to it; a refresh of a bound session needs it.
   */
  dpopThumbprint?: string | undefined
  /** DPOP=required: a refresh of a session not bound to a key is refused too. */
  requireDpop?: boolean | undefined
  /** The id of the request this came in, so that what is reported of it names the request. */
  requestId?: string | undefined
}
export interface SessionContext extends ClientContext { client: ClientKind }
export interface AccountView { id: string, username: string }

/** What a login, refresh or password change hands back; routes turn it into a token response. */
export interface IssuedTokens {
  accessToken: string
  /** seconds */
  expiresIn: number
  refreshToken: string
  /** seconds until the refresh token expires (idle or absolute, whichever is sooner) */
  refreshExpiresIn: number
  sessionId: string
  client: ClientKind
  user: AccountView
  /** The thumbprint of the DPoP key the session is bound to (its access tokens' cnf.jkt); null: Bearer. */
  dpopThumbprint: string | null
}

export type RevocationReason = 'logout' | 'deleted' | 'reuse' | 'password-change' | 'logout-all'
  // Operator CLI: a session or all of a user's sessions revoked, a password reset, a user disabled.
  | 'operator' | 'password-reset' | 'disabled'

/** What GET /auth/sessions/:id/events lists. Routine rotations are only counted (refreshCount). */
export type SessionEventType = 'login' | 'refresh-new-client' | 'replay' | 'reuse-detected' | 'logout' | 'revoked' | 'expired'
export interface SessionEventEntry {
  type: SessionEventType
  at: Date
  ip: string | null
  userAgent: string | null
  /** For `revoked`: why (a RevocationReason). */
  reason?: string
}
/** The history event a revocation writes: logout and reuse have their own types, the rest are `revoked`. */
function endEventOf (reason: RevocationReason): { type: SessionEventType, reason: string | null } {
  if (reason === 'logout') return { type: 'logout', reason: null }
  if (reason === 'reuse') return { type: 'reuse-detected', reason: null }
  return { type: 'revoked', reason }
}

export interface PruneResult {
  sealsErased: number
  tokensDeleted: number
  sessionsDeleted: number
  eventsDeleted: number
  /** Sessions that ran out without anything ending them: each got an `expired` history event. */
  sessionsExpired: number
  sessionEventsDeleted: number
}
export type PruneStep = 'sessions' | 'tokens' | 'session-events'
/** Reported after each batch of a prune; `total` is what the step found when it began. */
export type PruneProgress = (step: PruneStep, done: number, total: number) => void
const PRUNE_BATCH = 1000
const DAY = 24 * 3600 * 1000

export interface SessionListEntry {
  id: string
  createdAt: Date
  lastUsedAt: Date
  userAgent: string | null
  ip: string | null
  refreshCount: number
  current: boolean
}

/**
 * The user's token version or password is no longer the one the caller read (a password change or
 * logout-everywhere committed meanwhile): nothing was written. The caller decides what that means.
 */
export class CredentialsChanged extends Error {
  constructor () {
    super('The account changed while the request ran')
    this.name = 'CredentialsChanged'
  }
}

/**
 * Why a session is over, as its holder is told when it presents a refresh token of it (the error's
 * `reason`; @auth-server/client's onSessionEnded reasons). The holder had the session, so this tells
 * it nothing it could not have known.
 */
export type SessionEndReason = 'logout' | 'reused' | 'revoked' | 'expired' | 'password-changed'
function sessionEndOf (verdict: 'session-ended' | 'session-expired' | 'idle-expired', revokedReason: string | null): SessionEndReason {
  if (verdict === 'session-expired' || verdict === 'idle-expired') return 'expired'
  if (revokedReason === 'logout') return 'logout'
  if (revokedReason === 'reuse') return 'reused'
  if (revokedReason === 'password-change' || revokedReason === 'password-reset') return 'password-changed'
  return 'revoked'
}

/** A rotation that lost to a concurrent change is judged again, at most this many times in all. */
const MAX_ROTATION_ATTEMPTS = 3

/** A refresh token as judgeRefreshToken sees it, with what a new token pair needs. */
interface PresentedTokenRow extends PresentedToken {
  id: string
  successorSealed: string | null
  client: ClientKind
  session: TokenSession & { id: string, revokedReason: string | null, refreshCount: number, lastIp: string | null, lastUserAgent: string | null, dpopJkt: string | null }
  successor: SuccessorState | null
  userId: string
  username: string
  tokenVersion: number
  userDisabled: boolean
}

export interface SessionServiceDeps {
  db: Db
  clock: Clock
  lifetimes: Lifetimes
  seal: SuccessorSeal
  signAccessToken: AccessTokenSigner
  /**
   * Told of every revocation once its transaction has committed (the domain factory makes it
   * effective on this instance at once and reports it). Every revoking method calls it itself.
   */
  onRevoked: RevocationListener
  /** Told of each refresh outcome and password change (metrics, logs). */
  events?: AuthEventSink
  /** Days session history is kept (SESSION_EVENTS_RETENTION); 30 when left out. */
  sessionEventsRetentionDays?: number
}

/** Who a revocation concerned, for the report that follows it. */
export interface RevocationReport { reason: RevocationReason, userId: string | null, sessionId: string | null, requestId?: string | undefined }
/** Hears of a committed revocation: the event written to the log, and what it concerned. */
export type RevocationListener = (event: RevocationEventRecord, report: RevocationReport) => void

export interface SessionsEnded { tokenVersion: number, sessionsEnded: number }

/**
 * A change to the user's row that ending all their sessions belongs to (a password reset, disabling),
 * made in the same transaction: `where` are the conditions the row must still meet, else nothing is
 * changed or revoked.
 */
export interface UserChange {
  where?: { passwordHash?: string, disabled?: boolean }
  data: { passwordHash?: string, disabled?: boolean }
}

export class SessionService {
  private readonly db: Db
  private readonly clock: Clock
  private readonly lifetimes: Lifetimes
  private readonly events: AuthEventSink
  private readonly store: SessionStore

  constructor (private readonly deps: SessionServiceDeps) {
    this.db = deps.db
    this.store = new SessionStore(deps.db)
    this.clock = deps.clock
    this.lifetimes = deps.lifetimes
    this.events = deps.events ?? IGNORE_AUTH_EVENTS
  }

  /**
   * Starts a session (a new token family) bound to `user.tokenVersion` — and to `user.passwordHash`,
   * the hash a login checked, when given. The insert happens only while the user's row still holds
   * them (and the user is enabled), with that row locked until commit, so a password change or
   * logout-everywhere either commits first (and this throws CredentialsChanged, nothing written) or
   * waits and then ends this session too.
   */
  async startSession (user: AccountView & { tokenVersion: number, passwordHash?: string }, context: SessionContext): Promise<IssuedTokens> {
    return this.startSessionIn(undefined, user, context)
  }

  /** Starts the session inside `tx` when given (a password change's), else in a transaction of its own. */
  private async startSessionIn (tx: DbTransaction | undefined, user: AccountView & { tokenVersion: number, passwordHash?: string }, context: SessionContext): Promise<IssuedTokens> {
    const now = this.clock()
    const sessionId = randomUUID()
    const expiresAt = sessionExpiry(now, this.lifetimes)
    const refreshToken = generateRefreshToken()
    const refreshExpiresAt = refreshTokenExpiry(now, expiresAt, this.lifetimes)
    const started = await this.store.startSession({
      userId: user.id,
      tokenVersion: user.tokenVersion,
      passwordHash: user.passwordHash ?? null,
      sessionId,
      client: context.client,
      ip: context.ip ?? null,
      userAgent: context.userAgent ?? null,
      dpopJkt: context.dpopThumbprint ?? null,
      at: new Date(now),
      expiresAt: new Date(expiresAt),
      tokenId: randomUUID(),
      tokenHash: hashRefreshToken(refreshToken),
      tokenExpiresAt: new Date(refreshExpiresAt)
    }, tx)
    if (!started) throw new CredentialsChanged()
    return this.issue(user, sessionId, context.client, refreshToken, refreshExpiresAt, now, context.dpopThumbprint ?? null)
  }

  /**
   * Exchanges a refresh token for a new pair. Throws RefreshInvalid (unknown, expired, ended session)
   * or RefreshReused (a retired token: the session is revoked). `context` is the presenting client,
   * for the session's history (a refresh from another client, a replay, a reuse).
   */
  async refresh (presentedToken: string, context?: ClientContext, attempt = 1): Promise<IssuedTokens> {
    const now = this.clock()
    const token = await this.findPresentedToken(hashRefreshToken(presentedToken))
    if (token === null) throw this.refusal('invalid', null, context)
    // RFC 9449: a bound session is renewed only with a proof by its key, and that is checked before
    // anything else, so a thief without the key neither rotates nor triggers reuse detection.
    // An unbound session never gets bound here: binding mid-session would let whoever holds a stolen
    // refresh token bind the session to their own key.
    const boundTo = token.session.dpopJkt
    if (boundTo !== null ? context?.dpopThumbprint !== boundTo : context?.requireDpop === true) {
      this.reportRefresh('refused', token, context)
      throw new DpopInvalid(boundTo !== null
        ? (context?.dpopThumbprint === undefined ? 'This session is bound to a DPoP key: send a DPoP proof' : 'The DPoP proof is not signed by the key this session is bound to')
        : 'This server requires DPoP and the session is not bound to a key')
    }
    if (token.userDisabled) throw this.refusal('refused', token, context)
    // A burst that rotated more than once: the token's own successor is retired too, and grace (if
    // due) answers with the family's current token, sealed in its predecessor's row.
    let successor = token.successor
    let sealed = { value: token.successorSealed, boundTo: token.id }
    if (successor !== null && successor.retiredAt !== null && token.retiredAt !== null &&
        now - token.retiredAt < this.lifetimes.reuseGrace * 1000) {
      const current = await this.store.findCurrentToken(token.session.id)
      successor = current === null ? null : { retiredAt: null, expiresAt: current.expiresAt }
      sealed = { value: current?.sealed ?? null, boundTo: current?.parentId ?? '' }
    }
    const verdict = judgeRefreshToken({ ...token, hasSealedSuccessor: sealed.value !== null }, token.session, successor, now, this.lifetimes)
    const user = { id: token.userId, username: token.username, tokenVersion: token.tokenVersion }
    switch (verdict.action) {
      case 'rotate': {
        const successorToken = generateRefreshToken()
        const successorExpiresAt = refreshTokenExpiry(now, token.session.expiresAt, this.lifetimes)
        if (!await this.rotate(token, successorToken, successorExpiresAt, now, this.newClient(token.session, context))) {
          // A concurrent refresh or revocation won: judge the token again as it now stands.
          if (attempt < MAX_ROTATION_ATTEMPTS) return this.refresh(presentedToken, context, attempt + 1)
          throw this.refusal('refused', token, context)
        }
        this.reportRefresh('rotated', token, context)
        return this.issue(user, token.session.id, token.client, successorToken, successorExpiresAt, now, boundTo)
      }
      case 'replay': {
        const successorToken = this.deps.seal.open(sealed.value ?? '', sealed.boundTo)
        if (successorToken === null || successor === null) throw this.refusal('refused', token, context)
        await this.db.sessionEvent.create({
          data: { sessionId: token.session.id, userId: token.userId, type: 'replay', at: new Date(now), ip: context?.ip ?? null, userAgent: context?.userAgent ?? null },
          select: { id: true }
        })
        this.reportRefresh('replayed', token, context)
        return this.issue(user, token.session.id, token.client, successorToken, successor.expiresAt, now, boundTo)
      }
      case 'revoke-session':
        await this.revokeSession(token.session.id, 'reuse', token.userId, context)
        this.reportRefresh('reused', token, context)
        throw new RefreshReused()
      case 'refuse':
        if (verdict.reason === 'session-expired' || verdict.reason === 'idle-expired') {
          await this.recordExpiry(token.session.id, token.userId, verdict.reason === 'session-expired' ? token.session.expiresAt : token.expiresAt)
        }
        throw this.refusal(verdict.reason === 'session-expired' || verdict.reason === 'idle-expired' ? 'expired' : 'refused', token, context, sessionEndOf(verdict.reason, token.session.revokedReason))
    }
  }

  private reportRefresh (outcome: RefreshOutcome, token: PresentedTokenRow | null, context: ClientContext | undefined): void {
    this.events.report({ type: 'refresh', outcome, userId: token?.userId ?? null, sessionId: token?.session.id ?? null, requestId: context?.requestId })
  }

  /** Reports a refresh that gets no tokens, and returns the error that answers it. */
  private refusal (outcome: RefreshOutcome, token: PresentedTokenRow | null, context: ClientContext | undefined, sessionEnded?: SessionEndReason): Error {
    this.reportRefresh(outcome, token, context)
    return sessionEnded === undefined ? new RefreshInvalid() : Object.assign(new RefreshInvalid(), { sessionEnded })
  }

  /** The presented token with its session, user and successor: everything judging it needs, in one query. */
  private async findPresentedToken (tokenHash: string): Promise<PresentedTokenRow | null> {
    const row = await this.store.findPresentedToken(tokenHash)
    if (row === null) return null
    const { session, user } = row
    return {
      id: row.id,
      retiredAt: row.retiredAt,
      expiresAt: row.expiresAt,
      successorSealed: row.successorSealed,
      hasSealedSuccessor: row.successorSealed !== null,
      client: row.client === 'web' ? 'web' : 'mobile',
      session: {
        id: session.id,
        revokedAt: session.revokedAt,
        revokedReason: session.revokedReason,
        expiresAt: session.expiresAt,
        outdated: session.tokenVersion < user.tokenVersion,
        refreshCount: session.refreshCount,
        lastIp: session.lastIp,
        lastUserAgent: session.lastUserAgent,
        dpopJkt: session.dpopJkt
      },
      successor: row.successor === null ? null : { retiredAt: row.successor.retiredAt, expiresAt: row.successor.expiresAt },
      userId: user.id,
      username: user.username,
      tokenVersion: user.tokenVersion,
      userDisabled: user.disabled
    }
  }

  /** The presenting client when it differs from the session's last one (a refresh-new-client event), else null. */
  private newClient (session: PresentedTokenRow['session'], context: ClientContext | undefined): { ip: string | null, userAgent: string | null } | null {
    if (context === undefined) return null
    const client = { ip: context.ip ?? null, userAgent: context.userAgent ?? null }
    return client.ip === session.lastIp && client.userAgent === session.lastUserAgent ? null : client
  }

  /**
   * Retires the presented token and stores its successor (SessionStore.rotate: all or nothing, each
   * write conditional on the session still live, not outdated and counted as this refresh read it).
   * A session started under an older token version than the user's (see startSession) is never
   * renewed. Returns false when another change won.
   */
  private async rotate (token: PresentedTokenRow, successorToken: string, successorExpiresAt: number, now: number, newClient: { ip: string | null, userAgent: string | null } | null): Promise<boolean> {
    const keepForGrace = this.lifetimes.reuseGrace > 0
    return this.store.rotate({
      tokenId: token.id,
      sessionId: token.session.id,
      userId: token.userId,
      refreshCount: token.session.refreshCount,
      successorId: randomUUID(),
      successorHash: hashRefreshToken(successorToken),
      successorExpiresAt: new Date(successorExpiresAt),
      sealed: keepForGrace ? this.deps.seal.seal(successorToken, token.id) : null,
      sealExpiresAt: keepForGrace ? new Date(now + this.lifetimes.reuseGrace * 1000) : null,
      at: new Date(now),
      newClient
    })
  }

  /**
   * Records that a session ran out (absolute or idle lifetime), once: a refresh refused for expiry
   * records it, and so does the prune for sessions nobody presented again.
   */
  private async recordExpiry (sessionId: string, userId: string, at: number): Promise<void> {
    await this.store.recordExpiry(sessionId, userId, new Date(at))
  }


  /** The live session a refresh token belongs to (any token of the family), for logout. */
  async findLiveSession (presentedToken: string): Promise<{ id: string, userId: string } | null> {
    const token = await this.db.refreshToken.findUnique({
      where: { tokenHash: hashRefreshToken(presentedToken) },
      select: { session: { select: { id: true, userId: true, revokedAt: true, expiresAt: true } } }
    })
    if (token === null) return null
    const { session } = token
    if (session.revokedAt !== null || session.expiresAt.getTime() <= this.clock()) return null
    return { id: session.id, userId: session.userId }
  }

  /**
   * Ends one session: its refresh tokens stop working and every access token carrying its id is refused.
   * (Sealed successors of a revoked session can no longer be replayed; the eraser removes them shortly.)
   * With `userId`, only that user's session is touched. Returns false when there was no such live session.
   * `context` is the client that caused it (the reuser for `reuse`), for the session's history.
   */
  async revokeSession (sessionId: string, reason: RevocationReason, userId?: string, context?: ClientContext): Promise<boolean> {
    const now = this.clock()
    const event = await this.db.$transaction(async (tx) => {
      const ended = await tx.session.updateManyAndReturn({
        where: { id: sessionId, revokedAt: null, expiresAt: { gt: new Date(now) }, ...(userId === undefined ? {} : { userId }) },
        data: { revokedAt: new Date(now), revokedReason: reason },
        select: { userId: true }
      })
      const owner = ended[0]
      if (owner === undefined) return null
      await tx.sessionEvent.create({
        data: { sessionId, userId: owner.userId, ...endEventOf(reason), at: new Date(now), ip: context?.ip ?? null, userAgent: context?.userAgent ?? null },
        select: { id: true }
      })
      return this.recordRevocation(tx, { kind: 'session', subject: sessionId, tokenVersion: null }, now)
    })
    if (event === null) return false
    this.deps.onRevoked(event, { reason, userId: userId ?? null, sessionId, requestId: context?.requestId })
    return true
  }

  /**
   * Ends every session and access token of the user (the token version rises), in one transaction
   * with `change` to the user's row when given. Returns null, having changed nothing, when the row no
   * longer meets the change's conditions (or the user is gone).
   */
  async endAllSessions (userId: string, reason: RevocationReason, options?: { context?: ClientContext }): Promise<SessionsEnded>
  async endAllSessions (userId: string, reason: RevocationReason, options: { change: UserChange, context?: ClientContext }): Promise<SessionsEnded | null>
  async endAllSessions (userId: string, reason: RevocationReason, { change, context }: { change?: UserChange, context?: ClientContext } = {}): Promise<SessionsEnded | null> {
    const now = this.clock()
    const ended = await this.db.$transaction(async (tx) => {
      if (change !== undefined) {
        const changed = await tx.user.updateMany({ where: { id: userId, ...change.where }, data: { ...change.data, updatedAt: new Date(now) } })
        if (changed.count !== 1) return null
      }
      return this.endAllSessionsIn(tx, userId, reason, now, context)
    })
    if (ended === null) return null
    this.deps.onRevoked(ended.event, { reason, userId, sessionId: null, requestId: context?.requestId })
    return { tokenVersion: ended.tokenVersion, sessionsEnded: ended.sessionsEnded }
  }

  /** Ends every session of the user and raises the token version, inside `tx`; the caller tells onRevoked after commit. */
  private async endAllSessionsIn (tx: DbTransaction, userId: string, reason: RevocationReason, now: number, context?: ClientContext): Promise<{ tokenVersion: number, event: RevocationEventRecord, sessionsEnded: number }> {
    const user = await tx.user.update({
      where: { id: userId },
      data: { tokenVersion: { increment: 1 }, updatedAt: new Date(now) },
      select: { tokenVersion: true }
    })
    const ended = await tx.session.updateManyAndReturn({
      where: { userId, revokedAt: null },
      data: { revokedAt: new Date(now), revokedReason: reason },
      select: { id: true }
    })
    if (ended.length > 0) {
      const { type, reason: why } = endEventOf(reason)
      await tx.sessionEvent.createMany({
        data: ended.map(({ id }) => ({ sessionId: id, userId, type, reason: why, at: new Date(now), ip: context?.ip ?? null, userAgent: context?.userAgent ?? null }))
      })
    }
    const event = await this.recordRevocation(tx, { kind: 'user', subject: userId, tokenVersion: user.tokenVersion }, now)
    return { tokenVersion: user.tokenVersion, event, sessionsEnded: ended.length }
  }

  /**
   * Sets a new password hash and ends every session and access token of the user, then starts a
   * fresh session for the caller, in one transaction. The update is conditional on the hash the
   * caller checked the current password against: of two changes from the same password, the second
   * finds it gone and throws CredentialsChanged, leaving the first intact.
   */
  async changePassword (user: AccountView, checkedHash: string, newHash: string, context: SessionContext): Promise<IssuedTokens> {
    const now = this.clock()
    const { issued, event } = await this.db.$transaction(async (tx) => {
      const changed = await tx.user.updateMany({ where: { id: user.id, passwordHash: checkedHash }, data: { passwordHash: newHash, updatedAt: new Date(now) } })
      if (changed.count !== 1) throw new CredentialsChanged()
      const { tokenVersion, event } = await this.endAllSessionsIn(tx, user.id, 'password-change', now, context)
      const issued = await this.startSessionIn(tx, { ...user, tokenVersion }, context)
      return { issued, event }
    })
    this.deps.onRevoked(event, { reason: 'password-change', userId: user.id, sessionId: null, requestId: context.requestId })
    this.events.report({ type: 'password-change', userId: user.id, sessionId: issued.sessionId, requestId: context.requestId })
    return issued
  }

  /** Logout everywhere: every session and every access token of the user ends. */
  async logoutEverywhere (userId: string, context?: ClientContext, reason: RevocationReason = 'logout-all'): Promise<void> {
    await this.endAllSessions(userId, reason, { context })
  }

  async listSessions (userId: string, currentSessionId: string): Promise<SessionListEntry[]> {
    const now = this.clock()
    const sessions = await this.db.session.findMany({
      where: {
        userId,
        revokedAt: null,
        expiresAt: { gt: new Date(now) },
        // A session idle past the refresh lifetime can no longer be renewed.
        lastUsedAt: { gt: new Date(now - this.lifetimes.refreshIdle * 1000) }
      },
      orderBy: { createdAt: 'desc' },
      select: { id: true, createdAt: true, lastUsedAt: true, userAgent: true, ip: true, refreshCount: true }
    })
    return sessions.map((session) => ({ ...session, current: session.id === currentSessionId }))
  }

  /**
   * The history of one of the user's sessions, oldest first, as far as it is retained (ended sessions
   * included). Null when the user has no such session: another user's session is not told apart
   * from one that does not exist.
   */
  async listSessionEvents (userId: string, sessionId: string): Promise<SessionEventEntry[] | null> {
    const retainedSince = new Date(this.clock() - this.retentionDays() * DAY)
    const events = await this.db.sessionEvent.findMany({
      where: { sessionId, userId, at: { gt: retainedSince } },
      orderBy: [{ at: 'asc' }, { id: 'asc' }],
      select: { type: true, at: true, ip: true, userAgent: true, reason: true }
    })
    if (events.length === 0) {
      // A live session from before history was kept has none yet, but it is the user's all the same.
      const owned = await this.db.session.findFirst({ where: { id: sessionId, userId }, select: { id: true } })
      if (owned === null) return null
    }
    return events.map(({ reason, ...event }) => ({ ...event, type: event.type as SessionEventType, ...(reason === null ? {} : { reason }) }))
  }

  private retentionDays (): number {
    return this.deps.sessionEventsRetentionDays ?? 30
  }

  /** Erases sealed successors whose grace window has passed: they are kept for nothing else. */
  async eraseExpiredSeals (): Promise<number> {
    const erased = await this.db.refreshToken.updateMany({
      where: { sealExpiresAt: { lte: new Date(this.clock()) } },
      data: { successorSealed: null, sealExpiresAt: null }
    })
    return erased.count
  }

  /**
   * Erases expired seals and deletes the rows that no token check can need any more, and session
   * history older than its retention. Large deletions go in batches; `onProgress` hears of each.
   */
  async prune (onProgress?: PruneProgress): Promise<PruneResult> {
    const now = this.clock()
    const sealsErased = await this.eraseExpiredSeals()
    // How long a revocation matters: as long as an access token issued before it can live.
    const relevantBefore = new Date(now - revocationRelevantUntil(0, this.lifetimes))
    const { deleted: sessionsDeleted, expired: sessionsExpired } = await this.pruneSessions(now, relevantBefore, onProgress)
    // Expired tokens of live sessions are kept while the session lives: presenting one is still reuse
    // evidence. Retired tokens older than the idle lifetime cannot be replayed into anything useful.
    const tokensDeleted = await this.deleteInBatches('tokens', onProgress,
      async () => this.db.refreshToken.count({ where: { retiredAt: { lte: new Date(now - this.lifetimes.refreshIdle * 1000) } } }),
      async () => (await this.db.refreshToken.findMany({ where: { retiredAt: { lte: new Date(now - this.lifetimes.refreshIdle * 1000) } }, select: { id: true }, take: PRUNE_BATCH })).map((row) => row.id),
      async (ids) => (await this.db.refreshToken.deleteMany({ where: { id: { in: ids } } })).count)
    // Events from database triggers carry the longest relevance allowed; this configuration's is shorter.
    const events = await this.db.revocationEvent.deleteMany({
      where: { OR: [{ relevantUntil: { lte: new Date(now) } }, { createdAt: { lte: relevantBefore } }] }
    })
    const retainedSince = new Date(now - this.retentionDays() * DAY)
    const sessionEventsDeleted = await this.deleteInBatches('session-events', onProgress,
      async () => this.db.sessionEvent.count({ where: { at: { lte: retainedSince } } }),
      async () => (await this.db.sessionEvent.findMany({ where: { at: { lte: retainedSince } }, select: { id: true }, take: PRUNE_BATCH })).map((row) => row.id),
      async (ids) => (await this.db.sessionEvent.deleteMany({ where: { id: { in: ids } } })).count)
    return { sealsErased, tokensDeleted, sessionsDeleted, eventsDeleted: events.count, sessionsExpired, sessionEventsDeleted }
  }

  /**
   * A session past its absolute end (or revoked for longer than an access token lives) is gone for
   * good, its refresh tokens with it. One that simply ran out gets its `expired` history event (at the
   * moment it expired: idle or absolute, whichever came first) in the same transaction as its deletion.
   */
  private async pruneSessions (now: number, relevantBefore: Date, onProgress?: PruneProgress): Promise<{ deleted: number, expired: number }> {
    const where = { OR: [{ expiresAt: { lte: new Date(now) } }, { revokedAt: { lte: relevantBefore } }] }
    const total = await this.db.session.count({ where })
    let deleted = 0
    let expired = 0
    onProgress?.('sessions', 0, total)
    for (;;) {
      const batch = await this.db.session.findMany({ where, select: { id: true, userId: true, expiresAt: true, lastUsedAt: true, revokedAt: true }, take: PRUNE_BATCH })
      if (batch.length === 0) break
      const ranOut = batch.filter((session) => session.revokedAt === null)
      const count = await this.db.$transaction(async (tx) => {
        if (ranOut.length > 0) {
          const recorded = new Set((await tx.sessionEvent.findMany({
            where: { sessionId: { in: ranOut.map((session) => session.id) }, type: 'expired' },
            select: { sessionId: true }
          })).map((event) => event.sessionId))
          const unrecorded = ranOut.filter((session) => !recorded.has(session.id))
          await tx.sessionEvent.createMany({
            data: unrecorded.map((session) => ({
              sessionId: session.id,
              userId: session.userId,
              type: 'expired',
              at: new Date(Math.min(session.expiresAt.getTime(), session.lastUsedAt.getTime() + this.lifetimes.refreshIdle * 1000))
            }))
          })
          expired += unrecorded.length
        }
        return (await tx.session.deleteMany({ where: { AND: [{ id: { in: batch.map((session) => session.id) } }, where] } })).count
      })
      if (count === 0) break
      deleted += count
      onProgress?.('sessions', deleted, Math.max(total, deleted))
    }
    return { deleted, expired }
  }

  private async deleteInBatches<Id> (step: PruneStep, onProgress: PruneProgress | undefined, count: () => Promise<number>, nextBatch: () => Promise<Id[]>, remove: (ids: Id[]) => Promise<number>): Promise<number> {
    const total = await count()
    let deleted = 0
    onProgress?.(step, 0, total)
    for (;;) {
      const ids = await nextBatch()
      if (ids.length === 0) break
      const removed = await remove(ids)
      if (removed === 0) break
      deleted += removed
      onProgress?.(step, deleted, Math.max(total, deleted))
    }
    return deleted
  }

  private async recordRevocation (tx: DbTransaction, event: { kind: 'session' | 'user', subject: string, tokenVersion: number | null }, now: number): Promise<RevocationEventRecord> {
    return tx.revocationEvent.create({
      data: { ...event, createdAt: new Date(now), relevantUntil: new Date(revocationRelevantUntil(now, this.lifetimes)) }
    })
  }

  private issue (user: AccountView & { tokenVersion: number }, sessionId: string, client: ClientKind, refreshToken: string, refreshExpiresAt: number, now: number, dpopThumbprint: string | null): IssuedTokens {
    const claims = { sub: user.id, sid: sessionId, ver: user.tokenVersion, preferred_username: user.username, client_id: client }
    return {
      // RFC 9449 §6: a bound session's access tokens name the key (cnf.jkt) that must prove each use.
      accessToken: this.deps.signAccessToken(dpopThumbprint === null ? claims : { ...claims, cnf: { jkt: dpopThumbprint } }),
      expiresIn: this.lifetimes.accessToken,
      refreshToken,
      refreshExpiresIn: refreshExpiresIn(now, refreshExpiresAt, this.lifetimes),
      sessionId,
      client,
      user: { id: user.id, username: user.username },
      dpopThumbprint
    }
  }
}
