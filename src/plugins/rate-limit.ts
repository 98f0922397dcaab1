// Per-address request limits (@fastify/rate-limit) for the routes that opt in with `config.rateLimit`.
// With Redis the counts are shared by every instance; while Redis is unreachable each instance
// counts in its own memory rather than failing or waving requests through.
import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import type { Redis, Result } from 'ioredis'
import { clientAddressKey } from '../auth/client-address.js'
import { rateLimited } from '../errors.js'

// The library's own stores are not part of its public API (no export; positional constructors), so
// the counting is done here behind its public store interface (the `store` option): a fixed window
// per key, as its LocalStore and RedisStore count without continueExceeding or exponentialBackoff.
type StoreCallback = Parameters<FastifyRateLimitStore['incr']>[1]

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** INCR the key, starting its window on the first hit; [count, ms left in the window]. */
    authServerRateLimit: (key: string, timeWindowMs: number) => Result<[number, number], Context>
  }
}

const REDIS_KEY_PREFIX = 'auth-server:rate-limit:'
const FIXED_WINDOW = `
  local current = redis.call('INCR', KEYS[1])
  if current == 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    return {current, tonumber(ARGV[1])}
  end
  return {current, redis.call('PTTL', KEYS[1])}
`
const LOCAL_KEYS_KEPT = 10_000

/** This process's counts: a fixed window per key, bounded (the least recently counted key is forgotten first). */
class LocalCounts {
  private readonly windows = new Map<string, { count: number, startedAt: number }>()

  incr (key: string, callback: StoreCallback, timeWindow: number): void {
    const now = Date.now()
    let window = this.windows.get(key)
    if (window === undefined || window.startedAt + timeWindow <= now) {
      window = { count: 0, startedAt: now }
    }
    window.count++
    this.windows.delete(key)
    if (this.windows.size >= LOCAL_KEYS_KEPT) this.windows.delete(this.windows.keys().next().value!)
    this.windows.set(key, window)
    callback(null, { current: window.count, ttl: window.startedAt + timeWindow - now })
  }
}

/**
 * The library gives each route its own counters (child stores); the contract gives each address one
 * budget across all the unauthenticated auth endpoints together, so every route shares this store.
 * With Redis: the counts every instance shares while Redis answers, this process's own while it does not.
 */
function sharedStore (redis: Redis | null) {
  const local = new LocalCounts()
  if (redis !== null) redis.defineCommand('authServerRateLimit', { numberOfKeys: 1, lua: FIXED_WINDOW })
  return class SharedStore implements FastifyRateLimitStore {
    incr (key: string, callback: StoreCallback, timeWindow: number): void {
      if (redis === null || redis.status !== 'ready') return local.incr(key, callback, timeWindow)
      redis.authServerRateLimit(REDIS_KEY_PREFIX + key, timeWindow).then(
        ([current, ttl]) => callback(null, { current, ttl }),
        () => local.incr(key, callback, timeWindow)
      )
    }

    child (): FastifyRateLimitStore {
      return this
    }
  }
}

export default fp(async function rateLimits (fastify) {
  await fastify.register(rateLimit, {
    global: false,
    // The same bucket as the login throttle's: IPv6 by its prefix, IPv4-mapped as IPv4.
    keyGenerator: (request) => clientAddressKey(request.ip, fastify.config.ipv6PrefixLength),
    store: sharedStore(fastify.redis),
    errorResponseBuilder: (_request, context) => {
      fastify.authEvents.report({ type: 'rate-limited', limiter: 'requests' })
      return rateLimited(Math.max(1, Math.ceil(context.ttl / 1000)))
    }
  })
}, { name: 'rate-limit', dependencies: ['redis', 'auth-events'] })
