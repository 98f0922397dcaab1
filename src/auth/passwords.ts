// Password hashing with argon2id (OWASP: m=19 MiB, t=2, p=1) through @node-rs/argon2, which hashes on
// the libuv thread pool. A limiter bounds how many hashes run at once, so a login storm queues instead
// of taking every core and 19 MiB per attempt; the event loop keeps serving other requests.
import { Algorithm, hash, verify } from '@node-rs/argon2'
import pLimit, { type LimitFunction } from 'p-limit'

const ARGON2ID = { algorithm: Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const

export const PASSWORD_MIN_LENGTH = 8
export const PASSWORD_MAX_LENGTH = 1024

export class PasswordHasher {
  private readonly limit: LimitFunction
  private dummyHash: Promise<string> | undefined
  /** Hears how long each hash or verification took (seconds, time in the queue not included). */
  onHashed: ((seconds: number) => void) | undefined

  constructor (readonly concurrency: number) {
    this.limit = pLimit(concurrency)
  }

  /** Passwords are hashed exactly as received: no trimming, no normalization, no truncation. */
  async hash (password: string): Promise<string> {
    return this.limit(() => this.timed(() => hash(password, ARGON2ID)))
  }

  async verify (passwordHash: string, password: string): Promise<boolean> {
    return this.limit(() => this.timed(async () => {
      try {
        return await verify(passwordHash, password)
      } catch {
        return false
      }
    }))
  }

  private async timed<T> (work: () => Promise<T>): Promise<T> {
    const onHashed = this.onHashed
    if (onHashed === undefined) return work()
    const started = performance.now()
    try {
      return await work()
    } finally {
      onHashed((performance.now() - started) / 1000)
    }
  }

  /**
   * For an unknown or disabled user: the same work as a real check, against a hash of nothing anyone
   * knows, so the answer takes as long as a wrong password.
   */
  async verifyAgainstDummy (password: string): Promise<false> {
    // Made once, through the limiter like any hash; a failed attempt is not kept.
    this.dummyHash ??= this.hash('dummy password that is never accepted').catch((error: unknown) => {
      this.dummyHash = undefined
      throw error
    })
    await this.verify(await this.dummyHash, password)
    return false
  }

  /** Hashing work waiting for a free slot. */
  get queued (): number {
    return this.limit.pendingCount
  }
}

/**
 * Length in characters (Unicode code points), as every length rule of the API counts it: the JSON
 * schemas of /auth/* (Ajv counts code points) and the form fields of /oauth/token alike.
 */
export function characterCount (text: string): number {
  let count = 0
  for (const _ of text) count++
  return count
}

/**
 * Returns what is wrong with a new password, or null. The contract's rule is its length alone
 * (8 to 1024 characters, any Unicode); beyond that only the username itself is refused.
 */
export function passwordWeakness (password: string, username: string): string | null {
  const length = characterCount(password)
  if (length < PASSWORD_MIN_LENGTH) return `must be at least ${PASSWORD_MIN_LENGTH} characters`
  if (length > PASSWORD_MAX_LENGTH) return `must be at most ${PASSWORD_MAX_LENGTH} characters`
  if (password.normalize('NFKC').toLowerCase() === username.normalize('NFKC').toLowerCase()) return 'must differ from the username'
  return null
}
