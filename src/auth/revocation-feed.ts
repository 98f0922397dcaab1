// The revocation feed other services follow (GET /oauth/revocations and its stream): the
// RevocationEvent log as the contract's events, a snapshot or what came after a cursor, and a hub
// that hands each event to the live subscribers once.
//
// Cursor: the highest seq delivered, plus the lower seqs not seen yet that may still commit ("gaps":
// on PostgreSQL a lower seq can commit after a higher one, see revocation-list.ts), as
// "high.gap.gap…". Reading after a cursor returns what is above it and what filled its gaps: nothing
// twice, nothing missed. A gap is forgotten once it is older than the commit lag (a rolled-back
// transaction leaves a seq that never fills).
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

/** A seq that has not committed this long after its neighbours never will (as revocation-list.ts). */
export const COMMIT_LAG_MS = 10_000
const MAX_GAPS = 64
export const CURSOR_PATTERN = '^(0|[1-9][0-9]{0,14})(\\.[1-9][0-9]{0,14}){0,64}$'

export interface Cursor { high: number, gaps: number[] }

export function parseCursor (text: string): Cursor {
  const [high, ...gaps] = text.split('.').map(Number)
  return { high: high ?? 0, gaps: gaps.filter((gap) => gap < (high ?? 0)) }
}

export function formatCursor (cursor: Cursor): string {
  return [cursor.high, ...[...cursor.gaps].sort((a, b) => a - b).slice(-MAX_GAPS)].join('.')
}

/** A follower's position as events reach it one by one (the stream's `id:`). */
export class CursorTracker {
  private high: number
  /** seq → when it became a gap (ms) */
  private readonly gaps = new Map<number, number>()

  constructor (cursor: Cursor, private readonly clock: Clock) {
    this.high = cursor.high
    for (const gap of cursor.gaps) this.gaps.set(gap, clock())
  }

  reset (cursor: Cursor): void {
    this.high = cursor.high
    this.gaps.clear()
    for (const gap of cursor.gaps) this.gaps.set(gap, this.clock())
  }

  /** Takes in a delivered seq and answers the cursor that resumes after it. */
  advance (seq: number): string {
    const now = this.clock()
    if (seq > this.high) {
      // Seqs skipped over may still commit; a long run of them is rolled back work, kept bounded.
      for (let gap = Math.max(this.high + 1, seq - MAX_GAPS); gap < seq; gap++) this.gaps.set(gap, now)
      this.high = seq
    } else {
      this.gaps.delete(seq)
    }
    for (const [gap, since] of this.gaps) if (since < now - COMMIT_LAG_MS) this.gaps.delete(gap)
    return this.toString()
  }

  toString (): string {
    return formatCursor({ high: this.high, gaps: [...this.gaps.keys()] })
  }
}

export interface StreamStats { clientId: string, mode: string, unsentBytes: number }

export class RevocationFeed {
  /** The open streams of this instance (their HTTP side lives in the routes), for tests and metrics. */
  readonly streams = new Set<{ stats: () => StreamStats }>()
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

  /** Every event still relevant, or (after) only those the cursor has not seen; with the cursor that follows them. */
  async read (after?: Cursor): Promise<{ events: FeedEvent[], cursor: string, seqs: number[] }> {
    const now = this.clock()
    const relevant = { relevantUntil: { gt: new Date(now) }, createdAt: { gt: new Date(now - (this.relevantUntil(now) - now)) } }
    const unseen = after === undefined ? {} : { OR: [{ seq: { gt: after.high } }, { seq: { in: after.gaps } }] }
    const [records, settled] = await Promise.all([
      this.db.revocationEvent.findMany({ where: { AND: [relevant, unseen] }, orderBy: { seq: 'asc' } }),
      this.db.revocationEvent.aggregate({ where: { createdAt: { lt: new Date(now - COMMIT_LAG_MS) } }, _max: { seq: true } })
    ])
    // Every seq at or below `settledHigh` is final; above it, a missing seq may still commit.
    const settledHigh = settled._max.seq ?? 0
    const present = await this.db.revocationEvent.findMany({ where: { seq: { gt: settledHigh } }, select: { seq: true } })
    const presentSeqs = new Set(present.map((row) => row.seq))
    const high = Math.max(after?.high ?? 0, settledHigh, ...presentSeqs)
    const oldGaps = new Set(after?.gaps ?? [])
    const gaps: number[] = []
    // Rolled-back work leaves gaps that never fill; the cursor keeps the highest MAX_GAPS of them.
    for (let seq = settledHigh + 1; seq < high; seq++) {
      if (!presentSeqs.has(seq) && (after === undefined || seq > after.high || oldGaps.has(seq))) gaps.push(seq)
    }
    const events: FeedEvent[] = []
    const seqs: number[] = []
    for (const record of records) {
      const event = this.toFeedEvent(record)
      if (event !== null) { events.push(event); seqs.push(record.seq) }
    }
    return { events, cursor: formatCursor({ high, gaps }), seqs }
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
