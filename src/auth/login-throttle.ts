// Login attempts counted per (account, client address). After `maxFailures` failures within the
// window, the pair is locked until the window (which starts at the first failure) has passed — even
// the right password gets 429 then. Unknown accounts are counted the same way, so the lock reveals
// nothing about which accounts exist.
//
// Only failures lock. Yet concurrent guesses must not get more password checks than the failures
// left allow, so every check in flight holds one unit of that budget until it ends: failures plus
// checks in flight never exceed `maxFailures`. An attempt that finds the budget taken by checks in
// flight waits for one of them to end (a success frees the whole budget, a failure uses its unit
// up), for at most `maxWaitMs`; it gets 429 only when the failures themselves reach the limit (with
// the true time left in the window) or the wait runs out (Retry-After: 1). A check that did not
// complete (the database failed) gives its unit back and counts for nothing.
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Clock } from './token-rules.js'

export interface Reservation {
  /** The attempt may check the password now. */
  admitted: boolean
  /** Failures in the current window. */
  failures: number
  /** When the failure window ends (ms); meaningful while failures > 0. */
  resetAt: number
}

/** The counters of one (account, address) pair: failures in a window, and checks in flight. */
export interface LoginAttemptStore {
  /** Admits attempt `id` when failures + checks in flight < `max`; the check holds its unit for at most `leaseMs`. */
  reserve: (key: string, id: string, max: number, leaseMs: number) => Promise<Reservation>
  /** Attempt `id` failed: its unit becomes a failure (the window starts at the first one). */
  fail: (key: string, id: string, windowMs: number) => Promise<void>
  /** Attempt `id` succeeded: the pair's failures are wiped. */
  succeed: (key: string, id: string) => Promise<void>
  /** Attempt `id` did not complete: its unit is given back, nothing counted. */
  release: (key: string, id: string) => Promise<void>
}

interface PairState { failures: number, resetAt: number, inFlight: Map<string, number> }

/** Per-process counters; the default when no shared store is configured. Bounded in size. */
export class MemoryLoginAttemptStore implements LoginAttemptStore {
  private readonly pairs = new Map<string, PairState>()

  constructor (private readonly clock: Clock, private readonly maxKeys = 100_000) {}

  async reserve (key: string, id: string, max: number, leaseMs: number): Promise<Reservation> {
    const now = this.clock()
    const pair = this.current(key, now)
    const admitted = pair.failures + pair.inFlight.size < max
    if (admitted) pair.inFlight.set(id, now + leaseMs)
    else if (pair.failures === 0 && pair.inFlight.size === 0) this.pairs.delete(key)
    return { admitted, failures: pair.failures, resetAt: pair.resetAt }
  }

  async fail (key: string, id: string, windowMs: number): Promise<void> {
    const now = this.clock()
    const pair = this.current(key, now)
    pair.inFlight.delete(id)
    if (pair.failures === 0) pair.resetAt = now + windowMs
    pair.failures += 1
  }

  async succeed (key: string, id: string): Promise<void> {
    const pair = this.pairs.get(key)
    if (pair === undefined) return
    pair.inFlight.delete(id)
    pair.failures = 0
    pair.resetAt = 0
    if (pair.inFlight.size === 0) this.pairs.delete(key)
  }

  async release (key: string, id: string): Promise<void> {
    const pair = this.pairs.get(key)
    if (pair === undefined) return
    pair.inFlight.delete(id)
    if (pair.inFlight.size === 0 && pair.failures === 0) this.pairs.delete(key)
  }

  /** Failures in their window (a passed window is forgotten) and the checks whose lease holds. */
  private current (key: string, now: number): PairState {
    let pair = this.pairs.get(key)
    if (pair === undefined) {
      if (this.pairs.size >= this.maxKeys) this.evict(now)
      pair = { failures: 0, resetAt: 0, inFlight: new Map() }
      this.pairs.set(key, pair)
    }
    if (pair.failures > 0 && pair.resetAt <= now) {
      pair.failures = 0
      pair.resetAt = 0
    }
    for (const [id, leaseUntil] of pair.inFlight) if (leaseUntil <= now) pair.inFlight.delete(id)
    return pair
  }

  private evict (now: number): void {
    for (const [key, pair] of this.pairs) {
      if (pair.resetAt <= now && [...pair.inFlight.values()].every((leaseUntil) => leaseUntil <= now)) this.pairs.delete(key)
    }
    // Still full of live pairs: drop the oldest (Map keeps insertion order) rather than grow.
    for (const key of this.pairs.keys()) {
      if (this.pairs.size < this.maxKeys) break
      this.pairs.delete(key)
    }
  }
}

// KEYS[1] the failure count (expires with its window), KEYS[2] the checks in flight (a sorted set
// of attempt ids scored by the end of their lease).
const RESERVE_SCRIPT = `
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if failures + redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[3]), ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return { 1, failures, ttl }
end
return { 0, failures, ttl }`
const FAIL_SCRIPT = `
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1`
const SUCCEED_SCRIPT = `
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1`

/**
 * Counters shared by every instance through Redis. While Redis is unreachable the counts live in this
 * process's memory (the fallback), so a lost Redis weakens the limit to per-instance instead of
 * failing logins. An attempt admitted by the fallback is settled there too.
 */
export class RedisLoginAttemptStore implements LoginAttemptStore {
  private readonly admittedLocally = new Set<string>()

  constructor (private readonly redis: Redis, private readonly fallback: LoginAttemptStore, private readonly clock: Clock) {}

  async reserve (key: string, id: string, max: number, leaseMs: number): Promise<Reservation> {
    if (this.redis.status === 'ready') {
      try {
        const [admitted, failures, ttl] = await this.redis.eval(RESERVE_SCRIPT, 2, ...this.keys(key), this.clock(), max, leaseMs, id) as [number, number, number]
        return { admitted: admitted === 1, failures, resetAt: this.clock() + Math.max(ttl, 0) }
      } catch {}
    }
    const reservation = await this.fallback.reserve(key, id, max, leaseMs)
    if (reservation.admitted) this.admittedLocally.add(id)
    return reservation
  }

  async fail (key: string, id: string, windowMs: number): Promise<void> {
    if (this.admittedLocally.delete(id)) return this.fallback.fail(key, id, windowMs)
    if (await this.run(FAIL_SCRIPT, key, windowMs, id)) return
    await this.fallback.fail(key, id, windowMs)
  }

  async succeed (key: string, id: string): Promise<void> {
    this.admittedLocally.delete(id)
    await this.fallback.succeed(key, id)
    await this.run(SUCCEED_SCRIPT, key, id)
  }

  async release (key: string, id: string): Promise<void> {
    if (this.admittedLocally.delete(id)) return this.fallback.release(key, id)
    if (this.redis.status !== 'ready') return // its lease runs out
    try {
      await this.redis.zrem(this.keys(key)[1], id)
    } catch {}
  }

  private keys (key: string): [string, string] {
    return [`auth-server:login-failures:${key}`, `auth-server:login-in-flight:${key}`]
  }

  private async run (script: string, key: string, ...args: Array<string | number>): Promise<boolean> {
    if (this.redis.status !== 'ready') return false
    try {
      await this.redis.eval(script, 2, ...this.keys(key), ...args)
      return true
    } catch {
      return false
    }
  }
}

/** What the caller reports once the password check of an admitted attempt has ended. */
export interface LoginAttempt {
  /** 0 when the attempt may check the password; otherwise the seconds until the pair may try again. */
  retryAfter: number
  /** The password was wrong (or the account unknown, or disabled). */
  failed: () => Promise<void>
  /** The password was right: the pair's failures are wiped. */
  succeeded: () => Promise<void>
  /** The check did not complete: nothing is counted. */
  abandoned: () => Promise<void>
}

/** A check that has not ended after this long no longer holds its unit of the budget. */
const CHECK_LEASE_MS = 60_000
/** How often a waiting attempt looks again (checks of other instances end without telling this one). */
const RECHECK_MS = 50

export class LoginThrottle {
  private readonly waiting = new Map<string, Set<() => void>>()

  constructor (
    private readonly store: LoginAttemptStore,
    private readonly clock: Clock,
    private readonly maxFailures: number,
    private readonly windowSeconds: number,
    /** How long an attempt waits for checks in flight before it gets 429 (wall-clock ms). */
    private readonly maxWaitMs = 10_000
  ) {}

  private key (usernameKey: string, address: string): string {
    return `${address}:${usernameKey}`
  }

  /**
   * Admits an attempt once the pair's budget allows one more password check (waiting for checks in
   * flight if need be), or refuses it with the seconds until the pair may try again.
   */
  async begin (usernameKey: string, address: string): Promise<LoginAttempt> {
    const key = this.key(usernameKey, address)
    const id = randomUUID()
    const deadline = Date.now() + this.maxWaitMs
    for (;;) {
      const reservation = await this.store.reserve(key, id, this.maxFailures, CHECK_LEASE_MS)
      if (reservation.admitted) return this.admitted(key, id)
      if (reservation.failures >= this.maxFailures) return refused(Math.ceil((reservation.resetAt - this.clock()) / 1000))
      if (Date.now() >= deadline) return refused(1)
      await this.checkEnded(key, Math.min(RECHECK_MS, Math.max(1, deadline - Date.now())))
    }
  }

  private admitted (key: string, id: string): LoginAttempt {
    let settled = false
    const settle = (action: () => Promise<void>) => async () => {
      if (settled) return
      settled = true
      try {
        await action()
      } finally {
        this.wake(key)
      }
    }
    return {
      retryAfter: 0,
      failed: settle(async () => this.store.fail(key, id, this.windowSeconds * 1000)),
      succeeded: settle(async () => this.store.succeed(key, id)),
      abandoned: settle(async () => this.store.release(key, id))
    }
  }

  /** Resolves when a check of this pair ends on this instance, or after `ms`. */
  private async checkEnded (key: string, ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      let waiters = this.waiting.get(key)
      if (waiters === undefined) this.waiting.set(key, waiters = new Set())
      const done = () => {
        clearTimeout(timer)
        waiters.delete(done)
        if (waiters.size === 0 && this.waiting.get(key) === waiters) this.waiting.delete(key)
        resolve()
      }
      const timer = setTimeout(done, ms)
      waiters.add(done)
    })
  }

  private wake (key: string): void {
    for (const done of [...this.waiting.get(key) ?? []]) done()
  }
}

function refused (retryAfter: number): LoginAttempt {
  const nothing = async () => {}
  return { retryAfter: Math.max(1, retryAfter), failed: nothing, succeeded: nothing, abandoned: nothing }
}
