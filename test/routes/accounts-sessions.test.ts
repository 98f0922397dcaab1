// GET /auth/me, GET /auth/sessions and DELETE /auth/sessions/:id over HTTP.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import {
  PASSWORD, type TokenResponse, assertError, bearer, json, refresh, register, signedIn, testApp, testClock, testDatabases
} from '../helpers.js'
import { assertAccessRevoked, assertAccessWorks, decodeJwt, me, sessionsOf } from './tokens-support.js'

interface ListedSession { id: string, createdAt: string, lastUsedAt: string, userAgent: string | null, ip: string | null, current: boolean }

for (const database of testDatabases()) {
  t.test(`me and sessions (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock })

    async function loginFrom (username: string, userAgent: string, remoteAddress: string): Promise<TokenResponse> {
      const response = await app.inject({
        method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD }, headers: { 'user-agent': userAgent }, remoteAddress
      })
      if (response.statusCode !== 200) throw new Error(`setup: login failed: ${response.statusCode} ${response.body}`)
      return json(response)
    }
    const deleteSession = (accessToken: string, id: string) =>
      app.inject({ method: 'DELETE', url: `/auth/sessions/${encodeURIComponent(id)}`, headers: bearer(accessToken) })

    await t.test('GET /auth/me is 200 { user }', async (t) => {
      const { user, tokens } = await signedIn(app)
      const response = await me(app, tokens.accessToken)
      t.equal(response.statusCode, 200)
      t.same(json(response), { user })
      t.same(Object.keys(json(response).user).sort(), ['id', 'username'])
      const missing = await app.inject({ method: 'GET', url: '/auth/me' })
      assertError(t, missing, 401, 'AUTH_TOKEN_MISSING')
      t.equal(missing.headers['www-authenticate'], 'Bearer')
    })

    await t.test('GET /auth/sessions lists the caller\'s live sessions, exactly one current', async (t) => {
      const { username } = await register(app)
      const stranger = await signedIn(app)
      const first = await loginFrom(username, 'phone-app/1.0', '198.51.100.7')
      clock.advance(1_000)
      const second = await loginFrom(username, 'tablet-app/2.0', '198.51.100.8')
      const response = await sessionsOf(app, second.accessToken)
      t.equal(response.statusCode, 200)
      t.same(Object.keys(json(response)), ['sessions'])
      const sessions: ListedSession[] = json(response).sessions
      t.equal(sessions.length, 2, 'both sessions, and no one else\'s')
      for (const session of sessions) {
        t.same(Object.keys(session).sort(), ['createdAt', 'current', 'id', 'ip', 'lastUsedAt', 'refreshCount', 'userAgent'])
        t.ok(!Number.isNaN(Date.parse(session.createdAt)), 'createdAt is a timestamp')
        t.ok(!Number.isNaN(Date.parse(session.lastUsedAt)), 'lastUsedAt is a timestamp')
      }
      t.notOk(sessions.some((session) => session.id === decodeJwt(stranger.tokens.accessToken).claims.sid), 'another user\'s session is not listed')
      t.equal(sessions.filter((session) => session.current).length, 1, 'exactly one current')
      const byId = new Map(sessions.map((session) => [session.id, session]))
      const firstSid = decodeJwt(first.accessToken).claims.sid as string
      const secondSid = decodeJwt(second.accessToken).claims.sid as string
      t.equal(byId.get(secondSid)?.current, true, 'the caller\'s session is current')
      t.equal(byId.get(firstSid)?.current, false)
      t.equal(byId.get(firstSid)?.userAgent, 'phone-app/1.0')
      t.equal(byId.get(secondSid)?.userAgent, 'tablet-app/2.0')
      t.equal(byId.get(firstSid)?.ip, '198.51.100.7')
      t.equal(byId.get(secondSid)?.ip, '198.51.100.8')

      // Seen from the other session, the other one is current.
      const fromFirst: ListedSession[] = json(await sessionsOf(app, first.accessToken)).sessions
      t.same(fromFirst.filter((session) => session.current).map((session) => session.id), [firstSid])

      // A refresh marks the session as used, and keeps its id.
      clock.advance(5_000)
      const renewed = await refresh(app, first.refreshToken)
      t.equal(renewed.statusCode, 200)
      t.equal(decodeJwt(json(renewed).accessToken).claims.sid, firstSid, 'rotation keeps the session id')
      const after = new Map((json(await sessionsOf(app, second.accessToken)).sessions as ListedSession[]).map((session) => [session.id, session]))
      t.ok(Date.parse(after.get(firstSid)!.lastUsedAt) > Date.parse(after.get(firstSid)!.createdAt), 'lastUsedAt moved on')
    })

    await t.test('DELETE /auth/sessions/:id ends that session at once', async (t) => {
      const { username, user } = await register(app)
      const doomed = await loginFrom(username, 'old-laptop', '203.0.113.1')
      const caller = await loginFrom(username, 'new-laptop', '203.0.113.2')
      const doomedSid = decodeJwt(doomed.accessToken).claims.sid as string
      await assertAccessWorks(t, app, doomed.accessToken, user.id, 'setup: the doomed session')

      const response = await deleteSession(caller.accessToken, doomedSid)
      t.equal(response.statusCode, 204)
      t.equal(response.body, '')
      await assertAccessRevoked(t, app, doomed.accessToken, 'the deleted session\'s access token')
      const refused = await refresh(app, doomed.refreshToken)
      assertError(t, refused, 401, 'AUTH_REFRESH_INVALID', 'the deleted session\'s refresh token')

      await assertAccessWorks(t, app, caller.accessToken, user.id, 'the caller\'s session')
      const listed: ListedSession[] = json(await sessionsOf(app, caller.accessToken)).sessions
      t.same(listed.map((session) => session.id), [decodeJwt(caller.accessToken).claims.sid], 'only the caller\'s session is left')
      t.equal((await refresh(app, caller.refreshToken)).statusCode, 200, 'the caller\'s refresh token still works')

      const again = await deleteSession(caller.accessToken, doomedSid)
      assertError(t, again, 404, 'NOT_FOUND', 'an ended session')
    })

    await t.test('deleting the current session ends it too', async (t) => {
      const { user, tokens } = await signedIn(app)
      await assertAccessWorks(t, app, tokens.accessToken, user.id, 'setup')
      const response = await deleteSession(tokens.accessToken, decodeJwt(tokens.accessToken).claims.sid as string)
      t.equal(response.statusCode, 204)
      await assertAccessRevoked(t, app, tokens.accessToken, 'the deleted current session\'s access token')
      assertError(t, await refresh(app, tokens.refreshToken), 401, 'AUTH_REFRESH_INVALID')
    })

    await t.test('another user\'s session id is 404 NOT_FOUND and that session keeps working', async (t) => {
      const caller = await signedIn(app)
      const victim = await signedIn(app)
      const victimSid = decodeJwt(victim.tokens.accessToken).claims.sid as string
      const response = await deleteSession(caller.tokens.accessToken, victimSid)
      assertError(t, response, 404, 'NOT_FOUND')
      await assertAccessWorks(t, app, victim.tokens.accessToken, victim.user.id, 'the victim\'s access token')
      const renewed = await refresh(app, victim.tokens.refreshToken)
      t.equal(renewed.statusCode, 200, 'the victim\'s refresh token still works')
      t.equal(json(await sessionsOf(app, json(renewed).accessToken)).sessions.length, 1, 'the victim\'s session is still listed')
    })

    await t.test('an unknown session id is 404 NOT_FOUND', async (t) => {
      const { tokens, user } = await signedIn(app)
      for (const id of [randomUUID(), 'no-such-session']) {
        assertError(t, await deleteSession(tokens.accessToken, id), 404, 'NOT_FOUND', id)
      }
      await assertAccessWorks(t, app, tokens.accessToken, user.id)
    })

    await t.test('the session routes need an access token', async (t) => {
      const { tokens } = await signedIn(app)
      const sid = decodeJwt(tokens.accessToken).claims.sid as string
      for (const request of [
        { method: 'GET' as const, url: '/auth/sessions' },
        { method: 'DELETE' as const, url: `/auth/sessions/${sid}` }
      ]) {
        const response = await app.inject(request)
        assertError(t, response, 401, 'AUTH_TOKEN_MISSING', `${request.method} ${request.url}`)
        t.equal(response.headers['www-authenticate'], 'Bearer')
      }
      t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200, 'the unauthenticated DELETE ended nothing')
    })
  })
}
