// The per-address request budget (src/plugins/rate-limit.ts) with Redis: shared by every instance
// while Redis answers, counted in each instance's own memory while it does not (never waved through,
// never a 5xx). Without Redis the budget is covered by test/routes/limits.test.ts.
import { randomInt } from 'node:crypto'
import t from 'tap'
import { freePort } from '../network-support.js'
import { testApp } from '../helpers.js'

const redisUrl = process.env.TEST_REDIS_URL

/** An address of its own per run: Redis keeps counts between runs for a minute. */
const someAddress = () => `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`

function refreshFrom (app: Awaited<ReturnType<typeof testApp>>, remoteAddress: string) {
  return app.inject({ method: 'POST', url: '/auth/refresh', remoteAddress, payload: { refreshToken: 'A'.repeat(43) } })
}

if (redisUrl !== undefined) {
  t.test('two instances on one Redis share one budget per address', async (t) => {
    const env = { REDIS_URL: redisUrl, RATE_LIMIT_MAX: '3' }
    const a = await testApp(t, { env })
    const b = await testApp(t, { env, sameDatabaseAs: a })
    const address = someAddress()
    t.equal((await refreshFrom(a, address)).statusCode, 401)
    t.equal((await refreshFrom(b, address)).statusCode, 401)
    t.equal((await refreshFrom(a, address)).statusCode, 401, 'the third request, on either instance, is within the budget')
    const fourth = await refreshFrom(b, address)
    t.equal(fourth.statusCode, 429, 'the fourth is refused by the other instance: the count is shared')
    t.equal(fourth.json().code, 'AUTH_RATE_LIMITED')
    t.ok(Number(fourth.headers['retry-after']) >= 1)
    t.equal((await refreshFrom(b, someAddress())).statusCode, 401, 'control: another address has its own budget')
  })
}

t.test('while Redis is unreachable each instance counts on its own', async (t) => {
  const app = await testApp(t, { env: { REDIS_URL: `redis://127.0.0.1:${await freePort()}`, RATE_LIMIT_MAX: '2' } })
  const address = someAddress()
  t.equal((await refreshFrom(app, address)).statusCode, 401)
  t.equal((await refreshFrom(app, address)).statusCode, 401)
  t.equal((await refreshFrom(app, address)).statusCode, 429, 'limited all the same')
})
