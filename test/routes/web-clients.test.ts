// Cookie mode for browser clients: the refresh token lives only in an httpOnly cookie scoped to
// /auth, every cookie request passes the CSRF check, and CORS answers only the configured origins.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { PASSWORD, TEST_ORIGIN, assertError, bearer, json, refresh, register, testApp, testClock, testDatabases } from '../helpers.js'

const COOKIE = '__Secure-refresh_token'
const CSRF_HEADERS = { origin: TEST_ORIGIN, 'x-requested-with': 'fetch' }
const ABSOLUTE_TTL = 2_592_000

interface ResponseCookie { name: string, value: string, path?: string, maxAge?: number, httpOnly?: boolean, secure?: boolean, sameSite?: string }

function refreshCookie (response: LightMyRequestResponse, name = COOKIE): ResponseCookie | undefined {
  return (response.cookies as ResponseCookie[]).find((cookie) => cookie.name === name)
}

function setCookieHeader (response: LightMyRequestResponse): string {
  const header = response.headers['set-cookie']
  return Array.isArray(header) ? header.join('\n') : String(header ?? '')
}

async function webLogin (app: FastifyInstance) {
  const account = await register(app)
  const response = await app.inject({
    method: 'POST',
    url: '/auth/login',
    payload: { username: account.username, password: account.password, client: 'web' }
  })
  if (response.statusCode !== 200) throw new Error(`web login failed: ${response.statusCode} ${response.body}`)
  const cookie = refreshCookie(response)
  if (cookie === undefined) throw new Error('web login set no refresh cookie')
  return { ...account, response, body: json(response), cookie: cookie.value }
}

function cookieRequest (app: FastifyInstance, url: string, cookie: string, headers: Record<string, string> = CSRF_HEADERS) {
  return app.inject({ method: 'POST', url, headers, cookies: { [COOKIE]: cookie } })
}

for (const database of testDatabases()) {
  t.test(`web login puts the refresh token in a locked-down cookie, not the body (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { response, body, cookie } = await webLogin(app)
    t.notOk('refreshToken' in body, 'no refreshToken in the body')
    t.type(body.accessToken, 'string')
    t.equal(body.tokenType, 'Bearer')
    t.match(response.headers['cache-control'], /no-store/)
    t.notOk(response.body.includes(cookie), 'the cookie value appears nowhere in the body')
    const sent = refreshCookie(response)!
    t.ok(sent.httpOnly, 'HttpOnly')
    t.ok(sent.secure, 'Secure')
    t.equal(String(sent.sameSite).toLowerCase(), 'strict')
    t.equal(sent.path, '/auth')
    t.type(sent.maxAge, 'number')
    t.ok(sent.maxAge! > 0 && sent.maxAge! <= ABSOLUTE_TTL, `Max-Age ${sent.maxAge} within the absolute lifetime`)
    t.match(cookie, /^[A-Za-z0-9_-]{43}$/)
    const raw = setCookieHeader(response)
    t.match(raw, /HttpOnly/i)
    t.match(raw, /;\s*Secure/i)
    t.match(raw, /SameSite=Strict/i)
    t.match(raw, /Path=\/auth(;|$)/)
    // The access token from a web login works like any other.
    const me = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(body.accessToken) })
    t.equal(me.statusCode, 200)
  })

  t.test(`Max-Age never exceeds a configured absolute lifetime (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { REFRESH_IDLE_TTL: '600', REFRESH_ABSOLUTE_TTL: '3600' } })
    const { response } = await webLogin(app)
    const sent = refreshCookie(response)!
    t.ok(sent.maxAge! > 0 && sent.maxAge! <= 3600, `Max-Age ${sent.maxAge} ≤ 3600`)
  })

  t.test(`a rotated cookie never outlives the session's absolute end (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock, env: { REFRESH_IDLE_TTL: '3600', REFRESH_ABSOLUTE_TTL: '7200' } })
    const { cookie } = await webLogin(app)
    clock.advance(3000 * 1000)
    const first = await cookieRequest(app, '/auth/refresh', cookie)
    t.equal(first.statusCode, 200)
    t.ok(refreshCookie(first)!.maxAge! <= 3600, 'the idle lifetime from this rotation')
    clock.advance(3000 * 1000)
    const renewed = await cookieRequest(app, '/auth/refresh', refreshCookie(first)!.value)
    t.equal(renewed.statusCode, 200)
    const next = refreshCookie(renewed)!
    t.ok(next.maxAge! > 0 && next.maxAge! <= 1200, `Max-Age ${next.maxAge} ≤ the 1200 s left of the session`)
  })

  t.test(`a cookie with part of a second left gets Max-Age=1, not 0 (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock, env: { REFRESH_IDLE_TTL: '60', REFRESH_ABSOLUTE_TTL: '120' } })
    const loginAt = clock()
    const { cookie } = await webLogin(app)
    let current = cookie
    for (const elapsed of [50_000, 100_000]) {
      clock.set(loginAt + elapsed)
      const renewed = await cookieRequest(app, '/auth/refresh', current)
      t.equal(renewed.statusCode, 200, `refresh at ${elapsed} ms`)
      current = refreshCookie(renewed)!.value
    }
    clock.set(loginAt + 119_700)
    const last = await cookieRequest(app, '/auth/refresh', current)
    t.equal(last.statusCode, 200)
    const sent = refreshCookie(last)!
    t.equal(sent.maxAge, 1, 'rounded up, so the browser keeps the still-valid cookie')
    t.equal(json(last).refreshExpiresIn, 1)
    t.match(setCookieHeader(last), /Max-Age=1(;|$)/)
  })

  t.test(`refresh by cookie with the CSRF headers rotates the cookie (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { cookie, user } = await webLogin(app)
    const renewed = await cookieRequest(app, '/auth/refresh', cookie)
    t.equal(renewed.statusCode, 200)
    const body = json(renewed)
    t.notOk('refreshToken' in body, 'still no refreshToken in the body')
    t.same(body.user, user)
    t.match(renewed.headers['cache-control'], /no-store/)
    const next = refreshCookie(renewed)
    t.ok(next, 'a new cookie')
    t.not(next!.value, cookie, 'the cookie rotated')
    t.ok(next!.httpOnly && next!.secure)
    t.equal(next!.path, '/auth')
    const me = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(body.accessToken) })
    t.equal(me.statusCode, 200)
    // The new cookie works in turn.
    const again = await cookieRequest(app, '/auth/refresh', next!.value)
    t.equal(again.statusCode, 200)
  })

  t.test(`a cookie request failing the CSRF check is 403 and rotates nothing (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { cookie } = await webLogin(app)
    const attempts: Array<[string, Record<string, string>]> = [
      ['no X-Requested-With', { origin: TEST_ORIGIN }],
      ['X-Requested-With of another value', { origin: TEST_ORIGIN, 'x-requested-with': 'XMLHttpRequest' }],
      ['a foreign Origin', { origin: 'https://evil.example.net', 'x-requested-with': 'fetch' }],
      ['an Origin that only starts like the allowed one', { origin: `${TEST_ORIGIN}.evil.example.net`, 'x-requested-with': 'fetch' }],
      ['Origin: null', { origin: 'null', 'x-requested-with': 'fetch' }],
      ['no Origin', { 'x-requested-with': 'fetch' }],
      ['no CSRF headers at all', {}]
    ]
    for (const [label, headers] of attempts) {
      const response = await cookieRequest(app, '/auth/refresh', cookie, headers)
      assertError(t, response, 403, 'AUTH_CSRF')
      t.notOk(refreshCookie(response), `${label}: no cookie set`)
      t.notOk(response.body.includes('accessToken'), `${label}: no token issued`)
    }
    // Nothing was rotated: the very same cookie still refreshes once, and only once.
    const renewed = await cookieRequest(app, '/auth/refresh', cookie)
    t.equal(renewed.statusCode, 200)
  })

  t.test(`logout by cookie also needs the CSRF check (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { cookie } = await webLogin(app)
    const forged = await cookieRequest(app, '/auth/logout', cookie, { origin: 'https://evil.example.net', 'x-requested-with': 'fetch' })
    assertError(t, forged, 403, 'AUTH_CSRF')
    t.notOk(refreshCookie(forged), 'the cookie is not cleared by a forged request')
    const noHeader = await cookieRequest(app, '/auth/logout', cookie, { origin: TEST_ORIGIN })
    assertError(t, noHeader, 403, 'AUTH_CSRF')
    const renewed = await cookieRequest(app, '/auth/refresh', cookie)
    t.equal(renewed.statusCode, 200, 'the session survived')
  })

  t.test(`a refresh token in both cookie and body is 400 (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { cookie } = await webLogin(app)
    const both = await app.inject({
      method: 'POST', url: '/auth/refresh', headers: CSRF_HEADERS, cookies: { [COOKIE]: cookie }, payload: { refreshToken: cookie }
    })
    assertError(t, both, 400, 'VALIDATION_ERROR')
    t.notOk(refreshCookie(both))
    const renewed = await cookieRequest(app, '/auth/refresh', cookie)
    t.equal(renewed.statusCode, 200, 'nothing was rotated by the refused request')
  })

  t.test(`logout by cookie clears the cookie and ends the session (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { cookie, body } = await webLogin(app)
    const out = await cookieRequest(app, '/auth/logout', cookie)
    t.equal(out.statusCode, 204)
    const cleared = refreshCookie(out)
    t.ok(cleared, 'a Set-Cookie for the same name')
    t.equal(cleared!.path, '/auth', 'same Path')
    t.equal(cleared!.maxAge, 0, 'Max-Age=0')
    t.equal(cleared!.value, '', 'emptied')
    t.match(setCookieHeader(out), /Max-Age=0/)
    const renewed = await cookieRequest(app, '/auth/refresh', cookie)
    t.equal(renewed.statusCode, 401)
    t.match(json(renewed).code, /^AUTH_REFRESH_(INVALID|REUSED)$/)
    const me = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(body.accessToken) })
    t.equal(me.statusCode, 401)
    t.equal(json(me).code, 'AUTH_TOKEN_REVOKED')
  })

  t.test(`logout with a malformed cookie still clears it, once the CSRF check passed (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const out = await cookieRequest(app, '/auth/logout', 'not-a-refresh-token')
    assertError(t, out, 400, 'VALIDATION_ERROR')
    const cleared = refreshCookie(out)
    t.ok(cleared, 'a Set-Cookie for the same name')
    t.equal(cleared?.maxAge, 0, 'Max-Age=0')
    t.equal(cleared?.path, '/auth', 'same Path')
    const forged = await cookieRequest(app, '/auth/logout', 'not-a-refresh-token', { origin: 'https://evil.example.net', 'x-requested-with': 'fetch' })
    assertError(t, forged, 403, 'AUTH_CSRF')
    t.notOk(refreshCookie(forged), 'a forged request clears nothing')
  })

  t.test(`a password change from a web session sends the new refresh token as a cookie (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { cookie, body } = await webLogin(app)
    const newPassword = 'an entirely different passphrase'
    const changed = await app.inject({
      method: 'POST', url: '/auth/password', headers: bearer(body.accessToken), payload: { currentPassword: PASSWORD, newPassword }
    })
    t.equal(changed.statusCode, 200)
    const changedBody = json(changed)
    t.notOk('refreshToken' in changedBody, 'no refreshToken in the body')
    t.type(changedBody.accessToken, 'string')
    t.match(changed.headers['cache-control'], /no-store/)
    const next = refreshCookie(changed)
    t.ok(next, 'the new refresh token comes as a cookie')
    t.ok(next!.httpOnly && next!.secure)
    t.equal(String(next!.sameSite).toLowerCase(), 'strict')
    t.equal(next!.path, '/auth')
    t.not(next!.value, cookie)
    // The old cookie is dead, the new one lives.
    const old = await cookieRequest(app, '/auth/refresh', cookie)
    t.equal(old.statusCode, 401)
    const renewed = await cookieRequest(app, '/auth/refresh', next!.value)
    t.equal(renewed.statusCode, 200)
  })

  t.test(`a mobile login keeps the refresh token in the body and sets no cookie (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const account = await register(app)
    const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: account.username, password: account.password } })
    t.equal(response.statusCode, 200)
    t.type(json(response).refreshToken, 'string')
    t.equal(response.headers['set-cookie'], undefined)
    const renewed = await refresh(app, json(response).refreshToken)
    t.equal(renewed.statusCode, 200)
    t.equal(renewed.headers['set-cookie'], undefined)
  })

  t.test(`CORS answers only the allowed origin, with credentials, never '*' (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/auth/refresh',
      headers: { origin: TEST_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-requested-with' }
    })
    t.ok(preflight.statusCode >= 200 && preflight.statusCode < 300, `preflight ${preflight.statusCode}`)
    t.equal(preflight.headers['access-control-allow-origin'], TEST_ORIGIN)
    t.equal(preflight.headers['access-control-allow-credentials'], 'true')
    t.match(String(preflight.headers['access-control-allow-methods']), /POST/)
    t.match(String(preflight.headers['access-control-allow-headers']).toLowerCase(), /x-requested-with/)

    const { cookie } = await webLogin(app)
    const refreshed = await cookieRequest(app, '/auth/refresh', cookie)
    t.equal(refreshed.statusCode, 200)
    t.equal(refreshed.headers['access-control-allow-origin'], TEST_ORIGIN)
    t.equal(refreshed.headers['access-control-allow-credentials'], 'true')

    const health = await app.inject({ method: 'GET', url: '/health', headers: { origin: TEST_ORIGIN } })
    t.equal(health.headers['access-control-allow-origin'], TEST_ORIGIN)
    t.equal(health.headers['access-control-allow-credentials'], 'true')

    // An error response for the allowed origin carries them too, so the browser app can read it.
    const refused = await cookieRequest(app, '/auth/refresh', cookie, { origin: TEST_ORIGIN })
    t.equal(refused.statusCode, 403)
    t.equal(refused.headers['access-control-allow-origin'], TEST_ORIGIN)

    // The browser app may read Retry-After (429, 503) and WWW-Authenticate (401) on any response.
    const unauthorized = await app.inject({ method: 'GET', url: '/auth/me', headers: { origin: TEST_ORIGIN, authorization: 'Bearer not-a-jwt' } })
    t.equal(unauthorized.statusCode, 401)
    for (const response of [refreshed, health, refused, unauthorized]) {
      const exposed = String(response.headers['access-control-expose-headers']).toLowerCase().split(/\s*,\s*/)
      t.ok(exposed.includes('retry-after'), `${response.statusCode}: Retry-After is exposed`)
      t.ok(exposed.includes('www-authenticate'), `${response.statusCode}: WWW-Authenticate is exposed`)
    }

    for (const origin of ['https://evil.example.net', 'http://app.example.com', 'null']) {
      const foreignPreflight = await app.inject({
        method: 'OPTIONS', url: '/auth/refresh', headers: { origin, 'access-control-request-method': 'POST' }
      })
      t.equal(foreignPreflight.headers['access-control-allow-origin'], undefined, `${origin}: no allow-origin on the preflight`)
      t.equal(foreignPreflight.headers['access-control-allow-credentials'], undefined, `${origin}: no allow-credentials on the preflight`)
      const foreign = await app.inject({ method: 'GET', url: '/health', headers: { origin } })
      t.equal(foreign.statusCode, 200)
      t.equal(foreign.headers['access-control-allow-origin'], undefined, `${origin}: no allow-origin`)
      t.equal(foreign.headers['access-control-allow-credentials'], undefined, `${origin}: no allow-credentials`)
      t.equal(foreign.headers['access-control-expose-headers'], undefined, `${origin}: no expose-headers`)
    }
    const noOrigin = await app.inject({ method: 'GET', url: '/health' })
    t.equal(noOrigin.headers['access-control-allow-origin'], undefined)
    for (const response of [preflight, refreshed, health, refused]) {
      t.not(response.headers['access-control-allow-origin'], '*')
    }
  })

  t.test(`without ALLOWED_ORIGINS no origin gets CORS headers and cookie requests fail the CSRF check (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { ALLOWED_ORIGINS: '' } })
    const preflight = await app.inject({
      method: 'OPTIONS', url: '/auth/login', headers: { origin: TEST_ORIGIN, 'access-control-request-method': 'POST' }
    })
    t.equal(preflight.headers['access-control-allow-origin'], undefined)
    const { cookie } = await webLogin(app)
    const response = await cookieRequest(app, '/auth/refresh', cookie)
    assertError(t, response, 403, 'AUTH_CSRF')
  })

  t.test(`COOKIE_SECURE=false sets a cookie without Secure (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { COOKIE_SECURE: 'false' } })
    const account = await register(app)
    const response = await app.inject({
      method: 'POST', url: '/auth/login', payload: { username: account.username, password: account.password, client: 'web' }
    })
    t.equal(response.statusCode, 200)
    const cookies = response.cookies as ResponseCookie[]
    t.equal(cookies.length, 1, 'one cookie')
    const sent = cookies[0]!
    t.notOk(sent.secure, 'no Secure attribute')
    // Browsers refuse a __Secure- cookie without Secure, so the name must not carry the prefix.
    t.notOk(sent.name.startsWith('__Secure-'), `name ${sent.name} has no __Secure- prefix`)
    t.ok(sent.httpOnly)
    t.equal(String(sent.sameSite).toLowerCase(), 'strict')
    t.equal(sent.path, '/auth')
    t.notMatch(setCookieHeader(response), /;\s*Secure/i)
    t.notOk('refreshToken' in json(response))
    // The insecure cookie works for refresh and logout the same way.
    const renewed = await app.inject({ method: 'POST', url: '/auth/refresh', headers: CSRF_HEADERS, cookies: { [sent.name]: sent.value } })
    t.equal(renewed.statusCode, 200)
    const next = refreshCookie(renewed, sent.name)!
    t.notOk(next.secure)
    const out = await app.inject({ method: 'POST', url: '/auth/logout', headers: CSRF_HEADERS, cookies: { [sent.name]: next.value } })
    t.equal(out.statusCode, 204)
    t.equal(refreshCookie(out, sent.name)?.maxAge, 0)
  })
}
