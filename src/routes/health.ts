// Liveness (the process answers) and readiness (the database answers; Redis is reported, not required).
import type { FastifyInstance } from 'fastify'
import { ServiceUnavailable } from '../errors.js'

export default async function healthRoutes (fastify: FastifyInstance) {
  fastify.get('/health', { config: { public: true } }, async () => ({ status: 'ok' }))

  fastify.get('/ready', { config: { public: true } }, async (request) => {
    try {
      await fastify.db.$queryRawUnsafe('SELECT 1')
    } catch (error) {
      request.log.warn({ err: error }, 'database not reachable')
      throw new ServiceUnavailable()
    }
    // Without Redis the instance still serves (limits fall back to memory): degraded, not unready.
    const { redis } = fastify
    return redis === null
      ? { status: 'ready', database: 'ok' }
      : { status: 'ready', database: 'ok', redis: redis.status === 'ready' ? 'ok' : 'degraded' }
  })
}
