// Shared helpers of the token-lifecycle suites (tokens-*.test.ts, accounts-*.test.ts): reading and
// hand-crafting access tokens, and the assertions every suite repeats.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { TEST_SECRET, type Asserts, assertTokenRejected, bearer, json } from '../helpers.js'
import { forge, hmacSigner, resign as resignWith } from '../security/support.js'

export { decodeJwt, nowSeconds } from '../security/support.js'


/** Signs a JWT by hand (HS256 with the test secret unless told otherwise), for tokens the server never issues. */
export function craftJwt (header: Record<string, unknown>, claims: Record<string, unknown>, secret = TEST_SECRET): string {
  return forge(header, claims, hmacSigner(secret))
}

/** A copy of a real token with some header fields or claims changed (undefined removes one), signed again. */
export function resign (token: string, changes: { header?: Record<string, unknown>, claims?: Record<string, unknown> }, secret = TEST_SECRET): string {
  return resignWith(token, hmacSigner(secret), changes)
}

/** A well-formed refresh token (32 random bytes, base64url) the server never issued. */
export function unknownRefreshToken (): string {
  return randomBytes(32).toString('base64url')
}

export async function me (app: FastifyInstance, accessToken: string) {
  return app.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })
}

export async function sessionsOf (app: FastifyInstance, accessToken: string) {
  return app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(accessToken) })
}

/** The access token works: GET /auth/me answers 200 for that user. */
export async function assertAccessWorks (t: Asserts, app: FastifyInstance, accessToken: string, userId: string, what = 'access token'): Promise<void> {
  const response = await me(app, accessToken)
  t.equal(response.statusCode, 200, `${what} still works`)
  if (response.statusCode === 200) t.equal(json(response).user.id, userId, `${what} names its user`)
}

export async function assertAccessRevoked (t: Asserts, app: FastifyInstance, accessToken: string, what = 'access token'): Promise<void> {
  assertTokenRejected(t, await me(app, accessToken), 'AUTH_TOKEN_REVOKED', what)
}

/** Asserts the exact shape of a mobile token response and returns its body. */
export function assertTokenResponse (t: Asserts, response: LightMyRequestResponse, user?: { id: string, username: string }) {
  t.equal(response.statusCode, 200, 'token response status')
  t.equal(response.headers['cache-control'], 'no-store', 'token response is not cached')
  const body = json(response)
  t.same(Object.keys(body).sort(), ['accessToken', 'expiresIn', 'refreshExpiresIn', 'refreshToken', 'tokenType', 'user'], 'token response fields')
  t.equal(body.tokenType, 'Bearer')
  t.type(body.accessToken, 'string')
  t.equal(body.accessToken.split('.').length, 3, 'access token is a JWS')
  t.equal(typeof body.refreshToken === 'string' && /^[A-Za-z0-9_-]{43}$/.test(body.refreshToken), true, 'refresh token is 43 base64url characters')
  t.type(body.expiresIn, 'number')
  t.type(body.refreshExpiresIn, 'number')
  t.same(Object.keys(body.user ?? {}).sort(), ['id', 'username'], 'user fields')
  if (user !== undefined) t.same(body.user, user, 'token response names the user')
  return body as { accessToken: string, tokenType: 'Bearer', expiresIn: number, refreshToken: string, refreshExpiresIn: number, user: { id: string, username: string } }
}
