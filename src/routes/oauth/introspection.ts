// POST /oauth/introspect (RFC 7662) for resource servers (HTTP Basic against RESOURCE_SERVERS; 404
// while none is configured). The answer is exact: revocation status is read from the database, so a
// session ended on any instance a moment ago is already inactive here.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { TokenIntrospection } from '../../auth/token-introspection.js'
import { isAccessTokenRevoked, isWellFormedRefreshToken } from '../../auth/token-rules.js'
import { UnsupportedTokenType } from '../../errors.js'
import { resourceServerAuthenticator } from './resource-servers.js'
import { TOKEN_TYPE_HINTS } from './revocation.js'
import { BasicAuthHeaders, IntrospectBody, IntrospectionResponse, OAuthErrorResponse } from './schemas.js'

export default async function introspectionRoutes (app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config, revocations } = fastify
  const authenticateResourceServer = resourceServerAuthenticator(config.resourceServers)
  const introspection = new TokenIntrospection(fastify.db, Date.now)

  fastify.post('/oauth/introspect', {
    config: { public: true },
    // Authentication comes before the body is read: an unauthenticated caller learns nothing from validation.
    preValidation: async (request) => { authenticateResourceServer(request) },
    schema: {
      tags: ['oauth'],
      summary: 'Whether a token is active, for resource servers (RFC 7662)',
      security: [{ resourceServerBasic: [] }],
      headers: BasicAuthHeaders,
      body: IntrospectBody,
      response: { 200: IntrospectionResponse, '4xx': OAuthErrorResponse }
    }
  }, async (request, reply) => {
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    const { token, token_type_hint: hint } = request.body
    if (hint !== undefined && !TOKEN_TYPE_HINTS.has(hint)) {
      throw new UnsupportedTokenType('token_type_hint must be access_token or refresh_token')
    }
    const common = { iss: config.jwt.issuer, aud: config.jwt.audience }
    if (isWellFormedRefreshToken(token)) {
      const live = await introspection.liveRefreshToken(token)
      if (live === null) return { active: false }
      return {
        active: true,
        sub: live.userId,
        sid: live.sessionId,
        client_id: live.client,
        username: live.username,
        token_type: 'refresh_token',
        exp: Math.floor(live.expiresAt / 1000),
        iat: Math.floor(live.issuedAt / 1000),
        ...common
      }
    }
    const claims = fastify.inspectAccessToken(token)
    if (claims === null || isAccessTokenRevoked(claims, revocations) || !await introspection.isAccessTokenLive(claims)) return { active: false }
    return {
      active: true,
      sub: claims.sub,
      sid: claims.sid,
      client_id: claims.client_id,
      username: claims.preferred_username,
      token_type: 'Bearer',
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      ...common
    }
  })
}
