// Several instances on one PostgreSQL and one Redis (run when TEST_DATABASE_URL and TEST_REDIS_URL are
// set, as CI does), plus losing Redis or the database mid-run.
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { PASSWORD, bearer, freshDatabaseUrl, json, login, refresh, register, signedIn, testApp } from './helpers.js'
import { relay } from './network-support.js'

const databaseUrl = process.env.TEST_DATABASE_URL
const redisUrl = process.env.TEST_REDIS_URL

/** Polls until the request is refused, returning how long that took (ms), or -1 after the limit. */
async function msUntilRefused (app: FastifyInstance, accessToken: string, limitMs = 3000): Promise<number> {
  const started = Date.now()
  while (Date.now() - started < limitMs) {
    const response = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })
    if (response.statusCode === 401) return Date.now() - started
    await sleep(20)
  }
  return -1
}


if (databaseUrl !== undefined && redisUrl !== undefined) t.test('two instances on one PostgreSQL and Redis', async (t) => {
  // A slow poll makes the Redis doorbell, not polling, the thing under test.
  const env = { REDIS_URL: redisUrl!, REVOCATION_POLL_INTERVAL_MS: '5000', LOGIN_MAX_FAILURES: '4' }
  const a = await testApp(t, { database: 'postgresql', env })
  const b = await testApp(t, { sameDatabaseAs: a, env })

  t.test('login on A, refresh on B, logout on B: A refuses the access token within 1 s', async (t) => {
    const { username } = await register(a)
    const first = await login(a, username)
    const renewed = await refresh(b, first.refreshToken)
    t.equal(renewed.statusCode, 200)
    const { accessToken, refreshToken } = json(renewed)
    t.equal((await a.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })).statusCode, 200, 'A accepts the token B issued')
    const out = await b.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken } })
    t.equal(out.statusCode, 204)
    const ms = await msUntilRefused(a, accessToken)
    t.ok(ms >= 0 && ms <= 1000, `A refused the token after ${ms} ms`)
    t.equal(json(await a.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })).code, 'AUTH_TOKEN_REVOKED')
  })

  t.test('password change on A: B refuses every older token', async (t) => {
    const { username, tokens } = await signedIn(a)
    const other = await login(b, username)
    const changed = await a.inject({
      method: 'POST', url: '/auth/password', headers: bearer(tokens.accessToken),
      payload: { currentPassword: PASSWORD, newPassword: 'a brand new passphrase' }
    })
    t.equal(changed.statusCode, 200)
    for (const old of [tokens.accessToken, other.accessToken]) {
      const ms = await msUntilRefused(b, old)
      t.ok(ms >= 0 && ms <= 1000, `B refused an old token after ${ms} ms`)
    }
    t.equal((await refresh(b, other.refreshToken)).statusCode, 401, 'old refresh token refused on B')
    t.equal((await b.inject({ method: 'GET', url: '/auth/me', headers: bearer(json(changed).accessToken) })).statusCode, 200, 'the new token works on B')
  })

  t.test('login failures split across A and B lock the pair', async (t) => {
    const { username } = await register(a)
    for (const [i, app] of [a, b, a, b].entries()) {
      const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: 'wrong password!' }, remoteAddress: '10.1.2.3' })
      t.equal(response.statusCode, 401, `failure ${i + 1} counted`)
    }
    for (const app of [a, b]) {
      const locked = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD }, remoteAddress: '10.1.2.3' })
      t.equal(locked.statusCode, 429)
      t.equal(json(locked).code, 'AUTH_RATE_LIMITED')
      t.ok(Number(locked.headers['retry-after']) > 0)
    }
    const elsewhere = await b.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD }, remoteAddress: '10.9.9.9' })
    t.equal(elsewhere.statusCode, 200, 'another address is not locked')
  })

  t.test('50 concurrent refreshes of one token across A and B: one successor, no 5xx', async (t) => {
    const { tokens } = await signedIn(a)
    const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => refresh(i % 2 === 0 ? a : b, tokens.refreshToken)))
    t.same(responses.filter((r) => r.statusCode >= 500).map((r) => r.body), [], 'no 5xx')
    const successors = new Set(responses.filter((r) => r.statusCode === 200).map((r) => json(r).refreshToken))
    t.equal(successors.size, 1, 'every successful answer carries the same successor')
    t.equal(responses.filter((r) => r.statusCode === 200).length, 50, 'all racing clients end up holding it')
    const [successor] = [...successors]
    const { sid } = JSON.parse(Buffer.from(tokens.accessToken.split('.')[1]!, 'base64url').toString())
    t.equal(await a.db.refreshToken.count({ where: { sessionId: sid } }), 2, 'the family holds the original and exactly one successor')
    t.equal((await refresh(b, successor!)).statusCode, 200, 'the successor refreshes on B')
  })
})

t.test('Redis stopped mid-run: requests are still served, limits fall back to memory', async (t) => {
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const exited = new Promise((resolve) => redis.on('exit', resolve))
  redis.on('error', () => {})
  t.teardown(async () => { redis.kill('SIGKILL'); await exited })
  await sleep(300)
  const app = await testApp(t, { env: { REDIS_URL: `redis://127.0.0.1:${port}`, LOGIN_MAX_FAILURES: '2' } })
  const ready = json(await app.inject({ method: 'GET', url: '/ready' }))
  t.equal(ready.redis, 'ok')
  const { username, tokens } = await signedIn(app)

  redis.kill('SIGKILL')
  await exited
  await sleep(200)
  t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })).statusCode, 200, 'protected route served')
  const renewed = await refresh(app, tokens.refreshToken)
  t.equal(renewed.statusCode, 200, 'refresh served')
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD } })).statusCode, 200, 'login served')
  for (let i = 0; i < 2; i++) {
    t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: 'wrong password!' } })).statusCode, 401)
  }
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD } })).statusCode, 429, 'the lock-out still holds, in memory')
  const degraded = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(degraded.statusCode, 200)
  t.equal(json(degraded).redis, 'degraded')
})

if (databaseUrl !== undefined) t.test('database lost mid-run: 503s, not crashes; recovers when it returns', async (t) => {
  const direct = new URL(await freshDatabaseUrl(t, 'postgresql'))
  const proxy = await relay(Number(direct.port || 5432))
  const viaProxy = new URL(direct)
  viaProxy.hostname = '127.0.0.1'
  viaProxy.port = String(proxy.port)
  const app = await testApp(t, { env: { DATABASE_URL: viaProxy.toString() } })
  t.teardown(() => proxy.close())
  const { tokens } = await signedIn(app)
  // Known to this instance (confirmed against the database at its first use) before the outage.
  t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })).statusCode, 200)

  await proxy.cut()
  const orders = await app.inject({ method: 'GET', url: '/orders', headers: bearer(tokens.accessToken) })
  t.equal(orders.statusCode, 503)
  t.equal(json(orders).code, 'SERVICE_UNAVAILABLE')
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 503)
  t.equal((await refresh(app, tokens.refreshToken)).statusCode, 503, 'refresh cannot rotate: 503, token untouched')
  t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })).statusCode, 200, 'token checks need no database')

  await proxy.restore()
  let recovered = 0
  for (let i = 0; i < 50 && recovered !== 200; i++) {
    recovered = (await app.inject({ method: 'GET', url: '/ready' })).statusCode
    if (recovered !== 200) await sleep(100)
  }
  t.equal(recovered, 200, 'ready again')
  t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200, 'the untouched refresh token still works')
})
