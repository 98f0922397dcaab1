// Login attempts counted per (account, client address). After `maxFailures` failures within the
// window, the pair is locked until the window (which starts at the first failure) has passed — even
// the right password gets 429 then. Unknown accounts are counted the same way, so the lock reveals
// nothing about which accounts exist.
import type { Redis } from 'ioredis'
import type { Clock } from './token-rules.js'

export interface FailureCounterStore {
  /** Adds one failure; returns the count in the current window and when that window ends (ms). */
  increment: (key: string, windowMs: number) => Promise<{ count: number, resetAt: number }>
  clear: (key: string) => Promise<void>
}

/** Per-process counters; the default when no shared store is configured. Bounded in size. */
export class MemoryFailureCounterStore implements FailureCounterStore {
  private readonly windows = new Map<string, { count: number, resetAt: number }>()

  constructor (private readonly clock: Clock, private readonly maxKeys = 100_000) {}

  async increment (key: string, windowMs: number): Promise<{ count: number, resetAt: number }> {
    const now = this.clock()
    let entry = this.windows.get(key)
    if (entry === undefined || entry.resetAt <= now) {
      if (this.windows.size >= this.maxKeys) this.evictExpired(now)
      entry = { count: 0, resetAt: now + windowMs }
      this.windows.set(key, entry)
    }
    entry.count += 1
    return { ...entry }
  }

  async clear (key: string): Promise<void> {
    this.windows.delete(key)
  }

  private evictExpired (now: number): void {
    for (const [key, entry] of this.windows) if (entry.resetAt <= now) this.windows.delete(key)
    // Still full of live windows: drop the oldest (Map keeps insertion order) rather than grow.
    for (const key of this.windows.keys()) {
      if (this.windows.size < this.maxKeys) break
      this.windows.delete(key)
    }
  }
}

/** INCR with the window set on the first failure; returns [count, milliseconds left]. */
const INCREMENT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return { count, redis.call('PTTL', KEYS[1]) }`

/**
 * Counters shared by every instance through Redis. While Redis is unreachable the counts live in this
 * process's memory (the fallback), so a lost Redis weakens the limit to per-instance instead of
 * failing logins.
 */
export class RedisFailureCounterStore implements FailureCounterStore {
  constructor (private readonly redis: Redis, private readonly fallback: FailureCounterStore, private readonly clock: Clock) {}

  async increment (key: string, windowMs: number): Promise<{ count: number, resetAt: number }> {
    if (this.redis.status !== 'ready') return this.fallback.increment(key, windowMs)
    try {
      const [count, ttl] = await this.redis.eval(INCREMENT_SCRIPT, 1, `auth-server:${key}`, windowMs) as [number, number]
      return { count, resetAt: this.clock() + Math.max(ttl, 0) }
    } catch {
      return this.fallback.increment(key, windowMs)
    }
  }

  async clear (key: string): Promise<void> {
    await this.fallback.clear(key)
    if (this.redis.status !== 'ready') return
    try {
      await this.redis.del(`auth-server:${key}`)
    } catch {}
  }
}

export class LoginThrottle {
  constructor (
    private readonly store: FailureCounterStore,
    private readonly clock: Clock,
    private readonly maxFailures: number,
    private readonly windowSeconds: number
  ) {}

  private key (usernameKey: string, address: string): string {
    return `login-failures:${address}:${usernameKey}`
  }

  /**
   * Counts an attempt before the password is checked, so concurrent attempts cannot slip past the
   * limit. Returns 0 when the attempt may go ahead, or the seconds until the pair may try again.
   */
  async attempt (usernameKey: string, address: string): Promise<number> {
    const { count, resetAt } = await this.store.increment(this.key(usernameKey, address), this.windowSeconds * 1000)
    if (count <= this.maxFailures) return 0
    return Math.max(1, Math.ceil((resetAt - this.clock()) / 1000))
  }

  /** A successful login wipes the pair's failures. */
  async forgive (usernameKey: string, address: string): Promise<void> {
    await this.store.clear(this.key(usernameKey, address))
  }
}
