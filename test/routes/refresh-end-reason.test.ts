// A refresh token of a session that has ended is refused with AUTH_REFRESH_INVALID and the reason the
// session ended, so an app can tell its user why they were signed out (@auth-server/client's
// onSessionEnded). A token the server does not know gets no reason.
import t from 'tap'
import { PASSWORD, assertError, bearer, json, login, refresh, signedIn, testApp, testClock, testDatabases } from '../helpers.js'
import { unknownRefreshToken } from './tokens-support.js'

for (const database of testDatabases()) {
  t.test(`why a refreshed session ended (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock, env: { REFRESH_IDLE_TTL: '600', REFRESH_REUSE_GRACE: '5' } })
    const refusedReason = async (t: Parameters<typeof assertError>[0], refreshToken: string, code = 'AUTH_REFRESH_INVALID') => {
      const response = await refresh(app, refreshToken)
      assertError(t, response, 401, code)
      return json(response).reason as string | undefined
    }

    await t.test('a session still live refreshes (control)', async (t) => {
      const { tokens } = await signedIn(app)
      t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200)
    })

    await t.test('logout', async (t) => {
      const { tokens } = await signedIn(app)
      t.equal((await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: tokens.refreshToken } })).statusCode, 204)
      t.equal(await refusedReason(t, tokens.refreshToken), 'logout')
    })

    await t.test('password change on another session', async (t) => {
      const { user, tokens } = await signedIn(app)
      const other = await login(app, user.username)
      const changed = await app.inject({
        method: 'POST', url: '/auth/password', headers: bearer(other.accessToken), payload: { currentPassword: PASSWORD, newPassword: 'a different long passphrase' }
      })
      t.equal(changed.statusCode, 200)
      t.equal(await refusedReason(t, tokens.refreshToken), 'password-changed')
    })

    await t.test('logout everywhere and a deleted session are "revoked"', async (t) => {
      const { user, tokens } = await signedIn(app)
      const other = await login(app, user.username)
      const sessions = json(await app.inject({ url: '/auth/sessions', headers: bearer(other.accessToken) })).sessions as Array<{ id: string, current: boolean }>
      const first = sessions.find((session) => !session.current)!
      t.equal((await app.inject({ method: 'DELETE', url: `/auth/sessions/${first.id}`, headers: bearer(other.accessToken) })).statusCode, 204)
      t.equal(await refusedReason(t, tokens.refreshToken), 'revoked', 'deleted session')
      t.equal((await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(other.accessToken) })).statusCode, 204)
      t.equal(await refusedReason(t, other.refreshToken), 'revoked', 'logout everywhere')
    })

    await t.test('reuse: the reuser gets AUTH_REFRESH_REUSED, the session\'s current token then "reused"', async (t) => {
      const { tokens } = await signedIn(app)
      const rotated = json(await refresh(app, tokens.refreshToken))
      clock.advance(6_000)
      t.equal(await refusedReason(t, tokens.refreshToken, 'AUTH_REFRESH_REUSED'), undefined, 'the reuse answer itself carries its own code')
      t.equal(await refusedReason(t, rotated.refreshToken), 'reused')
    })

    await t.test('idle expiry', async (t) => {
      const { tokens } = await signedIn(app)
      clock.advance(601_000)
      t.equal(await refusedReason(t, tokens.refreshToken), 'expired')
    })

    await t.test('an unknown token gets no reason', async (t) => {
      t.equal(await refusedReason(t, unknownRefreshToken()), undefined)
    })
  })
}
