// What the verifier knows of revocations: the feed's events (sessions ended, minimum token versions),
// kept until every token they concern has expired, and followed live from the stream.
import { readEventStream } from './sse.js'

export interface RevocationEvent {
  id: string
  kind: 'session' | 'user'
  sessionId?: string
  userId?: string
  minimumTokenVersion?: number
  at: string
  relevantUntil: string
}

export interface FollowerOptions {
  /** The snapshot URL (…/oauth/revocations); the stream is that + /stream. */
  url: string
  authorization: string
  fetch: typeof fetch
  /** A connection silent this long (no event, no heartbeat) is dropped and made again. */
  idleTimeoutMs: number
  reconnectDelayMs: { min: number, max: number }
  onError: (error: Error) => void
}

export class RevocationState {
  /** session id → when it can be forgotten (ms) */
  private readonly sessions = new Map<string, number>()
  /** user id → the lowest token version accepted, and when it can be forgotten */
  private readonly users = new Map<string, { version: number, until: number }>()

  apply (event: RevocationEvent, now = Date.now()): void {
    const until = Date.parse(event.relevantUntil)
    if (!(until > now)) return
    if (event.kind === 'session' && typeof event.sessionId === 'string') {
      this.sessions.set(event.sessionId, Math.max(until, this.sessions.get(event.sessionId) ?? 0))
    } else if (event.kind === 'user' && typeof event.userId === 'string' && typeof event.minimumTokenVersion === 'number') {
      const known = this.users.get(event.userId)
      if (known === undefined || known.version < event.minimumTokenVersion) this.users.set(event.userId, { version: event.minimumTokenVersion, until })
      else if (known.version === event.minimumTokenVersion) known.until = Math.max(known.until, until)
    }
  }

  isRevoked (claims: { sub: string, sid: string, ver: number }): boolean {
    return this.sessions.has(claims.sid) || claims.ver < (this.users.get(claims.sub)?.version ?? 0)
  }

  prune (now = Date.now()): void {
    for (const [id, until] of this.sessions) if (until <= now) this.sessions.delete(id)
    for (const [id, entry] of this.users) if (entry.until <= now) this.users.delete(id)
  }

  get size (): { sessions: number, users: number } {
    return { sessions: this.sessions.size, users: this.users.size }
  }
}

export class HttpError extends Error {
  constructor (readonly status: number, url: string) {
    super(`${url} answered ${status}`)
    this.name = 'HttpError'
  }
}

/**
 * Loads the snapshot once, then follows the stream from its cursor, reconnecting with Last-Event-ID
 * (and a growing delay) whenever it drops. `freshAt` is when the verifier last knew it was up to
 * date: the snapshot, the stream's catch-up marker, or any message after it.
 */
export class RevocationFollower {
  cursor: string | undefined
  freshAt = 0
  connected = false
  private closed = false
  private controller: AbortController | undefined
  private readonly loop: Promise<void>
  private readyResolve!: () => void
  readonly ready: Promise<void>

  constructor (private readonly state: RevocationState, private readonly options: FollowerOptions) {
    this.ready = new Promise((resolve) => { this.readyResolve = resolve })
    this.loop = this.run()
  }

  private async run (): Promise<void> {
    let delay = this.options.reconnectDelayMs.min
    while (!this.closed) {
      try {
        if (this.cursor === undefined) await this.loadSnapshot()
        if (await this.follow()) delay = this.options.reconnectDelayMs.min
      } catch (error) {
        if (this.closed) break
        this.options.onError(error as Error)
        // Too many streams open for this client: wait longer before trying again.
        if (error instanceof HttpError && error.status === 429) delay = this.options.reconnectDelayMs.max
      }
      this.connected = false
      if (this.closed) break
      await new Promise((resolve) => setTimeout(resolve, delay).unref())
      delay = Math.min(delay * 2, this.options.reconnectDelayMs.max)
    }
  }

  private async loadSnapshot (): Promise<void> {
    this.controller = new AbortController()
    const response = await this.options.fetch(this.options.url, {
      headers: { authorization: this.options.authorization, accept: 'application/json' },
      signal: this.controller.signal
    })
    if (!response.ok) throw new HttpError(response.status, this.options.url)
    const snapshot = await response.json() as { events: RevocationEvent[], cursor: string }
    for (const event of snapshot.events) this.state.apply(event)
    this.cursor = snapshot.cursor
    this.markFresh()
  }

  /** One connection to the stream, until it ends. True when it got as far as the catch-up marker. */
  private async follow (): Promise<boolean> {
    const controller = new AbortController()
    this.controller = controller
    const url = `${this.options.url.replace(/\/+$/, '')}/stream`
    const response = await this.options.fetch(url, {
      headers: {
        authorization: this.options.authorization,
        accept: 'text/event-stream',
        ...(this.cursor === undefined ? {} : { 'last-event-id': this.cursor })
      },
      signal: controller.signal
    })
    if (!response.ok || response.body === null) {
      await response.body?.cancel().catch(() => {})
      throw new HttpError(response.status, url)
    }
    this.connected = true
    let synced = false
    let idle: NodeJS.Timeout | undefined
    const watch = () => {
      clearTimeout(idle)
      idle = setTimeout(() => controller.abort(), this.options.idleTimeoutMs)
      idle.unref()
    }
    watch()
    try {
      for await (const message of readEventStream(response.body as unknown as AsyncIterable<Uint8Array>)) {
        watch()
        if (message.data !== undefined) {
          try {
            this.state.apply(JSON.parse(message.data) as RevocationEvent)
          } catch (error) {
            this.options.onError(error as Error)
          }
        }
        if (message.id !== undefined) this.cursor = message.id
        // The message with an id and no data closes the catch-up: from here on this stream is live.
        if (message.id !== undefined && message.data === undefined) synced = true
        if (synced) this.markFresh()
      }
    } catch (error) {
      if (!controller.signal.aborted || this.closed) throw error
    } finally {
      clearTimeout(idle)
    }
    return synced
  }

  private markFresh (): void {
    this.freshAt = Date.now()
    this.readyResolve()
  }

  async close (): Promise<void> {
    this.closed = true
    this.controller?.abort()
    await this.loop.catch(() => {})
  }
}
