// The optional shared store (REDIS_URL): rate-limit and login-failure counters shared by every
// instance, and the channel of the revocation doorbell (plugins/revocation-doorbell.ts).
// Redis is never on the critical path: commands fail fast while it is away (no offline queue), the
// callers fall back to per-process memory, and the client keeps reconnecting in the background.
import fp from 'fastify-plugin'
import { Redis, type RedisOptions } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance {
    /** null when REDIS_URL is not set. Check `redis.status === 'ready'` before relying on it. */
    redis: Redis | null
    /** Opens another connection to the same Redis (for subscriptions). */
    connectRedis: ((options?: RedisOptions) => Redis) | null
  }
}

/** How often a lost Redis is reported in the log (it is retried far more often). */
const REPORT_EVERY_MS = 30_000

export default fp(async function redisPlugin (fastify, { url }: { url: string | undefined }) {
  if (url === undefined) {
    fastify.decorate('redis', null)
    fastify.decorate('connectRedis', null)
    return
  }
  let lastReport = 0
  const report = (error: Error) => {
    if (Date.now() - lastReport < REPORT_EVERY_MS) return
    lastReport = Date.now()
    fastify.log.warn({ err: error }, 'Redis unavailable: limits and login-failure counts use this process\'s memory until it returns')
  }
  const connections: Redis[] = []
  const connectRedis = (options: RedisOptions = {}) => {
    const connection = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (attempt: number) => Math.min(attempt * 250, 2000),
      ...options
    })
    connection.on('error', report)
    connections.push(connection)
    return connection
  }
  const redis = connectRedis({ lazyConnect: true })
  redis.on('ready', () => { if (lastReport !== 0) fastify.log.info('Redis is back: limits are shared again') })
  try {
    await redis.connect()
  } catch (error) {
    report(error as Error)
  }
  fastify.decorate('redis', redis)
  fastify.decorate('connectRedis', connectRedis)
  fastify.addHook('onClose', async () => {
    for (const connection of connections) connection.disconnect()
  })
}, { name: 'redis' })
