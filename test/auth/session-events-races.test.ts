// Session history under races: the events and the rotation count must agree with what happened,
// whichever of two concurrent changes commits first.
import t from 'tap'
import { testDatabases } from '../helpers.js'
import { sessionFixture } from './session-fixture.js'

const mobile = { client: 'mobile' as const, ip: '198.51.100.1', userAgent: 'phone/1' }
const moved = { ip: '198.51.100.2', userAgent: 'phone/2' }

/** Lets other work run first: `count` event-loop turns. */
async function turns (count: number): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve))
}

for (const database of testDatabases()) {
  t.test(`concurrent refreshes of one token: one rotation counted and recorded, the rest replays (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    for (let round = 0; round < 4; round++) {
      const first = await f.sessions.startSession(user, mobile)
      const results = await Promise.all(Array.from({ length: 5 }, async () => f.sessions.refresh(first.refreshToken, moved)))
      t.equal(new Set(results.map((issued) => issued.refreshToken)).size, 1, `round ${round}: one successor for all`)
      const session = await f.db.session.findUniqueOrThrow({ where: { id: first.sessionId } })
      t.equal(session.refreshCount, 1, `round ${round}: one rotation counted, however many raced`)
      const types = (await f.db.sessionEvent.findMany({ where: { sessionId: first.sessionId }, orderBy: { id: 'asc' } })).map((event) => event.type)
      t.same(types, ['login', 'refresh-new-client', 'replay', 'replay', 'replay', 'replay'], `round ${round}: the rotation and four replays`)
    }
  })

  t.test(`refresh racing logout: both recorded, consistently with who won (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const outcomes = new Set<string>()
    /** One round: the refresh and the logout, started as `start` says; the history must match the winner. */
    async function round (label: string, start: (refreshToken: string, sessionId: string) => [Promise<unknown>, Promise<boolean>]): Promise<boolean> {
      const issued = await f.sessions.startSession(user, mobile)
      const [refreshed, loggedOut] = await Promise.allSettled(start(issued.refreshToken, issued.sessionId))
      t.equal(loggedOut.status === 'fulfilled' && loggedOut.value, true, `${label}: the logout ends the session`)
      const rotated = refreshed.status === 'fulfilled'
      outcomes.add(rotated ? 'refresh first' : 'logout first')
      const session = await f.db.session.findUniqueOrThrow({ where: { id: issued.sessionId } })
      const events = await f.db.sessionEvent.findMany({ where: { sessionId: issued.sessionId }, orderBy: [{ at: 'asc' }, { id: 'asc' }] })
      t.equal(session.refreshCount, rotated ? 1 : 0, `${label}: counted only if it rotated`)
      t.same(events.map((event) => event.type), rotated ? ['login', 'refresh-new-client', 'logout'] : ['login', 'logout'], `${label}: history matches`)
      t.equal(await f.db.refreshToken.count({ where: { sessionId: issued.sessionId } }), rotated ? 2 : 1, `${label}: control: a successor exactly when it rotated`)
      return rotated
    }
    const logout = async (sessionId: string) => f.sessions.revokeSession(sessionId, 'logout', undefined, moved)

    // Each side forced once, so both branches above are checked whichever way the free races go.
    t.equal(await round('refresh committed first', (token, sessionId) => {
      const refreshed = f.sessions.refresh(token, moved)
      return [refreshed, refreshed.then(async () => logout(sessionId))]
    }), true, 'forced: the refresh that committed first rotated')
    t.equal(await round('logout committed first', (token, sessionId) => {
      const loggedOut = logout(sessionId)
      return [loggedOut.then(async () => f.sessions.refresh(token, moved)), loggedOut]
    }), false, 'forced: a refresh after the logout is refused')
    // The refresh has read its token as current when the logout commits: its rotation must lose.
    t.equal(await round('logout between the refresh\'s read and its rotation', (token, sessionId) => {
      const service = f.sessions as unknown as { findPresentedToken: (...args: unknown[]) => Promise<unknown> }
      const read = service.findPresentedToken
      let loggedOut: Promise<boolean> | undefined
      service.findPresentedToken = async function (this: unknown, ...args: unknown[]) {
        const found = await read.apply(this, args)
        service.findPresentedToken = read
        loggedOut = logout(sessionId)
        await loggedOut
        return found
      }
      const refreshed = f.sessions.refresh(token, moved)
      return [refreshed, refreshed.then(() => loggedOut!, () => loggedOut!)]
    }), false, 'forced: a refresh overtaken by the logout is refused')

    for (let free = 0; free < 12; free++) {
      await round(`free round ${free}`, (token, sessionId) => [
        f.sessions.refresh(token, moved),
        turns(free % 4).then(async () => logout(sessionId))
      ])
    }
    t.same([...outcomes].sort(), ['logout first', 'refresh first'], 'both outcomes were checked')
  })

  t.test(`refresh racing logout-everywhere: each session's end recorded once (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    for (let round = 0; round < 8; round++) {
      const one = await f.sessions.startSession({ ...user, tokenVersion: round }, mobile)
      const two = await f.sessions.startSession({ ...user, tokenVersion: round }, mobile)
      const [refreshed] = await Promise.allSettled([
        f.sessions.refresh(one.refreshToken, moved),
        turns(round % 4).then(async () => f.sessions.logoutEverywhere(user.id)),
        f.sessions.revokeSession(two.sessionId, 'logout')
      ])
      for (const session of [one, two]) {
        const ends = await f.db.sessionEvent.count({ where: { sessionId: session.sessionId, type: { in: ['logout', 'revoked'] } } })
        t.equal(ends, 1, `round ${round}: one end event per session`)
      }
      const count = (await f.db.session.findUniqueOrThrow({ where: { id: one.sessionId } })).refreshCount
      const newClient = await f.db.sessionEvent.count({ where: { sessionId: one.sessionId, type: 'refresh-new-client' } })
      t.equal(count, refreshed.status === 'fulfilled' ? 1 : 0, `round ${round}: count matches the outcome`)
      t.equal(newClient, count, `round ${round}: a new-client event exactly when it rotated`)
    }
  })

  t.test(`a user deleted: history goes with them (${database})`, async (t) => {
    const f = await sessionFixture(t, database)
    const user = await f.createUser()
    const issued = await f.sessions.startSession(user, mobile)
    await f.sessions.revokeSession(issued.sessionId, 'logout')
    t.equal(await f.db.sessionEvent.count({ where: { userId: user.id } }), 2)
    await f.db.user.delete({ where: { id: user.id } })
    t.equal(await f.db.sessionEvent.count({ where: { userId: user.id } }), 0)
  })
}
