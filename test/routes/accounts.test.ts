// Registration and login over HTTP: the answers, the token response and access token they produce,
// and that refused requests change nothing.
import { randomBytes } from 'node:crypto'
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { PASSWORD, assertError, json, login, register, testApp, testDatabases } from '../helpers.js'
import { assertAccessWorks, assertTokenResponse, decodeJwt, sessionsOf } from './tokens-support.js'

const uniqueName = (prefix = 'alice') => `${prefix}${randomBytes(4).toString('hex')}`
/** The same name in full-width letters and digits (NFKC folds it back to ASCII). */
const fullWidth = (name: string) => name.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xFEE0))

for (const database of testDatabases()) {
  t.test(`register (${database})`, async (t) => {
    const app = await testApp(t, { database })

    await t.test('201 with { user: { id, username } } and the account can log in', async (t) => {
      const username = uniqueName()
      const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username, password: PASSWORD } })
      t.equal(response.statusCode, 201)
      const body = json(response)
      t.same(Object.keys(body), ['user'])
      t.same(Object.keys(body.user).sort(), ['id', 'username'])
      t.type(body.user.id, 'string')
      t.not(body.user.id, '')
      t.equal(body.user.username, username)
      t.notMatch(response.body, /password|hash/i, 'nothing about the password comes back')
      const tokens = await login(app, username)
      t.same(tokens.user, body.user)
    })

    await t.test('a taken username, also in another case or a full-width form, is 409 AUTH_USERNAME_TAKEN and changes nothing', async (t) => {
      const username = uniqueName()
      const { user } = await register(app, username)
      const otherPassword = 'another long password 42'
      for (const variant of [username, username.toUpperCase(), fullWidth(username), fullWidth(username.toUpperCase())]) {
        const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username: variant, password: otherPassword } })
        assertError(t, response, 409, 'AUTH_USERNAME_TAKEN', JSON.stringify(variant))
      }
      const tokens = await login(app, username)
      t.equal(tokens.user.id, user.id, 'the original account is intact')
      const withOther = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: otherPassword } })
      assertError(t, withOther, 401, 'AUTH_INVALID_CREDENTIALS', 'the look-alike password was not stored')
      // Look-alike forms name the same account at login too.
      const upper = await login(app, username.toUpperCase())
      t.equal(upper.user.id, user.id)
    })

    await t.test('a password under 8 characters is 400 AUTH_WEAK_PASSWORD and creates nothing', async (t) => {
      const username = uniqueName()
      for (const password of ['a1b2c3', 'a1b2c3d', 'ñandú12']) {
        const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username, password } })
        assertError(t, response, 400, 'AUTH_WEAK_PASSWORD', JSON.stringify(password))
      }
      const loginAttempt = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: 'a1b2c3d' } })
      assertError(t, loginAttempt, 401, 'AUTH_INVALID_CREDENTIALS', 'no account was created')
      // The name is still free.
      const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username, password: PASSWORD } })
      t.equal(response.statusCode, 201)
    })

    await t.test('any password of 8 to 1024 characters (code points) is accepted, repeated characters too', async (t) => {
      for (const password of ['aaaaaaaa', 'a'.repeat(1024), '😀'.repeat(8), '😀'.repeat(1024)]) {
        const label = `${JSON.stringify(password.slice(0, 4))}… (${[...password].length} characters)`
        const username = uniqueName()
        const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username, password } })
        t.equal(response.statusCode, 201, `${label}: registered`)
        t.equal((await login(app, username, password)).user.username, username, `${label}: logs in`)
      }
      for (const password of ['a'.repeat(7), '😀'.repeat(7)]) {
        const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username: uniqueName(), password } })
        assertError(t, response, 400, 'AUTH_WEAK_PASSWORD', `${[...password].length} characters`)
      }
      for (const password of ['a'.repeat(1025), '😀'.repeat(1025)]) {
        const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username: uniqueName(), password } })
        t.equal(response.statusCode, 400, `${[...password].length} characters: 400`)
        t.ok(['AUTH_WEAK_PASSWORD', 'VALIDATION_ERROR'].includes(json(response).code), `1025 characters refused (${json(response).code})`)
      }
      const sameAsName = uniqueName('carol')
      const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username: sameAsName, password: sameAsName.toUpperCase() } })
      assertError(t, response, 400, 'AUTH_WEAK_PASSWORD', 'the username as password')
    })

    await t.test('unknown fields (tokenVersion, role, userId, id) never change state', async (t) => {
      const victim = await register(app)
      const username = uniqueName('mallory')
      const response = await app.inject({
        method: 'POST',
        url: '/auth/register',
        payload: { username, password: PASSWORD, tokenVersion: 42, role: 'admin', userId: victim.user.id, id: victim.user.id, disabled: true }
      })
      t.ok(response.statusCode === 201 || response.statusCode === 400, `refused or ignored (got ${response.statusCode})`)
      t.ok(response.statusCode < 500)
      if (response.statusCode === 201) {
        const { user } = json(response)
        t.same(Object.keys(user).sort(), ['id', 'username'], 'no role or other field comes back')
        t.not(user.id, victim.user.id, 'the id was not taken from the body')
        const tokens = await login(app, username)
        t.equal(tokens.user.id, user.id)
        const claims = decodeJwt(tokens.accessToken).claims
        t.equal(claims.ver, 0, 'the token version was not taken from the body')
        t.notOk('role' in claims, 'no role claim')
      } else {
        assertError(t, response, 400, 'VALIDATION_ERROR')
      }
      // The victim account is untouched.
      const victimTokens = await login(app, victim.username)
      t.equal(victimTokens.user.id, victim.user.id)
      t.equal(victimTokens.user.username, victim.username)
      t.equal(decodeJwt(victimTokens.accessToken).claims.ver, 0)
    })
  })

  t.test(`register is 404 NOT_FOUND when ALLOW_REGISTRATION=false (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { ALLOW_REGISTRATION: 'false' } })
    const username = uniqueName()
    const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username, password: PASSWORD } })
    assertError(t, response, 404, 'NOT_FOUND')
    const loginAttempt = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD } })
    assertError(t, loginAttempt, 401, 'AUTH_INVALID_CREDENTIALS', 'no account was created')
  })

  t.test(`login (${database})`, async (t) => {
    const app = await testApp(t, { database })

    await t.test('the token response has exactly the contract fields and is not cached', async (t) => {
      const { username, user } = await register(app)
      const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD } })
      const body = assertTokenResponse(t, response, user)
      t.equal(body.expiresIn, 900)
      t.equal(body.refreshExpiresIn, 14 * 24 * 3600, 'refresh lifetime is the idle lifetime (shorter than the absolute one)')
      t.equal(body.refreshExpiresIn <= 30 * 24 * 3600, true)
      await assertAccessWorks(t, app, body.accessToken, user.id)
    })

    await t.test('the access token is an at+jwt with the contract claims; sid is the session id', async (t) => {
      const { username, user } = await register(app)
      const before = Math.floor(Date.now() / 1000)
      const tokens = await login(app, username, PASSWORD, {})
      const after = Math.ceil(Date.now() / 1000)
      const { header, claims } = decodeJwt(tokens.accessToken)
      t.equal(header.typ, 'at+jwt')
      t.equal(header.alg, 'HS256')
      t.type(header.kid, 'string')
      t.ok((header.kid as string).length > 0, 'kid is not empty')
      t.notMatch(JSON.stringify(header), /test-secret/, 'the kid does not reveal the secret')
      for (const claim of ['iss', 'aud', 'sub', 'sid', 'ver', 'jti', 'iat', 'exp']) t.ok(claim in claims, `claim ${claim}`)
      t.equal(claims.iss, app.config.jwt.issuer)
      t.same([claims.aud].flat(), [app.config.jwt.audience])
      t.equal(claims.sub, user.id)
      t.type(claims.sub, 'string')
      t.type(claims.sid, 'string')
      t.type(claims.jti, 'string')
      t.equal(claims.ver, 0)
      t.equal((claims.exp as number) - (claims.iat as number), 900)
      t.ok((claims.iat as number) >= before - 1 && (claims.iat as number) <= after, 'iat is now')
      t.notOk('password' in claims)

      const second = await login(app, username)
      t.not(decodeJwt(second.accessToken).claims.jti, claims.jti, 'every token has its own jti')
      t.not(decodeJwt(second.accessToken).claims.sid, claims.sid, 'every login starts a session')

      const listed = await sessionsOf(app, tokens.accessToken)
      t.equal(listed.statusCode, 200)
      const current = json(listed).sessions.filter((session: { current: boolean }) => session.current)
      t.equal(current.length, 1)
      t.equal(current[0]?.id, claims.sid, 'sid equals the id GET /auth/sessions shows')
    })

    await t.test('wrong password, unknown user and both get the same status, body and headers', async (t) => {
      const { username } = await register(app)
      const attempts = [
        { username, password: 'wrong password 123' },
        { username: uniqueName('nobody'), password: PASSWORD },
        { username: uniqueName('nobody'), password: 'wrong password 123' }
      ]
      // A fresh client address each, so that per-address counters (rate limit headers) start level.
      const responses: LightMyRequestResponse[] = []
      for (const [index, payload] of attempts.entries()) {
        responses.push(await app.inject({ method: 'POST', url: '/auth/login', payload, remoteAddress: `192.0.2.${10 + index}` }))
      }
      const comparable = (response: LightMyRequestResponse) => {
        const headers: Record<string, unknown> = { ...response.headers }
        delete headers.date
        return { statusCode: response.statusCode, body: response.body, headers }
      }
      for (const response of responses) assertError(t, response, 401, 'AUTH_INVALID_CREDENTIALS')
      t.same(comparable(responses[1]!), comparable(responses[0]!), 'unknown user answers like a wrong password')
      t.same(comparable(responses[2]!), comparable(responses[0]!), 'unknown user with a wrong password answers the same')
      t.notMatch(responses[0]!.body, /refreshToken|accessToken/)
    })

    await t.test('unknown fields in the login body are ignored and grant nothing', async (t) => {
      const victim = await register(app)
      const { username, user } = await register(app)
      const response = await app.inject({
        method: 'POST',
        url: '/auth/login',
        payload: { username, password: PASSWORD, userId: victim.user.id, sub: victim.user.id, tokenVersion: 7, role: 'admin' }
      })
      t.ok(response.statusCode === 200 || response.statusCode === 400, `refused or ignored (got ${response.statusCode})`)
      if (response.statusCode === 200) {
        const body = assertTokenResponse(t, response, user)
        const claims = decodeJwt(body.accessToken).claims
        t.equal(claims.sub, user.id)
        t.equal(claims.ver, 0)
        t.notOk('role' in claims)
      }
    })
  })

  t.test(`an account deleted between the password check and the session insert is refused, never a 5xx (${database})`, async (t) => {
    const app = await testApp(t, { database })
    // The row vanishes right after its password was found correct: the session insert then fails on
    // its foreign key (P2003).
    const verify = app.passwordHasher.verify.bind(app.passwordHasher)
    let vanishing: string | undefined
    app.passwordHasher.verify = async (hash, password) => {
      const valid = await verify(hash, password)
      if (vanishing !== undefined) await app.db.user.delete({ where: { id: vanishing } })
      return valid
    }

    const viaAuth = await register(app)
    vanishing = viaAuth.user.id
    const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: viaAuth.username, password: PASSWORD } })
    assertError(t, response, 401, 'AUTH_INVALID_CREDENTIALS', '/auth/login')
    t.equal(response.headers['www-authenticate'], undefined, 'a public route: no bearer challenge')

    const viaOAuth = await register(app)
    vanishing = viaOAuth.user.id
    const granted = await app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: viaOAuth.username, password: PASSWORD }).toString()
    })
    t.equal(granted.statusCode, 400, '/oauth/token: 400')
    t.equal(json(granted).error, 'invalid_grant')
    t.equal(json(granted).code, 'AUTH_INVALID_CREDENTIALS')
    t.equal(await app.db.session.count(), 0, 'no session was started')
  })
}
