// Several browser tabs of one web session share one cookie jar and refresh at once: a tab's request
// that left with an older cookie may arrive after two rotations (another tab already got the new
// cookie and refreshed again). Within REFRESH_REUSE_GRACE every such request gets the family's
// current token, on whichever instance it lands; older than that, it is reuse.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { TEST_ORIGIN, bearer, json, register, testApp, testClock, testDatabases } from '../helpers.js'

const COOKIE = '__Secure-refresh_token'
const CSRF_HEADERS = { origin: TEST_ORIGIN, 'x-requested-with': 'fetch' }

function cookieOf (response: LightMyRequestResponse): string | undefined {
  return (response.cookies as Array<{ name: string, value: string }>).find((cookie) => cookie.name === COOKIE)?.value
}

async function tabRefresh (app: FastifyInstance, cookie: string) {
  const response = await app.inject({ method: 'POST', url: '/auth/refresh', headers: CSRF_HEADERS, cookies: { [COOKIE]: cookie } })
  return { response, cookie: cookieOf(response) }
}

for (const database of testDatabases()) {
  t.test(`three tabs on two instances: a request sent with the old cookie after two rotations gets the current one (${database})`, async (t) => {
    const clock = testClock()
    const a = await testApp(t, { database, clock })
    const b = await testApp(t, { database, clock, sameDatabaseAs: a })
    const account = await register(a)
    const loggedIn = await a.inject({ method: 'POST', url: '/auth/login', payload: { username: account.username, password: account.password, client: 'web' } })
    let jar = cookieOf(loggedIn)!

    for (let round = 0; round < 3; round++) {
      const sentWithOldCookie = jar
      const tab1 = await tabRefresh(a, jar)
      t.equal(tab1.response.statusCode, 200, 'tab 1 rotates')
      jar = tab1.cookie!
      const tab2 = await tabRefresh(b, jar)
      t.equal(tab2.response.statusCode, 200, 'tab 2 rotates again, on the other instance')
      jar = tab2.cookie!
      clock.advance(500)
      const tab3 = await tabRefresh(round % 2 === 0 ? a : b, sentWithOldCookie)
      t.equal(tab3.response.statusCode, 200, 'tab 3, two rotations late, is not reuse')
      t.equal(tab3.cookie, jar, "tab 3 gets the family's current cookie")
      const me = await b.inject({ method: 'GET', url: '/auth/me', headers: bearer(json(tab3.response).accessToken) })
      t.equal(me.statusCode, 200, "tab 3's fresh access token works")

      // All three at once with one cookie, spread over both instances: one token for all. (Two
      // SQLite instances in one process cannot overlap: better-sqlite3 waits for a lock synchronously,
      // blocking the other instance's commit; there the burst goes to one instance.)
      const burstOn = database === 'postgresql' ? [a, b, a] : [a, a, a]
      const burst = await Promise.all(burstOn.map(async (app) => tabRefresh(app, jar)))
      t.same(burst.map((tab) => tab.response.statusCode), [200, 200, 200], burst.map((tab) => tab.response.body.slice(0, 80)).join(' | '))
      t.equal(new Set(burst.map((tab) => tab.cookie)).size, 1, 'every tab holds the same cookie')
      jar = burst[0]!.cookie!
      clock.advance(2_000)
    }
    const still = await tabRefresh(a, jar)
    t.equal(still.response.statusCode, 200, 'the session survived every burst')
    jar = still.cookie!

    clock.advance(10_000)
    const late = await tabRefresh(b, cookieOf(loggedIn)!)
    t.equal(late.response.statusCode, 401, 'the login cookie, retired long before the window: reuse')
    t.equal(json(late.response).code, 'AUTH_REFRESH_REUSED')
    const after = await tabRefresh(a, jar)
    t.equal(after.response.statusCode, 401, 'the whole session ended')
  })
}
