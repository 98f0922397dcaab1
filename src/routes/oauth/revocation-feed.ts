// GET /oauth/revocations and /oauth/revocations/stream: the revocation feed for resource servers that
// verify access tokens themselves (HTTP Basic against RESOURCE_SERVERS, as introspection).
//
// The stream is Server-Sent Events: `id:` is the cursor, `data:` an event. Events arrive from the
// revocation list the moment this instance learns of them (its own at commit; other instances'
// through the doorbell, or the poll). A subscriber that does not read is disconnected once its
// unsent bytes pass a bound: it resumes with Last-Event-ID and catches up from the database, and
// nobody else waits for it.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import type { ServerResponse } from 'node:http'
import { type Cursor, CursorTracker, type FeedEvent, type RevocationFeed, type StreamStats, parseCursor } from '../../auth/revocation-feed.js'
import { RevocationStreamsExceeded } from '../../errors.js'
import { resourceServerAuthenticator } from './resource-servers.js'
import { BasicAuthHeaders, OAuthErrorResponse, RevocationsQuery, RevocationsResponse, StreamHeaders } from './schemas.js'

/** Unsent bytes a subscriber may hold before it is cut off (it resumes from its cursor). */
const MAX_UNSENT_BYTES = 256 * 1024
/** Reconnection delay suggested to EventSource clients (ms). */
const RETRY_MS = 1000

export default async function revocationFeedRoutes (app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config } = fastify
  const authenticateResourceServer = resourceServerAuthenticator(config.resourceServers)
  const feed = fastify.revocationFeed
  const authenticate = async (request: Parameters<typeof authenticateResourceServer>[0]) => { authenticateResourceServer(request) }

  fastify.get('/oauth/revocations', {
    config: { public: true },
    preValidation: authenticate,
    schema: {
      tags: ['oauth'],
      summary: 'Every revocation still relevant, or those after a cursor (the revocation feed)',
      security: [{ resourceServerBasic: [] }],
      headers: BasicAuthHeaders,
      querystring: RevocationsQuery,
      response: { 200: RevocationsResponse, '4xx': OAuthErrorResponse }
    }
  }, async (request, reply) => {
    void reply.header('cache-control', 'no-store')
    const { after } = request.query
    const { events, cursor } = await feed.read(after === undefined ? undefined : parseCursor(after))
    return { events, cursor }
  })

  const open = new Map<string, number>()
  const streams = feed.streams as Set<Subscriber>
  // A little early, so timer drift never stretches a gap past the promised interval.
  const heartbeat = setInterval(() => {
    const now = Date.now()
    for (const stream of streams) stream.beat(now)
  }, config.revocationStream.heartbeatSeconds * 900)
  heartbeat.unref()
  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat)
    for (const stream of streams) stream.raw.end()
  })

  fastify.get('/oauth/revocations/stream', {
    config: { public: true },
    preValidation: authenticate,
    schema: {
      tags: ['oauth'],
      summary: 'The revocation feed as Server-Sent Events, pushed as revocations happen on any instance',
      security: [{ resourceServerBasic: [] }],
      headers: StreamHeaders,
      querystring: RevocationsQuery,
      response: {
        200: Type.String({ description: 'text/event-stream: `id:` the cursor, `data:` a revocation event; a comment at least every 15 s' }),
        '4xx': OAuthErrorResponse
      }
    }
  }, async (request, reply) => {
    const clientId = authenticateResourceServer(request)
    const streamsOfClient = open.get(clientId) ?? 0
    if (streamsOfClient >= config.revocationStream.perClient) {
      throw new RevocationStreamsExceeded(String(config.revocationStream.perClient))
    }
    const resumeFrom = request.headers['last-event-id'] ?? request.query.after
    open.set(clientId, streamsOfClient + 1)
    const subscriber = new Subscriber(reply.raw, clientId, feed, resumeFrom === undefined ? undefined : parseCursor(resumeFrom),
      config.revocationStream.heartbeatSeconds * 2000, (error) => request.log.warn({ err: error }, 'revocation stream catch-up failed'))
    const unsubscribe = feed.subscribe((event, seq) => subscriber.live(event, seq))
    reply.raw.on('close', () => {
      unsubscribe()
      streams.delete(subscriber)
      const left = (open.get(clientId) ?? 1) - 1
      if (left <= 0) open.delete(clientId)
      else open.set(clientId, left)
    })
    reply.hijack()
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    reply.raw.write(`retry: ${RETRY_MS}\n: revocation feed\n\n`)
    streams.add(subscriber)
    subscriber.catchUp()
  })
}

/**
 * One stream. Live events are written as they come while the socket keeps up. Once its unsent
 * bytes pass MAX_UNSENT_BYTES it is paused: live events are not kept for it (its cursor says where it
 * stopped), and when the socket drains it catches up from the database. A stream paused longer than
 * `pauseLimitMs` is closed; it can resume with Last-Event-ID.
 */
class Subscriber {
  private mode: 'catching-up' | 'live' | 'paused' = 'catching-up'
  private pausedSince = 0
  private readonly tracker: CursorTracker
  /** Live events that arrive during a catch-up read; past the bound, another read is made instead. */
  private waiting: Array<{ event: FeedEvent, seq: number }> = []
  private overflowed = false

  constructor (
    readonly raw: ServerResponse,
    private readonly clientId: string,
    private readonly feed: RevocationFeed,
    private readonly from: Cursor | undefined,
    private readonly pauseLimitMs: number,
    private readonly onError: (error: unknown) => void
  ) {
    this.tracker = new CursorTracker(from ?? { high: 0, gaps: [] }, Date.now)
    raw.on('drain', () => { if (this.mode === 'paused') this.catchUp() })
  }

  stats (): StreamStats {
    return { clientId: this.clientId, mode: this.mode, unsentBytes: this.raw.writableLength }
  }

  live (event: FeedEvent, seq: number): void {
    if (this.mode === 'live') this.deliver(event, seq)
    else if (this.mode === 'catching-up') {
      if (this.waiting.length < 10_000) this.waiting.push({ event, seq })
      else this.overflowed = true
    }
    // paused: the catch-up after the drain reads it from the database.
  }

  beat (now: number): void {
    if (this.mode === 'paused') {
      if (now - this.pausedSince > this.pauseLimitMs) this.raw.destroy()
      return
    }
    this.write(': keep-alive\n\n')
  }

  /** Reads what the cursor has not seen, writes it, then the live events that came meanwhile. */
  catchUp (): void {
    if (this.raw.destroyed) return
    this.mode = 'catching-up'
    this.waiting = []
    this.overflowed = false
    const first = this.from !== undefined || this.tracker.toString() !== '0'
    this.feed.read(first ? parseCursor(this.tracker.toString()) : undefined).then(({ events, seqs, cursor }) => {
      const sent = new Set(seqs)
      events.forEach((event, index) => this.deliver(event, seqs[index]!))
      // The read knows which skipped seqs are final: its cursor replaces the one built event by event.
      this.tracker.reset(parseCursor(cursor))
      if (this.overflowed) return this.catchUp()
      for (const { event, seq } of this.waiting) if (!sent.has(seq)) this.deliver(event, seq)
      this.waiting = []
      // An id alone moves the follower's resume point without showing it an event.
      this.write(`id: ${this.tracker.toString()}\n\n`)
      if (this.mode === 'catching-up') this.mode = 'live'
    }, (error: unknown) => {
      this.onError(error)
      this.raw.destroy()
    })
  }

  private deliver (event: FeedEvent, seq: number): void {
    this.write(`id: ${this.tracker.advance(seq)}\ndata: ${JSON.stringify(event)}\n\n`)
  }

  private write (chunk: string): void {
    if (this.raw.destroyed) return
    this.raw.write(chunk)
    if (this.mode === 'live' && this.raw.writableLength > MAX_UNSENT_BYTES) {
      this.mode = 'paused'
      this.pausedSince = Date.now()
    }
  }
}
