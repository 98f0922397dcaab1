// The revocation feed's hub (src/auth/revocation-feed.ts), fed by the revocation list with every event
// this instance learns of, and shared by the feed's routes (src/routes/oauth/revocation-feed.ts).
import fp from 'fastify-plugin'
import { RevocationFeed } from '../auth/revocation-feed.js'
import { revocationRelevantUntil } from '../auth/token-rules.js'

declare module 'fastify' {
  interface FastifyInstance {
    revocationFeed: RevocationFeed
  }
}

export default fp(async function revocationFeed (fastify) {
  const { config } = fastify
  const feed = new RevocationFeed(fastify.db, Date.now, (createdAt) => revocationRelevantUntil(createdAt, config.ttl))
  fastify.revocations.onEvents((records) => feed.publish(records))
  fastify.decorate('revocationFeed', feed)
}, { name: 'revocation-feed', dependencies: ['auth-domain'] })
