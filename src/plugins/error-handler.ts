// One error handler: every error leaves in the contract's shape
// { statusCode, code, error, message }, with a stable code. A 5xx says nothing about internals;
// its details go to the log with the request id.
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isDatabaseUnavailable, isForeignKeyViolation } from '../db/client.js'
import { InvalidCredentials, NotFound, TokenRevoked } from '../errors.js'
import { dpopChallenge } from './dpop.js'

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

export interface ShapedError { statusCode: number, code: string, message: string }
type HandledError = FastifyError & { retryAfter?: number, sessionEnded?: string, dpopError?: string }

/**
 * A write that referred to a vanished row means the caller's account is gone: with a verified
 * access token that token is worthless (revoked); without one (a login racing the deletion) the
 * credentials no longer name an account. Never a 5xx.
 */
export function translateDatabaseError (request: FastifyRequest, error: HandledError): HandledError {
  if (!isForeignKeyViolation(error)) return error
  return (request.principal !== null ? new TokenRevoked() : new InvalidCredentials()) as HandledError
}

export function shape (error: HandledError): ShapedError {
  if (error.validation !== undefined) return { statusCode: 400, code: 'VALIDATION_ERROR', message: error.message }
  const framework = FRAMEWORK_CODES[error.code]
  if (framework !== undefined) return { ...framework, message: error.message }
  const statusCode = error.statusCode ?? 500
  // JSON.parse's message quotes the body it failed on (a password, a token): never echoed.
  if (statusCode === 400 && error instanceof SyntaxError) return { statusCode, code: 'VALIDATION_ERROR', message: 'The request body is not valid JSON' }
  if (statusCode >= 400 && statusCode < 500) {
    // JSON.parse failures (malformed JSON, poisoned prototypes) arrive as plain SyntaxErrors with a 400.
    const code = typeof error.code === 'string' && !error.code.startsWith('FST_') ? error.code : (CODES_BY_STATUS[statusCode] ?? 'BAD_REQUEST')
    return { statusCode, code, message: error.message }
  }
  if (error.code === 'SERVICE_UNAVAILABLE' || isDatabaseUnavailable(error)) return { statusCode: 503, code: 'SERVICE_UNAVAILABLE', message: '' }
  return { statusCode: 500, code: 'INTERNAL_ERROR', message: '' }
}

/**
 * RFC 6750 §3, as the contract words it: every 401 on a protected route challenges, bare when no
 * credentials came and with invalid_token when they did (a token that failed, or a verified token
 * whose request still failed authentication, e.g. a wrong current password). A public route
 * challenges only for the access token it checked itself (logout by access token).
 */
function bearerChallenge (request: FastifyRequest, code: string): string | undefined {
  if (code === 'AUTH_TOKEN_MISSING') return 'Bearer'
  if (code.startsWith('AUTH_TOKEN_')) return 'Bearer error="invalid_token"'
  if (request.routeOptions.config.public === true) return undefined
  return request.principal === null ? 'Bearer' : 'Bearer error="invalid_token"'
}

export function sendError (request: FastifyRequest, reply: FastifyReply, thrown: HandledError): FastifyReply {
  const error = translateDatabaseError(request, thrown)
  const shaped = shape(error)
  if (shaped.statusCode >= 500) {
    request.log.error({ err: error }, 'request failed')
    shaped.message = shaped.statusCode === 503 ? 'Service temporarily unavailable, retry shortly' : 'Internal server error'
  } else {
    request.log.info({ code: shaped.code, statusCode: shaped.statusCode }, shaped.message)
  }
  if (shaped.statusCode === 401) {
    const challenge = dpopChallenge(request, { code: shaped.code, message: shaped.message, dpopError: error.dpopError }) ?? bearerChallenge(request, shaped.code)
    if (challenge !== undefined) void reply.header('www-authenticate', challenge)
  }
  if (typeof error.retryAfter === 'number') void reply.header('retry-after', String(error.retryAfter))
  else if (shaped.statusCode === 503) void reply.header('retry-after', '1')
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
