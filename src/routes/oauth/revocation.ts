// POST /oauth/revoke (RFC 7009) for public clients: a refresh token or an access token ends its
// session, exactly as logout does (its access tokens are refused at once, on every instance).
// A token this server does not know, or no longer honours, is answered 200 all the same (§2.2).
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { isAccessTokenRevoked, isWellFormedRefreshToken } from '../../auth/token-rules.js'
import { InvalidClient, UnsupportedTokenType } from '../../errors.js'
import { clientContext } from '../client-context.js'
import { resourceServerAuthenticator } from './resource-servers.js'
import { BasicAuthHeaders, OAuthErrorResponse, RevokeBody } from './schemas.js'

export const TOKEN_TYPE_HINTS = new Set(['access_token', 'refresh_token'])

export default async function revocationRoutes (app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config, sessions, revocations } = fastify
  const authenticateResourceServer = resourceServerAuthenticator(config.resourceServers)

  fastify.post('/oauth/revoke', {
    config: { public: true, rateLimit: { max: config.rateLimitMax, timeWindow: 60_000 } },
    schema: {
      tags: ['oauth'],
      summary: 'Revoke a refresh or access token: its session ends, as at logout (RFC 7009)',
      headers: BasicAuthHeaders,
      body: RevokeBody,
      response: { 200: Type.Object({}, { additionalProperties: false }), '4xx': OAuthErrorResponse }
    }
  }, async (request, reply) => {
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    // Clients are public; the only credentials this server can check are a resource server's.
    if (request.headers.authorization !== undefined) {
      if (config.resourceServers.length === 0) {
        throw new InvalidClient('Client authentication is not supported; send client_id as a public client')
      }
      authenticateResourceServer(request)
    }
    const { token, token_type_hint: hint } = request.body
    if (hint !== undefined && !TOKEN_TYPE_HINTS.has(hint)) {
      throw new UnsupportedTokenType('token_type_hint must be access_token or refresh_token')
    }
    // The two kinds cannot be mistaken for each other (a JWT has dots, a refresh token has none),
    // so the hint only saves nothing here and is not needed to find the token.
    if (isWellFormedRefreshToken(token)) {
      const session = await sessions.findLiveSession(token)
      if (session !== null) await sessions.revokeSession(session.id, 'logout', session.userId, clientContext(request))
    } else {
      const claims = fastify.inspectAccessToken(token)
      if (claims !== null && !isAccessTokenRevoked(claims, revocations)) await sessions.revokeSession(claims.sid, 'logout', claims.sub, clientContext(request))
    }
    return {}
  })
}
