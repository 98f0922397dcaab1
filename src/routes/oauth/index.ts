// POST /oauth/token: the OAuth 2.0 token endpoint for off-the-shelf client libraries.
// RFC 6749 §4.3 (password grant) and §6 (refresh grant), form-encoded in, §5.1 / §5.2 JSON out.
// It is another door to the same domain as /auth/*: the same rotation, reuse detection, lock-out and
// per-address limit. Clients are public (RFC 6749 §2.1): they send client_id, no secret.
import formbody from '@fastify/formbody'
import { Type } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { PASSWORD_MAX_LENGTH, characterCount } from '../../auth/passwords.js'
import { isWellFormedRefreshToken } from '../../auth/token-rules.js'
import type { IssuedTokens } from '../../auth/sessions.js'
import { LOGIN_USERNAME_MAX_LENGTH } from '../../auth/usernames.js'
import { InvalidClient, type OAuthErrorCode, RefreshInvalid, UnsupportedGrantType, ValidationFailed } from '../../errors.js'
import { clientContext, sessionContext } from '../client-context.js'
import resourceServerRoutes from './introspection.js'
import revocationFeedRoutes from './revocation-feed.js'
import revocationRoutes from './revocation.js'

const TokenRequest = Type.Object({
  grant_type: Type.Union([Type.Literal('password'), Type.Literal('refresh_token')]),
  username: Type.Optional(Type.String({ description: 'grant_type=password', maxLength: LOGIN_USERNAME_MAX_LENGTH })),
  password: Type.Optional(Type.String({ description: 'grant_type=password', maxLength: PASSWORD_MAX_LENGTH })),
  refresh_token: Type.Optional(Type.String({ description: 'grant_type=refresh_token' })),
  client_id: Type.Optional(Type.String({ description: 'a public client\'s id (no secret)' }))
})
const TokenSuccess = Type.Object({
  access_token: Type.String(),
  /** DPoP when the request carried a DPoP proof (RFC 9449 §5): the tokens are bound to its key. */
  token_type: Type.String({ examples: ['Bearer', 'DPoP'] }),
  expires_in: Type.Integer(),
  refresh_token: Type.String()
})
/** RFC 6749 §5.2, with the contract's error members beside. */
function oauthErrorSchema (statusCode: number, errors: OAuthErrorCode[], codes: string[]) {
  return Type.Object({
    error: Type.Unsafe<string>({ type: 'string', enum: errors }),
    error_description: Type.String(),
    statusCode: Type.Integer({ examples: [statusCode] }),
    code: Type.Unsafe<string>({ type: 'string', enum: codes }),
    message: Type.String()
  }, { description: `${errors.join(', ')} (${codes.join(', ')})` })
}
const TOKEN_RESPONSES = {
  200: TokenSuccess,
  400: oauthErrorSchema(400, ['invalid_request', 'invalid_grant', 'unsupported_grant_type', 'invalid_dpop_proof', 'use_dpop_nonce'],
    ['VALIDATION_ERROR', 'AUTH_INVALID_CREDENTIALS', 'AUTH_REFRESH_INVALID', 'AUTH_REFRESH_REUSED', 'AUTH_DPOP_INVALID', 'AUTH_DPOP_NONCE']),
  401: oauthErrorSchema(401, ['invalid_client'], ['OAUTH_INVALID_CLIENT']),
  413: oauthErrorSchema(413, ['invalid_request'], ['PAYLOAD_TOO_LARGE']),
  415: oauthErrorSchema(415, ['invalid_request'], ['UNSUPPORTED_MEDIA_TYPE']),
  429: oauthErrorSchema(429, ['invalid_request'], ['AUTH_RATE_LIMITED'])
}

function requireParameter (body: Record<string, unknown>, name: string): string {
  const value = body[name]
  if (value === undefined || value === '') throw new ValidationFailed(`Missing parameter: ${name}`)
  if (typeof value !== 'string') throw new ValidationFailed(`Parameter ${name} must be given once`)
  return value
}

export default async function oauthRoutes (fastify: FastifyInstance) {
  const { config, accounts, sessions } = fastify
  // Forms are accepted here only; everything else in the API is JSON.
  fastify.removeAllContentTypeParsers()
  await fastify.register(formbody)

  // Every route here answers its errors as OAuth clients read them (RFC 6749 §5.2), through the one
  // error handler: how each error reads is declared with it in src/errors.ts.
  fastify.addHook('onRoute', (route) => {
    route.config = { ...route.config, errorShape: 'oauth' }
  })

  fastify.post('/oauth/token', {
    config: { public: true, dpop: true, rateLimit: { max: config.rateLimitMax, timeWindow: 60_000 } },
    schema: {
      tags: ['oauth'],
      summary: 'OAuth 2.0 token endpoint: password and refresh_token grants',
      consumes: ['application/x-www-form-urlencoded'],
      body: TokenRequest,
      response: TOKEN_RESPONSES
    },
    // The body schema documents the form; the handler checks it, because RFC 6749 §5.2 tells apart
    // errors a schema validator cannot (unsupported_grant_type vs invalid_request, a repeated parameter).
    validatorCompiler: () => () => true
  }, async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>
    if (request.headers.authorization !== undefined) {
      // No confidential clients are registered: a client that authenticates cannot be verified.
      throw new InvalidClient('Client authentication is not supported; send client_id as a public client')
    }
    const grantType = requireParameter(body, 'grant_type')
    let issued: IssuedTokens
    if (grantType === 'password') {
      const username = requireParameter(body, 'username')
      const password = requireParameter(body, 'password')
      // Counted in characters, as /auth/login's schema counts them: the same password works at both doors.
      if (characterCount(username) > LOGIN_USERNAME_MAX_LENGTH || characterCount(password) > PASSWORD_MAX_LENGTH) {
        throw new ValidationFailed('username or password too long')
      }
      // The proof is checked before the password (RFC 9449 §5: a bound session from the start).
      const dpopThumbprint = await fastify.dpop.bindingOf(request)
      issued = await accounts.login(username, password, request.ip, { ...sessionContext(request, 'mobile'), dpopThumbprint })
    } else if (grantType === 'refresh_token') {
      const refreshToken = requireParameter(body, 'refresh_token')
      if (!isWellFormedRefreshToken(refreshToken)) throw new RefreshInvalid()
      issued = await sessions.refresh(refreshToken, { ...clientContext(request), ...await fastify.dpop.refreshContextOf(request) })
    } else {
      throw new UnsupportedGrantType('grant_type must be password or refresh_token')
    }
    void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
    return {
      access_token: issued.accessToken,
      token_type: issued.dpopThumbprint === null ? 'Bearer' : 'DPoP',
      expires_in: issued.expiresIn,
      refresh_token: issued.refreshToken
    }
  })

  await fastify.register(revocationRoutes)
  await fastify.register(resourceServerRoutes)
  await fastify.register(revocationFeedRoutes)
}
