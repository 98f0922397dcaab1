// Liveness (the process answers) and readiness (the database answers; Redis is reported, not required).
import { Type } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { ServiceUnavailable } from '../errors.js'
import { errorResponses } from './error-schemas.js'

const Liveness = Type.Object({ status: Type.Literal('ok') })
const Readiness = Type.Object({
  status: Type.Literal('ready'),
  database: Type.Literal('ok'),
  /** Present when REDIS_URL is set: degraded while Redis is unreachable (limits then count per instance). */
  redis: Type.Optional(Type.Union([Type.Literal('ok'), Type.Literal('degraded')]))
})

export default async function healthRoutes (fastify: FastifyInstance) {
  fastify.get('/health', {
    config: { public: true, noDatabase: true },
    schema: { tags: ['operations'], summary: 'Liveness: the process answers', response: { 200: Liveness } }
  }, async () => ({ status: 'ok' }))

  fastify.get('/ready', {
    config: { public: true },
    schema: {
      tags: ['operations'],
      summary: 'Readiness: the database answers (Redis is reported, not required)',
      response: { 200: Readiness, ...errorResponses({ 503: ['SERVICE_UNAVAILABLE'] }) }
    }
  }, async (request) => {
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
