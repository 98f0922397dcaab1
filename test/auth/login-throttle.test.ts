import t from 'tap'
import { LoginThrottle, MemoryFailureCounterStore } from '../../src/auth/login-throttle.js'
import { testClock } from '../helpers.js'

const SECOND = 1000
const WINDOW_SECONDS = 900

function throttle (maxFailures = 5) {
  const clock = testClock()
  const store = new MemoryFailureCounterStore(clock)
  return { clock, store, throttle: new LoginThrottle(store, clock, maxFailures, WINDOW_SECONDS) }
}

t.test('locks after N failures within the window, then lets the pair try again', async (t) => {
  const { clock, throttle: limiter } = throttle(5)
  for (let attempt = 1; attempt <= 5; attempt++) {
    t.equal(await limiter.attempt('alice', '192.0.2.1'), 0, `attempt ${attempt} may go ahead`)
    clock.advance(10 * SECOND)
  }
  // The window started at the first failure, 50 s ago.
  t.equal(await limiter.attempt('alice', '192.0.2.1'), WINDOW_SECONDS - 50, 'the 6th attempt is locked until the window ends')
  clock.advance(100 * SECOND)
  t.equal(await limiter.attempt('alice', '192.0.2.1'), WINDOW_SECONDS - 150, 'locked attempts do not move the window')
  t.equal(await limiter.attempt('alice', '192.0.2.2'), 0, 'another address is not locked')
  t.equal(await limiter.attempt('bob', '192.0.2.1'), 0, 'another account is not locked')
  clock.advance((WINDOW_SECONDS - 150) * SECOND - 1)
  t.equal(await limiter.attempt('alice', '192.0.2.1'), 1, 'still locked in the last millisecond (never 0 while locked)')
  clock.advance(1)
  t.equal(await limiter.attempt('alice', '192.0.2.1'), 0, 'a new window once the old one has passed')
})

t.test('a success (forgive) clears the failures', async (t) => {
  const { throttle: limiter } = throttle(3)
  for (let attempt = 1; attempt <= 3; attempt++) await limiter.attempt('alice', '192.0.2.1')
  await limiter.forgive('alice', '192.0.2.1')
  for (let attempt = 1; attempt <= 3; attempt++) t.equal(await limiter.attempt('alice', '192.0.2.1'), 0)
  t.ok(await limiter.attempt('alice', '192.0.2.1') > 0, 'counting starts again from zero')
})

t.test('concurrent attempts cannot slip past the limit', async (t) => {
  const { throttle: limiter } = throttle(5)
  const results = await Promise.all(Array.from({ length: 20 }, async () => limiter.attempt('alice', '192.0.2.1')))
  t.equal(results.filter((retryAfter) => retryAfter === 0).length, 5)
})

t.test('MemoryFailureCounterStore stays bounded', async (t) => {
  const clock = testClock()
  const store = new MemoryFailureCounterStore(clock, 3)
  const size = () => (store as unknown as { windows: Map<string, unknown> }).windows.size
  await store.increment('a', 10 * SECOND)
  clock.advance(5 * SECOND)
  await store.increment('b', 10 * SECOND)
  await store.increment('c', 10 * SECOND)
  t.equal(size(), 3)
  clock.advance(6 * SECOND) // a's window has passed; b's and c's have not
  await store.increment('d', 10 * SECOND)
  t.equal(size(), 3, 'the expired window made room')
  t.equal((await store.increment('b', 10 * SECOND)).count, 2, 'live windows survive while expired ones can go')
  await store.increment('e', 10 * SECOND)
  t.equal(size(), 3, 'full of live windows: the oldest is dropped rather than growing')
  for (let i = 0; i < 1000; i++) await store.increment(`key-${i}`, 10 * SECOND)
  t.equal(size(), 3, 'never more than maxKeys')
  t.equal((await store.increment('key-999', 10 * SECOND)).count, 2, 'the newest windows are kept')
  await store.clear('key-999')
  t.equal(size(), 2)
  t.equal((await store.increment('key-999', 10 * SECOND)).count, 1)
})

t.test('MemoryFailureCounterStore windows', async (t) => {
  const clock = testClock()
  const store = new MemoryFailureCounterStore(clock)
  const first = await store.increment('k', 10 * SECOND)
  t.same(first, { count: 1, resetAt: clock() + 10 * SECOND })
  clock.advance(9 * SECOND)
  t.same(await store.increment('k', 10 * SECOND), { count: 2, resetAt: first.resetAt }, 'the window does not slide')
  clock.advance(SECOND)
  t.same(await store.increment('k', 10 * SECOND), { count: 1, resetAt: clock() + 10 * SECOND }, 'a fresh window')
})
