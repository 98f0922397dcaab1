// Session history, GET /auth/sessions/:id/events: every event type, through the HTTP API, with the
// client that caused it; the owner only; ended sessions while retained; pruned after the retention.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { PASSWORD, bearer, json, register, testApp, testClock, testDatabases } from '../helpers.js'

const SECOND = 1000
const HOUR = 3600 * SECOND
const DAY = 24 * HOUR
const LIFETIMES = { REFRESH_IDLE_TTL: '3600', REFRESH_ABSOLUTE_TTL: '7200', REFRESH_REUSE_GRACE: '10' }

/** A client; `ua` undefined: it sends no User-Agent header. */
interface Client { ua: string | undefined, ip: string }
const PHONE: Client = { ua: 'phone/1', ip: '198.51.100.1' }

async function loginAs (app: FastifyInstance, username: string, client: Client = PHONE) {
  const response = await app.inject({ method: 'POST', url: '/auth/login', headers: { 'user-agent': client.ua }, remoteAddress: client.ip, payload: { username, password: PASSWORD } })
  if (response.statusCode !== 200) throw new Error(`login failed: ${response.body}`)
  const body = json(response)
  const sessionId = JSON.parse(Buffer.from(body.accessToken.split('.')[1], 'base64url').toString()).sid as string
  return { accessToken: body.accessToken as string, refreshToken: body.refreshToken as string, sessionId }
}

async function refreshAs (app: FastifyInstance, refreshToken: string, client: Client = PHONE) {
  // light-my-request sends a user agent of its own unless the header is given as undefined.
  return app.inject({ method: 'POST', url: '/auth/refresh', headers: { 'user-agent': client.ua }, remoteAddress: client.ip, payload: { refreshToken } })
}

async function eventsOf (app: FastifyInstance, accessToken: string, sessionId: string) {
  return app.inject({ method: 'GET', url: `/auth/sessions/${encodeURIComponent(sessionId)}/events`, headers: bearer(accessToken) })
}

async function history (app: FastifyInstance, accessToken: string, sessionId: string): Promise<Array<Record<string, unknown>>> {
  const response = await eventsOf(app, accessToken, sessionId)
  if (response.statusCode !== 200) throw new Error(`events: ${response.statusCode} ${response.body}`)
  return json(response).events
}

for (const database of testDatabases()) {
  t.test(`login, routine refreshes (counted), a new client, a replay and a reuse (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock, env: LIFETIMES })
    const { username } = await register(app)
    const viewer = await loginAs(app, username, { ua: 'laptop/1', ip: '192.0.2.50' })
    const session = await loginAs(app, username)

    const first = json(await refreshAs(app, session.refreshToken)) // same client: counted only
    const second = json(await refreshAs(app, first.refreshToken))
    t.same((await history(app, viewer.accessToken, session.sessionId)).map((event) => event.type), ['login'], 'routine refreshes are not stored')
    const listed = json(await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(viewer.accessToken) })).sessions
    t.equal(listed.find((entry: { id: string }) => entry.id === session.sessionId).refreshCount, 2, 'they are counted on the session')
    t.equal(listed.find((entry: { id: string }) => entry.id === viewer.sessionId).refreshCount, 0)

    const moved: Client = { ua: 'phone/2', ip: '198.51.100.7' }
    clock.advance(SECOND)
    const third = json(await refreshAs(app, second.refreshToken, moved)) // another address and agent
    const fourth = json(await refreshAs(app, third.refreshToken, moved)) // the same new client again: counted only
    const agentOnly: Client = { ua: 'phone/3', ip: moved.ip }
    const fifth = json(await refreshAs(app, fourth.refreshToken, agentOnly)) // only the agent changed
    const replayed = await refreshAs(app, fourth.refreshToken, agentOnly) // within the grace window
    t.equal(replayed.statusCode, 200)
    t.equal(json(replayed).refreshToken, fifth.refreshToken, 'control: a grace replay')

    clock.advance(11 * SECOND)
    const reuser: Client = { ua: 'curl/8.0', ip: '203.0.113.9' }
    const reused = await refreshAs(app, first.refreshToken, reuser)
    t.equal(json(reused).code, 'AUTH_REFRESH_REUSED')

    const events = await history(app, viewer.accessToken, session.sessionId)
    t.same(events.map((event) => event.type), ['login', 'refresh-new-client', 'refresh-new-client', 'replay', 'reuse-detected'])
    t.match(events[0], { ip: PHONE.ip, userAgent: PHONE.ua })
    t.match(events[1], { ip: moved.ip, userAgent: moved.ua })
    t.match(events[2], { ip: agentOnly.ip, userAgent: agentOnly.ua })
    t.match(events[3], { ip: agentOnly.ip, userAgent: agentOnly.ua })
    t.match(events[4], { ip: reuser.ip, userAgent: reuser.ua }, "reuse-detected carries the reuser's address and agent")
    t.equal(events[4]!.at, new Date(clock()).toISOString())
    for (const event of events) t.same(Object.keys(event).sort(), ['at', 'ip', 'type', 'userAgent'], 'only revoked events carry a reason')
    const row = await app.db.session.findUniqueOrThrow({ where: { id: session.sessionId } })
    t.equal(row.refreshCount, 5, 'five rotations; the replay is no rotation')
  })

  t.test(`a client that sends no user agent is one new client, not a new one at every refresh (${database})`, async (t) => {
    const app = await testApp(t, { database, env: LIFETIMES })
    const { username } = await register(app)
    const session = await loginAs(app, username)
    const bare: Client = { ua: undefined, ip: PHONE.ip }
    let refreshToken = session.refreshToken
    for (let i = 0; i < 3; i++) refreshToken = json(await refreshAs(app, refreshToken, bare)).refreshToken
    const events = await history(app, session.accessToken, session.sessionId)
    t.same(events.map((event) => [event.type, event.userAgent ?? null]), [['login', PHONE.ua], ['refresh-new-client', null]], 'one event: the first refresh without the agent')
    const row = await app.db.session.findUniqueOrThrow({ where: { id: session.sessionId } })
    t.same([row.refreshCount, row.lastIp, row.lastUserAgent], [3, PHONE.ip, null])
    refreshToken = json(await refreshAs(app, refreshToken)).refreshToken
    t.same((await history(app, session.accessToken, session.sessionId)).map((event) => [event.type, event.userAgent ?? null]).slice(2), [['refresh-new-client', PHONE.ua]], 'and back to the login\'s agent: a new client again')
  })

  t.test(`logout, revocations with their reasons, expiry, retention (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock, env: { ...LIFETIMES, SESSION_EVENTS_RETENTION: '1' } })
    const { username } = await register(app)
    const a = await loginAs(app, username)
    const b = await loginAs(app, username)
    const c = await loginAs(app, username, { ua: 'laptop/1', ip: '192.0.2.50' })

    t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: { 'user-agent': 'phone/9' }, remoteAddress: '198.51.100.99', payload: { refreshToken: a.refreshToken } })).statusCode, 204)
    t.equal((await app.inject({ method: 'DELETE', url: `/auth/sessions/${b.sessionId}`, headers: { ...bearer(c.accessToken), 'user-agent': 'laptop/1' }, remoteAddress: '192.0.2.50' })).statusCode, 204)
    const changed = await app.inject({ method: 'POST', url: '/auth/password', headers: bearer(c.accessToken), payload: { currentPassword: PASSWORD, newPassword: 'another long passphrase' } })
    t.equal(changed.statusCode, 200)
    const d = json(changed)
    const dSession = JSON.parse(Buffer.from(d.accessToken.split('.')[1], 'base64url').toString()).sid as string
    t.equal((await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(d.accessToken) })).statusCode, 204)

    const password = 'another long passphrase'
    const viewer = json(await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password } })).accessToken as string
    const typesOf = async (id: string) => (await history(app, viewer, id)).map((event) => [event.type, event.reason ?? null])
    t.same(await typesOf(a.sessionId), [['login', null], ['logout', null]])
    t.match((await history(app, viewer, a.sessionId))[1], { ip: '198.51.100.99', userAgent: 'phone/9' }, 'the logout names its client')
    t.same(await typesOf(b.sessionId), [['login', null], ['revoked', 'deleted']])
    t.match((await history(app, viewer, b.sessionId))[1], { ip: '192.0.2.50', userAgent: 'laptop/1' })
    t.same(await typesOf(c.sessionId), [['login', null], ['revoked', 'password-change']])
    t.same(await typesOf(dSession), [['login', null], ['revoked', 'logout-all']])

    // Expiry: an idle session presented again, and one nobody presents, found by the prune.
    const idle = json(await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password } }))
    const idleSession = JSON.parse(Buffer.from(idle.accessToken.split('.')[1], 'base64url').toString()).sid as string
    const forgotten = json(await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password } }))
    const forgottenSession = JSON.parse(Buffer.from(forgotten.accessToken.split('.')[1], 'base64url').toString()).sid as string
    const loginAt = clock()
    clock.advance(HOUR + SECOND)
    t.equal(json(await refreshAs(app, idle.refreshToken)).code, 'AUTH_REFRESH_INVALID')
    t.equal(json(await refreshAs(app, idle.refreshToken)).code, 'AUTH_REFRESH_INVALID', 'presented twice: recorded once')
    clock.advance(HOUR)
    const viewer2 = json(await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password } })).accessToken as string
    const pruned = await app.sessions.prune()
    t.equal(pruned.sessionsExpired, 2, 'the forgotten session (and the first viewer) are recorded as expired at the prune; the idle one already was')
    t.same((await history(app, viewer2, idleSession)).map((event) => [event.type, event.at]), [['login', new Date(loginAt).toISOString()], ['expired', new Date(loginAt + HOUR).toISOString()]])
    t.same((await history(app, viewer2, forgottenSession)).map((event) => [event.type, event.at]), [['login', new Date(loginAt).toISOString()], ['expired', new Date(loginAt + HOUR).toISOString()]],
      'an ended session whose row is gone is still shown, with its idle expiry')
    t.equal(await app.db.session.count({ where: { id: forgottenSession } }), 0, 'control: its row was pruned')

    // Retention (1 day here): older events are pruned, and then the session is unknown.
    clock.advance(DAY)
    const viewer3 = json(await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password } }))
    const viewer3Session = JSON.parse(Buffer.from(viewer3.accessToken.split('.')[1], 'base64url').toString()).sid as string
    const later = await app.sessions.prune()
    t.ok(later.sessionEventsDeleted >= 12, `events past the retention deleted (${later.sessionEventsDeleted})`)
    t.equal((await eventsOf(app, viewer3.accessToken, a.sessionId)).statusCode, 404, 'history past the retention is gone')
    t.equal((await eventsOf(app, viewer3.accessToken, forgottenSession)).statusCode, 404)
    t.same((await history(app, viewer3.accessToken, viewer3Session)).map((event) => event.type), ['login'], 'recent history is kept')
  })

  t.test(`only the owner sees a session's history (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const alice = await register(app)
    const bob = await register(app)
    const aliceSession = await loginAs(app, alice.username)
    const bobSession = await loginAs(app, bob.username)
    t.equal((await eventsOf(app, aliceSession.accessToken, aliceSession.sessionId)).statusCode, 200, 'control: the owner')
    const cases: Array<[string, string]> = [["another user's session", aliceSession.sessionId], ['an unknown id', '00000000-0000-0000-0000-000000000000']]
    for (const [what, id] of cases) {
      const response = await eventsOf(app, bobSession.accessToken, id)
      t.equal(response.statusCode, 404, what)
      t.same(Object.keys(json(response)).sort(), ['code', 'error', 'message', 'statusCode'])
      t.equal(json(response).code, 'NOT_FOUND')
    }
    // Alice's session ended: still hers only.
    await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: aliceSession.refreshToken } })
    t.equal((await eventsOf(app, bobSession.accessToken, aliceSession.sessionId)).statusCode, 404)
    t.equal((await eventsOf(app, bobSession.accessToken, 'x'.repeat(129))).statusCode, 400, 'a malformed id is refused')
    t.equal((await app.inject({ method: 'GET', url: `/auth/sessions/${aliceSession.sessionId}/events` })).statusCode, 401, 'no token')
  })
}
