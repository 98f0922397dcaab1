// POST /oauth/token: the OAuth 2.0 token endpoint for off-the-shelf client libraries.
// RFC 6749 §4.3 (password grant) and §6 (refresh grant), form-encoded in, §5.1 / §5.2 JSON out.
// It is another door to the same domain as /auth/*: the same rotation, reuse detection, lock-out and
// per-address limit. Clients are public (RFC 6749 §2.1): they send client_id, no secret.
import formbody from '@fastify/formbody'
import type { FastifyError, FastifyInstance } from 'fastify'
import { PASSWORD_MAX_LENGTH, characterCount } from '../../auth/passwords.js'
import { isWellFormedRefreshToken } from '../../auth/token-rules.js'
import type { IssuedTokens } from '../../auth/sessions.js'
import { LOGIN_USERNAME_MAX_LENGTH } from '../../auth/usernames.js'
import { sendError, shape, translateDatabaseError } from '../../plugins/error-handler.js'
import { OAuthError, oauthErrorBody } from './errors.js'
import resourceServerRoutes from './introspection.js'
import revocationFeedRoutes from './revocation-feed.js'
import revocationRoutes from './revocation.js'

/** How the domain's errors read in OAuth terms (RFC 6749 §5.2). */
const GRANT_ERRORS = new Set(['AUTH_INVALID_CREDENTIALS', 'AUTH_REFRESH_INVALID', 'AUTH_REFRESH_REUSED'])

function requireParameter (body: Record<string, unknown>, name: string): string {
  const value = body[name]
  if (value === undefined || value === '') throw new OAuthError('invalid_request', `Missing parameter: ${name}`, 'VALIDATION_ERROR')
  if (typeof value !== 'string') throw new OAuthError('invalid_request', `Parameter ${name} must be given once`, 'VALIDATION_ERROR')
  return value
}

export default async function oauthRoutes (fastify: FastifyInstance) {
  const { config, accounts, sessions } = fastify
  // Forms are accepted here only; everything else in the API is JSON.
  fastify.removeAllContentTypeParsers()
  await fastify.register(formbody)

  fastify.setErrorHandler((thrown: FastifyError & { retryAfter?: number }, request, reply) => {
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    if (thrown instanceof OAuthError) {
      if (thrown.statusCode === 401) void reply.header('www-authenticate', 'Basic realm="oauth"')
      return reply.status(thrown.statusCode).send(oauthErrorBody(thrown.statusCode, thrown.error, thrown.code, thrown.message))
    }
    // An account deleted between lookup and session insert reads as bad credentials, not a 5xx.
    const error = translateDatabaseError(request, thrown)
    if (GRANT_ERRORS.has(error.code)) return reply.status(400).send(oauthErrorBody(400, 'invalid_grant', error.code, error.message))
    if (error.code === 'AUTH_RATE_LIMITED') {
      void reply.header('retry-after', String(error.retryAfter ?? 60))
      return reply.status(429).send(oauthErrorBody(429, 'invalid_request', error.code, error.message))
    }
    const shaped = shape(error)
    // A route switched off (introspection without RESOURCE_SERVERS) is an unknown route.
    if (shaped.code === 'NOT_FOUND') return sendError(request, reply, error)
    if (shaped.statusCode >= 400 && shaped.statusCode < 500) {
      return reply.status(shaped.statusCode).send(oauthErrorBody(shaped.statusCode, 'invalid_request', shaped.code, shaped.message))
    }
    return sendError(request, reply, error)
  })

  fastify.post('/oauth/token', {
    config: { public: true, rateLimit: { max: config.rateLimitMax, timeWindow: 60_000 } }
  }, async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>
    if (request.headers.authorization !== undefined) {
      // No confidential clients are registered: a client that authenticates cannot be verified.
      throw new OAuthError('invalid_client', 'Client authentication is not supported; send client_id as a public client', 'OAUTH_INVALID_CLIENT', 401)
    }
    const grantType = requireParameter(body, 'grant_type')
    let issued: IssuedTokens
    if (grantType === 'password') {
      const username = requireParameter(body, 'username')
      const password = requireParameter(body, 'password')
      // Counted in characters, as /auth/login's schema counts them: the same password works at both doors.
      if (characterCount(username) > LOGIN_USERNAME_MAX_LENGTH || characterCount(password) > PASSWORD_MAX_LENGTH) {
        throw new OAuthError('invalid_request', 'username or password too long', 'VALIDATION_ERROR')
      }
      issued = await accounts.login(username, password, request.ip, {
        client: 'mobile', userAgent: request.headers['user-agent']?.slice(0, 512), ip: request.ip
      })
    } else if (grantType === 'refresh_token') {
      const refreshToken = requireParameter(body, 'refresh_token')
      if (!isWellFormedRefreshToken(refreshToken)) throw new OAuthError('invalid_grant', 'The refresh token is invalid', 'AUTH_REFRESH_INVALID')
      issued = await sessions.refresh(refreshToken)
    } else {
      throw new OAuthError('unsupported_grant_type', 'grant_type must be password or refresh_token', 'VALIDATION_ERROR')
    }
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    return {
      access_token: issued.accessToken,
      token_type: 'Bearer',
      expires_in: issued.expiresIn,
      refresh_token: issued.refreshToken
    }
  })

  await fastify.register(revocationRoutes)
  await fastify.register(resourceServerRoutes)
  await fastify.register(revocationFeedRoutes)
}
