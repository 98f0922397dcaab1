// One error handler: every error leaves in the contract's shape
// { statusCode, code, error, message }, with a stable code. A 5xx says nothing about internals;
// its details go to the log with the request id.
//
// What an error is on the wire (its status, contract code, OAuth `error`, WWW-Authenticate
// challenge) is declared with the error in src/errors.ts; this handler only reads it. A route whose
// config says `errorShape: 'oauth'` (the /oauth/* endpoints) gets its errors as RFC 6749 §5.2
// bodies that also carry the contract's members; everything else is the same, so a new endpoint or
// a new error never needs a handler of its own.
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isDatabaseUnavailable, isForeignKeyViolation } from '../db/client.js'
import { type Challenge, type ErrorDeclaration, InvalidCredentials, NotFound, type OAuthErrorCode, TokenRevoked } from '../errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'oauth': errors answer as RFC 6749 §5.2 (error, error_description) with the contract's members beside. */
    errorShape?: 'oauth'
  }
}

/** Fastify's own errors, translated to the contract's codes. */
const FRAMEWORK_CODES: Record<string, { statusCode: number, code: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { statusCode: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  FST_ERR_CTP_BODY_TOO_LARGE: { statusCode: 413, code: 'PAYLOAD_TOO_LARGE' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { statusCode: 400, code: 'VALIDATION_ERROR' },
  FST_ERR_CTP_INVALID_JSON_BODY: { statusCode: 400, code: 'VALIDATION_ERROR' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { statusCode: 400, code: 'VALIDATION_ERROR' },
  FST_ERR_VALIDATION: { statusCode: 400, code: 'VALIDATION_ERROR' }
}
const CODES_BY_STATUS: Record<number, string> = {
  400: 'VALIDATION_ERROR', 404: 'NOT_FOUND', 405: 'METHOD_NOT_ALLOWED', 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE', 429: 'AUTH_RATE_LIMITED'
}

interface ShapedError { statusCode: number, code: string, message: string }
/**
 * An error as thrown: a declared one (src/errors.ts), Fastify's or a library's. An instance may add
 * `retryAfter` (seconds), `sessionEnded` (why a refresh token's session ended) and `headers` (e.g.
 * DPoP-Nonce) to what its declaration says.
 */
export type HandledError = FastifyError & ErrorDeclaration & {
  retryAfter?: number
  sessionEnded?: string
  headers?: Record<string, string>
}

/**
 * A write that referred to a vanished row means the caller's account is gone: with a verified
 * access token that token is worthless (revoked); without one (a login racing the deletion) the
 * credentials no longer name an account. Never a 5xx.
 */
function translateDatabaseError (request: FastifyRequest, error: HandledError): HandledError {
  if (!isForeignKeyViolation(error)) return error
  return (request.principal !== null ? new TokenRevoked() : new InvalidCredentials()) as HandledError
}

function shape (error: HandledError): ShapedError {
  if (error.validation !== undefined) return { statusCode: 400, code: 'VALIDATION_ERROR', message: error.message }
  const framework = FRAMEWORK_CODES[error.code]
  if (framework !== undefined) return { ...framework, message: error.message }
  const statusCode = error.statusCode ?? 500
  // JSON.parse's message quotes the body it failed on (a password, a token): never echoed.
  if (statusCode === 400 && error instanceof SyntaxError) return { statusCode, code: 'VALIDATION_ERROR', message: 'The request body is not valid JSON' }
  if (statusCode >= 400 && statusCode < 500) {
    const code = typeof error.code === 'string' && !error.code.startsWith('FST_') ? error.code : (CODES_BY_STATUS[statusCode] ?? 'BAD_REQUEST')
    return { statusCode, code, message: error.message }
  }
  if (error.code === 'SERVICE_UNAVAILABLE' || isDatabaseUnavailable(error)) return { statusCode: 503, code: 'SERVICE_UNAVAILABLE', message: '' }
  return { statusCode: 500, code: 'INTERNAL_ERROR', message: '' }
}

/** The scheme the request's credentials came in, for challenges that do not name their own. */
function presentedScheme (_request: FastifyRequest): string {
  return 'Bearer'
}

function formatChallenge (request: FastifyRequest, challenge: Challenge): string {
  let header = challenge.scheme ?? presentedScheme(request)
  const params: string[] = []
  if (challenge.realm !== undefined) params.push(`realm="${challenge.realm}"`)
  if (challenge.error !== undefined) params.push(`error="${challenge.error}"`)
  if (challenge.description !== undefined) params.push(`error_description="${challenge.description.replace(/["\\]/g, '')}"`)
  for (const [name, value] of Object.entries(challenge.params ?? {})) params.push(`${name}="${value}"`)
  if (params.length > 0) header += ' ' + params.join(', ')
  return header
}

/**
 * The challenge of a 401. An error that declares one gets it wherever it is thrown (a token error
 * on a public route too: logout by access token). Otherwise RFC 6750 §3, as the contract words it:
 * every 401 on a protected route challenges, bare when no credentials came and with invalid_token
 * when they did (a verified token whose request still failed authentication, e.g. a wrong current
 * password); a public route's other 401s (a bad refresh token, bad login) do not.
 */
function challengeOf (request: FastifyRequest, error: HandledError): Challenge | undefined {
  if (error.challenge !== undefined) return error.challenge
  if (request.routeOptions.config?.public === true) return undefined
  return request.principal === null ? {} : { error: 'invalid_token' }
}

/**
 * RFC 6749 §5.2 body (error, error_description) that also has the contract's error shape:
 * statusCode, code and message. `error` stays the OAuth code, as OAuth clients require; the extra
 * members are ignored by them (RFC 6749 §8.2 allows them).
 */
function oauthErrorBody (statusCode: number, error: OAuthErrorCode, code: string, description: string) {
  return { error, error_description: description, statusCode, code, message: description }
}

export function sendError (request: FastifyRequest, reply: FastifyReply, thrown: HandledError): FastifyReply {
  const error = translateDatabaseError(request, thrown)
  const shaped = shape(error)
  // An OAuth client reads every 4xx but an unknown route (a switched-off endpoint) as an OAuth error.
  const asOAuth = request.routeOptions.config?.errorShape === 'oauth'
  if (asOAuth) void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
  const oauth = asOAuth && shaped.statusCode < 500 && shaped.code !== 'NOT_FOUND'
    ? { error: error.oauth?.error ?? 'invalid_request', statusCode: error.oauth?.statusCode ?? shaped.statusCode }
    : undefined
  if (oauth !== undefined) shaped.statusCode = oauth.statusCode
  if (shaped.statusCode >= 500) {
    request.log.error({ err: error }, 'request failed')
    shaped.message = shaped.statusCode === 503 ? 'Service temporarily unavailable, retry shortly' : 'Internal server error'
  } else {
    request.log.info({ code: shaped.code, statusCode: shaped.statusCode }, shaped.message)
  }
  if (shaped.statusCode === 401) {
    const challenge = challengeOf(request, error)
    if (challenge !== undefined) void reply.header('www-authenticate', formatChallenge(request, challenge))
  }
  if (error.headers !== undefined) void reply.headers(error.headers)
  if (typeof error.retryAfter === 'number') void reply.header('retry-after', String(error.retryAfter))
  else if (shaped.statusCode === 503) void reply.header('retry-after', '1')
  if (oauth !== undefined) return reply.status(shaped.statusCode).send(oauthErrorBody(shaped.statusCode, oauth.error, shaped.code, shaped.message))
  return reply.status(shaped.statusCode).send({
    statusCode: shaped.statusCode,
    code: shaped.code,
    error: STATUS_CODES[shaped.statusCode] ?? 'Error',
    message: shaped.message,
    // A refresh token of an ended session: why it ended (logout, reused, revoked, expired, password-changed).
    ...(shaped.statusCode === 401 && typeof error.sessionEnded === 'string' ? { reason: error.sessionEnded } : {})
  })
}

export default fp(async function errorHandler (fastify) {
  fastify.setErrorHandler(function (error: FastifyError, request, reply) {
    return sendError(request, reply, error)
  })
  fastify.setNotFoundHandler(function (request, reply) {
    return sendError(request, reply, new NotFound(`Route ${request.method}:${request.url.split(/[?;]/, 1)[0]} not found`))
  })
}, { name: 'error-handler' })
