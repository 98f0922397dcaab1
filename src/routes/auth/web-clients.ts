// How tokens travel: mobile clients get the refresh token in the JSON body; web clients get it in an
// httpOnly cookie scoped to /auth, and every request that uses the cookie must pass the CSRF check
// (an allowed Origin and the X-Requested-With: fetch header, which a cross-site form cannot send).
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IssuedTokens } from '../../auth/sessions.js'
import { isWellFormedRefreshToken } from '../../auth/token-rules.js'
import type { Config } from '../../config.js'
import { CsrfRejected, ValidationFailed } from '../../errors.js'

export const REFRESH_COOKIE_PATH = '/auth'

/** `__Secure-` makes browsers refuse the cookie unless it came over HTTPS with Secure set. */
export function refreshCookieName (config: Config): string {
  return config.cookieSecure ? '__Secure-refresh_token' : 'refresh_token'
}

export function assertCsrfSafe (request: FastifyRequest, config: Config): void {
  const origin = request.headers.origin
  if (origin === undefined || !config.allowedOrigins.includes(origin)) throw new CsrfRejected('origin not allowed')
  if (request.headers['x-requested-with'] !== 'fetch') throw new CsrfRejected('X-Requested-With: fetch is required')
}

export interface PresentedRefreshToken { token: string, via: 'body' | 'cookie' }

/**
 * The refresh token of a refresh or logout request, from the body or the cookie (never both).
 * A cookie must pass the CSRF check before anything else happens; `afterCsrfCheck` runs once it has
 * (logout clears the cookie there, so that even a malformed one leaves the browser).
 */
export function presentedRefreshToken (request: FastifyRequest, config: Config, afterCsrfCheck?: () => void): PresentedRefreshToken | undefined {
  const fromBody = (request.body as { refreshToken?: string } | null | undefined)?.refreshToken
  const fromCookie = request.cookies[refreshCookieName(config)]
  if (fromBody !== undefined && fromCookie !== undefined) throw new ValidationFailed('Send the refresh token in the body or the cookie, not both')
  if (fromCookie !== undefined) {
    assertCsrfSafe(request, config)
    afterCsrfCheck?.()
  }
  const presented: PresentedRefreshToken | undefined = fromCookie !== undefined
    ? { token: fromCookie, via: 'cookie' }
    : fromBody !== undefined ? { token: fromBody, via: 'body' } : undefined
  if (presented !== undefined && !isWellFormedRefreshToken(presented.token)) throw new ValidationFailed('refreshToken is not a well-formed refresh token')
  return presented
}

/** Sends a token response: the refresh token in the body (mobile) or in the cookie (web). */
export function sendTokens (reply: FastifyReply, config: Config, issued: IssuedTokens) {
  void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
  const body = {
    accessToken: issued.accessToken,
    // RFC 9449 §5: a session bound to a DPoP key gets DPoP-bound tokens.
    tokenType: issued.dpopThumbprint === null ? 'Bearer' as const : 'DPoP' as const,
    expiresIn: issued.expiresIn,
    refreshExpiresIn: issued.refreshExpiresIn,
    user: issued.user
  }
  if (issued.client === 'web') {
    void reply.setCookie(refreshCookieName(config), issued.refreshToken, {
      httpOnly: true,
      secure: config.cookieSecure,
      sameSite: 'strict',
      path: REFRESH_COOKIE_PATH,
      maxAge: issued.refreshExpiresIn
    })
    return body
  }
  return { ...body, refreshToken: issued.refreshToken }
}

export function clearRefreshCookie (reply: FastifyReply, config: Config): void {
  void reply.clearCookie(refreshCookieName(config), { httpOnly: true, secure: config.cookieSecure, sameSite: 'strict', path: REFRESH_COOKIE_PATH, maxAge: 0 })
}
