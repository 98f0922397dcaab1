// The revocation feed other services follow (GET /oauth/revocations and its stream): the
// RevocationEvent log as the contract's events, a snapshot or what came after a cursor, and a hub
// that hands each event to the live subscribers once.
//
// Cursor: an event's seq. On PostgreSQL a lower seq can commit after a higher one (see
// revocation-list.ts), so reading "after" a cursor also re-reads the events written shortly before
// the cursor's event. A follower may see an event twice; applying it twice changes nothing.
import type { Db } from '../db/client.js'
import type { RevocationEventRecord } from './revocation-list.js'
import type { Clock } from './token-rules.js'

export interface FeedEvent {
  id: string
  kind: 'session' | 'user'
  sessionId?: string
  userId?: string
  minimumTokenVersion?: number
  at: string
  relevantUntil: string
}

/** How far before the cursor's event a read looks again for late commits (as revocation-list.ts). */
export const COMMIT_LAG_MS = 10_000
export const CURSOR_PATTERN = '^(0|[1-9][0-9]{0,14})$'

export class RevocationFeed {
  private readonly subscribers = new Set<(event: FeedEvent, seq: number) => void>()
  /** seq → createdAt (ms) of the events already handed to subscribers, forgotten once settled. */
  private readonly published = new Map<number, number>()

  /**
   * @param relevantUntil when an event made at a given time stops mattering (revocationRelevantUntil);
   *   trigger-written events claim longer, and are shown with this configuration's bound.
   */
  constructor (
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly relevantUntil: (createdAt: number) => number
  ) {}

  toFeedEvent (record: RevocationEventRecord): FeedEvent | null {
    const until = Math.min(record.relevantUntil.getTime(), this.relevantUntil(record.createdAt.getTime()))
    if (until <= this.clock()) return null
    const common = { id: String(record.seq), at: record.createdAt.toISOString(), relevantUntil: new Date(until).toISOString() }
    if (record.kind === 'session') return { ...common, kind: 'session', sessionId: record.subject }
    if (record.kind === 'user' && record.tokenVersion !== null) {
      return { ...common, kind: 'user', userId: record.subject, minimumTokenVersion: record.tokenVersion }
    }
    return null
  }

  /** Every event still relevant (after: only those after that cursor, with the late-commit look-back). */
  async read (after?: number): Promise<{ events: FeedEvent[], cursor: string, seqs: number[] }> {
    const now = this.clock()
    const oldestRelevant = new Date(now - (this.relevantUntil(now) - now))
    let where: object = { relevantUntil: { gt: new Date(now) }, createdAt: { gt: oldestRelevant } }
    if (after !== undefined) {
      const anchor = await this.db.revocationEvent.findUnique({ where: { seq: after }, select: { createdAt: true } })
      const lookBackFrom = new Date(Math.min(anchor?.createdAt.getTime() ?? now, now) - COMMIT_LAG_MS)
      where = { AND: [where, { OR: [{ seq: { gt: after } }, { createdAt: { gte: lookBackFrom } }] }] }
    }
    const [records, newest] = await Promise.all([
      this.db.revocationEvent.findMany({ where, orderBy: { seq: 'asc' } }),
      this.db.revocationEvent.aggregate({ _max: { seq: true } })
    ])
    const events: FeedEvent[] = []
    const seqs: number[] = []
    for (const record of records) {
      const event = this.toFeedEvent(record)
      if (event !== null) { events.push(event); seqs.push(record.seq) }
    }
    const cursor = Math.max(after ?? 0, newest._max.seq ?? 0)
    return { events, cursor: String(cursor), seqs }
  }

  subscribe (listener: (event: FeedEvent, seq: number) => void): () => void {
    this.subscribers.add(listener)
    return () => { this.subscribers.delete(listener) }
  }

  get subscriberCount (): number {
    return this.subscribers.size
  }

  /** Events this instance learned of (its own, or read from the log): each new one goes to every subscriber. */
  publish (records: RevocationEventRecord[]): void {
    const now = this.clock()
    for (const record of records) {
      if (this.published.has(record.seq)) continue
      this.published.set(record.seq, record.createdAt.getTime())
      const event = this.toFeedEvent(record)
      if (event === null) continue
      for (const subscriber of this.subscribers) subscriber(event, record.seq)
    }
    // The revocation list stops re-reading an event once it is older than the commit lag.
    for (const [seq, createdAt] of this.published) if (createdAt < now - 3 * COMMIT_LAG_MS) this.published.delete(seq)
  }
}
