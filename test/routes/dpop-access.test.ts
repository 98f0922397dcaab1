// DPoP-bound access tokens on protected routes (RFC 9449 §7): `Authorization: DPoP` with a proof by
// the bound key over this request and token; the attack battery against it; /oauth/token with DPoP;
// introspection's cnf; the replay store shared by two instances through Redis.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { bearer, json, register, testApp, testDatabases } from '../helpers.js'
import { type ProofKey, ath, claimsOf, dpopGet, dpopKey, dpopLogin, hmacProof, makeProof, standardClaims, unsignedProof } from '../dpop-support.js'

async function boundSession (app: FastifyInstance, key: ProofKey, now?: number) {
  const account = await register(app)
  const response = await dpopLogin(app, key, account.username, account.password, {}, now === undefined ? {} : { now })
  if (response.statusCode !== 200) throw new Error(response.body)
  return { ...account, tokens: json(response) }
}

function tokenForm (fields: Record<string, string>, proof?: string) {
  return {
    method: 'POST' as const,
    url: '/oauth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(proof === undefined ? {} : { dpop: proof }) },
    payload: new URLSearchParams(fields).toString()
  }
}

for (const database of testDatabases()) {
  t.test(`a bound access token works as DPoP with a proof, on every protected route (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const key = await dpopKey()
    const { tokens, user } = await boundSession(app, key)
    const me = await dpopGet(app, key, tokens.accessToken)
    t.equal(me.statusCode, 200, me.body)
    t.equal(json(me).user.id, user.id)
    const orders = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: { authorization: `DPoP ${tokens.accessToken}`, dpop: await makeProof(key, { htu: '/orders', accessToken: tokens.accessToken }) },
      payload: { item: 'tea', quantity: 1 }
    })
    t.equal(orders.statusCode, 201, orders.body)
    const lower = await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `dpop ${tokens.accessToken}`, dpop: await makeProof(key, { htm: 'GET', htu: '/auth/me', accessToken: tokens.accessToken }) } })
    t.equal(lower.statusCode, 200, 'the scheme name is case-insensitive')
  })

  t.test(`the attack battery against a bound access token (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const key = await dpopKey()
    const { tokens } = await boundSession(app, key)
    const token = tokens.accessToken as string
    const expectRefused = (response: { statusCode: number, body: string, headers: Record<string, unknown> }, challengeError: string, label: string) => {
      t.equal(response.statusCode, 401, label)
      t.equal(json(response as never).code, 'AUTH_DPOP_INVALID', label)
      t.match(response.headers['www-authenticate'], new RegExp(`^DPoP error="${challengeError}".*algs="ES256 ES384 EdDSA"`), `${label}: challenge`)
    }
    expectRefused(await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(token) }), 'invalid_token', 'bound token as Bearer')
    expectRefused(await app.inject({ method: 'GET', url: '/auth/me', headers: { ...bearer(token), dpop: await makeProof(key, { htm: 'GET', htu: '/auth/me', accessToken: token }) } }), 'invalid_token', 'as Bearer even with a proof')
    expectRefused(await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `DPoP ${token}` } }), 'invalid_dpop_proof', 'no proof')
    expectRefused(await dpopGet(app, key, token, '/auth/me', { accessToken: undefined, ath: undefined, claims: { ath: undefined } }), 'invalid_dpop_proof', 'no ath')
    expectRefused(await dpopGet(app, key, token, '/auth/me', { ath: ath('another token') }), 'invalid_dpop_proof', 'wrong ath')
    expectRefused(await dpopGet(app, await dpopKey(), token), 'invalid_dpop_proof', 'proof by another key')
    expectRefused(await dpopGet(app, key, token, '/auth/me', { htm: 'POST' }), 'invalid_dpop_proof', 'wrong htm')
    expectRefused(await dpopGet(app, key, token, '/auth/me', { htu: '/auth/sessions' }), 'invalid_dpop_proof', 'wrong htu')
    expectRefused(await dpopGet(app, key, token, '/auth/me', { iat: Math.floor(Date.now() / 1000) - 3600 }), 'invalid_dpop_proof', 'stale iat')
    expectRefused(await dpopGet(app, key, token, '/auth/me', { iat: Math.floor(Date.now() / 1000) + 3600 }), 'invalid_dpop_proof', 'future iat')
    expectRefused(await dpopGet(app, key, token, '/auth/me', { header: { jwk: key.privateJwk } }), 'invalid_dpop_proof', 'private key in jwk')
    const meClaims = { ...standardClaims('/auth/me'), htm: 'GET', ath: ath(token) }
    expectRefused(await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `DPoP ${token}`, dpop: unsignedProof(key, meClaims) } }), 'invalid_dpop_proof', 'alg none')
    expectRefused(await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `DPoP ${token}`, dpop: await hmacProof(meClaims) } }), 'invalid_dpop_proof', 'HMAC proof')
    expectRefused(await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `DPoP ${token}`, dpop: await hmacProof(meClaims, key.publicJwk as Record<string, unknown>) } }), 'invalid_dpop_proof', 'HMAC proof naming the bound key')
    const proof = await makeProof(key, { htm: 'GET', htu: '/auth/me', accessToken: token })
    const headers = { authorization: `DPoP ${token}`, dpop: proof }
    t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers })).statusCode, 200, 'first use of a proof')
    expectRefused(await app.inject({ method: 'GET', url: '/auth/me', headers }), 'invalid_dpop_proof', 'replayed proof')
    t.equal((await dpopGet(app, key, token)).statusCode, 200, 'the token itself still works')

    // A plain (unbound) token sent with the DPoP scheme is refused too: the scheme must match the token.
    const plain = await register(app)
    const plainTokens = json(await app.inject({ method: 'POST', url: '/auth/login', payload: { username: plain.username, password: plain.password } }))
    expectRefused(await dpopGet(app, key, plainTokens.accessToken), 'invalid_token', 'unbound token as DPoP')
    t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(plainTokens.accessToken) })).statusCode, 200, 'which works as Bearer')
  })

  t.test(`/oauth/token: password and refresh grants with DPoP (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const account = await register(app)
    const key = await dpopKey()
    const issued = await app.inject(tokenForm({ grant_type: 'password', username: account.username, password: account.password, client_id: 'app' }, await makeProof(key, { htu: '/oauth/token' })))
    t.equal(issued.statusCode, 200, issued.body)
    t.equal(json(issued).token_type, 'DPoP')
    t.same(claimsOf(json(issued).access_token).cnf, { jkt: key.thumbprint })
    const refreshToken = json(issued).refresh_token as string

    const noProof = await app.inject(tokenForm({ grant_type: 'refresh_token', refresh_token: refreshToken }))
    t.equal(noProof.statusCode, 400)
    t.match(json(noProof), { error: 'invalid_dpop_proof', code: 'AUTH_DPOP_INVALID' })
    const otherKey = await app.inject(tokenForm({ grant_type: 'refresh_token', refresh_token: refreshToken }, await makeProof(await dpopKey(), { htu: '/oauth/token' })))
    t.match(json(otherKey), { error: 'invalid_dpop_proof' })
    const wrongHtu = await app.inject(tokenForm({ grant_type: 'refresh_token', refresh_token: refreshToken }, await makeProof(key, { htu: '/auth/refresh' })))
    t.match(json(wrongHtu), { error: 'invalid_dpop_proof' })

    const refreshed = await app.inject(tokenForm({ grant_type: 'refresh_token', refresh_token: refreshToken }, await makeProof(key, { htu: '/oauth/token' })))
    t.equal(refreshed.statusCode, 200, 'the refusals rotated nothing: the token still works with the key')
    t.equal(json(refreshed).token_type, 'DPoP')
    t.equal((await dpopGet(app, key, json(refreshed).access_token)).statusCode, 200)

    const plain = await app.inject(tokenForm({ grant_type: 'password', username: account.username, password: account.password }))
    t.equal(json(plain).token_type, 'Bearer', 'without a proof: Bearer (DPOP=optional)')
  })
}

t.test('an expired bound token is challenged with the DPoP scheme', async (t) => {
  const app = await testApp(t)
  const key = await dpopKey()
  const { tokens } = await boundSession(app, key)
  const { sub, sid, ver, preferred_username: username, cnf } = claimsOf(tokens.accessToken)
  // Signed by the app itself, issued 1000 s ago with the default 900 s lifetime.
  const expiredToken = app.jwt.current.sign({ sub, sid, ver, preferred_username: username, cnf, jti: 'expired-1', iat: Math.floor(Date.now() / 1000) - 1000 })
  const expired = await dpopGet(app, key, expiredToken)
  t.equal(expired.statusCode, 401)
  t.equal(json(expired).code, 'AUTH_TOKEN_EXPIRED')
  t.match(expired.headers['www-authenticate'], /^DPoP error="invalid_token".*algs=/)
})

t.test('logout and password change with a bound token; the new session stays bound to the key', async (t) => {
  const app = await testApp(t)
  const key = await dpopKey()
  const { tokens, password } = await boundSession(app, key)
  const changed = await app.inject({
    method: 'POST',
    url: '/auth/password',
    headers: { authorization: `DPoP ${tokens.accessToken}`, dpop: await makeProof(key, { htu: '/auth/password', accessToken: tokens.accessToken }) },
    payload: { currentPassword: password, newPassword: 'another long passphrase 42' }
  })
  t.equal(changed.statusCode, 200, changed.body)
  t.equal(json(changed).tokenType, 'DPoP')
  t.same(claimsOf(json(changed).accessToken).cnf, { jkt: key.thumbprint })
  const fresh = json(changed).accessToken as string
  const logout = await app.inject({ method: 'POST', url: '/auth/logout', headers: { authorization: `DPoP ${fresh}`, dpop: await makeProof(key, { htu: '/auth/logout', accessToken: fresh }) } })
  t.equal(logout.statusCode, 204, logout.body)
  t.equal(json(await dpopGet(app, key, fresh)).code, 'AUTH_TOKEN_REVOKED')
})

t.test('DPOP_NONCE=true on protected routes: use_dpop_nonce with a nonce to retry with', async (t) => {
  const app = await testApp(t, { env: { DPOP_NONCE: 'true' } })
  const account = await register(app)
  const key = await dpopKey()
  const first = await dpopLogin(app, key, account.username, account.password)
  const nonce = first.headers['dpop-nonce'] as string
  const tokens = json(await dpopLogin(app, key, account.username, account.password, {}, { nonce }))
  const withoutNonce = await dpopGet(app, key, tokens.accessToken)
  t.equal(withoutNonce.statusCode, 401)
  t.equal(json(withoutNonce).code, 'AUTH_DPOP_NONCE')
  t.match(withoutNonce.headers['www-authenticate'], /^DPoP error="use_dpop_nonce"/)
  const retried = await dpopGet(app, key, tokens.accessToken, '/auth/me', { nonce: withoutNonce.headers['dpop-nonce'] as string })
  t.equal(retried.statusCode, 200, retried.body)

  const oauth = await app.inject(tokenForm({ grant_type: 'refresh_token', refresh_token: tokens.refreshToken }, await makeProof(key, { htu: '/oauth/token' })))
  t.equal(oauth.statusCode, 400, 'RFC 9449 §8: the token endpoint answers 400 use_dpop_nonce')
  t.match(json(oauth), { error: 'use_dpop_nonce', code: 'AUTH_DPOP_NONCE' })
  t.type(oauth.headers['dpop-nonce'], 'string')
})

t.test('DPOP=required refuses unbound tokens on protected routes', async (t) => {
  const optional = await testApp(t)
  const account = await register(optional)
  const plain = json(await optional.inject({ method: 'POST', url: '/auth/login', payload: { username: account.username, password: account.password } }))
  const required = await testApp(t, { env: { DPOP: 'required' }, sameDatabaseAs: optional })
  const refused = await required.inject({ method: 'GET', url: '/auth/me', headers: bearer(plain.accessToken) })
  t.equal(refused.statusCode, 401)
  t.equal(json(refused).code, 'AUTH_DPOP_INVALID')
  const oauth = await required.inject(tokenForm({ grant_type: 'password', username: account.username, password: account.password }))
  t.match(json(oauth), { error: 'invalid_dpop_proof' }, 'the password grant needs a proof too')
})

t.test('introspection tells a bound token by cnf.jkt (access and refresh tokens)', async (t) => {
  const app = await testApp(t, { env: { RESOURCE_SERVERS: 'orders:orders-secret-0123456789' } })
  const key = await dpopKey()
  const { tokens } = await boundSession(app, key)
  const introspect = async (token: string) => json(await app.inject({
    method: 'POST',
    url: '/oauth/introspect',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('orders:orders-secret-0123456789').toString('base64')}` },
    payload: new URLSearchParams({ token }).toString()
  }))
  t.match(await introspect(tokens.accessToken), { active: true, token_type: 'DPoP', cnf: { jkt: key.thumbprint } })
  t.match(await introspect(tokens.refreshToken), { active: true, token_type: 'refresh_token', cnf: { jkt: key.thumbprint } })
  const plain = await register(app)
  const plainTokens = json(await app.inject({ method: 'POST', url: '/auth/login', payload: { username: plain.username, password: plain.password } }))
  const plainAnswer = await introspect(plainTokens.accessToken)
  t.equal(plainAnswer.token_type, 'Bearer')
  t.notOk('cnf' in plainAnswer)
})

const redisUrl = process.env.TEST_REDIS_URL
if (redisUrl) {
  for (const database of testDatabases()) {
    t.test(`two instances sharing Redis refuse a proof replayed to the other one (${database})`, async (t) => {
      const a = await testApp(t, { database, env: { REDIS_URL: redisUrl } })
      const b = await testApp(t, { database, env: { REDIS_URL: redisUrl }, sameDatabaseAs: a })
      await Promise.all([a.ready(), b.ready()])
      const key = await dpopKey()
      const { tokens } = await boundSession(a, key)
      const proof = await makeProof(key, { htm: 'GET', htu: '/auth/me', accessToken: tokens.accessToken })
      const headers = { authorization: `DPoP ${tokens.accessToken}`, dpop: proof }
      t.equal((await a.inject({ method: 'GET', url: '/auth/me', headers })).statusCode, 200, 'used on instance a')
      const replayed = await b.inject({ method: 'GET', url: '/auth/me', headers })
      t.equal(replayed.statusCode, 401, 'replayed on instance b')
      t.equal(json(replayed).code, 'AUTH_DPOP_INVALID')

      const refreshProof = await makeProof(key, { htu: '/auth/refresh' })
      const first = await a.inject({ method: 'POST', url: '/auth/refresh', headers: { dpop: refreshProof }, payload: { refreshToken: tokens.refreshToken } })
      t.equal(first.statusCode, 200)
      const again = await b.inject({ method: 'POST', url: '/auth/refresh', headers: { dpop: refreshProof }, payload: { refreshToken: json(first).refreshToken } })
      t.equal(json(again).code, 'AUTH_DPOP_INVALID', 'a refresh proof is single-use across instances too')
      t.equal((await dpopGet(b, key, tokens.accessToken)).statusCode, 200, 'a fresh proof works on b')
    })
  }
}
