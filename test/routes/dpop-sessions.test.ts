// DPoP at /auth/login and /auth/refresh (RFC 9449 §5): a session started with a proof is bound to
// its key; every refresh needs a proof by that key, and a refresh without one changes nothing.
import t from 'tap'
import { TEST_ORIGIN, json, register, testApp, testClock, testDatabases } from '../helpers.js'
import { claimsOf, dpopKey, dpopLogin, dpopRefresh, makeProof } from '../dpop-support.js'

const COOKIE = '__Secure-refresh_token'

for (const database of testDatabases()) {
  t.test(`a login with a proof binds the session; refreshes need the same key (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const account = await register(app)
    const key = await dpopKey()
    const loggedIn = await dpopLogin(app, key, account.username, account.password)
    t.equal(loggedIn.statusCode, 200, loggedIn.body)
    const tokens = json(loggedIn)
    t.equal(tokens.tokenType, 'DPoP')
    t.same(claimsOf(tokens.accessToken).cnf, { jkt: key.thumbprint }, 'the access token names the key')

    const refreshed = await dpopRefresh(app, key, tokens.refreshToken)
    t.equal(refreshed.statusCode, 200, refreshed.body)
    t.equal(json(refreshed).tokenType, 'DPoP')
    t.same(claimsOf(json(refreshed).accessToken).cnf, { jkt: key.thumbprint })
    const current = json(refreshed).refreshToken as string

    // A thief holding the refresh token but not the key: refused, and nothing rotates.
    const noProof = await dpopRefresh(app, null, current)
    t.equal(noProof.statusCode, 401)
    t.equal(json(noProof).code, 'AUTH_DPOP_INVALID')
    const otherKey = await dpopRefresh(app, await dpopKey(), current)
    t.equal(otherKey.statusCode, 401)
    t.equal(json(otherKey).code, 'AUTH_DPOP_INVALID')
    const edKey = await dpopRefresh(app, await dpopKey('EdDSA'), current)
    t.equal(json(edKey).code, 'AUTH_DPOP_INVALID')

    const sessionRow = await app.db.session.findFirstOrThrow({ where: { userId: account.user.id }, select: { refreshCount: true, revokedAt: true, dpopJkt: true } })
    t.same(sessionRow, { refreshCount: 1, revokedAt: null, dpopJkt: key.thumbprint }, 'one rotation only, the session alive')
    const events = await app.db.sessionEvent.findMany({ where: { userId: account.user.id }, select: { type: true } })
    t.same(events.map((event) => event.type), ['login'], 'no reuse, no replay recorded')

    const owner = await dpopRefresh(app, key, current)
    t.equal(owner.statusCode, 200, 'the same token still works with a proof by the key')
  })

  t.test(`a retired token of a bound session without a proof is refused without revoking anything (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock })
    const account = await register(app)
    const key = await dpopKey()
    const first = json(await dpopLogin(app, key, account.username, account.password, {}, { now: clock() })).refreshToken as string
    const second = json(await dpopRefresh(app, key, first, { now: clock() })).refreshToken as string
    clock.advance(60_000) // past the grace window: presenting `first` again is reuse
    const stolen = await dpopRefresh(app, null, first)
    t.equal(json(stolen).code, 'AUTH_DPOP_INVALID', 'a thief without the key cannot even trigger reuse detection')
    const third = await dpopRefresh(app, key, second, { now: clock() })
    t.equal(third.statusCode, 200, 'the owner goes on')
    const reused = await dpopRefresh(app, key, first, { now: clock() })
    t.equal(json(reused).code, 'AUTH_REFRESH_REUSED', 'reuse with the key is reuse')
  })

  t.test(`racing refreshes of a bound session, each with its own proof, all get the same successor (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const account = await register(app)
    const key = await dpopKey()
    const token = json(await dpopLogin(app, key, account.username, account.password)).refreshToken as string
    const burst = await Promise.all([0, 1, 2].map(async () => dpopRefresh(app, key, token)))
    t.same(burst.map((response) => response.statusCode), [200, 200, 200], burst.map((response) => response.body.slice(0, 80)).join(' | '))
    t.equal(new Set(burst.map((response) => json(response).refreshToken)).size, 1, 'one successor for all')
    for (const response of burst) t.equal(json(response).tokenType, 'DPoP')
    // The same proof twice in a burst is a replayed proof, whatever the token.
    const proof = await makeProof(key, { htu: '/auth/refresh' })
    const successor = json(burst[0]!).refreshToken as string
    const twice = await Promise.all([0, 1].map(async () => app.inject({ method: 'POST', url: '/auth/refresh', headers: { dpop: proof }, payload: { refreshToken: successor } })))
    t.same(twice.map((response) => response.statusCode).sort(), [200, 401], 'one proof, one use')
  })
}

t.test('an unbound session is not bound by a later proof (no binding mid-session)', async (t) => {
  const app = await testApp(t)
  const account = await register(app)
  const plain = json(await app.inject({ method: 'POST', url: '/auth/login', payload: { username: account.username, password: account.password } }))
  t.equal(plain.tokenType, 'Bearer')
  t.equal(claimsOf(plain.accessToken).cnf, undefined)
  const key = await dpopKey()
  const withProof = await dpopRefresh(app, key, plain.refreshToken)
  t.equal(withProof.statusCode, 200, 'a valid proof is accepted')
  t.equal(json(withProof).tokenType, 'Bearer', 'but binds nothing')
  t.equal(claimsOf(json(withProof).accessToken).cnf, undefined)
  const without = await dpopRefresh(app, null, json(withProof).refreshToken)
  t.equal(without.statusCode, 200, 'later refreshes need no proof')
  const badProof = await dpopRefresh(app, key, json(without).refreshToken, { htu: '/auth/login' })
  t.equal(json(badProof).code, 'AUTH_DPOP_INVALID', 'a proof that is sent must be valid')
})

t.test('a login whose proof fails is refused before the password is checked, and counts no failure', async (t) => {
  const app = await testApp(t, { env: { LOGIN_MAX_FAILURES: '2' } })
  const account = await register(app)
  const key = await dpopKey()
  for (let i = 0; i < 3; i++) {
    const wrongHtu = await dpopLogin(app, key, account.username, 'wrong password', {}, { htu: '/auth/refresh' })
    t.equal(wrongHtu.statusCode, 401)
    t.equal(json(wrongHtu).code, 'AUTH_DPOP_INVALID')
  }
  const ok = await dpopLogin(app, key, account.username, account.password)
  t.equal(ok.statusCode, 200, 'not locked out: no password was checked')
  t.equal(await app.db.session.count(), 1, 'no session from the refused logins')
})

t.test('web clients: a cookie session started with a proof needs a proof on each cookie refresh', async (t) => {
  const app = await testApp(t)
  const account = await register(app)
  const key = await dpopKey()
  const loggedIn = await dpopLogin(app, key, account.username, account.password, { client: 'web' })
  t.equal(json(loggedIn).tokenType, 'DPoP')
  const cookie = (loggedIn.cookies as Array<{ name: string, value: string }>).find((c) => c.name === COOKIE)!.value
  const headers = { origin: TEST_ORIGIN, 'x-requested-with': 'fetch' }
  const noProof = await app.inject({ method: 'POST', url: '/auth/refresh', headers, cookies: { [COOKIE]: cookie } })
  t.equal(json(noProof).code, 'AUTH_DPOP_INVALID')
  const withProof = await app.inject({ method: 'POST', url: '/auth/refresh', headers: { ...headers, dpop: await makeProof(key, { htu: '/auth/refresh' }) }, cookies: { [COOKIE]: cookie } })
  t.equal(withProof.statusCode, 200, withProof.body)
})

t.test('DPOP=required: no session without a proof', async (t) => {
  const app = await testApp(t, { env: { DPOP: 'required' } })
  const account = await register(app)
  const proofless = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: account.username, password: account.password } })
  t.equal(proofless.statusCode, 401)
  t.equal(json(proofless).code, 'AUTH_DPOP_INVALID')
  const key = await dpopKey()
  const bound = await dpopLogin(app, key, account.username, account.password)
  t.equal(json(bound).tokenType, 'DPoP')
  t.equal(json(await dpopRefresh(app, null, json(bound).refreshToken)).code, 'AUTH_DPOP_INVALID')
  t.equal((await dpopRefresh(app, key, json(bound).refreshToken)).statusCode, 200)
})

t.test('DPOP=required refuses refreshing a session that was started without a proof', async (t) => {
  const optional = await testApp(t)
  const account = await register(optional)
  const plain = json(await optional.inject({ method: 'POST', url: '/auth/login', payload: { username: account.username, password: account.password } }))
  const required = await testApp(t, { env: { DPOP: 'required' }, sameDatabaseAs: optional })
  const key = await dpopKey()
  t.equal(json(await dpopRefresh(required, key, plain.refreshToken)).code, 'AUTH_DPOP_INVALID', 'not bound mid-session either')
  t.equal(json(await dpopRefresh(required, null, plain.refreshToken)).code, 'AUTH_DPOP_INVALID')
  t.equal((await dpopRefresh(optional, null, plain.refreshToken)).statusCode, 200, 'nothing rotated by the refusals')
})

t.test('DPOP=off: a login proof is ignored (Bearer), but a session bound before stays bound', async (t) => {
  const optional = await testApp(t)
  const account = await register(optional)
  const key = await dpopKey()
  const bound = json(await dpopLogin(optional, key, account.username, account.password))
  const off = await testApp(t, { env: { DPOP: 'off' }, sameDatabaseAs: optional })
  const ignored = await dpopLogin(off, key, account.username, account.password, {}, { htu: '/wrong' })
  t.equal(ignored.statusCode, 200, 'the header is not even checked')
  t.equal(json(ignored).tokenType, 'Bearer')
  t.equal((await dpopRefresh(off, null, json(ignored).refreshToken)).statusCode, 200)
  t.equal(json(await dpopRefresh(off, null, bound.refreshToken)).code, 'AUTH_DPOP_INVALID')
  const stillBound = await dpopRefresh(off, key, bound.refreshToken)
  t.equal(json(stillBound).tokenType, 'DPoP')
})

t.test('DPOP_NONCE=true: a proof without the server nonce gets use_dpop_nonce and a nonce to retry with', async (t) => {
  const app = await testApp(t, { env: { DPOP_NONCE: 'true' } })
  const account = await register(app)
  const key = await dpopKey()
  const first = await dpopLogin(app, key, account.username, account.password)
  t.equal(first.statusCode, 401)
  t.equal(json(first).code, 'AUTH_DPOP_NONCE')
  const nonce = first.headers['dpop-nonce'] as string
  t.type(nonce, 'string')
  t.match(first.headers['www-authenticate'], /^DPoP error="use_dpop_nonce"/)
  const second = await dpopLogin(app, key, account.username, account.password, {}, { nonce })
  t.equal(second.statusCode, 200, second.body)
  t.type(second.headers['dpop-nonce'], 'string', 'every response hands out the current nonce')
  const refreshed = await dpopRefresh(app, key, json(second).refreshToken, { nonce: 'made-up' })
  t.equal(json(refreshed).code, 'AUTH_DPOP_NONCE')
})

t.test('a login proof\'s challenge names the algorithms; two DPoP headers are refused', async (t) => {
  const app = await testApp(t)
  const account = await register(app)
  const key = await dpopKey()
  const bad = await dpopLogin(app, key, account.username, account.password, {}, { htm: 'GET' })
  t.equal(bad.statusCode, 401)
  t.match(bad.headers['www-authenticate'], /^DPoP error="invalid_dpop_proof".*algs="ES256 ES384 EdDSA"/)
  const proof = await makeProof(key)
  const twice = await app.inject({ method: 'POST', url: '/auth/login', headers: { dpop: [proof, await makeProof(key)] }, payload: { username: account.username, password: account.password } })
  t.equal(json(twice).code, 'AUTH_DPOP_INVALID')
})

t.test('CORS: browsers may send the DPoP header and read DPoP-Nonce', async (t) => {
  const app = await testApp(t)
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/auth/refresh',
    headers: { origin: TEST_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, dpop' }
  })
  t.ok(String(preflight.headers['access-control-allow-headers']).toLowerCase().split(/\s*,\s*/).includes('dpop'), 'DPoP allowed')
  const response = await app.inject({ method: 'POST', url: '/auth/refresh', headers: { origin: TEST_ORIGIN }, payload: {} })
  t.ok(String(response.headers['access-control-expose-headers']).toLowerCase().split(/\s*,\s*/).includes('dpop-nonce'), 'DPoP-Nonce exposed')
})
