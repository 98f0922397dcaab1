// Every error the API answers with, created once with its stable code (the contract's error codes),
// and what it is on the wire besides: how it reads to an OAuth client and whether it challenges.
// The one error handler (src/plugins/error-handler.ts) reads these declarations; nothing else decides
// an error's status, OAuth `error` or WWW-Authenticate header.
import createError from '@fastify/error'

/** RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 9449 §7.1 / §8. */
export type OAuthErrorCode =
  | 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unsupported_grant_type' | 'unsupported_token_type'
  | 'invalid_dpop_proof' | 'use_dpop_nonce'

/** How an error reads on a route that answers in OAuth shape (the /oauth/* endpoints). */
export interface OAuthAnswer {
  error: OAuthErrorCode
  /** When OAuth wants another status than the contract's (RFC 6749 §5.2: a bad grant is a 400). */
  statusCode?: number
}

/**
 * The WWW-Authenticate challenge a 401 carries (RFC 9110 §11.6.1). `scheme` left out: the scheme
 * the request's credentials came in (see presentedScheme in the error handler; Bearer by default).
 */
export interface Challenge {
  scheme?: string
  realm?: string
  /** RFC 6750 §3 / RFC 9449 §7.1: invalid_token, invalid_dpop_proof, use_dpop_nonce, … */
  error?: string
  /** error_description (RFC 6750 §3), for people. */
  description?: string
  /** Further auth-params in this order (e.g. RFC 9449's algs). */
  params?: Record<string, string>
}

/** What an error says about itself; instances may override it (e.g. to add a header). */
export interface ErrorDeclaration {
  oauth?: OAuthAnswer
  challenge?: Challenge
}

/**
 * @fastify/error's createError, with the declaration put on the error's prototype: every instance
 * carries it, and the handler needs no table keyed by code (nor by a code's prefix).
 */
export function declareError<C extends string, S extends number> (code: C, message: string, statusCode: S, declaration: ErrorDeclaration = {}) {
  const ErrorClass = createError(code, message, statusCode)
  for (const [name, value] of Object.entries(declaration)) {
    Object.defineProperty(ErrorClass.prototype, name, { value, enumerable: false, writable: true, configurable: true })
  }
  return ErrorClass
}

/** A credential the grant cannot use: RFC 6749 §5.2 says 400 invalid_grant. */
const INVALID_GRANT: OAuthAnswer = { error: 'invalid_grant', statusCode: 400 }

export const InvalidCredentials = declareError('AUTH_INVALID_CREDENTIALS', 'Invalid username or password', 401, { oauth: INVALID_GRANT })
export const TokenMissing = declareError('AUTH_TOKEN_MISSING', 'An access token is required', 401, { challenge: {} })
export const TokenInvalid = declareError('AUTH_TOKEN_INVALID', 'The access token is invalid', 401, { challenge: { error: 'invalid_token' } })
export const TokenExpired = declareError('AUTH_TOKEN_EXPIRED', 'The access token has expired', 401, { challenge: { error: 'invalid_token' } })
export const TokenRevoked = declareError('AUTH_TOKEN_REVOKED', 'The access token has been revoked', 401, { challenge: { error: 'invalid_token' } })
export const RefreshInvalid = declareError('AUTH_REFRESH_INVALID', 'The refresh token is invalid or expired', 401, { oauth: INVALID_GRANT })
export const RefreshReused = declareError('AUTH_REFRESH_REUSED', 'The refresh token was already used; the session has been revoked', 401, { oauth: INVALID_GRANT })
export const CsrfRejected = declareError('AUTH_CSRF', 'Cross-site request rejected: %s', 403)
export const RateLimited = declareError('AUTH_RATE_LIMITED', 'Too many attempts; retry after %s seconds', 429)
export const UsernameTaken = declareError('AUTH_USERNAME_TAKEN', 'That username is taken', 409)
export const WeakPassword = declareError('AUTH_WEAK_PASSWORD', 'Password too weak: %s', 400)
export const ValidationFailed = declareError('VALIDATION_ERROR', '%s', 400)
export const NotFound = declareError('NOT_FOUND', '%s', 404)
export const ServiceUnavailable = declareError('SERVICE_UNAVAILABLE', 'Service temporarily unavailable', 503)

// The OAuth 2.0 surface's own refusals (contract code beside the RFC's error).
/** No confidential clients are registered; resource servers authenticate with HTTP Basic. */
export const InvalidClient = declareError('OAUTH_INVALID_CLIENT', '%s', 401, { oauth: { error: 'invalid_client' }, challenge: { scheme: 'Basic', realm: 'oauth' } })
export const UnsupportedGrantType = declareError('VALIDATION_ERROR', '%s', 400, { oauth: { error: 'unsupported_grant_type' } })
export const UnsupportedTokenType = declareError('VALIDATION_ERROR', '%s', 400, { oauth: { error: 'unsupported_token_type' } })
export const RevocationStreamsExceeded = declareError('REVOCATION_STREAMS_EXCEEDED', 'Too many open revocation streams for this client (at most %s); close one first', 429)

/** A 429 that tells the client when to come back (the error handler turns it into Retry-After). */
export function rateLimited (retryAfterSeconds: number): Error & { retryAfter: number } {
  return Object.assign(new RateLimited(String(retryAfterSeconds)), { retryAfter: retryAfterSeconds })
}
