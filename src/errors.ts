// Every error the API answers with, created once with its stable code (the contract's error codes).
// The error handler (src/plugins/error-handler.ts) shapes them as
// { statusCode, code, error, message }; `code` is the contract, `message` is for people.
import createError from '@fastify/error'

export const InvalidCredentials = createError('AUTH_INVALID_CREDENTIALS', 'Invalid username or password', 401)
export const TokenMissing = createError('AUTH_TOKEN_MISSING', 'An access token is required', 401)
export const TokenInvalid = createError('AUTH_TOKEN_INVALID', 'The access token is invalid', 401)
export const TokenExpired = createError('AUTH_TOKEN_EXPIRED', 'The access token has expired', 401)
export const TokenRevoked = createError('AUTH_TOKEN_REVOKED', 'The access token has been revoked', 401)
export const RefreshInvalid = createError('AUTH_REFRESH_INVALID', 'The refresh token is invalid or expired', 401)
export const RefreshReused = createError('AUTH_REFRESH_REUSED', 'The refresh token was already used; the session has been revoked', 401)
// DPoP (RFC 9449, src/auth/dpop.ts): a proof that fails a check, or is missing where a bound session
// or token (or DPOP=required) needs one; a proof without a current server nonce (DPOP_NONCE=true).
export const DpopInvalid = createError('AUTH_DPOP_INVALID', '%s', 401)
export const DpopNonceRequired = createError('AUTH_DPOP_NONCE', '%s', 401)
export const CsrfRejected = createError('AUTH_CSRF', 'Cross-site request rejected: %s', 403)
export const RateLimited = createError('AUTH_RATE_LIMITED', 'Too many attempts; retry after %s seconds', 429)
export const UsernameTaken = createError('AUTH_USERNAME_TAKEN', 'That username is taken', 409)
export const WeakPassword = createError('AUTH_WEAK_PASSWORD', 'Password too weak: %s', 400)
export const ValidationFailed = createError('VALIDATION_ERROR', '%s', 400)
export const NotFound = createError('NOT_FOUND', '%s', 404)
export const RegistrationClosed = createError('NOT_FOUND', 'Route POST:/auth/register not found', 404)
export const UnsupportedMediaType = createError('UNSUPPORTED_MEDIA_TYPE', 'Unsupported content type: %s', 415)
export const PayloadTooLarge = createError('PAYLOAD_TOO_LARGE', 'Request body is too large', 413)
export const ServiceUnavailable = createError('SERVICE_UNAVAILABLE', 'Service temporarily unavailable', 503)
export const InternalError = createError('INTERNAL_ERROR', 'Internal server error', 500)

/** A 429 that tells the client when to come back (the error handler turns it into Retry-After). */
export function rateLimited (retryAfterSeconds: number): Error & { retryAfter: number } {
  return Object.assign(new RateLimited(String(retryAfterSeconds)), { retryAfter: retryAfterSeconds })
}
