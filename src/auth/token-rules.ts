// The token rules, in one place. Everything else (routes, storage, the request hook) asks these
// functions what a token is worth; none of them decide it on their own.
//
// Access token (a JWT, signed and verified by @fastify/jwt in src/plugins/access-tokens.ts):
//   header  typ "at+jwt", alg from the allow-list, kid
//   claims  iss, aud, sub (user id), sid (session id), ver (user's token version), jti, iat, exp,
//           preferred_username (display only), client_id ("mobile" or "web", RFC 9068)
//   refused when the signature/alg/typ/iss/aud/exp/nbf check fails, when its session was revoked,
//   or when ver is below the user's current token version (see isAccessTokenRevoked).
//
// Refresh token: 32 bytes from the CSPRNG as one base64url string (43 characters). Only its SHA-256
// is stored. One-time use: each refresh retires it and issues a successor in the same session
// (the token family). Idle lifetime runs from each rotation; the absolute lifetime runs from login
// and is never extended. judgeRefreshToken decides what a presented token gets.
import { createHash, randomBytes } from 'node:crypto'

export const REFRESH_TOKEN_BYTES = 32
const REFRESH_TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/

/** Seconds. */
export interface Lifetimes {
  accessToken: number
  refreshIdle: number
  refreshAbsolute: number
  reuseGrace: number
}

/** Time is passed in, never read from the wall clock here, so the rules are testable. */
export type Clock = () => number

export function generateRefreshToken (): string {
  return randomBytes(REFRESH_TOKEN_BYTES).toString('base64url')
}

export function hashRefreshToken (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

export function isWellFormedRefreshToken (value: unknown): value is string {
  return typeof value === 'string' && REFRESH_TOKEN_SHAPE.test(value)
}

/** A new refresh token's expiry: idle lifetime from now, never past the session's absolute end. */
export function refreshTokenExpiry (now: number, sessionExpiresAt: number, lifetimes: Lifetimes): number {
  return Math.min(now + lifetimes.refreshIdle * 1000, sessionExpiresAt)
}

/**
 * The seconds a refresh token has left, as told to the client (refreshExpiresIn, the cookie's
 * Max-Age). Rounded up: a token still valid for part of a second must not read as 0, which would
 * make a browser delete a cookie that still works. Never more than the absolute lifetime.
 */
export function refreshExpiresIn (now: number, refreshExpiresAt: number, lifetimes: Lifetimes): number {
  return Math.min(lifetimes.refreshAbsolute, Math.max(0, Math.ceil((refreshExpiresAt - now) / 1000)))
}

export function sessionExpiry (loginAt: number, lifetimes: Lifetimes): number {
  return loginAt + lifetimes.refreshAbsolute * 1000
}

/**
 * How long a revocation must be remembered: until every access token it concerns has expired.
 * The margin covers a token minted from a transaction that committed just before the revocation.
 */
export function revocationRelevantUntil (now: number, lifetimes: Lifetimes): number {
  return now + (lifetimes.accessToken + 60) * 1000
}

export interface PresentedToken {
  retiredAt: number | null
  retiredReason: string | null
  expiresAt: number
  hasSealedSuccessor: boolean
}
export interface TokenSession {
  revokedAt: number | null
  expiresAt: number
  /**
   * The session started under an older token version than the user's current one (a login that
   * raced a password change or logout-everywhere): it is dead, whether or not it was marked revoked.
   */
  outdated: boolean
}
/**
 * The family's current refresh token (the latest successor) as reached from a rotated token, as it
 * stands now; null if unknown.
 */
export interface SuccessorState { retiredAt: number | null, expiresAt: number }

export type RefreshVerdict =
  | { action: 'rotate' }
  /** A token retired by rotation within the grace window: answer with the family's current token. */
  | { action: 'replay' }
  /** A retired token presented again: revoke the whole session. */
  | { action: 'revoke-session' }
  | { action: 'refuse', reason: 'session-ended' | 'session-expired' | 'idle-expired' | 'revoked' }

export function judgeRefreshToken (
  token: PresentedToken,
  session: TokenSession,
  successor: SuccessorState | null,
  now: number,
  lifetimes: Lifetimes
): RefreshVerdict {
  if (session.revokedAt !== null || session.outdated) return { action: 'refuse', reason: 'session-ended' }
  if (now >= session.expiresAt) return { action: 'refuse', reason: 'session-expired' }
  if (token.retiredAt === null) {
    return now >= token.expiresAt ? { action: 'refuse', reason: 'idle-expired' } : { action: 'rotate' }
  }
  // Logout and password change end the session (caught above); a token retired any other way
  // than rotation never gets grace. A burst that rotated more than once is answered with the
  // latest successor: `successor` is the family's current token, however many rotations ago.
  if (token.retiredReason !== 'rotated') return { action: 'refuse', reason: 'revoked' }
  const withinGrace = now - token.retiredAt < lifetimes.reuseGrace * 1000
  const successorIsCurrent = successor !== null && successor.retiredAt === null && now < successor.expiresAt
  if (withinGrace && successorIsCurrent && token.hasSealedSuccessor) return { action: 'replay' }
  return { action: 'revoke-session' }
}

export interface AccessTokenClaims {
  sub: string
  sid: string
  ver: number
  /** For display (GET /auth/me answers from the token alone); never used to decide anything. */
  preferred_username: string
  /** How the session's refresh token travels: "mobile" (JSON body) or "web" (cookie); RFC 9068 §2.2. */
  client_id: string
}

/** The in-memory view of revocations that access-token checks consult (see revocation-list.ts). */
export interface RevocationView {
  isSessionRevoked: (sessionId: string) => boolean
  minimumTokenVersion: (userId: string) => number
}

export function isAccessTokenRevoked (claims: Pick<AccessTokenClaims, 'sub' | 'sid' | 'ver'>, revocations: RevocationView): boolean {
  return revocations.isSessionRevoked(claims.sid) || claims.ver < revocations.minimumTokenVersion(claims.sub)
}
