// The in-memory view of revocations that every protected request consults, so that checking an access
// token costs no database round trip.
//
// Source of truth: the RevocationEvent table, written in the same transaction as the revocation
// itself (a session ended, a user's token version raised), or by a database trigger when a user is
// deleted or disabled (see the migration user_removal_revokes_tokens). This instance applies its own events the
// moment they commit (exact here), and polls the table for other instances' events every
// REVOCATION_POLL_INTERVAL_MS (or at once when told to, e.g. by a Redis message). At start it loads
// every event whose access tokens may still be alive, so a restart forgets nothing.
//
// Memory stays bounded: an event is dropped once every access token it concerns has expired
// (relevantUntil), since a revoked session or an old token version can mint no new tokens.
import type { Db } from '../db/client.js'
import type { Clock, RevocationView } from './token-rules.js'

export interface RevocationEventRecord {
  seq: number
  kind: string
  subject: string
  tokenVersion: number | null
  createdAt: Date
  relevantUntil: Date
}

/**
 * Events are numbered by the database, but on PostgreSQL a lower number can commit after a higher one.
 * The poll cursor therefore only moves past events older than this, and younger ones are read again
 * (applying an event twice is harmless).
 */
const COMMIT_LAG_MS = 10_000

export class RevocationList implements RevocationView {
  /** session id → when the entry can be forgotten (ms) */
  private readonly revokedSessions = new Map<string, number>()
  /** user id → lowest token version still accepted, and when the entry can be forgotten */
  private readonly minimumVersions = new Map<string, { version: number, until: number }>()
  private cursor = 0
  private polling: Promise<void> | undefined
  private pollAgain: Promise<void> | undefined
  private readonly recordedListeners: Array<() => void> = []
  /** seq → createdAt of events applied and possibly read again (seq above the cursor). */
  private readonly appliedRecently = new Map<number, number>()
  private readonly propagationListeners: Array<(lagMs: number) => void> = []
  private readonly eventListeners: Array<(events: RevocationEventRecord[]) => void> = []

  /**
   * @param relevantUntil when an event made at a given time stops mattering (revocationRelevantUntil):
   *   no event is kept longer, whatever its own relevantUntil says (events written by database
   *   triggers do not know the access-token lifetime, so they give the longest one allowed).
   */
  constructor (
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly relevantUntil: (createdAt: number) => number = () => Number.POSITIVE_INFINITY
  ) {}

  isSessionRevoked (sessionId: string): boolean {
    return this.revokedSessions.has(sessionId)
  }

  minimumTokenVersion (userId: string): number {
    return this.minimumVersions.get(userId)?.version ?? 0
  }

  get size (): { sessions: number, users: number } {
    return { sessions: this.revokedSessions.size, users: this.minimumVersions.size }
  }

  /** A revocation committed by this instance: effective here at once, then announced to the others. */
  record (event: RevocationEventRecord): void {
    this.apply(event)
    this.noteApplied(event, true)
    this.announce([event])
    for (const listener of this.recordedListeners) listener()
  }

  /**
   * Hears, once per event made after this instance started, how long after it was written (its
   * createdAt) it took effect here: about nothing for this instance's own, a poll or a doorbell for
   * the others'.
   */
  onPropagated (listener: (lagMs: number) => void): void {
    this.propagationListeners.push(listener)
  }

  private noteApplied (event: RevocationEventRecord, observe: boolean): void {
    if (this.appliedRecently.has(event.seq)) return
    this.appliedRecently.set(event.seq, event.createdAt.getTime())
    if (!observe) return
    const lagMs = Math.max(0, this.clock() - event.createdAt.getTime())
    for (const listener of this.propagationListeners) listener(lagMs)
  }

  onRecorded (listener: () => void): void {
    this.recordedListeners.push(listener)
  }

  /**
   * Every event this instance learns of, its own at commit and others' as read from the log (the
   * revocation feed). An event may be announced more than once; listeners must not block.
   */
  onEvents (listener: (events: RevocationEventRecord[]) => void): void {
    this.eventListeners.push(listener)
  }

  private announce (events: RevocationEventRecord[]): void {
    if (events.length > 0) for (const listener of this.eventListeners) listener(events)
  }

  apply (event: RevocationEventRecord): void {
    const until = Math.min(event.relevantUntil.getTime(), this.relevantUntil(event.createdAt.getTime()))
    if (until <= this.clock()) return
    if (event.kind === 'session') {
      this.revokedSessions.set(event.subject, Math.max(until, this.revokedSessions.get(event.subject) ?? 0))
    } else if (event.kind === 'user' && event.tokenVersion !== null) {
      const known = this.minimumVersions.get(event.subject)
      if (known === undefined || known.version < event.tokenVersion) {
        this.minimumVersions.set(event.subject, { version: event.tokenVersion, until })
      } else if (known.version === event.tokenVersion && known.until < until) {
        known.until = until
      }
    }
  }

  /** Loads every event still relevant; called once at start. */
  async load (): Promise<void> {
    const events = await this.db.revocationEvent.findMany({
      where: { relevantUntil: { gt: new Date(this.clock()) } },
      orderBy: { seq: 'asc' }
    })
    this.absorb(events, false)
  }

  /**
   * Reads events committed since the last poll. A call made while a read is under way gets one more
   * read after it, shared by every such call: the running read may predate the revocation the caller
   * was just told about (the doorbell).
   */
  async poll (): Promise<void> {
    if (this.polling !== undefined) {
      this.pollAgain ??= this.polling.catch(() => {}).then(async () => {
        this.pollAgain = undefined
        return this.poll()
      })
      return this.pollAgain
    }
    this.polling = (async () => {
      try {
        const events = await this.db.revocationEvent.findMany({ where: { seq: { gt: this.cursor } }, orderBy: { seq: 'asc' } })
        this.absorb(events, true)
      } finally {
        this.polling = undefined
      }
    })()
    return this.polling
  }

  /** `observe`: the events are news (a poll), not the backlog read at start. */
  private absorb (events: RevocationEventRecord[], observe: boolean): void {
    const settled = this.clock() - COMMIT_LAG_MS
    for (const event of events) {
      this.apply(event)
      this.noteApplied(event, observe)
      if (event.createdAt.getTime() < settled && event.seq > this.cursor) this.cursor = event.seq
    }
    // Events at or below the cursor are never read again.
    for (const seq of this.appliedRecently.keys()) if (seq <= this.cursor) this.appliedRecently.delete(seq)
    this.announce(events)
  }

  /** Forgets entries whose access tokens have all expired. */
  prune (): void {
    const now = this.clock()
    for (const [sessionId, until] of this.revokedSessions) if (until <= now) this.revokedSessions.delete(sessionId)
    for (const [userId, entry] of this.minimumVersions) if (entry.until <= now) this.minimumVersions.delete(userId)
  }
}
