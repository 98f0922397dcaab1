// POST /oauth/token driven by oauth4webapi, an OAuth 2.0 client library nobody here wrote: obtain
// tokens with the password grant, refresh silently, and see invalid_grant after reuse. Then the same
// endpoint's RFC 6749 §5.2 errors by hand.
import { generateKeyPairSync } from 'node:crypto'
import * as oauth from 'oauth4webapi'
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { PASSWORD, bearer, json, register, testApp, testClock, testDatabases } from '../helpers.js'

const insecure = { [oauth.allowInsecureRequests]: true } as const
const client: oauth.Client = { client_id: 'mobile-app' }

function form (fields: Record<string, string>) {
  return { 'content-type': 'application/x-www-form-urlencoded', body: new URLSearchParams(fields).toString() }
}

for (const database of testDatabases()) {
  t.test(`oauth4webapi against /oauth/token (${database})`, async (t) => {
    const { privateKey } = generateKeyPairSync('ed25519')
    const clock = testClock()
    const app = await testApp(t, { database, clock, env: { JWT_PRIVATE_KEY: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() } })
    const base = await app.listen({ host: '127.0.0.1', port: 0 })
    const as: oauth.AuthorizationServer = {
      issuer: app.config.jwt.issuer,
      token_endpoint: `${base}/oauth/token`,
      jwks_uri: `${base}/.well-known/jwks.json`
    }
    const { username } = await register(app)

    const granted = await oauth.processGenericTokenEndpointResponse(as, client,
      await oauth.genericTokenEndpointRequest(as, client, oauth.None(), 'password', { username, password: PASSWORD }, insecure))
    t.equal(granted.token_type, 'bearer')
    t.equal(granted.expires_in, 900)
    t.type(granted.refresh_token, 'string')
    t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(granted.access_token) })).statusCode, 200)

    // Another service verifies the access token with nothing but the published JWKS (RFC 9068).
    const claims = await oauth.validateJwtAccessToken(as,
      new Request(`${base}/orders`, { headers: { authorization: `Bearer ${granted.access_token}` } }),
      app.config.jwt.audience, insecure)
    t.equal(claims.client_id, 'mobile')

    const refreshed = await oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, oauth.None(), granted.refresh_token!, insecure))
    t.not(refreshed.refresh_token, granted.refresh_token, 'the refresh token rotated')
    t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(refreshed.access_token) })).statusCode, 200)

    // After the grace window, the first refresh token is reuse: invalid_grant, and the session ends.
    clock.advance(11_000)
    const reuse = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), granted.refresh_token!, insecure)
    const error = await oauth.processRefreshTokenResponse(as, client, reuse).then(() => null, (e: unknown) => e)
    t.ok(error instanceof oauth.ResponseBodyError, 'the library reports an OAuth error response')
    t.equal((error as oauth.ResponseBodyError).error, 'invalid_grant')
    t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(refreshed.access_token) })).statusCode, 401, 'the session was revoked')
  })

  t.test(`/oauth/token responses per RFC 6749 §5 (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { username } = await register(app)
    const post = (fields: Record<string, string>, headers: Record<string, string> = {}) => {
      const { body, ...formHeaders } = form(fields)
      return app.inject({ method: 'POST', url: '/oauth/token', headers: { ...formHeaders, ...headers }, body })
    }

    const ok = await post({ grant_type: 'password', username, password: PASSWORD, client_id: 'cli' })
    t.equal(ok.statusCode, 200)
    t.equal(ok.headers['cache-control'], 'no-store')
    t.same(Object.keys(json(ok)).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type'])
    t.equal(json(ok).token_type, 'Bearer')

    /** RFC 6749 §5.2 (error, error_description) and the contract's error shape (statusCode, code, message) at once. */
    const assertOAuthError = (response: LightMyRequestResponse, status: number, error: string, code: string, name: string) => {
      const body = json(response)
      t.equal(response.statusCode, status, `${name}: status`)
      t.equal(body.error, error, `${name}: error`)
      t.type(body.error_description, 'string', `${name}: error_description`)
      t.equal(body.statusCode, status, `${name}: statusCode`)
      t.equal(body.code, code, `${name}: code`)
      t.equal(body.message, body.error_description, `${name}: message`)
      t.same(Object.keys(body).sort(), ['code', 'error', 'error_description', 'message', 'statusCode'], `${name}: nothing else`)
      t.equal(response.headers['cache-control'], 'no-store', `${name}: no-store`)
    }

    const cases: Array<[string, Record<string, string>, number, string, string]> = [
      ['wrong password', { grant_type: 'password', username, password: 'not the password' }, 400, 'invalid_grant', 'AUTH_INVALID_CREDENTIALS'],
      ['unknown user', { grant_type: 'password', username: 'nobody-here', password: PASSWORD }, 400, 'invalid_grant', 'AUTH_INVALID_CREDENTIALS'],
      ['missing grant_type', { username, password: PASSWORD }, 400, 'invalid_request', 'VALIDATION_ERROR'],
      ['missing password', { grant_type: 'password', username }, 400, 'invalid_request', 'VALIDATION_ERROR'],
      ['unknown grant', { grant_type: 'client_credentials' }, 400, 'unsupported_grant_type', 'VALIDATION_ERROR'],
      ['unknown refresh token', { grant_type: 'refresh_token', refresh_token: 'A'.repeat(43) }, 400, 'invalid_grant', 'AUTH_REFRESH_INVALID'],
      ['malformed refresh token', { grant_type: 'refresh_token', refresh_token: 'not.a.token' }, 400, 'invalid_grant', 'AUTH_REFRESH_INVALID'],
      ['a 1025-character password', { grant_type: 'password', username, password: 'p'.repeat(1025) }, 400, 'invalid_request', 'VALIDATION_ERROR']
    ]
    for (const [name, fields, status, error, code] of cases) {
      assertOAuthError(await post(fields), status, error, code, name)
    }

    const basic = await post({ grant_type: 'password', username, password: PASSWORD }, { authorization: `Basic ${Buffer.from('cli:secret').toString('base64')}` })
    assertOAuthError(basic, 401, 'invalid_client', 'OAUTH_INVALID_CLIENT', 'client authentication')
    t.match(basic.headers['www-authenticate'], /^Basic/)

    const asJson = await app.inject({ method: 'POST', url: '/oauth/token', payload: { grant_type: 'password', username, password: PASSWORD } })
    t.equal(asJson.statusCode, 415, 'JSON is refused: the endpoint takes forms')
    assertOAuthError(asJson, 415, 'invalid_request', 'UNSUPPORTED_MEDIA_TYPE', 'a JSON body')

    const twice = await app.inject({ method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=password&grant_type=password&username=${username}&password=x` })
    t.equal(twice.statusCode, 400)
    t.equal(json(twice).error, 'invalid_request', 'a repeated parameter is invalid_request')
  })

  t.test(`/oauth/token counts password length in characters, like /auth/* (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const post = (fields: Record<string, string>) => {
      const { body, ...headers } = form(fields)
      return app.inject({ method: 'POST', url: '/oauth/token', headers, body })
    }
    // 1024 emoji: 2048 UTF-16 units, 1024 characters. Accepted at both doors.
    const longest = '😀'.repeat(1024)
    const { username } = await register(app, undefined, longest)
    t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: longest } })).statusCode, 200, '/auth/login: 1024 emoji')
    const granted = await post({ grant_type: 'password', username, password: longest })
    t.equal(granted.statusCode, 200, '/oauth/token: 1024 emoji')
    t.type(json(granted).access_token, 'string')
    // 1025 emoji: refused at both doors, before any password check.
    const tooLong = '😀'.repeat(1025)
    const viaAuth = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: tooLong } })
    t.equal(viaAuth.statusCode, 400, '/auth/login: 1025 emoji')
    t.equal(json(viaAuth).code, 'VALIDATION_ERROR')
    const viaOAuth = await post({ grant_type: 'password', username, password: tooLong })
    t.equal(viaOAuth.statusCode, 400, '/oauth/token: 1025 emoji')
    t.equal(json(viaOAuth).error, 'invalid_request')
    t.equal(json(viaOAuth).code, 'VALIDATION_ERROR')
  })

  t.test(`a locked-out /oauth/token login is 429 with Retry-After and AUTH_RATE_LIMITED (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { LOGIN_MAX_FAILURES: '2' } })
    const { username } = await register(app)
    const post = (fields: Record<string, string>) => {
      const { body, ...headers } = form(fields)
      return app.inject({ method: 'POST', url: '/oauth/token', headers, body })
    }
    for (let i = 0; i < 2; i++) t.equal((await post({ grant_type: 'password', username, password: 'wrong password 1' })).statusCode, 400)
    const locked = await post({ grant_type: 'password', username, password: PASSWORD })
    t.equal(locked.statusCode, 429)
    t.ok(Number(locked.headers['retry-after']) > 0, 'Retry-After')
    const body = json(locked)
    t.equal(body.error, 'invalid_request')
    t.type(body.error_description, 'string')
    t.equal(body.statusCode, 429)
    t.equal(body.code, 'AUTH_RATE_LIMITED')
    t.equal(body.message, body.error_description)
  })
}
