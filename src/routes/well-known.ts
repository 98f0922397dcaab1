// /.well-known/jwks.json: the public keys that verify access tokens, for other services. Empty with
// HS256 (a shared secret is never published); with JWT_PRIVATE_KEY, the current and previous keys.
import type { FastifyInstance } from 'fastify'
import { publishedKeys } from '../auth/signing-keys.js'

export default async function wellKnownRoutes (fastify: FastifyInstance) {
  const jwks = publishedKeys(fastify.config.jwt.keys)
  fastify.get('/.well-known/jwks.json', { config: { public: true } }, async (_request, reply) => {
    void reply.header('cache-control', 'public, max-age=300')
    return jwks
  })
}
