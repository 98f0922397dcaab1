// Each query of src/db/session-store.ts on each provider: what it reads (converted: times as epoch
// ms, counts as numbers) and what it writes, including that a refused rotation writes nothing.
import { randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import { hashRefreshToken } from '../../src/auth/token-rules.js'
import { type Rotation, type SessionStart, SessionStore } from '../../src/db/session-store.js'
import { sessionFixture } from '../auth/session-fixture.js'
import { testDatabases } from '../helpers.js'

const phone = { client: 'mobile' as const, ip: '198.51.100.1', userAgent: 'phone/1' }

for (const database of testDatabases()) {
  async function setup (t: Test) {
    const f = await sessionFixture(t, database)
    const store = new SessionStore(f.db)
    const user = await f.createUser()
    const issued = await f.sessions.startSession(user, phone)
    const token = await f.tokenRow(issued.refreshToken)
    /** A rotation of the session's login token, as SessionService.rotate would ask for it. */
    const rotation = (changes: Partial<Rotation> = {}): Rotation => ({
      tokenId: token.id,
      sessionId: issued.sessionId,
      userId: user.id,
      refreshCount: 0,
      successorId: randomUUID(),
      successorHash: hashRefreshToken(randomUUID()),
      successorExpiresAt: new Date(f.clock() + 3600_000),
      sealed: 'sealed successor',
      sealExpiresAt: new Date(f.clock() + 10_000),
      at: new Date(f.clock() + 1000),
      newClient: null,
      ...changes
    })
    return { f, store, user, issued, token, rotation }
  }

  t.test(`startSession: all of it while the user's row is as read, nothing otherwise (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const store = new SessionStore(f.db)
    const user = await f.createUser(3)
    const start = (changes: Partial<SessionStart> = {}): SessionStart => ({
      userId: user.id,
      tokenVersion: 3,
      passwordHash: 'not a hash',
      sessionId: randomUUID(),
      client: 'web',
      ip: '198.51.100.7',
      userAgent: null,
      dpopJkt: 'thumbprint',
      at: new Date(f.clock()),
      expiresAt: new Date(f.clock() + 4 * 3600_000),
      tokenId: randomUUID(),
      tokenHash: hashRefreshToken(randomUUID()),
      tokenExpiresAt: new Date(f.clock() + 3600_000),
      ...changes
    })
    const written = async () => [await f.db.session.count(), await f.db.refreshToken.count(), await f.db.sessionEvent.count()]

    t.equal(await store.startSession(start({ tokenVersion: 2 })), false, 'the token version moved on: refused')
    t.equal(await store.startSession(start({ passwordHash: 'another hash' })), false, 'the password changed: refused')
    t.equal(await store.startSession(start({ userId: randomUUID() })), false, 'no such user: refused')
    // Disabling raises the token version (a trigger): the version as it is now, so only `disabled` refuses.
    await f.db.user.update({ where: { id: user.id }, data: { disabled: true } })
    const { tokenVersion } = await f.db.user.findUniqueOrThrow({ where: { id: user.id } })
    t.equal(await store.startSession(start({ tokenVersion })), false, 'the user is disabled: refused')
    t.same(await written(), [0, 0, 0], 'and nothing written')
    await f.db.user.update({ where: { id: user.id }, data: { disabled: false } })

    const s = start({ tokenVersion })
    t.equal(await store.startSession(s), true, 'as read: started')
    t.same(await f.db.session.findUniqueOrThrow({ where: { id: s.sessionId } }), {
      id: s.sessionId, userId: user.id, client: 'web', userAgent: null, ip: '198.51.100.7', createdAt: s.at, lastUsedAt: s.at, expiresAt: s.expiresAt,
      revokedAt: null, revokedReason: null, tokenVersion, refreshCount: 0, lastIp: '198.51.100.7', lastUserAgent: null, dpopJkt: 'thumbprint'
    })
    t.same(await f.db.refreshToken.findUniqueOrThrow({ where: { id: s.tokenId } }), {
      id: s.tokenId, sessionId: s.sessionId, tokenHash: s.tokenHash, parentId: null, createdAt: s.at, expiresAt: s.tokenExpiresAt,
      retiredAt: null, successorId: null, successorSealed: null, sealExpiresAt: null
    })
    t.same((await f.db.sessionEvent.findMany({ where: { sessionId: s.sessionId } })).map(({ userId, type, at, ip, userAgent, reason }) => ({ userId, type, at, ip, userAgent, reason })),
      [{ userId: user.id, type: 'login', at: s.at, ip: '198.51.100.7', userAgent: null, reason: null }])
    t.equal(await store.startSession(start({ tokenVersion, passwordHash: null })), true, 'no password checked: only the version and enabled')
    t.same(await written(), [2, 2, 2])

    // Inside a transaction: the guard sees the transaction's own change of the row.
    const inside = start({ tokenVersion: tokenVersion + 1 })
    t.equal(await f.db.$transaction(async (tx) => {
      await tx.user.update({ where: { id: user.id }, data: { tokenVersion: tokenVersion + 1 } })
      return store.startSession(inside, tx)
    }), true, 'in the caller\'s transaction, after its change: started')
    t.equal(await f.db.$transaction(async (tx) => store.startSession(start({ tokenVersion }), tx)), false, 'in a transaction, a stale version: refused')
    t.same(await written(), [3, 3, 3])
    t.equal((await f.db.session.findUniqueOrThrow({ where: { id: inside.sessionId } })).tokenVersion, tokenVersion + 1)
  })

  t.test(`findPresentedToken: the token with its session, user and successor, converted (${database})`, async (t) => {
    const { f, store, user, issued, token, rotation } = await setup(t)
    t.equal(await store.findPresentedToken(hashRefreshToken('never issued')), null, 'unknown hash: null')
    const found = await store.findPresentedToken(token.tokenHash)
    t.same(found, {
      id: token.id,
      retiredAt: null,
      expiresAt: token.expiresAt.getTime(),
      successorSealed: null,
      client: 'mobile',
      session: {
        id: issued.sessionId,
        revokedAt: null,
        revokedReason: null,
        expiresAt: (await f.db.session.findUniqueOrThrow({ where: { id: issued.sessionId } })).expiresAt.getTime(),
        tokenVersion: 0,
        refreshCount: 0,
        // No refresh yet: the last client is the login's.
        lastIp: phone.ip,
        lastUserAgent: phone.userAgent,
        dpopJkt: null
      },
      user: { id: user.id, username: user.username, tokenVersion: 0, disabled: false },
      successor: null
    })
    t.equal(typeof found?.expiresAt, 'number', 'times are numbers, whatever the driver returns')

    const r = rotation({ newClient: { ip: '203.0.113.9', userAgent: 'laptop/2' } })
    t.equal(await store.rotate(r), true)
    const retired = await store.findPresentedToken(token.tokenHash)
    t.equal(retired?.retiredAt, r.at.getTime())
    t.equal(retired?.successorSealed, 'sealed successor')
    t.same(retired?.successor, { id: r.successorId, retiredAt: null, expiresAt: r.successorExpiresAt.getTime() })
    t.same([retired?.session.refreshCount, retired?.session.lastIp, retired?.session.lastUserAgent], [1, '203.0.113.9', 'laptop/2'], 'counted, and the new client is the last')
    await f.db.user.update({ where: { id: user.id }, data: { disabled: true } })
    t.same((await store.findPresentedToken(token.tokenHash))?.user.disabled, true, 'disabled reads as a boolean')
  })

  t.test(`findCurrentToken: the one unretired token with its predecessor's seal (${database})`, async (t) => {
    const { store, issued, token, rotation } = await setup(t)
    t.equal(await store.findCurrentToken(issued.sessionId), null, 'the login token has no predecessor: none')
    const r = rotation()
    await store.rotate(r)
    t.same(await store.findCurrentToken(issued.sessionId), { expiresAt: r.successorExpiresAt.getTime(), parentId: token.id, sealed: 'sealed successor' })
    t.equal(await store.findCurrentToken(randomUUID()), null, 'unknown session: none')
  })

  t.test(`rotate: all of it when the session is as read, nothing otherwise (${database})`, async (t) => {
    const { f, store, user, issued, token, rotation } = await setup(t)
    const snapshot = async () => ({
      session: await f.db.session.findUniqueOrThrow({ where: { id: issued.sessionId }, select: { refreshCount: true, lastIp: true, lastUserAgent: true, lastUsedAt: true } }),
      tokens: await f.db.refreshToken.findMany({ where: { sessionId: issued.sessionId }, orderBy: { createdAt: 'asc' }, select: { id: true, retiredAt: true, successorId: true } }),
      events: (await f.db.sessionEvent.findMany({ where: { sessionId: issued.sessionId }, orderBy: { id: 'asc' } })).map((event) => [event.type, event.ip, event.userAgent])
    })
    const before = await snapshot()

    t.equal(await store.rotate(rotation({ refreshCount: 1 })), false, 'a count that moved since it was read: refused')
    t.same(await snapshot(), before, 'and nothing written')

    await f.db.user.update({ where: { id: user.id }, data: { tokenVersion: 1 } })
    t.equal(await store.rotate(rotation()), false, 'an outdated session (user token version above the session\'s): refused')
    t.same(await snapshot(), before, 'and nothing written')
    await f.db.user.update({ where: { id: user.id }, data: { tokenVersion: 0 } })

    const r = rotation({ newClient: { ip: '203.0.113.9', userAgent: null } })
    t.equal(await store.rotate(r), true, 'as read: rotated')
    const after = await snapshot()
    t.same(after.session, { refreshCount: 1, lastIp: '203.0.113.9', lastUserAgent: null, lastUsedAt: r.at })
    t.same(after.tokens, [{ id: token.id, retiredAt: r.at, successorId: r.successorId }, { id: r.successorId, retiredAt: null, successorId: null }])
    t.same(after.events, [['login', phone.ip, phone.userAgent], ['refresh-new-client', '203.0.113.9', null]], 'the new client recorded')
    const successor = await f.db.refreshToken.findUniqueOrThrow({ where: { id: r.successorId } })
    t.same([successor.tokenHash, successor.parentId, successor.expiresAt], [r.successorHash, token.id, r.successorExpiresAt])

    t.equal(await store.rotate(rotation({ refreshCount: 1 })), false, 'the same token again (retired): refused')
    t.same(await snapshot(), after, 'and nothing written')

    const next = rotation({ tokenId: r.successorId, refreshCount: 1 })
    t.equal(await store.rotate(next), true, 'the successor rotates, from the same client: no event')
    t.same((await snapshot()).events.length, 2)
    t.same((await snapshot()).session.lastIp, '203.0.113.9', 'the last client stays')

    await f.sessions.revokeSession(issued.sessionId, 'logout')
    const revoked = await snapshot()
    t.equal(await store.rotate(rotation({ tokenId: next.successorId, refreshCount: 2 })), false, 'a revoked session: refused')
    t.same(await snapshot(), revoked, 'and nothing written (its token not retired either)')
  })

  t.test(`recordExpiry: writes the session's expired event once (${database})`, async (t) => {
    const { f, store, user, issued } = await setup(t)
    const at = new Date(f.clock() + 5000)
    t.equal(await store.recordExpiry(issued.sessionId, user.id, at), true)
    t.equal(await store.recordExpiry(issued.sessionId, user.id, new Date(f.clock() + 9000)), false, 'a second time: nothing')
    const expired = await f.db.sessionEvent.findMany({ where: { sessionId: issued.sessionId, type: 'expired' } })
    t.same(expired.map((event) => event.at), [at])
  })
}
