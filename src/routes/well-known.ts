// /.well-known/jwks.json: the public keys that verify access tokens, for other services. Empty with
// HS256 (a shared secret is never published); with JWT_PRIVATE_KEY, the current and previous keys.
import { Type } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { publishedKeys } from '../auth/signing-keys.js'

/** Public members only (RFC 7517/8037/7518): a private member (`d`) could not leave even if a key carried one. */
const JwkSet = Type.Object({
  keys: Type.Array(Type.Object({
    kty: Type.String({ examples: ['OKP', 'EC'] }),
    crv: Type.String({ examples: ['Ed25519', 'P-256'] }),
    x: Type.String(),
    y: Type.Optional(Type.String()),
    kid: Type.String(),
    alg: Type.String({ examples: ['EdDSA', 'ES256'] }),
    use: Type.Literal('sig')
  }))
})

export default async function wellKnownRoutes (fastify: FastifyInstance) {
  const jwks = publishedKeys(fastify.config.jwt.keys)
  fastify.get('/.well-known/jwks.json', {
    config: { public: true, noDatabase: true },
    schema: { tags: ['operations'], summary: 'The public keys that verify access tokens (RFC 7517)', response: { 200: JwkSet } }
  }, async (_request, reply) => {
    void reply.header('cache-control', 'public, max-age=300')
    return jwks
  })
}
