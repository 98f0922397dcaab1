// POST /auth/refresh over HTTP: rotation, racing refreshes, the grace window, reuse detection and the
// idle and absolute lifetimes. The app's clock is a test clock, moved by hand.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { assertError, json, login, refresh, signedIn, testApp, testClock, testDatabases } from '../helpers.js'
import { assertAccessRevoked, assertAccessWorks, assertTokenResponse, decodeJwt, sessionsOf, unknownRefreshToken } from './tokens-support.js'

const GRACE_MS = 10_000

/** Refresh tokens of the session that are neither retired nor expired, straight from the store. */
async function liveRefreshTokens (app: FastifyInstance, sessionId: string, now: number): Promise<number> {
  return app.db.refreshToken.count({ where: { sessionId, retiredAt: null, expiresAt: { gt: new Date(now) } } })
}

for (const database of testDatabases()) {
  t.test(`refresh rotation and reuse (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock })

    await t.test('a refresh returns a new token response; the new token works and the old one is retired', async (t) => {
      const { user, tokens } = await signedIn(app)
      const sid = decodeJwt(tokens.accessToken).claims.sid
      const response = await refresh(app, tokens.refreshToken)
      const renewed = assertTokenResponse(t, response, user)
      t.not(renewed.refreshToken, tokens.refreshToken, 'a new refresh token')
      t.not(renewed.accessToken, tokens.accessToken, 'a new access token')
      t.equal(renewed.expiresIn, 900)
      t.equal(decodeJwt(renewed.accessToken).claims.sid, sid, 'same session')
      t.equal(decodeJwt(renewed.accessToken).claims.sub, user.id)
      await assertAccessWorks(t, app, renewed.accessToken, user.id)
      t.equal(await liveRefreshTokens(app, sid as string, clock()), 1, 'one live refresh token per session')

      const next = await refresh(app, renewed.refreshToken)
      t.equal(next.statusCode, 200, 'the successor can be used')
      // Once the grace window has passed since it was retired, presenting the first token is reuse.
      clock.advance(10_000)
      assertError(t, await refresh(app, tokens.refreshToken), 401, 'AUTH_REFRESH_REUSED', 'the retired token')
    })

    await t.test('two concurrent refreshes of one token get the same successor; exactly one survives', async (t) => {
      const { user, tokens } = await signedIn(app)
      const sid = decodeJwt(tokens.accessToken).claims.sid as string
      const [first, second] = await Promise.all([refresh(app, tokens.refreshToken), refresh(app, tokens.refreshToken)])
      const a = assertTokenResponse(t, first!, user)
      const b = assertTokenResponse(t, second!, user)
      t.equal(a.refreshToken, b.refreshToken, 'both callers hold the same successor')
      t.not(a.refreshToken, tokens.refreshToken)
      t.equal(await liveRefreshTokens(app, sid, clock()), 1, 'exactly one successor survives')
      await assertAccessWorks(t, app, a.accessToken, user.id, 'first caller\'s access token')
      await assertAccessWorks(t, app, b.accessToken, user.id, 'second caller\'s access token')
      const next = await refresh(app, a.refreshToken)
      t.equal(next.statusCode, 200, 'the shared successor rotates normally')
      t.equal(await liveRefreshTokens(app, sid, clock()), 1)
    })

    await t.test('five concurrent refreshes of one token all end up with one valid token', async (t) => {
      const { user, tokens } = await signedIn(app)
      const sid = decodeJwt(tokens.accessToken).claims.sid as string
      const responses = await Promise.all(Array.from({ length: 5 }, () => refresh(app, tokens.refreshToken)))
      const successors = new Set(responses.map((response) => assertTokenResponse(t, response, user).refreshToken))
      t.equal(successors.size, 1, 'one successor for all')
      t.equal(await liveRefreshTokens(app, sid, clock()), 1)
      t.equal((await refresh(app, [...successors][0]!)).statusCode, 200)
    })

    await t.test('the immediate predecessor within the grace window gets the same successor again', async (t) => {
      const { user, tokens } = await signedIn(app)
      const first = assertTokenResponse(t, await refresh(app, tokens.refreshToken), user)
      clock.advance(GRACE_MS / 2)
      const replay = await refresh(app, tokens.refreshToken)
      const again = assertTokenResponse(t, replay, user)
      t.equal(again.refreshToken, first.refreshToken, 'the same successor')
      t.equal(decodeJwt(again.accessToken).claims.sid, decodeJwt(first.accessToken).claims.sid)
      await assertAccessWorks(t, app, again.accessToken, user.id, 'the replay\'s access token')
      await assertAccessWorks(t, app, first.accessToken, user.id, 'the first answer\'s access token')
      clock.advance(GRACE_MS / 2 - 1_000)
      t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200, 'still within the window after 9 s')
      const next = await refresh(app, first.refreshToken)
      t.equal(next.statusCode, 200, 'the successor still works')
    })

    await t.test('the predecessor after the grace window is AUTH_REFRESH_REUSED and revokes the whole session', async (t) => {
      const { user, username, tokens } = await signedIn(app)
      const bystander = await login(app, username)
      const successor = assertTokenResponse(t, await refresh(app, tokens.refreshToken), user)
      clock.advance(GRACE_MS + 1_000)
      const reused = await refresh(app, tokens.refreshToken)
      assertError(t, reused, 401, 'AUTH_REFRESH_REUSED')
      t.notMatch(reused.body, /refreshToken|accessToken/)
      assertError(t, await refresh(app, successor.refreshToken), 401, 'AUTH_REFRESH_INVALID', 'the successor')
      await assertAccessRevoked(t, app, tokens.accessToken, 'the login\'s access token')
      await assertAccessRevoked(t, app, successor.accessToken, 'the rotated access token')
      // Another session of the same user is not touched, and no longer lists the revoked one.
      await assertAccessWorks(t, app, bystander.accessToken, user.id, 'another session')
      const listed = json(await sessionsOf(app, bystander.accessToken)).sessions
      t.same(listed.map((session: { id: string }) => session.id), [decodeJwt(bystander.accessToken).claims.sid])
      t.equal((await refresh(app, bystander.refreshToken)).statusCode, 200)
    })

    await t.test('within the grace window an older ancestor gets the family\'s current token; after it, reuse', async (t) => {
      const { user, tokens } = await signedIn(app)
      const b = assertTokenResponse(t, await refresh(app, tokens.refreshToken), user)
      const c = assertTokenResponse(t, await refresh(app, b.refreshToken), user)
      clock.advance(1_000)
      const late = assertTokenResponse(t, await refresh(app, tokens.refreshToken), user)
      t.equal(late.refreshToken, c.refreshToken, 'A after A→B→C gets C')
      await assertAccessWorks(t, app, late.accessToken, user.id, 'the fresh access token')
      clock.advance(9_000)
      assertError(t, await refresh(app, tokens.refreshToken), 401, 'AUTH_REFRESH_REUSED', 'A once the window has passed')
      assertError(t, await refresh(app, c.refreshToken), 401, 'AUTH_REFRESH_INVALID', 'the current token after reuse')
      t.equal((await refresh(app, b.refreshToken)).statusCode, 401, 'the predecessor gets no grace once the session is revoked')
      await assertAccessRevoked(t, app, c.accessToken, 'the newest access token')
      await assertAccessRevoked(t, app, tokens.accessToken, 'the first access token')
    })

    await t.test('an unknown well-formed token is 401 AUTH_REFRESH_INVALID', async (t) => {
      const { user, tokens } = await signedIn(app)
      assertError(t, await refresh(app, unknownRefreshToken()), 401, 'AUTH_REFRESH_INVALID')
      t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200, 'nothing else was affected')
      await assertAccessWorks(t, app, tokens.accessToken, user.id)
    })

    await t.test('a malformed token is 400 VALIDATION_ERROR and rotates nothing', async (t) => {
      const { tokens } = await signedIn(app)
      const real = tokens.refreshToken
      const malformed: unknown[] = [
        'abc', real.slice(0, 42), `${real}A`, `${real}=`, ` ${real}`, `${real.slice(0, 21)}.${real.slice(22)}`,
        `${real.slice(0, 42)}+`, tokens.accessToken, 'A'.repeat(600), 12345, ['x'], { token: real }
      ]
      for (const refreshToken of malformed) {
        const response = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken } })
        assertError(t, response, 400, 'VALIDATION_ERROR', JSON.stringify(refreshToken).slice(0, 40))
      }
      const response = await refresh(app, real)
      t.equal(response.statusCode, 200, 'the real token was never rotated')
    })

    await t.test('a missing token is 401 AUTH_REFRESH_INVALID', async (t) => {
      assertError(t, await app.inject({ method: 'POST', url: '/auth/refresh', payload: {} }), 401, 'AUTH_REFRESH_INVALID', 'empty object')
      assertError(t, await app.inject({ method: 'POST', url: '/auth/refresh' }), 401, 'AUTH_REFRESH_INVALID', 'no body')
    })

    await t.test('unknown fields in the refresh body never change whose tokens come back', async (t) => {
      const victim = await signedIn(app)
      const { user, tokens } = await signedIn(app)
      const response = await app.inject({
        method: 'POST', url: '/auth/refresh', payload: { refreshToken: tokens.refreshToken, userId: victim.user.id, sub: victim.user.id, tokenVersion: 9 }
      })
      t.ok(response.statusCode === 200 || response.statusCode === 400, `refused or ignored (got ${response.statusCode})`)
      if (response.statusCode === 200) {
        const issued = assertTokenResponse(t, response, user)
        t.equal(decodeJwt(issued.accessToken).claims.sub, user.id)
        t.equal(decodeJwt(issued.accessToken).claims.ver, 0)
      } else {
        assertError(t, response, 400, 'VALIDATION_ERROR')
        t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200, 'nothing was rotated')
      }
    })
  })

  t.test(`refresh lifetimes (${database})`, async (t) => {
    const env = { REFRESH_IDLE_TTL: '60', REFRESH_ABSOLUTE_TTL: '120' }

    await t.test('a token idle past REFRESH_IDLE_TTL is 401 AUTH_REFRESH_INVALID', async (t) => {
      const clock = testClock()
      const app = await testApp(t, { database, clock, env })
      const { user, tokens } = await signedIn(app)
      t.equal(tokens.refreshExpiresIn, 60, 'login: the idle lifetime')
      clock.advance(61_000)
      const expired = await refresh(app, tokens.refreshToken)
      assertError(t, expired, 401, 'AUTH_REFRESH_INVALID')
      // Expiry is not reuse: the session's access token is not revoked by it.
      await assertAccessWorks(t, app, tokens.accessToken, user.id)
    })

    await t.test('each rotation resets the idle lifetime, never past the absolute one', async (t) => {
      const clock = testClock()
      const app = await testApp(t, { database, clock, env })
      const loginAt = clock()
      const { user, tokens } = await signedIn(app)
      t.equal(tokens.refreshExpiresIn, 60)
      let current = tokens.refreshToken
      for (const [elapsed, expected] of [[50, 60], [100, 20], [115, 5]] as const) {
        clock.set(loginAt + elapsed * 1000)
        const response = await refresh(app, current)
        const renewed = assertTokenResponse(t, response, user)
        t.equal(renewed.refreshExpiresIn, expected, `at ${elapsed} s: refreshExpiresIn ${expected}`)
        t.ok(renewed.refreshExpiresIn <= 120 - elapsed, 'never beyond the absolute remaining lifetime')
        current = renewed.refreshToken
      }
      clock.set(loginAt + 121_000)
      assertError(t, await refresh(app, current), 401, 'AUTH_REFRESH_INVALID', 'past the absolute lifetime')
    })

    await t.test('REFRESH_ABSOLUTE_TTL alone (below the idle default) starts, and caps every token', async (t) => {
      const clock = testClock()
      const app = await testApp(t, { database, clock, env: { REFRESH_ABSOLUTE_TTL: '60' } })
      t.equal(app.config.ttl.refreshIdle, 1_209_600, 'the idle lifetime keeps its default')
      const loginAt = clock()
      const { user, tokens } = await signedIn(app)
      t.equal(tokens.refreshExpiresIn, 60, 'login: the absolute lifetime, not the idle one')
      clock.set(loginAt + 30_000)
      const renewed = assertTokenResponse(t, await refresh(app, tokens.refreshToken), user)
      t.equal(renewed.refreshExpiresIn, 30, 'a rotation keeps the absolute end')
      clock.set(loginAt + 60_000)
      assertError(t, await refresh(app, renewed.refreshToken), 401, 'AUTH_REFRESH_INVALID', 'at the absolute end')
    })

    await t.test('refreshExpiresIn rounds up: a token with part of a second left never reads 0', async (t) => {
      const clock = testClock()
      const app = await testApp(t, { database, clock, env })
      const loginAt = clock()
      const { user, tokens } = await signedIn(app)
      let current = tokens.refreshToken
      for (const elapsed of [50_000, 100_000]) {
        clock.set(loginAt + elapsed)
        current = assertTokenResponse(t, await refresh(app, current), user).refreshToken
      }
      clock.set(loginAt + 119_600)
      const last = assertTokenResponse(t, await refresh(app, current), user)
      t.equal(last.refreshExpiresIn, 1, '0.4 s left reads as 1 s')
      clock.set(loginAt + 119_900)
      t.equal((await refresh(app, last.refreshToken)).statusCode, 200, 'and the token indeed still works')
    })
  })
}

