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
import { type FeedEvent, RevocationFeed } from '../../auth/revocation-feed.js'
import { revocationRelevantUntil } from '../../auth/token-rules.js'
import { OAuthError } from './errors.js'
import { resourceServerAuthenticator } from './resource-servers.js'
import { BasicAuthHeaders, OAuthErrorResponse, RevocationsQuery, RevocationsResponse, StreamHeaders } from './schemas.js'

/** Unsent bytes a subscriber may hold before it is cut off (it resumes from its cursor). */
const MAX_UNSENT_BYTES = 256 * 1024
/** Reconnection delay suggested to EventSource clients (ms). */
const RETRY_MS = 1000

function sseMessage (event: FeedEvent, cursor: number): string {
  return `id: ${cursor}\ndata: ${JSON.stringify(event)}\n\n`
}

export default async function revocationFeedRoutes (app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config } = fastify
  const authenticateResourceServer = resourceServerAuthenticator(config.resourceServers)
  const feed = new RevocationFeed(fastify.db, Date.now, (createdAt) => revocationRelevantUntil(createdAt, config.ttl))
  fastify.revocations.onEvents((records) => feed.publish(records))
  const authenticate = async (request: Parameters<typeof authenticateResourceServer>[0]) => { authenticateResourceServer(request) }

  fastify.get('/oauth/revocations', {
    config: { public: true },
    preValidation: authenticate,
    schema: {
      headers: BasicAuthHeaders,
      querystring: RevocationsQuery,
      response: { 200: RevocationsResponse, '4xx': OAuthErrorResponse }
    }
  }, async (request, reply) => {
    void reply.header('cache-control', 'no-store')
    const { after } = request.query
    const { events, cursor } = await feed.read(after === undefined ? undefined : Number(after))
    return { events, cursor }
  })

  const open = new Map<string, number>()
  const streams = new Set<ServerResponse>()
  const heartbeat = setInterval(() => {
    for (const stream of streams) send(stream, ': keep-alive\n\n')
  }, config.revocationStream.heartbeatSeconds * 1000)
  heartbeat.unref()
  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat)
    for (const stream of streams) stream.end()
  })

  /** Writes without waiting: a reader that falls too far behind is dropped instead of buffered. */
  function send (stream: ServerResponse, chunk: string): void {
    if (stream.destroyed) return
    if (stream.writableLength > MAX_UNSENT_BYTES) {
      stream.destroy()
      return
    }
    stream.write(chunk)
  }

  fastify.get('/oauth/revocations/stream', {
    config: { public: true },
    preValidation: authenticate,
    schema: {
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
      throw new OAuthError('invalid_request',
        `Too many open revocation streams for this client (at most ${config.revocationStream.perClient}); close one first`,
        'REVOCATION_STREAMS_EXCEEDED', 429)
    }
    const resumeFrom = request.headers['last-event-id'] ?? request.query.after
    open.set(clientId, streamsOfClient + 1)
    const raw = reply.raw
    let cursor = resumeFrom === undefined ? 0 : Number(resumeFrom)
    // Live events that arrive while the catch-up is read wait here (bounded like the socket buffer).
    let waiting: Array<{ event: FeedEvent, seq: number }> | null = []
    const sent = new Set<number>()
    const deliver = (event: FeedEvent, seq: number) => {
      cursor = Math.max(cursor, seq)
      send(raw, sseMessage(event, cursor))
    }
    const unsubscribe = feed.subscribe((event, seq) => {
      if (waiting === null) return deliver(event, seq)
      waiting.push({ event, seq })
      if (waiting.length > 10_000) raw.destroy()
    })
    const closed = () => {
      unsubscribe()
      streams.delete(raw)
      const left = (open.get(clientId) ?? 1) - 1
      if (left <= 0) open.delete(clientId)
      else open.set(clientId, left)
    }
    raw.on('close', closed)

    reply.hijack()
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    raw.write(`retry: ${RETRY_MS}\n: revocation feed\n\n`)
    streams.add(raw)
    try {
      const caughtUp = await feed.read(resumeFrom === undefined ? undefined : Number(resumeFrom))
      caughtUp.events.forEach((event, index) => { sent.add(caughtUp.seqs[index]!); deliver(event, caughtUp.seqs[index]!) })
      for (const { event, seq } of waiting) if (!sent.has(seq)) deliver(event, seq)
      waiting = null
      // An id alone moves the follower's resume point (even with no event to show) without an event.
      cursor = Math.max(cursor, Number(caughtUp.cursor))
      send(raw, `id: ${cursor}\n\n`)
    } catch (error) {
      request.log.warn({ err: error }, 'revocation stream catch-up failed')
      raw.destroy()
    }
  })
}
