// Abuse limits: login failures locked per (account, client address), and a per-address request budget
// for the unauthenticated auth endpoints.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { PASSWORD, bearer, json, register, signedIn, testApp, testClock, testDatabases } from '../helpers.js'

const WRONG = 'not the right password at all'
const OTHER_ADDRESS = '203.0.113.7'

function attemptLogin (app: FastifyInstance, username: string, password: string, remoteAddress?: string) {
  return app.inject({ method: 'POST', url: '/auth/login', payload: { username, password }, ...(remoteAddress === undefined ? {} : { remoteAddress }) })
}

function unknownUsername (): string {
  return `nobody${randomBytes(4).toString('hex')}`
}

function retryAfter (response: LightMyRequestResponse): number {
  const header = response.headers['retry-after']
  return /^\d+$/.test(String(header)) ? Number(header) : Number.NaN
}

/** A 429 in the contract's error shape, with a Retry-After of 1..maxSeconds. */
function assertRateLimited (t: Test, response: LightMyRequestResponse, maxSeconds: number) {
  t.equal(response.statusCode, 429)
  const body = json(response)
  t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
  t.equal(body.statusCode, 429)
  t.equal(body.code, 'AUTH_RATE_LIMITED')
  t.equal(body.error, 'Too Many Requests')
  const seconds = retryAfter(response)
  t.ok(seconds >= 1 && seconds <= maxSeconds, `Retry-After ${response.headers['retry-after']} within 1..${maxSeconds}`)
  t.notOk('accessToken' in body)
}

function assertInvalidCredentials (t: Test, response: LightMyRequestResponse) {
  t.equal(response.statusCode, 401)
  t.equal(json(response).code, 'AUTH_INVALID_CREDENTIALS')
}

for (const database of testDatabases()) {
  t.test(`five failures lock the (account, address) pair, even for the right password (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock })
    const { username } = await register(app)
    for (let i = 0; i < 5; i++) assertInvalidCredentials(t, await attemptLogin(app, username, WRONG))
    const locked = await attemptLogin(app, username, PASSWORD)
    assertRateLimited(t, locked, 900)
    // Another spelling of the same account is the same account.
    assertRateLimited(t, await attemptLogin(app, username.toUpperCase(), PASSWORD), 900)
    // Another address, or another account from this address, is not locked.
    t.equal((await attemptLogin(app, username, PASSWORD, OTHER_ADDRESS)).statusCode, 200, 'same account, other address')
    const other = await register(app)
    t.equal((await attemptLogin(app, other.username, PASSWORD)).statusCode, 200, 'other account, same address')
    // Neither of those lifted the lock.
    assertRateLimited(t, await attemptLogin(app, username, PASSWORD), 900)
  })

  t.test(`the lock lasts until the window has passed (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock })
    const { username } = await register(app)
    for (let i = 0; i < 5; i++) assertInvalidCredentials(t, await attemptLogin(app, username, WRONG))
    clock.advance(600_000)
    const stillLocked = await attemptLogin(app, username, PASSWORD)
    assertRateLimited(t, stillLocked, 300)
    clock.advance(300_001)
    const after = await attemptLogin(app, username, PASSWORD)
    t.equal(after.statusCode, 200, 'login works again after the window')
    t.type(json(after).accessToken, 'string')
  })

  t.test(`unknown accounts are counted and locked the same way (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock })
    const { username } = await register(app)
    const nobody = unknownUsername()
    const knownFailures: LightMyRequestResponse[] = []
    const unknownFailures: LightMyRequestResponse[] = []
    for (let i = 0; i < 5; i++) {
      knownFailures.push(await attemptLogin(app, username, WRONG))
      unknownFailures.push(await attemptLogin(app, nobody, WRONG))
    }
    for (const [index, unknown] of unknownFailures.entries()) {
      const known = knownFailures[index]!
      assertInvalidCredentials(t, unknown)
      t.same(json(unknown), json(known), 'the same 401 body as a wrong password')
      t.equal(unknown.headers['www-authenticate'], known.headers['www-authenticate'])
      t.equal(unknown.headers['retry-after'], undefined)
    }
    const knownLocked = await attemptLogin(app, username, PASSWORD)
    const unknownLocked = await attemptLogin(app, nobody, PASSWORD)
    assertRateLimited(t, unknownLocked, 900)
    t.same(json(unknownLocked), json(knownLocked), 'the same 429 body as a locked real account')
    t.equal(unknownLocked.headers['retry-after'], knownLocked.headers['retry-after'])
    t.same(Object.keys(unknownLocked.headers).sort(), Object.keys(knownLocked.headers).sort(), 'the same header names')
  })

  t.test(`LOGIN_MAX_FAILURES and LOGIN_LOCK_WINDOW are respected (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock, env: { LOGIN_MAX_FAILURES: '2', LOGIN_LOCK_WINDOW: '60' } })
    const { username } = await register(app)
    for (let i = 0; i < 2; i++) assertInvalidCredentials(t, await attemptLogin(app, username, WRONG))
    assertRateLimited(t, await attemptLogin(app, username, PASSWORD), 60)
    clock.advance(30_000)
    assertRateLimited(t, await attemptLogin(app, username, PASSWORD), 30)
    clock.advance(30_001)
    t.equal((await attemptLogin(app, username, PASSWORD)).statusCode, 200)
  })

  t.test(`concurrent wrong passwords cannot slip past the limit (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { username } = await register(app)
    const responses = await Promise.all(Array.from({ length: 10 }, () => attemptLogin(app, username, WRONG)))
    const statuses = responses.map((response) => response.statusCode)
    const unauthorized = statuses.filter((status) => status === 401).length
    const limited = statuses.filter((status) => status === 429).length
    t.ok(unauthorized <= 5, `${unauthorized} answered 401 (at most 5)`)
    t.equal(unauthorized + limited, 10, `only 401 and 429: ${statuses.join(',')}`)
    for (const response of responses.filter((response) => response.statusCode === 429)) t.equal(json(response).code, 'AUTH_RATE_LIMITED')
    assertRateLimited(t, await attemptLogin(app, username, PASSWORD), 900)
  })

  t.test(`wrong current passwords on a password change count towards the lock (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { username, tokens } = await signedIn(app)
    const change = (currentPassword: string) => app.inject({
      method: 'POST', url: '/auth/password', headers: bearer(tokens.accessToken), payload: { currentPassword, newPassword: 'a brand new passphrase' }
    })
    for (let i = 0; i < 5; i++) assertInvalidCredentials(t, await change(WRONG))
    assertRateLimited(t, await change(PASSWORD), 900)
    assertRateLimited(t, await attemptLogin(app, username, PASSWORD), 900)
  })

  t.test(`RATE_LIMIT_MAX caps login requests per address per minute (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { RATE_LIMIT_MAX: '3' } })
    for (let i = 0; i < 3; i++) assertInvalidCredentials(t, await attemptLogin(app, unknownUsername(), WRONG))
    assertRateLimited(t, await attemptLogin(app, unknownUsername(), WRONG), 60)
    // Another address has its own budget.
    assertInvalidCredentials(t, await attemptLogin(app, unknownUsername(), WRONG, OTHER_ADDRESS))
  })

  t.test(`RATE_LIMIT_MAX caps register requests per address per minute (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { RATE_LIMIT_MAX: '3' } })
    const registerAs = (username: string) => app.inject({ method: 'POST', url: '/auth/register', payload: { username, password: PASSWORD } })
    for (let i = 0; i < 3; i++) t.equal((await registerAs(unknownUsername())).statusCode, 201)
    const fourth = unknownUsername()
    assertRateLimited(t, await registerAs(fourth), 60)
    // The refused registration created nothing: the name is still free from another address.
    const elsewhere = await app.inject({ method: 'POST', url: '/auth/register', remoteAddress: OTHER_ADDRESS, payload: { username: fourth, password: PASSWORD } })
    t.equal(elsewhere.statusCode, 201)
  })

  t.test(`RATE_LIMIT_MAX caps refresh requests per address per minute (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { RATE_LIMIT_MAX: '3' } })
    const refreshWith = (refreshToken: string) => app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken } })
    for (let i = 0; i < 3; i++) {
      const response = await refreshWith(randomBytes(32).toString('base64url'))
      t.equal(response.statusCode, 401)
      t.equal(json(response).code, 'AUTH_REFRESH_INVALID')
    }
    assertRateLimited(t, await refreshWith(randomBytes(32).toString('base64url')), 60)
  })

  t.test(`the unauthenticated auth endpoints share one budget per address (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { RATE_LIMIT_MAX: '3' } })
    const { username } = await register(app)
    const login = await attemptLogin(app, username, PASSWORD)
    t.equal(login.statusCode, 200)
    const renewed = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: json(login).refreshToken } })
    t.equal(renewed.statusCode, 200)
    // Three requests spent across register, login and refresh: the fourth, to any of them, is refused.
    assertRateLimited(t, await attemptLogin(app, username, PASSWORD), 60)
    assertRateLimited(t, await app.inject({ method: 'POST', url: '/auth/register', payload: { username: unknownUsername(), password: PASSWORD } }), 60)
    assertRateLimited(t, await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: json(renewed).refreshToken } }), 60)
  })

  t.test(`protected routes are not limited by RATE_LIMIT_MAX (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { RATE_LIMIT_MAX: '3' } })
    const { tokens } = await signedIn(app)
    for (let i = 0; i < 10; i++) {
      t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })).statusCode, 200)
      t.equal((await app.inject({ method: 'GET', url: '/orders', headers: bearer(tokens.accessToken) })).statusCode, 200)
      t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
    }
    const sessions = await app.inject({ method: 'GET', url: '/auth/sessions', headers: bearer(tokens.accessToken) })
    t.equal(sessions.statusCode, 200)
  })
}
