// Per-address request limits (@fastify/rate-limit) for the routes that opt in with `config.rateLimit`.
// With Redis the counts are shared by every instance; while Redis is unreachable each instance
// counts in its own memory rather than failing or waving requests through.
import { createRequire } from 'node:module'
import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { clientAddressKey } from '../auth/client-address.js'
import { rateLimited } from '../errors.js'

const require = createRequire(import.meta.url)
type StoreCallback = (error: Error | null, result?: { current: number, ttl: number }) => void
interface Store {
  incr: (key: string, callback: StoreCallback, timeWindow: number, max: number) => void
  child: (routeOptions: unknown) => Store
}
type StoreConstructor = new (...args: any[]) => Store
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as StoreConstructor
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as StoreConstructor

/** Redis while it answers, this process's memory while it does not. */
function fallbackStoreFor (redis: Redis) {
  return class FallbackStore implements Store {
    constructor (
      _globalParams: unknown,
      private readonly shared: Store = new RedisStore(false, false, redis, 'auth-server:rate-limit:'),
      private readonly local: Store = new LocalStore(false, false, 10_000)
    ) {}

    incr (key: string, callback: StoreCallback, timeWindow: number, max: number): void {
      if (redis.status !== 'ready') return this.local.incr(key, callback, timeWindow, max)
      this.shared.incr(key, (error, result) => {
        if (error !== null) return this.local.incr(key, callback, timeWindow, max)
        callback(null, result)
      }, timeWindow, max)
    }

    // One budget for every limited route (see SharedLocalStore).
    child (): Store {
      return this
    }
  }
}

/**
 * The library gives each route its own counters (child stores); the contract gives each address one
 * budget across all the unauthenticated auth endpoints together, so every route shares this store.
 */
class SharedLocalStore implements Store {
  private readonly local: Store = new LocalStore(false, false, 10_000)

  incr (key: string, callback: StoreCallback, timeWindow: number, max: number): void {
    this.local.incr(key, callback, timeWindow, max)
  }

  child (): Store {
    return this
  }
}

export default fp(async function rateLimits (fastify) {
  await fastify.register(rateLimit, {
    global: false,
    // The same bucket as the login throttle's: IPv6 by its prefix, IPv4-mapped as IPv4.
    keyGenerator: (request) => clientAddressKey(request.ip, fastify.config.ipv6PrefixLength),
    store: fastify.redis === null ? SharedLocalStore : fallbackStoreFor(fastify.redis),
    errorResponseBuilder: (_request, context) => {
      fastify.authEvents.report({ type: 'rate-limited', limiter: 'requests' })
      return rateLimited(Math.max(1, Math.ceil(context.ttl / 1000)))
    }
  })
}, { name: 'rate-limit', dependencies: ['redis', 'auth-events'] })
