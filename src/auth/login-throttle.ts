// Login attempts counted per (account, client address). After `maxFailures` failures within the
// window, the pair is locked until the window (which starts at the first failure) has passed — even
// the right password gets 429 then. Unknown accounts are counted the same way, so the lock reveals
// nothing about which accounts exist.
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
