// The revocation feed: GET /oauth/revocations (snapshot, ?after=) and its SSE stream (pushed at once,
// heartbeats, Last-Event-ID, a bound on streams per client). Slow readers: revocation-feed-slow-reader.test.ts.
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { PASSWORD, bearer, json, login, signedIn, testDatabases } from '../helpers.js'
import { BILLING, ORDERS, feedApp, openStream } from './feed-support.js'

const snapshot = async (app: FastifyInstance, after?: string, authorization = ORDERS) =>
  app.inject({ method: 'GET', url: `/oauth/revocations${after === undefined ? '' : `?after=${after}`}`, headers: { authorization } })

for (const database of testDatabases()) {
  t.test(`snapshot and ?after= (${database})`, async (t) => {
    const { app } = await feedApp(t, database)
    const empty = json(await snapshot(app))
    t.same(empty.events, [])
    t.type(empty.cursor, 'string')

    const { username, tokens } = await signedIn(app)
    const sid = json(await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(tokens.accessToken) })).sessions[0].id
    t.equal((await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: tokens.refreshToken } })).statusCode, 204)
    const first = json(await snapshot(app))
    t.equal(first.events.length, 1)
    const [event] = first.events
    t.same(Object.keys(event).sort(), ['at', 'id', 'kind', 'relevantUntil', 'sessionId'])
    t.match(event, { kind: 'session', sessionId: sid })
    t.ok(Date.parse(event.relevantUntil) > Date.parse(event.at), 'relevantUntil after at')
    t.ok(Date.parse(event.relevantUntil) - Date.parse(event.at) <= (900 + 60) * 1000, 'bounded by the access-token lifetime')

    t.same(json(await snapshot(app, first.cursor)).events, [], 'nothing after the cursor yet')

    const other = await login(app, username)
    const changed = await app.inject({
      method: 'POST', url: '/auth/password', headers: bearer(other.accessToken), payload: { currentPassword: PASSWORD, newPassword: 'another long passphrase' }
    })
    t.equal(changed.statusCode, 200)
    const later = json(await snapshot(app, first.cursor))
    t.equal(later.events.length, 1, 'only the later event')
    t.same(Object.keys(later.events[0]).sort(), ['at', 'id', 'kind', 'minimumTokenVersion', 'relevantUntil', 'userId'])
    t.match(later.events[0], { kind: 'user', userId: other.user.id, minimumTokenVersion: 1 })
    t.same(json(await snapshot(app, later.cursor)).events, [])
    t.equal(json(await snapshot(app)).events.length, 2, 'the snapshot holds both')

    // Bad input: RFC errors, never a 5xx; the other client's credentials work as well.
    for (const bad of ['abc', '-1', '1.x', '01', '9'.repeat(30)]) {
      const response = await snapshot(app, encodeURIComponent(bad))
      t.equal(response.statusCode, 400, `after=${bad}`)
      t.match(json(response), { error: 'invalid_request' })
    }
    const unauthenticated = await app.inject({ method: 'GET', url: '/oauth/revocations' })
    t.equal(unauthenticated.statusCode, 401)
    t.match(unauthenticated.headers['www-authenticate'], /^Basic/)
    t.match(json(unauthenticated), { error: 'invalid_client' })
    t.equal((await snapshot(app, undefined, BILLING)).statusCode, 200)
  })

  t.test(`the stream pushes, beats, resumes and bounds its subscribers (${database})`, async (t) => {
    const { app, base } = await feedApp(t, database, { REVOCATION_STREAM_HEARTBEAT: '1', REVOCATION_STREAMS_PER_CLIENT: '2' })
    const stream = await openStream(base)
    t.equal(stream.response.status, 200)
    t.match(stream.response.headers.get('content-type'), /^text\/event-stream/)
    await stream.until(() => stream.lastId !== undefined)
    const { tokens } = await signedIn(app)
    await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: tokens.refreshToken } })
    await stream.until(() => stream.events().length === 1)
    t.match(stream.events()[0], { kind: 'session' })
    const beat = () => stream.messages.some((message) => message.comment === 'keep-alive')
    await stream.until(beat, 5000)
    t.ok(beat(), 'a heartbeat comment arrived')

    // A second stream of the same client is fine, a third is refused clearly; another client is not affected.
    const second = await openStream(base)
    const third = await fetch(`${base}/oauth/revocations/stream`, { headers: { authorization: ORDERS } })
    t.equal(third.status, 429)
    t.match(await third.json(), { code: 'REVOCATION_STREAMS_EXCEEDED', error: 'invalid_request' })
    const billing = await openStream(base, { authorization: BILLING })
    t.equal(billing.response.status, 200)
    await second.close()
    await billing.close()

    // Cut the stream, revoke twice, resume from the last id: exactly the two missed events.
    const resumeFrom = stream.lastId!
    await stream.close()
    const a = await signedIn(app)
    const b = await signedIn(app)
    await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: a.tokens.refreshToken } })
    await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(b.tokens.accessToken) })
    await sleep(100)
    const resumed = await openStream(base, { 'last-event-id': resumeFrom })
    t.equal(resumed.response.status, 200, 'the closed stream no longer counts')
    await resumed.until(() => resumed.events().length >= 2 && resumed.lastId !== undefined)
    await sleep(200)
    t.same(resumed.events().map((event) => event.kind), ['session', 'user'], 'the missed events, once each')
    t.match(resumed.events()[1], { userId: b.user.id })
    await resumed.close()

    const badId = await fetch(`${base}/oauth/revocations/stream`, { headers: { authorization: ORDERS, 'last-event-id': 'nope' } })
    t.equal(badId.status, 400)
  })
}
