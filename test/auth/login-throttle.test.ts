import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { type LoginAttemptStore, LoginThrottle, MemoryLoginAttemptStore, RedisLoginAttemptStore } from '../../src/auth/login-throttle.js'
import { type TestClock, testClock } from '../helpers.js'

const SECOND = 1000
const WINDOW_SECONDS = 900

function throttle (maxFailures = 5, maxWaitMs?: number) {
  const clock = testClock()
  const store = new MemoryLoginAttemptStore(clock)
  return { clock, store, throttle: new LoginThrottle(store, clock, maxFailures, WINDOW_SECONDS, maxWaitMs) }
}

/** One login attempt: the check (when admitted) ends after a few event-loop turns with `outcome`. */
async function attempt (limiter: LoginThrottle, outcome: 'failed' | 'succeeded' | 'abandoned', account = 'alice', address = '192.0.2.1') {
  const begun = await limiter.begin(account, address)
  if (begun.retryAfter > 0) return { checked: false, retryAfter: begun.retryAfter }
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
  await begun[outcome]()
  return { checked: true, retryAfter: 0 }
}

async function concurrently (count: number, run: () => Promise<{ checked: boolean, retryAfter: number }>) {
  const results = await Promise.all(Array.from({ length: count }, run))
  return { checked: results.filter((r) => r.checked).length, refused: results.filter((r) => !r.checked).map((r) => r.retryAfter) }
}

t.test('locks after N failures within the window, then lets the pair try again', async (t) => {
  const { clock, throttle: limiter } = throttle(5)
  for (let i = 1; i <= 5; i++) {
    t.equal((await attempt(limiter, 'failed')).checked, true, `attempt ${i} is checked`)
    clock.advance(10 * SECOND)
  }
  // The window started at the first failure, 50 s ago.
  t.equal((await limiter.begin('alice', '192.0.2.1')).retryAfter, WINDOW_SECONDS - 50, 'the 6th attempt is locked until the window ends')
  clock.advance(100 * SECOND)
  t.equal((await limiter.begin('alice', '192.0.2.1')).retryAfter, WINDOW_SECONDS - 150, 'locked attempts do not move the window')
  t.equal((await attempt(limiter, 'failed', 'alice', '192.0.2.2')).checked, true, 'another address is not locked')
  t.equal((await attempt(limiter, 'failed', 'bob')).checked, true, 'another account is not locked')
  clock.advance((WINDOW_SECONDS - 150) * SECOND - 1)
  t.equal((await limiter.begin('alice', '192.0.2.1')).retryAfter, 1, 'still locked in the last millisecond (never 0 while locked)')
  clock.advance(1)
  t.equal((await attempt(limiter, 'failed')).checked, true, 'a new window once the old one has passed')
})

t.test('a success clears the failures', async (t) => {
  const { throttle: limiter } = throttle(3)
  for (let i = 1; i <= 2; i++) await attempt(limiter, 'failed')
  await attempt(limiter, 'succeeded')
  for (let i = 1; i <= 3; i++) t.equal((await attempt(limiter, 'failed')).checked, true)
  t.ok((await limiter.begin('alice', '192.0.2.1')).retryAfter > 0, 'counting started again from zero')
})

t.test('concurrent wrong guesses get at most maxFailures checks; the rest get the true Retry-After', async (t) => {
  const { throttle: limiter } = throttle(5)
  const { checked, refused } = await concurrently(20, async () => attempt(limiter, 'failed'))
  t.equal(checked, 5, 'five password checks in all')
  t.same(refused, Array(15).fill(WINDOW_SECONDS), 'the others are told the window, which is true')
  t.equal((await limiter.begin('alice', '192.0.2.1')).retryAfter, WINDOW_SECONDS, 'and the pair is locked')
})

t.test('concurrent correct logins are all checked: only failures lock', async (t) => {
  const { throttle: limiter } = throttle(5)
  const { checked, refused } = await concurrently(8, async () => attempt(limiter, 'succeeded'))
  t.equal(checked, 8)
  t.same(refused, [])
})

t.test('after some failures, concurrent correct logins still all get through', async (t) => {
  const { throttle: limiter } = throttle(5)
  for (let i = 1; i <= 4; i++) await attempt(limiter, 'failed')
  const { checked } = await concurrently(8, async () => attempt(limiter, 'succeeded'))
  t.equal(checked, 8)
})

t.test('wrong and right guesses racing: never more than maxFailures failures checked', async (t) => {
  const { throttle: limiter } = throttle(3)
  const results = await Promise.all(Array.from({ length: 12 }, async (_, i) => attempt(limiter, i % 2 === 0 ? 'failed' : 'succeeded')))
  t.equal(results.filter((r) => r.checked).length >= 6, true, 'every right guess got through or waited its turn')
  // Whatever the order, the failures that count are never more than the limit.
  const next = await limiter.begin('alice', '192.0.2.1')
  t.ok(next.retryAfter === 0 || next.retryAfter === WINDOW_SECONDS, 'the pair is locked only by a full window of failures')
  await next.abandoned()
})

t.test('a check that did not complete counts for nothing', async (t) => {
  const { throttle: limiter } = throttle(3)
  const { checked } = await concurrently(10, async () => attempt(limiter, 'abandoned'))
  t.equal(checked, 10, 'each interrupted check gave its unit back to the next')
  for (let i = 1; i <= 3; i++) t.equal((await attempt(limiter, 'failed')).checked, true, `failure ${i} after the outage is still checked`)
  t.ok((await limiter.begin('alice', '192.0.2.1')).retryAfter > 0)
})

t.test('the wait for checks in flight is bounded: then 429 with Retry-After 1', async (t) => {
  const { throttle: limiter } = throttle(2, 100)
  const first = await limiter.begin('alice', '192.0.2.1')
  const second = await limiter.begin('alice', '192.0.2.1')
  t.equal(first.retryAfter + second.retryAfter, 0)
  t.equal((await limiter.begin('alice', '192.0.2.1')).retryAfter, 1, 'two checks hang: the third is told to come back in a second')
  await first.succeeded()
  const third = await limiter.begin('alice', '192.0.2.1')
  t.equal(third.retryAfter, 0, 'a check ended: room again')
  await second.abandoned()
  await third.abandoned()
})

t.test('a hung check holds its unit only for its lease', async (t) => {
  const { clock, throttle: limiter } = throttle(1, 100)
  t.equal((await limiter.begin('alice', '192.0.2.1')).retryAfter, 0) // never settled
  t.equal((await limiter.begin('alice', '192.0.2.1')).retryAfter, 1)
  clock.advance(60 * SECOND)
  t.equal((await limiter.begin('alice', '192.0.2.1')).retryAfter, 0, 'the lease ran out')
})

t.test('settling twice counts once', async (t) => {
  const { throttle: limiter } = throttle(2)
  const begun = await limiter.begin('alice', '192.0.2.1')
  await begun.failed()
  await begun.failed()
  t.equal((await attempt(limiter, 'failed')).checked, true, 'one failure left, not none')
})

t.test('MemoryLoginAttemptStore stays bounded', async (t) => {
  const clock = testClock()
  const store = new MemoryLoginAttemptStore(clock, 3)
  const size = () => (store as unknown as { pairs: Map<string, unknown> }).pairs.size
  for (const key of ['a', 'b', 'c']) await store.fail(key, 'x', 10 * SECOND)
  t.equal(size(), 3)
  clock.advance(11 * SECOND)
  await store.fail('d', 'x', 10 * SECOND)
  t.equal(size(), 1, 'expired windows made room')
  for (let i = 0; i < 1000; i++) await store.fail(`key-${i}`, 'x', 10 * SECOND)
  t.equal(size(), 3, 'never more than maxKeys')
  t.same(await store.reserve('key-999', 'y', 5, 1000), { admitted: true, failures: 1, resetAt: clock() + 10 * SECOND }, 'the newest windows are kept')
})

async function sharedStoreSuite (t: Test, makeStore: (clock: TestClock) => LoginAttemptStore) {
  const clock = testClock()
  // Two instances sharing the store: each has its own throttle (and waits), the counts are shared.
  const a = new LoginThrottle(makeStore(clock), clock, 5, WINDOW_SECONDS)
  const b = new LoginThrottle(makeStore(clock), clock, 5, WINDOW_SECONDS)
  const account = `alice-${randomUUID()}`
  const wrong = await concurrently(20, async () => attempt(Math.random() < 0.5 ? a : b, 'failed', account))
  t.equal(wrong.checked, 5, 'five checks across both instances')
  t.same(wrong.refused, Array(15).fill(WINDOW_SECONDS))
  const other = `bob-${randomUUID()}`
  const right = await concurrently(8, async () => attempt(Math.random() < 0.5 ? a : b, 'succeeded', other))
  t.same(right, { checked: 8, refused: [] }, 'concurrent right passwords across instances all get through')
}

if (process.env.TEST_REDIS_URL) {
  t.test('RedisLoginAttemptStore: the same guarantees across instances', async (t) => {
    const redis = new Redis(process.env.TEST_REDIS_URL!, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await redis.connect()
    t.teardown(() => redis.quit())
    await sharedStoreSuite(t, (clock) => new RedisLoginAttemptStore(redis, new MemoryLoginAttemptStore(clock), clock))
  })
}
