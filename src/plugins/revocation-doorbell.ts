// Revocations reach other instances through the revocation log, which each instance polls
// (REVOCATION_POLL_INTERVAL_MS). The doorbell only makes that immediate: after a revocation commits,
// this instance rings, and every other instance reads the log at once. Two bells, both optional:
// Redis pub/sub across machines, and the cluster primary's IPC between workers of one machine.
import cluster from 'node:cluster'
import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    ringRevocationDoorbell: () => void
  }
}

export const DOORBELL_CHANNEL = 'auth-server:revocations'
export const DOORBELL_MESSAGE = 'auth-server:revocation-doorbell'

export default fp(async function revocationDoorbell (fastify) {
  const instanceId = randomUUID()
  const readLogNow = () => {
    fastify.revocations.poll().catch((error: unknown) => fastify.log.warn({ err: error }, 'revocation poll failed'))
  }
  const bells: Array<() => void> = []

  if (fastify.connectRedis !== null && fastify.redis !== null) {
    const { redis } = fastify
    // A subscriber connection keeps its queue so the subscription is made whenever it connects.
    const subscriber = fastify.connectRedis({ enableOfflineQueue: true, maxRetriesPerRequest: null })
    subscriber.on('message', (_channel: string, sender: string) => { if (sender !== instanceId) readLogNow() })
    subscriber.subscribe(DOORBELL_CHANNEL).catch(() => {})
    bells.push(() => { if (redis.status === 'ready') redis.publish(DOORBELL_CHANNEL, instanceId).catch(() => {}) })
  }
  if (cluster.isWorker && process.send !== undefined) {
    const onMessage = (message: unknown) => { if (message === DOORBELL_MESSAGE) readLogNow() }
    process.on('message', onMessage)
    fastify.addHook('onClose', async () => { process.off('message', onMessage) })
    bells.push(() => process.send?.(DOORBELL_MESSAGE))
  }

  fastify.decorate('ringRevocationDoorbell', () => { for (const ring of bells) ring() })
  fastify.revocations.onRecorded(() => fastify.ringRevocationDoorbell())
}, { name: 'revocation-doorbell', dependencies: ['redis', 'auth-domain'] })
