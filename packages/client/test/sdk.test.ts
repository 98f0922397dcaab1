// The SDK against the real server (in this process, listening on a free port): single-flight
// refresh, one retry and never a loop, resume after expiry, reuse and revocation, and the storage
// compare-and-swap when two refresh answers arrive out of order. Mobile mode (Node has no cookie jar
// or Web Locks; web mode is tested in real Chromium, browser.test.ts).
import t from 'tap'
import { AuthError, type SessionEndReason, createAuthClient } from '../src/index.js'
import { memoryStorage, recordingFetch, registerUser, startServer, testDatabases, untilExpired } from './support.js'

const STORAGE_KEY = 'auth-server.refresh-token'

for (const database of testDatabases()) {
  t.test(`SDK, mobile mode, on ${database}`, async (t) => {
    t.test('20 concurrent fetches with an expired token: one refresh on the wire, all succeed', async (t) => {
      const server = await startServer(t, database, { ACCESS_TOKEN_TTL: '2' })
      const { username, password } = await registerUser(server.baseUrl)
      const wire = recordingFetch()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage(), fetch: wire.impl, autoRefresh: false })
      t.teardown(() => client.close())
      await client.login(username, password)
      t.equal((await client.fetch('/auth/me')).status, 200)
      await untilExpired(server.baseUrl, wire.lastToken())
      server.resetRefreshes()

      const responses = await Promise.all(Array.from({ length: 20 }, () => client.fetch('/orders')))
      t.same(responses.map((response) => response.status), Array(20).fill(200), 'every request succeeded')
      t.equal(server.refreshes(), 1, 'exactly one refresh reached the server')
    })

    t.test('20 concurrent 401 AUTH_TOKEN_EXPIRED answers: one refresh, each request retried once', async (t) => {
      const server = await startServer(t, database, { ACCESS_TOKEN_TTL: '2' })
      const { username, password } = await registerUser(server.baseUrl)
      const wire = recordingFetch()
      // A client whose clock stands still believes its token is fresh: only the server's 401 tells.
      const frozen = Date.now()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage(), fetch: wire.impl, autoRefresh: false, clock: () => frozen })
      t.teardown(() => client.close())
      await client.login(username, password)
      t.equal((await client.fetch('/auth/me')).status, 200)
      const expired = wire.lastToken()
      await untilExpired(server.baseUrl, expired)
      server.resetRefreshes()
      wire.sentTokens.length = 0

      const responses = await Promise.all(Array.from({ length: 20 }, () => client.fetch('/orders')))
      t.same(responses.map((response) => response.status), Array(20).fill(200), 'every request succeeded on its retry')
      t.equal(server.refreshes(), 1, 'exactly one refresh reached the server')
      t.equal(wire.sentTokens.filter((token) => token === expired).length, 20, 'each request went out once with the expired token')
      t.equal(wire.sentTokens.filter((token) => token !== expired).length, 20, '… and once more with the new one')
    })

    t.test('a second 401 after a fresh token is returned as is: one refresh, one retry, no loop', async (t) => {
      // A resource that refuses every token as expired (say, a service whose clock runs ahead).
      const server = await startServer(t, database, {}, (app) => {
        app.get('/always-expired', { config: { public: true } }, async (_request, reply) =>
          reply.code(401).send({ statusCode: 401, code: 'AUTH_TOKEN_EXPIRED', error: 'Unauthorized', message: 'The access token has expired' }))
      })
      const { username, password } = await registerUser(server.baseUrl)
      const wire = recordingFetch()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage(), fetch: wire.impl, autoRefresh: false })
      t.teardown(() => client.close())
      await client.login(username, password)
      server.resetRefreshes()
      wire.sentTokens.length = 0
      const response = await client.fetch('/always-expired')
      t.equal(response.status, 401)
      t.equal((await response.json()).code, 'AUTH_TOKEN_EXPIRED', 'the second answer, as the server sent it')
      t.equal(wire.sentTokens.length, 2, 'the request went out twice')
      t.not(wire.sentTokens[0], wire.sentTokens[1], 'the retry carried the refreshed token')
      t.equal(server.refreshes(), 1, 'one refresh')
      t.ok(client.user(), 'the session goes on')
    })

    t.test('resume after the access token expired in the background, and after a restart', async (t) => {
      const server = await startServer(t, database, { ACCESS_TOKEN_TTL: '2' })
      const { username, password } = await registerUser(server.baseUrl)
      const storage = memoryStorage()
      const wire = recordingFetch()
      // autoRefresh off: the app was in the background, where its timers did not run.
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage, fetch: wire.impl, autoRefresh: false })
      t.teardown(() => client.close())
      const user = await client.login(username, password)
      await client.fetch('/auth/me')
      await untilExpired(server.baseUrl, wire.lastToken())
      server.resetRefreshes()

      t.same(await client.resume(), user, 'resume answers the user')
      t.equal(server.refreshes(), 1, 'resume refreshed once')
      t.equal((await client.fetch('/orders')).status, 200, 'requests work at once')
      t.equal(server.refreshes(), 1, 'without another refresh')
      t.same(await client.resume(), user, 'a second resume with a fresh token…')
      t.equal(server.refreshes(), 1, '… makes no request')

      // The app was killed: a new client finds the session through the stored refresh token.
      const restarted = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage, autoRefresh: false })
      t.teardown(() => restarted.close())
      t.equal(restarted.user(), null)
      t.same(await restarted.resume(), user)
      t.equal((await restarted.fetch('/orders')).status, 200)

      const empty = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage() })
      t.equal(await empty.resume(), null, 'no stored token: no session, no request')

      // The app starts with a stored token whose session ended while it was closed.
      const lastToken = storage.values.get(STORAGE_KEY)!
      await restarted.logout()
      const deadStorage = memoryStorage()
      deadStorage.values.set(STORAGE_KEY, lastToken)
      const stale = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: deadStorage, autoRefresh: false })
      const staleEnded: SessionEndReason[] = []
      stale.onSessionEnded((reason) => staleEnded.push(reason))
      t.equal(await stale.resume(), null, 'a dead stored token: no session')
      t.same(staleEnded, ['logout'], 'and the app is told why it ended (the server names the logout)')
      t.equal(deadStorage.values.has(STORAGE_KEY), false, 'the dead token is deleted')
    })

    t.test('the timer refreshes before expiry', async (t) => {
      const server = await startServer(t, database, { ACCESS_TOKEN_TTL: '2' })
      const { username, password } = await registerUser(server.baseUrl)
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage() })
      t.teardown(() => client.close())
      await client.login(username, password)
      server.resetRefreshes()
      for (let i = 0; i < 100 && server.refreshes() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50))
      t.equal(server.refreshes(), 1, 'refreshed on its own')
      t.equal((await client.fetch('/orders')).status, 200)
    })

    t.test('a reuse elsewhere: onSessionEnded("reused")', async (t) => {
      const server = await startServer(t, database, { REFRESH_REUSE_GRACE: '0' })
      const { username, password } = await registerUser(server.baseUrl)
      const storage = memoryStorage()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage })
      t.teardown(() => client.close())
      const ended: SessionEndReason[] = []
      const changes: unknown[] = []
      client.onSessionEnded((reason) => ended.push(reason))
      await client.login(username, password)
      client.onChange((user) => changes.push(user))

      // A thief copied the refresh token and used it first.
      const stolen = storage.values.get(STORAGE_KEY)!
      const theft = await fetch(`${server.baseUrl}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: stolen }) })
      t.equal(theft.status, 200, 'setup: the thief refreshed')
      const thiefToken = (await theft.json()).refreshToken

      t.equal(await client.refresh(), false, 'the app\'s refresh is refused')
      t.same(ended, ['reused'])
      t.same(changes, [null], 'onChange: signed out')
      t.equal(client.user(), null)
      t.equal(storage.values.has(STORAGE_KEY), false, 'the dead token is deleted from storage')
      const thiefAgain = await fetch(`${server.baseUrl}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: thiefToken }) })
      t.equal(thiefAgain.status, 401, 'the thief\'s token died with the session')
    })

    t.test('a password changed on another device: this one is told "password-changed"', async (t) => {
      const server = await startServer(t, database, {})
      const { username, password } = await registerUser(server.baseUrl)
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage() })
      t.teardown(() => client.close())
      const ended: SessionEndReason[] = []
      client.onSessionEnded((reason) => ended.push(reason))
      await client.login(username, password)
      const other = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage() })
      t.teardown(() => other.close())
      await other.login(username, password)
      await other.changePassword(password, 'another long passphrase')

      const response = await client.fetch('/orders')
      t.equal(response.status, 401, 'the refused answer is returned')
      t.same(ended, ['password-changed'])
      t.equal(client.user(), null)
      t.ok(other.user(), 'the device that changed it goes on')
    })

    t.test('a session revoked elsewhere: the next request ends it with "revoked"', async (t) => {
      const server = await startServer(t, database, {})
      const { username, password } = await registerUser(server.baseUrl)
      const storage = memoryStorage()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage })
      t.teardown(() => client.close())
      const ended: SessionEndReason[] = []
      client.onSessionEnded((reason) => ended.push(reason))
      await client.login(username, password)
      // Another device of the same user lists the sessions and ends this one.
      const other = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage() })
      t.teardown(() => other.close())
      await other.login(username, password)
      const mine = (await client.sessions()).find((session) => session.current)!
      await other.revokeSession(mine.id)

      const response = await client.fetch('/orders')
      t.equal(response.status, 401, 'the refused answer is returned')
      t.equal((await response.json()).code, 'AUTH_TOKEN_REVOKED')
      t.same(ended, ['revoked'])
      t.equal(client.user(), null)
      t.ok(other.user(), 'the other device goes on')

      const otherEnded: SessionEndReason[] = []
      other.onSessionEnded((reason) => otherEnded.push(reason))
      const own = (await other.sessions()).find((session) => session.current)!
      await other.revokeSession(own.id)
      t.same(otherEnded, ['logout'], 'revoking its own session logs the client out')
      t.equal(other.user(), null)
    })

    t.test('storage compare-and-swap: an older answer arriving last does not overwrite a newer token', async (t) => {
      const server = await startServer(t, database, {})
      const { username, password } = await registerUser(server.baseUrl)
      // Two JavaScript contexts of one app (the app and a background task) share the secure storage.
      const storage = memoryStorage()
      const wireA = recordingFetch()
      const appContext = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage, fetch: wireA.impl, autoRefresh: false })
      t.teardown(() => appContext.close())
      let arrived!: () => void
      const answered = new Promise<void>((resolve) => { arrived = resolve })
      let release!: () => void
      const released = new Promise<void>((resolve) => { release = resolve })
      const wireB = recordingFetch()
      // The background task's refresh answer is slow to reach it (a stalled radio): the server has
      // answered, the client has not read it yet.
      const slowFetch: typeof fetch = async (input, init) => {
        const response = await wireB.impl(input, init)
        if (String(input).endsWith('/auth/refresh')) { arrived(); await released }
        return response
      }
      const backgroundTask = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage, fetch: slowFetch, autoRefresh: false })
      t.teardown(() => backgroundTask.close())

      await appContext.login(username, password)
      const t0 = storage.values.get(STORAGE_KEY)
      const slow = backgroundTask.refresh()
      await answered
      t.equal(await appContext.refresh(), true, 'the app refreshes the same token (within the grace window)')
      t.equal(await appContext.refresh(), true, 'and again')
      const newest = wireA.refreshAnswers[1]!.refreshToken
      t.equal(storage.values.get(STORAGE_KEY), newest, 'storage holds the newest token')

      release()
      t.equal(await slow, true, 'the late answer still resolves the background refresh')
      const late = wireB.refreshAnswers[0]!.refreshToken
      t.not(late, newest, 'setup: the late answer carries an older token')
      t.not(late, t0)
      t.equal(storage.values.get(STORAGE_KEY), newest, 'the late, older token did not overwrite it')
      t.equal((await backgroundTask.fetch('/orders')).status, 200, 'the background task can still make requests')
      const check = await fetch(`${server.baseUrl}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: newest }) })
      t.equal(check.status, 200, 'the stored token is the session\'s current one')
    })

    t.test('logout racing 20 requests that refresh: the session stays ended, nothing is stored again', async (t) => {
      const server = await startServer(t, database, { ACCESS_TOKEN_TTL: '2' })
      const { username, password } = await registerUser(server.baseUrl)
      const storage = memoryStorage()
      const wire = recordingFetch()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage, fetch: wire.impl, autoRefresh: false })
      t.teardown(() => client.close())
      const ended: SessionEndReason[] = []
      client.onSessionEnded((reason) => ended.push(reason))
      await client.login(username, password)
      await client.fetch('/auth/me')
      await untilExpired(server.baseUrl, wire.lastToken())
      const requests = Array.from({ length: 20 }, () => client.fetch('/orders'))
      await client.logout()
      await Promise.all(requests)
      await new Promise((resolve) => setTimeout(resolve, 100))
      t.equal(storage.values.has(STORAGE_KEY), false, 'no refresh token in storage')
      t.equal(client.user(), null)
      t.same(ended, ['logout'], 'ended once, by the logout')
      t.equal((await client.fetch('/orders')).status, 401, 'later requests go without a token')
    })

    t.test('password change racing 20 requests that refresh: this device stays signed in', async (t) => {
      const server = await startServer(t, database, { ACCESS_TOKEN_TTL: '2' })
      const { username, password } = await registerUser(server.baseUrl)
      const storage = memoryStorage()
      const wire = recordingFetch()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage, fetch: wire.impl, autoRefresh: false })
      t.teardown(() => client.close())
      const ended: SessionEndReason[] = []
      client.onSessionEnded((reason) => ended.push(reason))
      await client.login(username, password)
      await client.fetch('/auth/me')
      await untilExpired(server.baseUrl, wire.lastToken())
      const requests = Array.from({ length: 20 }, () => client.fetch('/orders'))
      const changed = client.changePassword(password, 'a brand new passphrase')
      const statuses = (await Promise.all(requests)).map((response) => response.status)
      await changed
      t.same(statuses, Array(20).fill(200), 'every request succeeded')
      t.same(ended, [], 'the session did not end')
      t.equal((await client.fetch('/orders')).status, 200)
      const check = await fetch(`${server.baseUrl}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: storage.values.get(STORAGE_KEY) }) })
      t.equal(check.status, 200, 'the stored token is the one the password change issued')
    })

    t.test('typed errors carry the contract\'s code', async (t) => {
      const server = await startServer(t, database, {})
      const { username } = await registerUser(server.baseUrl)
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage() })
      t.teardown(() => client.close())
      const wrong = await client.login(username, 'not the password at all').catch((error: unknown) => error)
      t.type(wrong, AuthError)
      t.match(wrong, { status: 401, code: 'AUTH_INVALID_CREDENTIALS' })
      t.match(await client.register(username, 'correct horse battery staple').catch((error: unknown) => error), { code: 'AUTH_USERNAME_TAKEN', status: 409 })
      const unreachable = createAuthClient({ baseUrl: 'http://127.0.0.1:1', mode: 'mobile', storage: memoryStorage() })
      t.match(await unreachable.login(username, 'whatever password').catch((error: unknown) => error), { code: 'NETWORK_ERROR', status: 0 })
    })
  })
}
