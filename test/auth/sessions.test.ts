import t from 'tap'
import { SuccessorSeal } from '../../src/auth/successor-seal.js'
import { generateRefreshToken, hashRefreshToken, isAccessTokenRevoked, isWellFormedRefreshToken } from '../../src/auth/token-rules.js'
import { TEST_SECRET, testDatabases } from '../helpers.js'
import { HOUR, LIFETIMES, MINUTE, SECOND, claimsOf, instanceOn, sessionFixture } from './session-fixture.js'

const REUSED = { code: 'AUTH_REFRESH_REUSED' }
const INVALID = { code: 'AUTH_REFRESH_INVALID' }
const mobile = { client: 'mobile' as const }

/** Lets other work run first: `count` event-loop turns, and from 4 on a few milliseconds more. */
async function turns (count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve))
  if (count > 3) await new Promise((resolve) => setTimeout(resolve, count - 3))
}

for (const database of testDatabases()) {
  t.test(`startSession issues a session and a first refresh token (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser(4)
    const issued = await f.sessions.startSession(user, { client: 'web', userAgent: 'test-agent', ip: '192.0.2.1' })
    t.ok(isWellFormedRefreshToken(issued.refreshToken))
    t.has(claimsOf(issued.accessToken), { sub: user.id, sid: issued.sessionId, ver: 4, preferred_username: user.username })
    t.equal(issued.expiresIn, LIFETIMES.accessToken)
    t.equal(issued.refreshExpiresIn, LIFETIMES.refreshIdle)
    t.equal(issued.client, 'web')
    t.same(issued.user, { id: user.id, username: user.username })
    const session = await f.db.session.findUniqueOrThrow({ where: { id: issued.sessionId } })
    t.equal(session.expiresAt.getTime(), f.clock() + LIFETIMES.refreshAbsolute * SECOND)
    t.equal(session.userAgent, 'test-agent')
    t.equal(session.ip, '192.0.2.1')
    const row = await f.tokenRow(issued.refreshToken)
    t.equal(row.tokenHash, hashRefreshToken(issued.refreshToken), 'only the hash is stored')
    t.equal(row.parentId, null)
  })

  t.test(`rotation chain (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    f.clock.advance(10 * MINUTE)
    const second = await f.sessions.refresh(first.refreshToken)
    const secondAt = f.clock()
    f.clock.advance(10 * MINUTE)
    const third = await f.sessions.refresh(second.refreshToken)

    t.equal(second.sessionId, first.sessionId, 'same session (token family)')
    t.equal(third.sessionId, first.sessionId)
    t.equal(new Set([first.refreshToken, second.refreshToken, third.refreshToken]).size, 3, 'a new token each time')
    t.ok(isWellFormedRefreshToken(third.refreshToken))
    t.equal(claimsOf(third.accessToken).sid, first.sessionId)
    t.equal(third.refreshExpiresIn, LIFETIMES.refreshIdle, 'idle lifetime runs again from each rotation')

    const [r1, r2, r3] = await Promise.all([first, second, third].map(async (issued) => f.tokenRow(issued.refreshToken)))
    t.type(r1?.retiredAt, Date, 'the first token is retired by its rotation')
    t.equal(r1?.successorId, r2?.id)
    t.equal(r2?.parentId, r1?.id)
    t.equal(r2?.retiredAt?.getTime(), f.clock())
    t.equal(r2?.successorId, r3?.id)
    t.equal(r2?.expiresAt.getTime(), secondAt + LIFETIMES.refreshIdle * SECOND)
    t.equal(r3?.parentId, r2?.id)
    t.equal(r3?.retiredAt, null)
    t.equal(r3?.successorId, null)
    t.equal(await f.db.refreshToken.count({ where: { sessionId: first.sessionId } }), 3)
    const session = await f.db.session.findUniqueOrThrow({ where: { id: first.sessionId } })
    t.equal(session.lastUsedAt.getTime(), f.clock())
    t.equal(session.revokedAt, null)
  })

  t.test(`unknown tokens and disabled users are refused (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    await t.rejects(f.sessions.refresh(generateRefreshToken()), INVALID)
    const user = await f.createUser()
    const issued = await f.sessions.startSession(user, mobile)
    await f.db.user.update({ where: { id: user.id }, data: { disabled: true } })
    await t.rejects(f.sessions.refresh(issued.refreshToken), INVALID)
    t.equal((await f.tokenRow(issued.refreshToken)).retiredAt, null, 'nothing rotated')
  })

  t.test(`concurrent refreshes of one token all get the same successor (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    const results = await Promise.all(Array.from({ length: 5 }, async () => f.sessions.refresh(first.refreshToken)))
    t.equal(new Set(results.map((result) => result.refreshToken)).size, 1, 'one successor for all')
    const parent = await f.tokenRow(first.refreshToken)
    const children = await f.db.refreshToken.findMany({ where: { parentId: parent.id } })
    t.equal(children.length, 1, 'exactly one child row')
    t.equal(children[0]?.tokenHash, hashRefreshToken(results[0]?.refreshToken ?? ''))
    t.equal(await f.db.refreshToken.count({ where: { sessionId: first.sessionId } }), 2)
    const next = await f.sessions.refresh(results[0]?.refreshToken ?? '')
    t.equal(next.sessionId, first.sessionId, 'the shared successor works')
  })

  t.test(`the predecessor is replayed within grace; after grace it is reuse (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    const second = await f.sessions.refresh(first.refreshToken)
    const parent = await f.tokenRow(first.refreshToken)
    t.equal(new SuccessorSeal(TEST_SECRET).open(parent.successorSealed ?? '', parent.id), second.refreshToken, 'the successor is sealed to its predecessor')
    t.notMatch(parent.successorSealed ?? '', second.refreshToken, 'never stored in the clear')
    t.equal(parent.sealExpiresAt?.getTime(), f.clock() + LIFETIMES.reuseGrace * SECOND)

    f.clock.advance(LIFETIMES.reuseGrace * SECOND - 1)
    const replayed = await f.sessions.refresh(first.refreshToken)
    t.equal(replayed.refreshToken, second.refreshToken, 'the same successor again')
    t.equal(replayed.sessionId, first.sessionId)
    t.equal(claimsOf(replayed.accessToken).sid, first.sessionId)
    t.equal(replayed.refreshExpiresIn, Math.ceil((LIFETIMES.refreshIdle * SECOND - LIFETIMES.reuseGrace * SECOND + 1) / SECOND))
    t.equal(await f.db.refreshToken.count({ where: { sessionId: first.sessionId } }), 2, 'no new token for a replay')

    f.clock.advance(1)
    await t.rejects(f.sessions.refresh(first.refreshToken), REUSED, 'the grace window has passed')
    const session = await f.db.session.findUniqueOrThrow({ where: { id: first.sessionId } })
    t.equal(session.revokedReason, 'reuse')
    t.equal(session.revokedAt?.getTime(), f.clock())
    t.ok(f.revocations.isSessionRevoked(first.sessionId), 'access tokens of the session stop at once')
    t.ok(isAccessTokenRevoked(claimsOf(second.accessToken), f.revocations))
    t.equal(await f.db.revocationEvent.count({ where: { kind: 'session', subject: first.sessionId } }), 1)
    await t.rejects(f.sessions.refresh(second.refreshToken), INVALID, 'the whole family ends')
    await t.rejects(f.sessions.refresh(first.refreshToken), INVALID, 'the session is over: nothing left to revoke')
    t.equal(await f.sessions.eraseExpiredSeals(), 1, 'the eraser removes the seal the revoked session left')
    t.equal(await f.db.refreshToken.count({ where: { sessionId: first.sessionId, successorSealed: { not: null } } }), 0)
  })

  t.test(`a burst that rotated more than once: a token retired within grace gets the family's current token (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    f.clock.advance(SECOND)
    const second = await f.sessions.refresh(first.refreshToken)
    f.clock.advance(SECOND)
    const third = await f.sessions.refresh(second.refreshToken)
    f.clock.advance(SECOND)
    const late = await f.sessions.refresh(first.refreshToken)
    t.equal(late.refreshToken, third.refreshToken, 'two generations back, within grace: the latest successor')
    t.equal(late.sessionId, first.sessionId)
    t.equal((await f.sessions.refresh(second.refreshToken)).refreshToken, third.refreshToken, 'the immediate predecessor too')
    const fourth = await f.sessions.refresh(third.refreshToken)
    t.not(fourth.refreshToken, third.refreshToken, 'the current token still rotates')
    t.equal((await f.sessions.refresh(first.refreshToken)).refreshToken, fourth.refreshToken, 'three generations back, still within its grace')
    t.notOk(f.revocations.isSessionRevoked(first.sessionId))
    t.equal(await f.db.refreshToken.count({ where: { sessionId: first.sessionId, retiredAt: null } }), 1, 'one live token in the family')
    // first was retired 3 s after login; once REFRESH_REUSE_GRACE has passed since then it is reuse.
    f.clock.advance(LIFETIMES.reuseGrace * SECOND - 2 * SECOND)
    await t.rejects(f.sessions.refresh(first.refreshToken), REUSED, 'retired longer ago than the window: reuse')
    t.ok(f.revocations.isSessionRevoked(first.sessionId))
    await t.rejects(f.sessions.refresh(fourth.refreshToken), INVALID, 'the whole session ended')
  })

  t.test(`grace runs from the presented token's own retirement, not its successors' (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    const second = await f.sessions.refresh(first.refreshToken)
    f.clock.advance(LIFETIMES.reuseGrace * SECOND - SECOND)
    await f.sessions.refresh(second.refreshToken)
    f.clock.advance(2 * SECOND)
    await t.rejects(f.sessions.refresh(first.refreshToken), REUSED, 'its successor retired within grace; it did not')
    t.ok(f.revocations.isSessionRevoked(first.sessionId))
  })

  t.test(`a burst whose current token has expired is reuse, as today (${database})`, async (t) => {
    const f = await sessionFixture(t, database, { lifetimes: { ...LIFETIMES, refreshIdle: 5 } })
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    const second = await f.sessions.refresh(first.refreshToken)
    await f.sessions.refresh(second.refreshToken)
    f.clock.advance(6 * SECOND)
    await t.rejects(f.sessions.refresh(first.refreshToken), REUSED)
  })

  t.test(`a burst across two instances sharing the database gets one current token (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const other = instanceOn(f.db, f.clock)
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    const second = await other.sessions.refresh(first.refreshToken)
    const third = await f.sessions.refresh(second.refreshToken)
    for (const instance of [f, other]) {
      for (const token of [first, second]) t.equal((await instance.sessions.refresh(token.refreshToken)).refreshToken, third.refreshToken)
    }
    const results = await Promise.all([first, second, first, second].map(async (token, i) => (i % 2 === 0 ? f : other).sessions.refresh(token.refreshToken)))
    t.same(results.map((r) => r.refreshToken), Array(4).fill(third.refreshToken), 'at once, on both instances')
  })

  t.test(`a session started under an older token version is refused at refresh, even if never marked revoked (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const issued = await f.sessions.startSession(user, mobile)
    const rotated = await f.sessions.refresh(issued.refreshToken)
    t.equal((await f.db.session.findUniqueOrThrow({ where: { id: issued.sessionId } })).tokenVersion, 0, 'the session records its version')
    // What a login that slipped past a password change would leave: a live session of the old version.
    await f.db.user.update({ where: { id: user.id }, data: { tokenVersion: 1 } })
    await t.rejects(f.sessions.refresh(rotated.refreshToken), INVALID)
    t.equal((await f.tokenRow(rotated.refreshToken)).successorId, null, 'nothing rotated')
    f.clock.advance(SECOND)
    await t.rejects(f.sessions.refresh(issued.refreshToken), INVALID, 'its retired token gets no grace either')
  })

  t.test(`startSession writes nothing when the user's version or password moved on or the user is disabled (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser(2)
    await t.rejects(f.sessions.startSession({ ...user, tokenVersion: 1 }, mobile), { name: 'CredentialsChanged' })
    await t.rejects(f.sessions.startSession({ ...user, passwordHash: 'another hash' }, mobile), { name: 'CredentialsChanged' })
    // Disabling raises the token version (a trigger): the version as it is now, so only `disabled` refuses.
    await f.db.user.update({ where: { id: user.id }, data: { disabled: true } })
    const { tokenVersion } = await f.db.user.findUniqueOrThrow({ where: { id: user.id } })
    await t.rejects(f.sessions.startSession({ ...user, tokenVersion, passwordHash: 'not a hash' }, mobile), { name: 'CredentialsChanged' }, 'disabled')
    t.same([await f.db.session.count(), await f.db.refreshToken.count(), await f.db.sessionEvent.count()], [0, 0, 0], 'nothing written')
    await f.db.user.update({ where: { id: user.id }, data: { disabled: false } })
    const issued = await f.sessions.startSession({ ...user, tokenVersion, passwordHash: 'not a hash' }, mobile)
    t.equal(claimsOf(issued.accessToken).ver, tokenVersion)
    t.same([await f.db.session.count(), await f.db.refreshToken.count(), await f.db.sessionEvent.count()], [1, 1, 1], 'the session, its token and its login event')
  })

  t.test(`with no grace window a retired token is reuse at once (${database})`, async (t) => {
    const f = await sessionFixture(t, database, { lifetimes: { ...LIFETIMES, reuseGrace: 0 } })
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    await f.sessions.refresh(first.refreshToken)
    const parent = await f.tokenRow(first.refreshToken)
    t.equal(parent.successorSealed, null, 'nothing sealed')
    t.equal(parent.sealExpiresAt, null)
    await t.rejects(f.sessions.refresh(first.refreshToken), REUSED)
  })

  t.test(`idle lifetime (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    f.clock.advance(LIFETIMES.refreshIdle * SECOND - 1)
    const second = await f.sessions.refresh(first.refreshToken)
    t.same(await f.sessions.listSessions(user.id, first.sessionId).then((list) => list.map((entry) => entry.id)), [first.sessionId])
    f.clock.advance(LIFETIMES.refreshIdle * SECOND)
    await t.rejects(f.sessions.refresh(second.refreshToken), INVALID, 'idle for the whole idle lifetime')
    t.equal((await f.tokenRow(second.refreshToken)).retiredAt, null, 'nothing rotated')
    t.same(await f.sessions.listSessions(user.id, first.sessionId), [], 'an idle session is not listed')
  })

  t.test(`absolute lifetime is never extended (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const start = f.clock()
    const end = start + LIFETIMES.refreshAbsolute * SECOND
    let current = await f.sessions.startSession(user, mobile)
    for (let step = 1; step <= 4; step++) {
      f.clock.advance(50 * MINUTE)
      current = await f.sessions.refresh(current.refreshToken)
      t.ok(f.clock() + current.refreshExpiresIn * SECOND <= end, `rotation ${step} expires by the absolute end`)
      const row = await f.tokenRow(current.refreshToken)
      t.ok(row.expiresAt.getTime() <= end)
    }
    t.equal(current.refreshExpiresIn, 40 * 60, 'the last token is capped at the absolute end')
    t.equal((await f.db.session.findUniqueOrThrow({ where: { id: current.sessionId } })).expiresAt.getTime(), end)
    t.not(await f.sessions.findLiveSession(current.refreshToken), null)
    f.clock.set(end)
    await t.rejects(f.sessions.refresh(current.refreshToken), INVALID, 'session over')
    t.equal(await f.sessions.findLiveSession(current.refreshToken), null)
    t.same(await f.sessions.listSessions(user.id, current.sessionId), [])
  })

  t.test(`revokeSession takes effect on the in-memory list at once (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const other = await f.createUser()
    const one = await f.sessions.startSession(user, mobile)
    f.clock.advance(SECOND)
    const two = await f.sessions.startSession(user, { client: 'web', userAgent: 'browser' })
    t.same((await f.sessions.listSessions(user.id, two.sessionId)).map((entry) => [entry.id, entry.current, entry.userAgent]),
      [[two.sessionId, true, 'browser'], [one.sessionId, false, null]], 'newest first, the current one marked')

    t.equal(await f.sessions.revokeSession(one.sessionId, 'logout'), true)
    t.ok(f.revocations.isSessionRevoked(one.sessionId), 'no poll needed on this instance')
    t.notOk(f.revocations.isSessionRevoked(two.sessionId))
    t.ok(isAccessTokenRevoked(claimsOf(one.accessToken), f.revocations))
    t.notOk(isAccessTokenRevoked(claimsOf(two.accessToken), f.revocations))
    t.equal((await f.db.session.findUniqueOrThrow({ where: { id: one.sessionId } })).revokedReason, 'logout')
    await t.rejects(f.sessions.refresh(one.refreshToken), INVALID)
    t.equal(await f.sessions.findLiveSession(one.refreshToken), null)
    t.equal(await f.sessions.revokeSession(one.sessionId, 'logout'), false, 'already ended')
    t.same((await f.sessions.listSessions(user.id, two.sessionId)).map((entry) => entry.id), [two.sessionId])

    t.equal(await f.sessions.revokeSession(two.sessionId, 'deleted', other.id), false, "another user's session is not touched")
    t.notOk(f.revocations.isSessionRevoked(two.sessionId))
    t.same(await f.sessions.findLiveSession(two.refreshToken), { id: two.sessionId, userId: user.id })
    t.equal(await f.sessions.revokeSession(two.sessionId, 'deleted', user.id), true)
    t.ok(f.revocations.isSessionRevoked(two.sessionId))
    t.equal(await f.sessions.revokeSession('no-such-session', 'logout'), false)
  })

  t.test(`logoutEverywhere and endAllSessions raise the token version (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const bystander = await f.createUser()
    const one = await f.sessions.startSession(user, mobile)
    const two = await f.sessions.startSession(user, mobile)
    const theirs = await f.sessions.startSession(bystander, mobile)

    await f.sessions.logoutEverywhere(user.id)
    t.equal((await f.db.user.findUniqueOrThrow({ where: { id: user.id } })).tokenVersion, 1)
    t.equal(f.revocations.minimumTokenVersion(user.id), 1)
    t.equal(f.revocations.minimumTokenVersion(bystander.id), 0)
    t.ok(isAccessTokenRevoked(claimsOf(one.accessToken), f.revocations))
    t.ok(isAccessTokenRevoked(claimsOf(two.accessToken), f.revocations))
    t.notOk(isAccessTokenRevoked(claimsOf(theirs.accessToken), f.revocations))
    t.same((await f.db.session.findMany({ where: { userId: user.id } })).map((session) => session.revokedReason), ['logout-all', 'logout-all'])
    await t.rejects(f.sessions.refresh(one.refreshToken), INVALID)
    await t.rejects(f.sessions.refresh(two.refreshToken), INVALID)
    await f.sessions.refresh(theirs.refreshToken)

    const fresh = await f.sessions.startSession({ ...user, tokenVersion: 1 }, mobile)
    t.notOk(isAccessTokenRevoked(claimsOf(fresh.accessToken), f.revocations), 'a later login works')
    const renewed = await f.sessions.refresh(fresh.refreshToken)
    t.equal(claimsOf(renewed.accessToken).ver, 1, 'refresh signs the current version')

    // With a change to the user's row, in the same transaction; applied to memory by the time it returns.
    const ended = await f.sessions.endAllSessions(user.id, 'password-reset', { change: { data: { passwordHash: 'reset' } } })
    t.same(ended, { tokenVersion: 2, sessionsEnded: 1 })
    t.equal(f.revocations.minimumTokenVersion(user.id), 2, 'the listener applied it on this instance')
    t.equal((await f.db.user.findUniqueOrThrow({ where: { id: user.id } })).passwordHash, 'reset', 'the change committed with it')
    await t.rejects(f.sessions.refresh(renewed.refreshToken), INVALID)

    // A change whose condition no longer holds: nothing is changed, nothing revoked.
    const survivor = await f.sessions.startSession({ ...user, tokenVersion: 2 }, mobile)
    t.equal(await f.sessions.endAllSessions(user.id, 'disabled', { change: { where: { disabled: true }, data: { disabled: false } } }), null)
    t.equal((await f.db.user.findUniqueOrThrow({ where: { id: user.id } })).tokenVersion, 2)
    t.equal(f.revocations.minimumTokenVersion(user.id), 2)
    await f.sessions.refresh(survivor.refreshToken)
  })

  t.test(`a refresh racing a revocation never leaves a live successor (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const ROUNDS = 16
    let refreshWon = 0
    for (let round = 0; round < ROUNDS; round++) {
      const first = await f.sessions.startSession(user, mobile)
      // Every other round the presented token already has a sealed predecessor in the family.
      const presented = round % 2 === 0 ? first : await f.sessions.refresh(first.refreshToken)
      // Start the revocation a varying number of event-loop turns later, to vary the interleaving.
      const [refreshed, revoked] = await Promise.allSettled([
        f.sessions.refresh(presented.refreshToken),
        turns(round % 8).then(async () => f.sessions.revokeSession(first.sessionId, 'logout'))
      ])
      t.same(revoked, { status: 'fulfilled', value: true }, `round ${round}: the revocation happens`)
      if (refreshed.status === 'fulfilled') {
        refreshWon++
        await t.rejects(f.sessions.refresh(refreshed.value.refreshToken), INVALID, `round ${round}: the successor is dead`)
        t.ok(isAccessTokenRevoked(claimsOf(refreshed.value.accessToken), f.revocations))
      } else {
        t.has(refreshed.reason, INVALID, `round ${round}: the losing refresh is an ordinary refusal`)
      }
      await t.rejects(f.sessions.refresh(presented.refreshToken), INVALID)
      t.ok(f.revocations.isSessionRevoked(first.sessionId))
      // A seal left in a revoked session must not be replayable, even within grace.
      for (const row of await f.db.refreshToken.findMany({ where: { sessionId: first.sessionId, successorSealed: { not: null } } })) {
        const sealed = new SuccessorSeal(TEST_SECRET).open(row.successorSealed ?? '', row.id) ?? ''
        await t.rejects(f.sessions.refresh(sealed), INVALID, `round ${round}: a sealed successor is dead too`)
      }
    }

    // The same with logout-everywhere.
    for (let round = 0; round < 6; round++) {
      const issued = await f.sessions.startSession({ ...user, tokenVersion: round }, mobile)
      const [refreshed, ended] = await Promise.allSettled([f.sessions.refresh(issued.refreshToken), f.sessions.logoutEverywhere(user.id)])
      t.equal(ended.status, 'fulfilled')
      if (refreshed.status === 'fulfilled') {
        await t.rejects(f.sessions.refresh(refreshed.value.refreshToken), INVALID)
        t.ok(isAccessTokenRevoked(claimsOf(refreshed.value.accessToken), f.revocations))
      } else {
        t.has(refreshed.reason, INVALID)
      }
      t.equal(await f.db.session.count({ where: { userId: user.id, revokedAt: null } }), 0)
    }
    t.comment(`refresh committed first in ${refreshWon} of ${ROUNDS} rounds`)
  })

  t.test(`eraseExpiredSeals erases seals once the grace window has passed (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const first = await f.sessions.startSession(user, mobile)
    const second = await f.sessions.refresh(first.refreshToken)
    t.equal(await f.sessions.eraseExpiredSeals(), 0)
    f.clock.advance(LIFETIMES.reuseGrace * SECOND - 1)
    t.equal(await f.sessions.eraseExpiredSeals(), 0, 'still within grace')
    t.not((await f.tokenRow(first.refreshToken)).successorSealed, null)
    f.clock.advance(1)
    t.equal(await f.sessions.eraseExpiredSeals(), 1)
    const parent = await f.tokenRow(first.refreshToken)
    t.equal(parent.successorSealed, null)
    t.equal(parent.sealExpiresAt, null)
    t.equal(parent.successorId, (await f.tokenRow(second.refreshToken)).id, 'the family link stays')
    t.equal(await f.sessions.eraseExpiredSeals(), 0, 'nothing left')
    await t.rejects(f.sessions.refresh(first.refreshToken), REUSED)
  })

  t.test(`prune deletes what no check needs and keeps the rest (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const t0 = f.clock()
    const expired = await f.sessions.startSession(user, mobile) // past its absolute end at the prune
    f.clock.set(t0 + 2 * HOUR)
    const idle = await f.sessions.startSession(user, mobile) // idle-expired, but the session lives
    f.clock.set(t0 + 3 * HOUR)
    const revokedLongAgo = await f.sessions.startSession(user, mobile)
    await f.sessions.revokeSession(revokedLongAgo.sessionId, 'logout')
    const live = await f.sessions.startSession(user, mobile)
    const live2 = await f.sessions.refresh(live.refreshToken) // live's first token retired at +3h
    f.clock.set(t0 + 3 * HOUR + 50 * MINUTE)
    const revokedRecently = await f.sessions.startSession(user, mobile)
    await f.sessions.revokeSession(revokedRecently.sessionId, 'logout')
    const live3 = await f.sessions.refresh(live2.refreshToken) // retired 10 minutes before the prune
    f.clock.set(t0 + LIFETIMES.refreshAbsolute * SECOND)

    const result = await f.sessions.prune()
    t.same(result, { sealsErased: 2, tokensDeleted: 1, sessionsDeleted: 2, eventsDeleted: 1, sessionsExpired: 1, sessionEventsDeleted: 0 })

    const sessions = new Set((await f.db.session.findMany({ select: { id: true } })).map((session) => session.id))
    t.notOk(sessions.has(expired.sessionId), 'past its absolute end: deleted')
    t.notOk(sessions.has(revokedLongAgo.sessionId), 'revoked longer than an access token lives: deleted')
    t.ok(sessions.has(revokedRecently.sessionId), 'revoked recently: kept (its refresh tokens must still be refused)')
    t.ok(sessions.has(idle.sessionId), 'idle but not past its absolute end: kept')
    t.ok(sessions.has(live.sessionId))
    t.equal(await f.db.refreshToken.count({ where: { sessionId: { in: [expired.sessionId, revokedLongAgo.sessionId] } } }), 0, "deleted sessions' tokens go too")

    const hashes = new Set((await f.db.refreshToken.findMany({ select: { tokenHash: true } })).map((row) => row.tokenHash))
    t.notOk(hashes.has(hashRefreshToken(live.refreshToken)), 'retired longer than the idle lifetime: deleted')
    t.ok(hashes.has(hashRefreshToken(live2.refreshToken)), 'retired recently: kept as reuse evidence')
    t.ok(hashes.has(hashRefreshToken(live3.refreshToken)), 'current token kept')
    t.ok(hashes.has(hashRefreshToken(idle.refreshToken)), 'expired token of a live session kept')
    t.ok(hashes.has(hashRefreshToken(revokedRecently.refreshToken)))
    t.equal(await f.db.refreshToken.count({ where: { successorSealed: { not: null } } }), 0, 'seals past grace erased')

    const events = await f.db.revocationEvent.findMany()
    t.same(events.map((event) => event.subject), [revokedRecently.sessionId], 'only still-relevant events remain')

    await t.rejects(f.sessions.refresh(revokedRecently.refreshToken), INVALID)
    await t.rejects(f.sessions.refresh(idle.refreshToken), INVALID)
    t.same(await f.sessions.prune(), { sealsErased: 0, tokensDeleted: 0, sessionsDeleted: 0, eventsDeleted: 0, sessionsExpired: 0, sessionEventsDeleted: 0 }, 'a second prune finds nothing')
    const next = await f.sessions.refresh(live3.refreshToken)
    t.equal(next.sessionId, live.sessionId, 'the live session still works')
    await t.rejects(f.sessions.refresh(live2.refreshToken), REUSED, 'a kept retired token is still reuse evidence')
  })
}
