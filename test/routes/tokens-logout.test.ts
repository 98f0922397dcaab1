// POST /auth/logout and /auth/logout-all over HTTP: the session (or every session) ends at once, for
// refresh and access tokens alike, and a token retired this way never gets the grace window.
import t from 'tap'
import { assertError, bearer, json, login, refresh, signedIn, testApp, testClock, testDatabases } from '../helpers.js'
import { assertAccessRevoked, assertAccessWorks, assertTokenResponse, decodeJwt, resign, sessionsOf } from './tokens-support.js'

for (const database of testDatabases()) {
  t.test(`logout (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock })
    const logout = (options: { refreshToken?: string, accessToken?: string } = {}) => app.inject({
      method: 'POST',
      url: '/auth/logout',
      ...(options.accessToken === undefined ? {} : { headers: bearer(options.accessToken) }),
      ...(options.refreshToken === undefined ? {} : { payload: { refreshToken: options.refreshToken } })
    })

    await t.test('with the refresh token in the body: 204, and its refresh and access tokens stop at once', async (t) => {
      const { user, tokens } = await signedIn(app)
      await assertAccessWorks(t, app, tokens.accessToken, user.id, 'setup')
      const response = await logout({ refreshToken: tokens.refreshToken })
      t.equal(response.statusCode, 204)
      t.equal(response.body, '')
      assertError(t, await refresh(app, tokens.refreshToken), 401, 'AUTH_REFRESH_INVALID', 'the logged-out refresh token')
      await assertAccessRevoked(t, app, tokens.accessToken, 'the logged-out session\'s access token')
    })

    await t.test('with only the access token: 204, and that session ends', async (t) => {
      const { user, tokens } = await signedIn(app)
      await assertAccessWorks(t, app, tokens.accessToken, user.id, 'setup')
      const response = await logout({ accessToken: tokens.accessToken })
      t.equal(response.statusCode, 204)
      t.equal(response.body, '')
      await assertAccessRevoked(t, app, tokens.accessToken)
      assertError(t, await refresh(app, tokens.refreshToken), 401, 'AUTH_REFRESH_INVALID', 'the session\'s refresh token')
    })

    await t.test('with nothing: 401 AUTH_TOKEN_MISSING with WWW-Authenticate: Bearer', async (t) => {
      const { user, tokens } = await signedIn(app)
      for (const [what, response] of [
        ['no body', await logout()],
        ['empty object', await app.inject({ method: 'POST', url: '/auth/logout', payload: {} })]
      ] as const) {
        assertError(t, response, 401, 'AUTH_TOKEN_MISSING', what)
        t.equal(response.headers['www-authenticate'], 'Bearer', `${what}: bare challenge`)
      }
      await assertAccessWorks(t, app, tokens.accessToken, user.id, 'nothing ended')
    })

    await t.test('with an invalid access token: 401 AUTH_TOKEN_INVALID and nothing ends', async (t) => {
      const { user, tokens } = await signedIn(app)
      const forged = resign(tokens.accessToken, {}, 'some-other-secret-0123456789-abcdefghijklmnop')
      const response = await logout({ accessToken: forged })
      assertError(t, response, 401, 'AUTH_TOKEN_INVALID')
      t.equal(response.headers['www-authenticate'], 'Bearer error="invalid_token"')
      await assertAccessWorks(t, app, tokens.accessToken, user.id)
      t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200)
    })

    await t.test('other sessions, of the same user and of others, are unaffected', async (t) => {
      const { user, username, tokens } = await signedIn(app)
      const sameUser = await login(app, username)
      const stranger = await signedIn(app)
      t.equal((await logout({ refreshToken: tokens.refreshToken })).statusCode, 204)
      await assertAccessWorks(t, app, sameUser.accessToken, user.id, 'the same user\'s other session')
      await assertAccessWorks(t, app, stranger.tokens.accessToken, stranger.user.id, 'another user\'s session')
      const listed = json(await sessionsOf(app, sameUser.accessToken)).sessions
      t.same(listed.map((session: { id: string }) => session.id), [decodeJwt(sameUser.accessToken).claims.sid])
      t.equal((await refresh(app, sameUser.refreshToken)).statusCode, 200)
      t.equal((await refresh(app, stranger.tokens.refreshToken)).statusCode, 200)

      t.equal((await logout({ accessToken: sameUser.accessToken })).statusCode, 204)
      await assertAccessWorks(t, app, stranger.tokens.accessToken, stranger.user.id, 'another user\'s session after an access-token logout')
    })

    await t.test('a token retired by logout never gets grace', async (t) => {
      const { user, tokens } = await signedIn(app)
      const successor = assertTokenResponse(t, await refresh(app, tokens.refreshToken), user)
      t.equal((await logout({ refreshToken: successor.refreshToken })).statusCode, 204)
      clock.advance(1_000)
      for (const [what, token] of [['the logged-out token', successor.refreshToken], ['its predecessor', tokens.refreshToken]] as const) {
        const response = await refresh(app, token)
        t.equal(response.statusCode, 401, `${what} is refused within 10 s`)
        t.match(json(response).code, /^AUTH_REFRESH_(INVALID|REUSED)$/, what)
        t.notMatch(response.body, /refreshToken|accessToken/, `${what}: no tokens`)
      }
      await assertAccessRevoked(t, app, successor.accessToken)
    })

    await t.test('a token retired by an access-token logout never gets grace either', async (t) => {
      const { user, tokens } = await signedIn(app)
      const successor = assertTokenResponse(t, await refresh(app, tokens.refreshToken), user)
      t.equal((await logout({ accessToken: successor.accessToken })).statusCode, 204)
      clock.advance(1_000)
      for (const token of [tokens.refreshToken, successor.refreshToken]) {
        const response = await refresh(app, token)
        t.equal(response.statusCode, 401)
        t.notMatch(response.body, /refreshToken|accessToken/)
      }
    })
  })

  t.test(`logout-all (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock })

    await t.test('204; every session\'s refresh and access tokens end; a fresh login works', async (t) => {
      const { user, username, tokens } = await signedIn(app)
      const second = await login(app, username)
      const secondRotated = assertTokenResponse(t, await refresh(app, second.refreshToken), user)
      const stranger = await signedIn(app)

      const response = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(tokens.accessToken) })
      t.equal(response.statusCode, 204)
      t.equal(response.body, '')

      for (const [what, token] of [
        ['the caller\'s access token', tokens.accessToken],
        ['the other session\'s first access token', second.accessToken],
        ['the other session\'s rotated access token', secondRotated.accessToken]
      ] as const) await assertAccessRevoked(t, app, token, what)
      clock.advance(1_000)
      for (const [what, token] of [
        ['the caller\'s refresh token', tokens.refreshToken],
        ['the other session\'s current refresh token', secondRotated.refreshToken],
        ['the other session\'s predecessor, within the grace window', second.refreshToken]
      ] as const) {
        const refused = await refresh(app, token)
        t.equal(refused.statusCode, 401, `${what} is refused`)
        t.match(json(refused).code, /^AUTH_REFRESH_(INVALID|REUSED)$/, what)
        t.notMatch(refused.body, /refreshToken|accessToken/, `${what}: no tokens`)
      }
      await assertAccessWorks(t, app, stranger.tokens.accessToken, stranger.user.id, 'another user')
      t.equal((await refresh(app, stranger.tokens.refreshToken)).statusCode, 200, 'another user\'s refresh token')

      const fresh = await login(app, username)
      await assertAccessWorks(t, app, fresh.accessToken, user.id, 'a fresh login')
      const listed = json(await sessionsOf(app, fresh.accessToken)).sessions
      t.same(listed.map((session: { id: string }) => session.id), [decodeJwt(fresh.accessToken).claims.sid], 'only the fresh session is left')
      const renewed = assertTokenResponse(t, await refresh(app, fresh.refreshToken), user)
      await assertAccessWorks(t, app, renewed.accessToken, user.id, 'the fresh session after a refresh')
    })

    await t.test('needs an access token: 401 AUTH_TOKEN_MISSING, and a revoked one is AUTH_TOKEN_REVOKED', async (t) => {
      const { user, tokens } = await signedIn(app)
      const missing = await app.inject({ method: 'POST', url: '/auth/logout-all' })
      assertError(t, missing, 401, 'AUTH_TOKEN_MISSING')
      t.equal(missing.headers['www-authenticate'], 'Bearer')
      const byRefreshToken = await app.inject({ method: 'POST', url: '/auth/logout-all', payload: { refreshToken: tokens.refreshToken } })
      assertError(t, byRefreshToken, 401, 'AUTH_TOKEN_MISSING', 'a refresh token is not enough')
      await assertAccessWorks(t, app, tokens.accessToken, user.id, 'nothing ended')

      t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.accessToken) })).statusCode, 204)
      const revoked = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(tokens.accessToken) })
      assertError(t, revoked, 401, 'AUTH_TOKEN_REVOKED')
    })
  })
}
