// The RFC 8414 / 7009 / 7662 surface driven by client libraries nobody here wrote: openid-client
// (discovery, tokenRevocation, tokenIntrospection) and oauth4webapi; then the RFCs' errors by hand.
import * as oauth from 'oauth4webapi'
import * as openid from 'openid-client'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { PASSWORD, bearer, json, login, refresh, register, signedIn, testApp, testDatabases } from '../helpers.js'
import { freePort } from '../network-support.js'

const RS_ID = 'orders-service'
const RS_SECRET = 'orders-secret-0123456789'


/** An app listening on the port its PUBLIC_URL and JWT_ISSUER name. */
async function listeningApp (t: Parameters<typeof testApp>[0], database: 'sqlite' | 'postgresql', env: Record<string, string> = {}) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const app = await testApp(t, { database, env: { PUBLIC_URL: base, JWT_ISSUER: base, RESOURCE_SERVERS: `${RS_ID}:${RS_SECRET}`, ...env } })
  await app.listen({ host: '127.0.0.1', port })
  return { app, base }
}

const me = async (app: FastifyInstance, accessToken: string) => (await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })).statusCode

type Reply = Awaited<ReturnType<FastifyInstance['inject']>>
/** Starts the named sides of a race and collects their replies. */
type Schedule<K extends string> = (sides: Record<K, () => Promise<Reply>>) => Promise<Record<K, Reply>>
/** All sides at once: the winner is whoever the machine lets commit first. */
async function together<K extends string> (sides: Record<K, () => Promise<Reply>>): Promise<Record<K, Reply>> {
  const names = Object.keys(sides) as K[]
  const replies = await Promise.all(names.map(async (name) => sides[name]()))
  return Object.fromEntries(names.map((name, i) => [name, replies[i]])) as Record<K, Reply>
}
/** One side after the other in the order given: forces the winner. */
function inOrder<K extends string> (...order: K[]): Schedule<K> {
  return async (sides) => {
    const replies: Partial<Record<K, Reply>> = {}
    for (const name of order) replies[name] = await sides[name]()
    return replies as Record<K, Reply>
  }
}

function basic (id: string, secret: string) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`
}
const form = (fields: Record<string, string>, headers: Record<string, string> = {}) =>
  ({ headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(fields).toString() })

for (const database of testDatabases()) {
  t.test(`openid-client discovers, revokes and introspects (${database})`, async (t) => {
    const { app, base } = await listeningApp(t, database)
    const options = { execute: [openid.allowInsecureRequests], algorithm: 'oauth2' as const }
    const publicClient = await openid.discovery(new URL(base), 'mobile', undefined, openid.None(), options)
    const resourceServer = await openid.discovery(new URL(base), RS_ID, RS_SECRET, openid.ClientSecretBasic(RS_SECRET), options)
    const metadata = publicClient.serverMetadata()
    t.equal(metadata.issuer, base)
    t.equal(metadata.token_endpoint, `${base}/oauth/token`)
    t.equal(metadata.revocation_endpoint, `${base}/oauth/revoke`)
    t.equal(metadata.introspection_endpoint, `${base}/oauth/introspect`)
    t.equal(metadata.jwks_uri, `${base}/.well-known/jwks.json`)
    t.same(metadata.grant_types_supported, ['password', 'refresh_token'])
    t.same(metadata.token_endpoint_auth_methods_supported, ['none'])
    t.same(metadata.introspection_endpoint_auth_methods_supported, ['client_secret_basic'])
    t.ok(Array.isArray(metadata.response_types_supported))
    t.ok(Array.isArray(metadata.revocation_endpoint_auth_methods_supported))

    // Access token: active with the contract's members, then revoked by the public client.
    const { username, tokens } = await signedIn(app)
    const active = await openid.tokenIntrospection(resourceServer, tokens.accessToken)
    t.equal(active.active, true)
    t.match(active, { sub: tokens.user.id, username, client_id: 'mobile', token_type: 'Bearer', iss: base, aud: app.config.jwt.audience })
    t.type(active.sid, 'string')
    t.type(active.exp, 'number')
    t.type(active.iat, 'number')
    const refreshActive = await openid.tokenIntrospection(resourceServer, tokens.refreshToken, { token_type_hint: 'refresh_token' })
    t.match(refreshActive, { active: true, sub: tokens.user.id, sid: active.sid, token_type: 'refresh_token' })

    await openid.tokenRevocation(publicClient, tokens.accessToken)
    t.equal(await me(app, tokens.accessToken), 401, 'the revoked access token is refused at once')
    t.same(await openid.tokenIntrospection(resourceServer, tokens.accessToken), { active: false })
    t.same(await openid.tokenIntrospection(resourceServer, tokens.refreshToken), { active: false }, 'its session ended: the refresh token too')
    t.equal((await refresh(app, tokens.refreshToken)).statusCode, 401)

    // Refresh token revoked: its session's access token dies with it.
    const second = await login(app, username)
    await openid.tokenRevocation(publicClient, second.refreshToken, { token_type_hint: 'refresh_token' })
    t.equal(await me(app, second.accessToken), 401)
    t.equal(json(await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(second.accessToken) })).code, 'AUTH_TOKEN_REVOKED')

    // Revoking again, or revoking garbage, is 200 (RFC 7009 §2.2).
    await openid.tokenRevocation(publicClient, second.refreshToken)
    await openid.tokenRevocation(publicClient, 'not-a-token-at-all')
    await openid.tokenRevocation(publicClient, 'a'.repeat(43))

    // Wrong resource-server credentials: the library sees invalid_client.
    const impostor = await openid.discovery(new URL(base), RS_ID, 'wrong-secret-0123456789', openid.ClientSecretBasic('wrong-secret-0123456789'), options)
    const failure = await openid.tokenIntrospection(impostor, second.accessToken).then(() => null, (error: unknown) => error)
    // The library reports the Basic challenge (RFC 7235) first; the body is RFC 6749's invalid_client.
    t.ok(failure instanceof openid.WWWAuthenticateChallengeError)
    const challenge = failure as openid.WWWAuthenticateChallengeError
    t.equal(challenge.status, 401)
    t.equal(challenge.cause[0]?.scheme, 'basic')
    t.equal((await challenge.response.json() as { error?: unknown }).error, 'invalid_client')
  })

  t.test(`oauth4webapi discovers, revokes and introspects (${database})`, async (t) => {
    const { app, base } = await listeningApp(t, database)
    const insecure = { [oauth.allowInsecureRequests]: true } as const
    const issuer = new URL(base)
    const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }))
    const { tokens } = await signedIn(app)
    const rs: oauth.Client = { client_id: RS_ID }
    const introspect = async (token: string) => oauth.processIntrospectionResponse(as, rs,
      await oauth.introspectionRequest(as, rs, oauth.ClientSecretBasic(RS_SECRET), token, insecure))
    t.equal((await introspect(tokens.accessToken)).active, true)
    const mobile: oauth.Client = { client_id: 'mobile' }
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, mobile, oauth.None(), tokens.refreshToken, insecure))
    t.equal((await introspect(tokens.accessToken)).active, false)
    t.equal(await me(app, tokens.accessToken), 401)
  })

  t.test(`revocation and introspection errors per the RFCs (${database})`, async (t) => {
    const { app } = await listeningApp(t, database, { RATE_LIMIT_MAX: '12' })
    const { tokens } = await signedIn(app)
    const rs = { authorization: basic(RS_ID, RS_SECRET) }
    const post = async (url: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
      app.inject({ method: 'POST', url, ...form(fields, headers), payload: form(fields).body })

    let response = await post('/oauth/revoke', {})
    t.equal(response.statusCode, 400)
    t.match(json(response), { error: 'invalid_request', statusCode: 400, code: 'VALIDATION_ERROR' })
    response = await post('/oauth/revoke', { token: tokens.accessToken, token_type_hint: 'id_token' })
    t.match(json(response), { error: 'unsupported_token_type' })
    t.equal(await me(app, tokens.accessToken), 200, 'a refused revocation changes nothing')
    response = await app.inject({ method: 'POST', url: '/oauth/revoke', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ token: tokens.accessToken }) })
    t.ok(response.statusCode >= 400 && response.statusCode < 500, `JSON is refused (${response.statusCode})`)
    response = await post('/oauth/revoke', { token: tokens.accessToken }, { authorization: basic(RS_ID, 'nope-nope-nope-nope') })
    t.equal(response.statusCode, 401)
    t.match(response.headers['www-authenticate'], /^Basic/)
    t.equal(await me(app, tokens.accessToken), 200)
    t.equal(response.headers['cache-control'], 'no-store')

    // Introspection: authentication first, then the body.
    for (const headers of [{}, { authorization: basic(RS_ID, 'wrong-wrong-wrong-wrong') }, { authorization: basic('other', RS_SECRET) }, { authorization: 'Basic !!!' }, bearer(tokens.accessToken)]) {
      response = await post('/oauth/introspect', { token: tokens.accessToken }, headers)
      t.equal(response.statusCode, 401)
      t.match(json(response), { error: 'invalid_client', statusCode: 401 })
      t.match(response.headers['www-authenticate'], /^Basic/)
    }
    response = await post('/oauth/introspect', {}, rs)
    t.match(json(response), { error: 'invalid_request', statusCode: 400 })
    response = await post('/oauth/introspect', { token: tokens.accessToken, token_type_hint: 'saml' }, rs)
    t.match(json(response), { error: 'unsupported_token_type', statusCode: 400 })
    for (const token of ['garbage', 'x'.repeat(43), tokens.accessToken.slice(0, -2) + 'xx', 'a.b.c']) {
      response = await post('/oauth/introspect', { token }, rs)
      t.equal(response.statusCode, 200)
      t.same(json(response), { active: false })
    }
    response = await post('/oauth/introspect', { token: 'x'.repeat(9000) }, rs)
    t.equal(response.statusCode, 400, 'an oversized token is a 400')

    // The per-address limit counts revocations.
    let limited = 0
    for (let i = 0; i < 14; i++) if ((await post('/oauth/revoke', { token: 'unknown' })).statusCode === 429) limited++
    t.ok(limited > 0, 'revocation is rate limited per address')
  })

  t.test(`introspection and the feed are 404 without RESOURCE_SERVERS (${database})`, async (t) => {
    const app = await testApp(t, { database })
    for (const [method, url] of [['POST', '/oauth/introspect'], ['GET', '/oauth/revocations'], ['GET', '/oauth/revocations/stream']] as const) {
      const response = await app.inject({ method, url, headers: { authorization: basic('x', 'y'), 'content-type': 'application/x-www-form-urlencoded' }, payload: method === 'POST' ? 'token=abc' : undefined })
      t.equal(response.statusCode, 404, `${method} ${url}`)
      t.match(json(response), { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found' })
    }
    const revoke = await app.inject({ method: 'POST', url: '/oauth/revoke', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'token=abc' })
    t.equal(revoke.statusCode, 200, 'revocation needs no resource servers')
    const metadata = json(await app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' }))
    t.equal(metadata.token_endpoint, 'http://127.0.0.1:3000/oauth/token', 'PUBLIC_URL defaults to http://HOST:PORT')
    t.same(metadata.dpop_signing_alg_values_supported, ['ES256', 'ES384', 'EdDSA'], 'DPoP is optional by default')
    const off = await testApp(t, { database, env: { DPOP: 'off' }, sameDatabaseAs: app })
    const offMetadata = json(await off.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' }))
    t.notOk('dpop_signing_alg_values_supported' in offMetadata, 'DPOP=off advertises no DPoP')
  })

  t.test(`revocation races logins, refreshes and password changes (${database})`, async (t) => {
    const { app } = await listeningApp(t, database)
    const revoke = (token: string) => app.inject({ method: 'POST', url: '/oauth/revoke', ...form({ token }), payload: form({ token }).body })
    /**
     * One round: every request below at once, except the two races whose winner decides what must hold
     * (a refresh against the revocation of its token; a password change against the revocation of its
     * session, with a login beside it), which `refreshRace` and `passwordRace` start. Returns who won each.
     */
    async function round (label: string, refreshRace: Schedule<'refresh' | 'revoke'>, passwordRace: Schedule<'login' | 'change' | 'revoke'>) {
      const { username, tokens } = await signedIn(app)
      const others = await Promise.all([login(app, username), login(app, username)])
      const third = await login(app, username)
      const [refreshed, changed, besides] = await Promise.all([
        refreshRace({ refresh: () => refresh(app, tokens.refreshToken), revoke: () => revoke(tokens.refreshToken) }),
        passwordRace({
          login: () => app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD } }),
          change: () => app.inject({ method: 'POST', url: '/auth/password', headers: bearer(third.accessToken), payload: { currentPassword: PASSWORD, newPassword: 'raced new passphrase' } }),
          revoke: () => revoke(third.accessToken)
        }),
        Promise.all([
          revoke(tokens.refreshToken), revoke(others[0]!.accessToken),
          app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: others[1]!.refreshToken } }),
          revoke(others[1]!.refreshToken)
        ])
      ])
      const replies = [...Object.values(refreshed), ...Object.values(changed), ...besides]
      for (const response of replies) t.ok(response.statusCode < 500, `${label}: no 5xx (${response.statusCode})`)
      t.equal(refreshed.revoke.statusCode, 200, `${label}: the revocation answers 200`)
      t.equal(besides[0]!.statusCode, 200, `${label}: so does the same revocation twice`)
      // Whichever won, nothing of the revoked session survives.
      const refreshWon = refreshed.refresh.statusCode === 200
      if (refreshWon) t.equal(await me(app, json(refreshed.refresh).accessToken), 401, `${label}: a token minted in the race is revoked too`)
      else t.equal(refreshed.refresh.statusCode, 401, `${label}: a refresh after the revocation is refused`)
      for (const access of [tokens.accessToken, others[0]!.accessToken, others[1]!.accessToken]) t.equal(await me(app, access), 401, `${label}: revoked`)
      t.equal(await me(app, third.accessToken), 401, `${label}: revoked or superseded by the password change, either way refused`)
      const fresh = json(changed.login)
      const changeWon = changed.change.statusCode === 200
      if (changeWon) {
        t.equal(await me(app, fresh.accessToken), 401, `${label}: the password change ends the login that raced it`)
        t.equal(await me(app, json(changed.change).accessToken), 200, `${label}: the password change's own new token works`)
      } else {
        t.equal(changed.change.statusCode, 401, `${label}: the password change lost to the revocation of its session`)
        t.equal(await me(app, fresh.accessToken), 200, `${label}: a login beside the revocations is untouched`)
      }
      return { refreshWon, changeWon }
    }

    // Each side of both races forced once, so every branch above is checked whichever way the free rounds go.
    t.same(await round('refresh and password change first', inOrder('refresh', 'revoke'), inOrder('login', 'change', 'revoke')),
      { refreshWon: true, changeWon: true }, 'forced: the refresh and the password change committed first')
    t.same(await round('revocations first', inOrder('revoke', 'refresh'), inOrder('login', 'revoke', 'change')),
      { refreshWon: false, changeWon: false }, 'forced: the revocations committed first')
    for (let free = 0; free < 3; free++) await round(`free round ${free}`, together, together)
  })
}

t.test('tokens and resource-server secrets never reach the log', async (t) => {
  const logLines: Array<Record<string, unknown>> = []
  const app = await testApp(t, { logLines, env: { RESOURCE_SERVERS: `${RS_ID}:${RS_SECRET}` } })
  const { tokens } = await signedIn(app)
  const rs = { authorization: basic(RS_ID, RS_SECRET), 'content-type': 'application/x-www-form-urlencoded' }
  await app.inject({ method: 'POST', url: '/oauth/introspect', headers: rs, payload: new URLSearchParams({ token: tokens.accessToken }).toString() })
  await app.inject({ method: 'POST', url: '/oauth/introspect', headers: { ...rs, authorization: basic(RS_ID, `${RS_SECRET}x`) }, payload: 'token=abc' })
  await app.inject({ method: 'GET', url: '/oauth/revocations', headers: rs })
  await app.inject({ method: 'POST', url: '/oauth/revoke', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ token: tokens.refreshToken }).toString() })
  const text = JSON.stringify(logLines)
  t.ok(logLines.length > 0, 'something was logged')
  for (const secret of [tokens.accessToken, tokens.refreshToken, RS_SECRET, Buffer.from(`${RS_ID}:${RS_SECRET}`).toString('base64')]) {
    t.notOk(text.includes(secret), 'a secret is absent from the log')
  }
})

t.test('an issuer with a path has its metadata at the RFC 8414 location', async (t) => {
  const app = await testApp(t, { env: { PUBLIC_URL: 'https://example.com/auth/', JWT_ISSUER: 'https://example.com/auth' } })
  for (const url of ['/.well-known/oauth-authorization-server', '/.well-known/oauth-authorization-server/auth']) {
    const response = await app.inject({ method: 'GET', url })
    t.equal(response.statusCode, 200, url)
    t.match(json(response), { issuer: 'https://example.com/auth', token_endpoint: 'https://example.com/auth/oauth/token', revocation_feed_endpoint: 'https://example.com/auth/oauth/revocations' })
  }
})
