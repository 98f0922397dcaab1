// Prometheus metrics on their own listener: after a scripted flow (logins ok and failed, a lockout,
// a rotation, a replay within grace, a reuse, a logout) each counter moved by exactly what happened,
// labels carry no user data and the route label is the route pattern.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { PASSWORD, json, login, refresh, register, testApp, testClock, testDatabases } from '../helpers.js'

type Samples = Map<string, number>

async function scrape (app: FastifyInstance): Promise<{ text: string, samples: Samples }> {
  const address = app.metrics.address()
  if (address === null) throw new Error('metrics are not listening')
  const response = await fetch(`http://127.0.0.1:${address.port}/metrics`)
  if (response.status !== 200) throw new Error(`scrape failed: ${response.status}`)
  t.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const text = await response.text()
  const samples: Samples = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    samples.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return { text, samples }
}

/** How much each series moved between two scrapes (series absent before count from 0). */
function moved (before: Samples, after: Samples, series: string): number {
  return (after.get(series) ?? Number.NaN) - (before.get(series) ?? 0)
}

const metricsEnv = { METRICS_PORT: '0', LOGIN_MAX_FAILURES: '2', REFRESH_REUSE_GRACE: '10' }

for (const database of testDatabases()) {
  t.test(`after a scripted flow every counter moved by exactly what happened (${database})`, async (t) => {
    const clock = testClock()
    const app = await testApp(t, { database, clock, env: metricsEnv })
    await app.ready()
    // A second instance on the same database learns of the revocations by reading the log.
    const other = await testApp(t, { database, clock, env: metricsEnv, sameDatabaseAs: app })
    await other.ready()
    const before = (await scrape(app)).samples
    const otherBefore = (await scrape(other)).samples

    const alice = await register(app)
    const mallory = await register(app)
    const first = await login(app, alice.username)
    const second = await login(app, alice.username)
    for (let i = 0; i < 2; i++) {
      const failed = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: mallory.username, password: 'not the password' } })
      t.equal(failed.statusCode, 401)
    }
    const locked = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: mallory.username, password: PASSWORD } })
    t.equal(locked.statusCode, 429, 'the third attempt is locked out, even with the right password')

    const rotated = await refresh(app, first.refreshToken)
    t.equal(rotated.statusCode, 200, 'rotation')
    const replayed = await refresh(app, first.refreshToken)
    t.equal(replayed.statusCode, 200, 'replay within the grace window')
    t.equal(json(replayed).refreshToken, json(rotated).refreshToken)
    clock.advance(11_000)
    const reused = await refresh(app, first.refreshToken)
    t.equal(json(reused).code, 'AUTH_REFRESH_REUSED', 'reuse after the window')
    const unknown = await refresh(app, randomBytes(32).toString('base64url'))
    t.equal(json(unknown).code, 'AUTH_REFRESH_INVALID', 'an unknown token')
    const logout = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: second.refreshToken } })
    t.equal(logout.statusCode, 204, 'logout')
    const missing = await app.inject({ url: `/no/such/${alice.user.id}?access_token=${second.accessToken}` })
    t.equal(missing.statusCode, 404)
    const order = await app.inject({ url: '/orders/some-order-id', headers: { authorization: `Bearer ${json(rotated).accessToken}` } })
    t.equal(order.statusCode, 401, 'the reused session\'s access token is refused')

    const { text, samples: after } = await scrape(app)
    const expected: Record<string, number> = {
      'auth_logins_total{outcome="ok"}': 2,
      'auth_logins_total{outcome="failed"}': 2,
      'auth_logins_total{outcome="locked"}': 1,
      'auth_refreshes_total{outcome="rotated"}': 1,
      'auth_refreshes_total{outcome="replayed"}': 1,
      'auth_refreshes_total{outcome="reused"}': 1,
      'auth_refreshes_total{outcome="invalid"}': 1,
      'auth_refreshes_total{outcome="expired"}': 0,
      'auth_refreshes_total{outcome="refused"}': 0,
      'auth_revocations_total{reason="reuse"}': 1,
      'auth_revocations_total{reason="logout"}': 1,
      'auth_revocations_total{reason="logout-all"}': 0,
      'auth_revocations_total{reason="deleted"}': 0,
      'auth_revocations_total{reason="password-change"}': 0,
      'auth_rate_limited_total{limiter="login-lockout"}': 1,
      'auth_rate_limited_total{limiter="requests"}': 0,
      // Two registrations hash; two good and two wrong passwords verify; the locked attempt hashes nothing.
      auth_password_hash_duration_seconds_count: 6,
      // This instance's own two revocations took effect here (and reading them back from the log counts nothing more).
      auth_revocation_propagation_seconds_count: 2,
      'http_request_duration_seconds_count{method="POST",route="/auth/register",status_code="201"}': 2,
      'http_request_duration_seconds_count{method="POST",route="/auth/login",status_code="200"}': 2,
      'http_request_duration_seconds_count{method="POST",route="/auth/login",status_code="401"}': 2,
      'http_request_duration_seconds_count{method="POST",route="/auth/login",status_code="429"}': 1,
      'http_request_duration_seconds_count{method="POST",route="/auth/refresh",status_code="200"}': 2,
      'http_request_duration_seconds_count{method="POST",route="/auth/refresh",status_code="401"}': 2,
      'http_request_duration_seconds_count{method="POST",route="/auth/logout",status_code="204"}': 1,
      'http_request_duration_seconds_count{method="GET",route="unmatched",status_code="404"}': 1,
      'http_request_duration_seconds_count{method="GET",route="/orders/:id",status_code="401"}': 1
    }
    await app.revocations.poll()
    const afterPoll = (await scrape(app)).samples
    for (const [series, count] of Object.entries(expected)) t.equal(moved(before, afterPoll, series), count, `${series} moved by ${count}`)
    t.equal(after.get('auth_revocation_list_entries'), 2, 'the two ended sessions are held in memory')
    t.equal(after.get('auth_password_hash_queue_length'), 0, 'nothing waits to be hashed')
    t.ok((after.get('process_resident_memory_bytes') ?? 0) > 0, 'the process metrics are there too')

    for (const secret of [alice.user.id, mallory.user.id, alice.username, mallory.username, first.refreshToken, second.accessToken, 'no/such']) {
      t.notOk(text.includes(secret), 'no user data, token or raw URL in the metrics')
    }
    t.ok(text.includes('route="/orders/:id"'), 'positive control: the route pattern is there')

    // It polls on its own timer too: however often it has read the log, each event counts once.
    await other.revocations.poll()
    await other.revocations.poll()
    const otherAfter = (await scrape(other)).samples
    t.equal(moved(otherBefore, otherAfter, 'auth_revocation_propagation_seconds_count'), 2, 'the other instance applied both, once each')
    t.equal(moved(otherBefore, otherAfter, 'auth_revocations_total{reason="logout"}'), 0, 'revocations are counted where they were made')
    t.equal(otherAfter.get('auth_revocation_list_entries'), 2)
  })

  t.test(`concurrent refreshes of one token: one rotation, the rest replays, counted exactly (${database})`, async (t) => {
    const app = await testApp(t, { database, env: metricsEnv })
    await app.ready()
    const account = await register(app)
    const tokens = await login(app, account.username)
    const before = (await scrape(app)).samples
    const racers = 5
    const answers = await Promise.all(Array.from({ length: racers }, () => refresh(app, tokens.refreshToken)))
    t.same(answers.map((answer) => answer.statusCode), Array(racers).fill(200), 'every racer gets tokens')
    t.equal(new Set(answers.map((answer) => json(answer).refreshToken)).size, 1, 'all hold one refresh token')
    const after = (await scrape(app)).samples
    t.equal(moved(before, after, 'auth_refreshes_total{outcome="rotated"}'), 1)
    t.equal(moved(before, after, 'auth_refreshes_total{outcome="replayed"}'), racers - 1)
    t.equal(moved(before, after, 'auth_refreshes_total{outcome="reused"}'), 0)
  })
}

t.test('an expired token and one of an ended session are counted apart', async (t) => {
  const clock = testClock()
  const app = await testApp(t, { clock, env: { ...metricsEnv, REFRESH_IDLE_TTL: '60' } })
  await app.ready()
  const account = await register(app)
  const ended = await login(app, account.username)
  const idle = await login(app, account.username)
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: ended.refreshToken } })).statusCode, 204)
  const before = (await scrape(app)).samples
  t.equal(json(await refresh(app, ended.refreshToken)).code, 'AUTH_REFRESH_INVALID', 'a logged-out session\'s token')
  clock.advance(61_000)
  t.equal(json(await refresh(app, idle.refreshToken)).code, 'AUTH_REFRESH_INVALID', 'a token idle past its lifetime')
  const after = (await scrape(app)).samples
  t.equal(moved(before, after, 'auth_refreshes_total{outcome="refused"}'), 1)
  t.equal(moved(before, after, 'auth_refreshes_total{outcome="expired"}'), 1)
  t.equal(moved(before, after, 'auth_refreshes_total{outcome="invalid"}'), 0)
  t.equal(moved(before, after, 'auth_refreshes_total{outcome="reused"}'), 0, 'neither is reuse')
})

t.test('the metrics listener is separate, serves only GET /metrics, and is off while METRICS_PORT is unset', async (t) => {
  const app = await testApp(t, { env: { METRICS_PORT: '0' } })
  await app.ready()
  const port = app.metrics.address()!.port
  const onApi = await app.inject({ url: '/metrics' })
  t.equal(onApi.statusCode, 404, 'the API port does not serve metrics')
  t.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404)
  t.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 404)
  await app.close()
  await t.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'closing the app closes the listener')

  const off = await testApp(t)
  await off.ready()
  t.notOk(off.hasDecorator('metrics'), 'no registry, no hooks, no listener')
})
