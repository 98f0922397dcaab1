import { randomUUID } from 'node:crypto'
import t from 'tap'
import { type RevocationEventRecord, RevocationList } from '../../src/auth/revocation-list.js'
import { isAccessTokenRevoked } from '../../src/auth/token-rules.js'
import { testClock, testDatabases } from '../helpers.js'
import { LIFETIMES, SECOND, claimsOf, instanceOn, sessionFixture } from './session-fixture.js'

const mobile = { client: 'mobile' as const }
/** How long a revocation stays relevant after it is made (see revocationRelevantUntil). */
const RELEVANT_MS = (LIFETIMES.accessToken + 60) * SECOND

for (const database of testDatabases()) {
  t.test(`a revocation made on one instance reaches another by polling (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const a = { sessions: f.sessions, revocations: f.revocations }
    const b = instanceOn(f.db, f.clock)
    await b.revocations.load()
    let announced = 0
    a.revocations.onRecorded(() => { announced++ })
    let heardOnB = 0
    b.revocations.onRecorded(() => { heardOnB++ })

    const user = await f.createUser()
    const session = await a.sessions.startSession(user, mobile)
    const other = await a.sessions.startSession(user, mobile)
    t.equal(await a.sessions.revokeSession(session.sessionId, 'logout'), true)
    t.equal(announced, 1, 'the committed revocation is announced once')
    t.ok(a.revocations.isSessionRevoked(session.sessionId), 'effective at once where it was made')
    t.notOk(b.revocations.isSessionRevoked(session.sessionId), 'the other instance has not heard yet')
    await t.rejects(b.sessions.refresh(session.refreshToken), { code: 'AUTH_REFRESH_INVALID' }, 'its refresh tokens already fail everywhere (the database decides)')
    await b.revocations.poll()
    t.ok(b.revocations.isSessionRevoked(session.sessionId), 'after polling, the other instance refuses its access tokens')
    t.notOk(b.revocations.isSessionRevoked(other.sessionId))
    t.equal(heardOnB, 0, 'what is learnt by polling is not announced again')

    await a.sessions.logoutEverywhere(user.id)
    t.equal(announced, 2)
    t.equal(b.revocations.minimumTokenVersion(user.id), 0)
    await b.revocations.poll()
    t.equal(b.revocations.minimumTokenVersion(user.id), 1)
    t.ok(isAccessTokenRevoked(claimsOf(other.accessToken), b.revocations))

    t.equal(await a.sessions.revokeSession(session.sessionId, 'logout'), false)
    t.equal(announced, 2, 'nothing announced when nothing was revoked')

    // Polling again (the cursor lags behind recent events) changes nothing.
    await Promise.all([b.revocations.poll(), b.revocations.poll()])
    t.same(b.revocations.size, { sessions: 1, users: 1 })
  })

  t.test(`polling finds an event that commits after a higher-numbered one (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const b = instanceOn(f.db, f.clock)
    const event = (seq: number, subject: string) => ({
      seq, kind: 'session', subject, tokenVersion: null, createdAt: new Date(f.clock()), relevantUntil: new Date(f.clock() + RELEVANT_MS)
    })
    const early = randomUUID()
    const late = randomUUID()
    await f.db.revocationEvent.create({ data: event(100, early) })
    await b.revocations.poll()
    t.ok(b.revocations.isSessionRevoked(early))
    // On PostgreSQL a lower sequence number can commit after a higher one has been read.
    await f.db.revocationEvent.create({ data: event(50, late) })
    f.clock.advance(5 * SECOND)
    await b.revocations.poll()
    t.ok(b.revocations.isSessionRevoked(late), 'not skipped by the cursor')
  })

  t.test(`a poll asked for while one is under way still sees what committed before the ask (${database})`, async (t) => {
    // The doorbell case: instance B is mid-poll when A's revocation commits and A rings; B's answer to
    // the bell must read the log again, not reuse the read that started before the commit.
    const f = await sessionFixture(t, database)
    let queryDone!: () => void
    const firstQueryDone = new Promise<void>((resolve) => { queryDone = resolve })
    let releaseFirst!: () => void
    const firstHeld = new Promise<void>((resolve) => { releaseFirst = resolve })
    let queries = 0
    const slowDb = {
      revocationEvent: {
        findMany: async (args: Parameters<typeof f.db.revocationEvent.findMany>[0]) => {
          const result = await f.db.revocationEvent.findMany(args)
          if (++queries === 1) {
            queryDone()
            await firstHeld
          }
          return result
        }
      }
    }
    const b = new RevocationList(slowDb as unknown as typeof f.db, f.clock)
    const user = await f.createUser()
    const session = await f.sessions.startSession(user, mobile)

    const underWay = b.poll()
    await firstQueryDone
    await f.sessions.revokeSession(session.sessionId, 'logout')
    const bell = b.poll()
    const anotherBell = b.poll()
    releaseFirst()
    await Promise.all([underWay, bell, anotherBell])
    t.ok(b.isSessionRevoked(session.sessionId), 'the revocation committed before the second poll was asked for is seen')
    t.equal(queries, 2, 'calls made during one read share a single follow-up read')
  })

  t.test(`load() at start picks up relevant events and skips expired ones (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const bystander = await f.createUser()
    const old = await f.sessions.startSession(user, mobile)
    const recent = await f.sessions.startSession(user, mobile)
    const t0 = f.clock()
    await f.sessions.revokeSession(old.sessionId, 'logout')
    await f.sessions.logoutEverywhere(bystander.id)
    f.clock.set(t0 + 500 * SECOND)
    await f.sessions.revokeSession(recent.sessionId, 'logout')
    await f.sessions.logoutEverywhere(user.id)
    f.clock.set(t0 + RELEVANT_MS)

    const started = instanceOn(f.db, f.clock).revocations
    await started.load()
    t.notOk(started.isSessionRevoked(old.sessionId), 'expired: every access token it concerned is dead')
    t.equal(started.minimumTokenVersion(bystander.id), 0, 'expired too')
    t.ok(started.isSessionRevoked(recent.sessionId))
    t.equal(started.minimumTokenVersion(user.id), 1)
    t.same(started.size, { sessions: 1, users: 1 })

    // prune: forgets entries once relevantUntil has passed, not before.
    f.clock.set(t0 + 500 * SECOND + RELEVANT_MS - 1)
    started.prune()
    t.same(started.size, { sessions: 1, users: 1 })
    f.clock.advance(1)
    started.prune()
    t.same(started.size, { sessions: 0, users: 0 })
    t.notOk(started.isSessionRevoked(recent.sessionId))
    t.equal(started.minimumTokenVersion(user.id), 0)
  })
}

t.test('apply: the minimum version only rises, expired events are ignored', async (t) => {
  const clock = testClock()
  // apply() never touches the database.
  const list = new RevocationList(null as never, clock)
  const userEvent = (tokenVersion: number, relevantFor: number): RevocationEventRecord => ({
    seq: 1, kind: 'user', subject: 'user-1', tokenVersion, createdAt: new Date(clock()), relevantUntil: new Date(clock() + relevantFor)
  })
  list.apply(userEvent(3, 1000))
  t.equal(list.minimumTokenVersion('user-1'), 3)
  list.apply(userEvent(2, 5000))
  t.equal(list.minimumTokenVersion('user-1'), 3, 'an older version does not lower it')
  list.apply(userEvent(3, 2000))
  clock.advance(1000)
  list.prune()
  t.equal(list.minimumTokenVersion('user-1'), 3, 'a later event for the same version keeps it longer')
  list.apply(userEvent(5, 500))
  t.equal(list.minimumTokenVersion('user-1'), 5)
  list.apply(userEvent(9, 0))
  t.equal(list.minimumTokenVersion('user-1'), 5, 'an event already past relevance is ignored')
  list.apply({ ...userEvent(7, 1000), tokenVersion: null })
  t.equal(list.minimumTokenVersion('user-1'), 5, 'a user event without a version is ignored')
  t.equal(list.minimumTokenVersion('user-2'), 0)

  const sessionEvent = (relevantFor: number): RevocationEventRecord => ({
    seq: 2, kind: 'session', subject: 'session-1', tokenVersion: null, createdAt: new Date(clock()), relevantUntil: new Date(clock() + relevantFor)
  })
  list.apply(sessionEvent(2000))
  list.apply(sessionEvent(1000))
  clock.advance(1500)
  list.prune()
  t.ok(list.isSessionRevoked('session-1'), 'the later relevantUntil wins')
  t.equal(list.minimumTokenVersion('user-1'), 0, 'forgotten after relevantUntil')
  clock.advance(500)
  list.prune()
  t.notOk(list.isSessionRevoked('session-1'))
  list.apply(sessionEvent(0))
  t.notOk(list.isSessionRevoked('session-1'))
  list.apply({ ...sessionEvent(1000), kind: 'something-else', subject: 'session-2' })
  t.same(list.size, { sessions: 0, users: 0 }, 'unknown kinds are ignored')
})
