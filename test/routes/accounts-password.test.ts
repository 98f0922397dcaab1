// POST /auth/password over HTTP: a change ends every session and every older access token (stolen
// refresh tokens and grace-window replays included) and hands the caller a working token response; a
// refused change leaves everything as it was.
import t from 'tap'
import { PASSWORD, assertError, bearer, json, login, refresh, register, signedIn, testApp, testClock, testDatabases } from '../helpers.js'
import { assertAccessRevoked, assertAccessWorks, assertTokenResponse, decodeJwt, sessionsOf } from './tokens-support.js'

const NEW_PASSWORD = 'a brand new passphrase 2024'

for (const database of testDatabases()) {
  t.test(`password change (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock })

    const changePassword = (accessToken: string, payload: Record<string, unknown>) =>
      app.inject({ method: 'POST', url: '/auth/password', headers: bearer(accessToken), payload })

    /** A user with two sessions: the caller's, and another device whose token was just rotated. */
    async function userWithTwoSessions () {
      const account = await signedIn(app)
      const other = await login(app, account.username)
      const rotated = await refresh(app, other.refreshToken)
      if (rotated.statusCode !== 200) throw new Error(`setup: refresh failed: ${rotated.statusCode} ${rotated.body}`)
      return { ...account, caller: account.tokens, other, otherRotated: json(rotated) }
    }

    await t.test('200 token response that works; every older access and refresh token ends', async (t) => {
      const { user, username, caller, other, otherRotated } = await userWithTwoSessions()
      const response = await changePassword(caller.accessToken, { currentPassword: PASSWORD, newPassword: NEW_PASSWORD })
      const issued = assertTokenResponse(t, response, user)
      t.equal(issued.expiresIn, 900)
      const claims = decodeJwt(issued.accessToken).claims
      t.equal(claims.sub, user.id)
      t.not(claims.sid, decodeJwt(caller.accessToken).claims.sid, 'the caller gets a fresh session')
      t.ok((claims.ver as number) > (decodeJwt(caller.accessToken).claims.ver as number), 'the token version went up')

      // Every older access token, every session: revoked at once.
      await assertAccessRevoked(t, app, caller.accessToken, 'the caller\'s old access token')
      await assertAccessRevoked(t, app, other.accessToken, 'the other device\'s first access token')
      await assertAccessRevoked(t, app, otherRotated.accessToken, 'the other device\'s rotated access token')

      // Every old refresh token: the caller's, the other device's current one, and a "stolen" predecessor
      // presented within the grace window — none of them gets an answer with tokens.
      clock.advance(2_000)
      for (const [what, token] of [
        ['the caller\'s old refresh token', caller.refreshToken],
        ['the other device\'s current refresh token', otherRotated.refreshToken],
        ['the other device\'s predecessor, within the grace window', other.refreshToken]
      ] as const) {
        const attempt = await refresh(app, token)
        t.equal(attempt.statusCode, 401, `${what} is refused`)
        t.match(json(attempt).code, /^AUTH_REFRESH_(INVALID|REUSED)$/, `${what} code`)
        t.notMatch(attempt.body, /refreshToken|accessToken/, `${what} gets no tokens`)
      }

      // The new session is untouched by those replays and works end to end.
      await assertAccessWorks(t, app, issued.accessToken, user.id, 'the new access token')
      const listed = json(await sessionsOf(app, issued.accessToken)).sessions
      t.equal(listed.length, 1, 'only the new session is left')
      t.equal(listed[0]?.id, claims.sid)
      t.equal(listed[0]?.current, true)
      const renewed = await refresh(app, issued.refreshToken)
      const renewedBody = assertTokenResponse(t, renewed, user)
      await assertAccessWorks(t, app, renewedBody.accessToken, user.id, 'the access token from the new session\'s refresh')

      // The new password logs in; the old one no longer does.
      const withNew = await login(app, username, NEW_PASSWORD)
      t.equal(withNew.user.id, user.id)
      const withOld = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD } })
      assertError(t, withOld, 401, 'AUTH_INVALID_CREDENTIALS', 'the old password')
    })

    await t.test('a wrong current password is 401 AUTH_INVALID_CREDENTIALS and changes nothing', async (t) => {
      const { user, username, caller, otherRotated } = await userWithTwoSessions()
      const response = await changePassword(caller.accessToken, { currentPassword: 'not the password 1', newPassword: NEW_PASSWORD })
      assertError(t, response, 401, 'AUTH_INVALID_CREDENTIALS')
      t.notMatch(response.body, /refreshToken|accessToken/)
      await assertAccessWorks(t, app, caller.accessToken, user.id, 'the caller\'s access token')
      await assertAccessWorks(t, app, otherRotated.accessToken, user.id, 'the other device\'s access token')
      t.equal((await refresh(app, caller.refreshToken)).statusCode, 200, 'the caller\'s refresh token still works')
      t.equal((await refresh(app, otherRotated.refreshToken)).statusCode, 200, 'the other device\'s refresh token still works')
      t.equal((await login(app, username, PASSWORD)).user.id, user.id, 'the old password still logs in')
      const withNew = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: NEW_PASSWORD } })
      assertError(t, withNew, 401, 'AUTH_INVALID_CREDENTIALS', 'the refused new password')
    })

    await t.test('a weak new password is 400 AUTH_WEAK_PASSWORD and changes nothing', async (t) => {
      const { user, username, caller, otherRotated } = await userWithTwoSessions()
      const response = await changePassword(caller.accessToken, { currentPassword: PASSWORD, newPassword: 'short1' })
      assertError(t, response, 400, 'AUTH_WEAK_PASSWORD')
      await assertAccessWorks(t, app, caller.accessToken, user.id, 'the caller\'s access token')
      await assertAccessWorks(t, app, otherRotated.accessToken, user.id, 'the other device\'s access token')
      t.equal((await refresh(app, otherRotated.refreshToken)).statusCode, 200, 'the other device\'s refresh token still works')
      t.equal((await login(app, username, PASSWORD)).user.id, user.id, 'the old password still logs in')
      const withWeak = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: 'short1' } })
      assertError(t, withWeak, 401, 'AUTH_INVALID_CREDENTIALS', 'the weak password')
    })

    await t.test('a new password of one repeated character is accepted (only its length counts)', async (t) => {
      const { user, username, tokens } = await signedIn(app)
      const response = await changePassword(tokens.accessToken, { currentPassword: PASSWORD, newPassword: 'aaaaaaaa' })
      assertTokenResponse(t, response, user)
      t.equal((await login(app, username, 'aaaaaaaa')).user.id, user.id, 'the new password logs in')
      const issued = json(response)
      const longest = '😀'.repeat(1024)
      assertTokenResponse(t, await changePassword(issued.accessToken, { currentPassword: 'aaaaaaaa', newPassword: longest }), user)
      t.equal((await login(app, username, longest)).user.id, user.id, '1024 emoji log in')
    })

    await t.test('a wrong current password is 401 with WWW-Authenticate: Bearer error="invalid_token"', async (t) => {
      const { tokens } = await signedIn(app)
      const response = await changePassword(tokens.accessToken, { currentPassword: 'not the password 1', newPassword: NEW_PASSWORD })
      assertError(t, response, 401, 'AUTH_INVALID_CREDENTIALS')
      t.equal(response.headers['www-authenticate'], 'Bearer error="invalid_token"', 'credentials were sent: RFC 6750 invalid_token')
    })

    await t.test('without an access token it is 401 AUTH_TOKEN_MISSING', async (t) => {
      const { username } = await register(app)
      const response = await app.inject({ method: 'POST', url: '/auth/password', payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD } })
      assertError(t, response, 401, 'AUTH_TOKEN_MISSING')
      t.equal(response.headers['www-authenticate'], 'Bearer')
      t.ok((await login(app, username, PASSWORD)).accessToken, 'the password did not change')
    })

    await t.test('unknown fields (userId, tokenVersion) cannot aim the change at someone else', async (t) => {
      const victim = await signedIn(app)
      const { user, username, tokens } = await signedIn(app)
      const response = await changePassword(tokens.accessToken, {
        currentPassword: PASSWORD, newPassword: NEW_PASSWORD, userId: victim.user.id, sub: victim.user.id, tokenVersion: 0
      })
      t.ok(response.statusCode === 200 || response.statusCode === 400, `refused or ignored (got ${response.statusCode})`)
      if (response.statusCode === 200) {
        const issued = assertTokenResponse(t, response, user)
        t.equal(decodeJwt(issued.accessToken).claims.sub, user.id)
        t.equal(decodeJwt(issued.accessToken).claims.ver, 1, 'the version was raised, not taken from the body')
        t.equal((await login(app, username, NEW_PASSWORD)).user.id, user.id)
      }
      await assertAccessWorks(t, app, victim.tokens.accessToken, victim.user.id, 'the victim\'s access token')
      t.equal((await refresh(app, victim.tokens.refreshToken)).statusCode, 200, 'the victim\'s refresh token still works')
      t.equal((await login(app, victim.username, PASSWORD)).user.id, victim.user.id, 'the victim\'s password is unchanged')
    })
  })
}
