// DPoP proofs (RFC 9449): the checks of §4.3, the single-use `jti` store and the server nonces.
// A proof is a JWT the client signs, per request, with a key pair it keeps; a session started with a
// proof is bound to that key's RFC 7638 thumbprint (sessions.ts), so its tokens are worthless
// without the private key. No Fastify here: the plugin (src/plugins/dpop.ts) feeds requests in.
import { type KeyObject, createHash, createHmac, createPublicKey, hkdfSync, timingSafeEqual, verify } from 'node:crypto'
import type { Redis } from 'ioredis'
import { type JWK, calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from 'jose'
import { DpopInvalid, DpopNonceRequired, ServiceUnavailable } from '../errors.js'
import type { Clock } from './token-rules.js'

export type DpopMode = 'off' | 'optional' | 'required'

/** Asymmetric algorithms only (RFC 9449 §4.3 step 5), each with the one key type it may use. */
const KEY_TYPES: Record<string, { kty: string, crv: string, hash: string | null, signatureBytes: number }> = {
  ES256: { kty: 'EC', crv: 'P-256', hash: 'sha256', signatureBytes: 64 },
  ES384: { kty: 'EC', crv: 'P-384', hash: 'sha384', signatureBytes: 96 },
  EdDSA: { kty: 'OKP', crv: 'Ed25519', hash: null, signatureBytes: 64 }
}
export const DPOP_ALGORITHMS = Object.keys(KEY_TYPES)

/** Members that only a private (or symmetric) key has: a proof's `jwk` must never carry one. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']
/** Far above any honest proof (an EC P-384 proof with ath and nonce is under 1 KiB). */
const MAX_PROOF_LENGTH = 4096
const MAX_JTI_LENGTH = 256

/** Where the proof is presented: what its htm, htu and ath must say, and the key it must be made with. */
export interface ProofExpectation {
  /** The request method, as htm must give it. */
  method: string
  /** The request's URL as the client addresses it (PUBLIC_URL + path); query and fragment are ignored. */
  url: string
  /** The access token sent beside the proof: ath must be its hash (RFC 9449 §7). */
  accessToken?: string | undefined
  /** The thumbprint the proof's key must have (a bound token's cnf.jkt). */
  thumbprint?: string | undefined
}

export interface VerifiedProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's public key, base64url. */
  thumbprint: string
}

/** Where a proof's `jti` is remembered until the proof could no longer be accepted anyway. */
export interface ReplayStore {
  /** True when the key was not seen before (now it is, for ttlMs); false for a replay. */
  claim: (key: string, ttlMs: number) => Promise<boolean>
}

/**
 * Per-process memory, bounded. Entries leave when they expire; when it is full of live entries a
 * new proof is refused (503) rather than an entry forgotten, as forgetting would let that proof be
 * replayed. Only proofs that passed every other check get here, and on protected routes only proofs
 * by the key a token is bound to, so filling it takes valid proofs at a very high rate.
 */
export class MemoryReplayStore implements ReplayStore {
  private readonly seen = new Map<string, number>()

  constructor (private readonly clock: Clock, private readonly maxEntries = 100_000) {}

  get size (): number {
    return this.seen.size
  }

  async claim (key: string, ttlMs: number): Promise<boolean> {
    const now = this.clock()
    const expiresAt = this.seen.get(key)
    if (expiresAt !== undefined && expiresAt > now) return false
    if (expiresAt === undefined && this.seen.size >= this.maxEntries) {
      this.evictExpired(now)
      if (this.seen.size >= this.maxEntries) throw new ServiceUnavailable()
    }
    this.seen.delete(key)
    this.seen.set(key, now + ttlMs)
    return true
  }

  private evictExpired (now: number): void {
    for (const [key, expiresAt] of this.seen) if (expiresAt <= now) this.seen.delete(key)
  }
}

/**
 * Shared by every instance through Redis (SET NX PX: one atomic claim). While Redis is unreachable the
 * local store still refuses replays to this instance; memory always records too, so a proof claimed
 * during an outage stays refused here after it.
 */
export class RedisReplayStore implements ReplayStore {
  constructor (private readonly redis: Redis, private readonly local: ReplayStore, private readonly onOutage: (error: unknown) => void = () => {}) {}

  async claim (key: string, ttlMs: number): Promise<boolean> {
    if (!await this.local.claim(key, ttlMs)) return false
    if (this.redis.status !== 'ready') return true
    try {
      return await this.redis.set(`auth-server:dpop-jti:${key}`, '1', 'PX', ttlMs, 'NX') === 'OK'
    } catch (error) {
      this.onOutage(error)
      return true
    }
  }
}

/**
 * Stateless server nonces (RFC 9449 §8): an HMAC of the current time step, so every instance with the
 * same JWT_SECRET makes and accepts the same values without storing anything. The current and the
 * previous step are accepted: a nonce lives one to two steps.
 */
export class DpopNonces {
  private readonly key: Buffer

  constructor (rootSecret: string, private readonly clock: Clock, readonly stepSeconds = 300) {
    this.key = Buffer.from(hkdfSync('sha256', rootSecret, 'auth-server', 'dpop-nonce v1', 32))
  }

  private latest = { step: -1, nonce: '' }

  current (): string {
    const step = this.stepAt(this.clock())
    if (step !== this.latest.step) this.latest = { step, nonce: this.make(step) }
    return this.latest.nonce
  }

  isValid (nonce: unknown): boolean {
    if (typeof nonce !== 'string' || nonce.length > 64) return false
    const step = this.stepAt(this.clock())
    const presented = Buffer.from(nonce)
    return [step, step - 1].some((candidate) => {
      const expected = Buffer.from(this.make(candidate))
      return expected.length === presented.length && timingSafeEqual(expected, presented)
    })
  }

  private stepAt (ms: number): number {
    return Math.floor(ms / 1000 / this.stepSeconds)
  }

  private make (step: number): string {
    const counter = Buffer.alloc(8)
    counter.writeBigUInt64BE(BigInt(step))
    const mac = createHmac('sha256', this.key).update(counter).digest().subarray(0, 16)
    return Buffer.concat([counter.subarray(2), mac]).toString('base64url')
  }
}

/**
 * An htu or request URL as compared (RFC 9449 §4.3 step 9): scheme and host lower-cased, the default
 * port dropped, dot segments resolved (WHATWG URL parsing does all of RFC 3986's normalisation that
 * matters here), without query and fragment. Null for anything but an http(s) URL without userinfo.
 */
export function normaliseHtu (value: string): string | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return null
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') return null
  return `${url.protocol}//${url.host}${url.pathname}`
}

/** base64url(SHA-256(access token)): a proof's `ath` (RFC 9449 §4.2). */
export function accessTokenHash (accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest('base64url')
}

export interface DpopVerifierOptions {
  clock: Clock
  /** Seconds a proof's iat may lie before or after the server's time. */
  windowSeconds: number
  replays: ReplayStore
  /** Set when DPOP_NONCE=true: every proof must carry one of its nonces. */
  nonces?: DpopNonces | null
}

const invalid = (why: string) => new DpopInvalid(why)

/** A client signs every request with the same key: its parsed form and thumbprint are kept (bounded). */
const KEYS_KEPT = 10_000
interface KnownKey { key: KeyObject, thumbprint: string }

export class DpopVerifier {
  private readonly keys = new Map<string, KnownKey>()

  constructor (private readonly options: DpopVerifierOptions) {}

  /** The public key of a proof's jwk (OpenSSL checks the point), with its RFC 7638 thumbprint (jose). */
  private async publicKey (jwk: Record<string, unknown>): Promise<KnownKey> {
    const id = JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y])
    const known = this.keys.get(id)
    if (known !== undefined) return known
    const members = jwk.kty === 'EC' ? { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } : { kty: jwk.kty, crv: jwk.crv, x: jwk.x }
    let key: KeyObject
    try {
      key = createPublicKey({ key: members as never, format: 'jwk' })
    } catch {
      throw invalid('The DPoP proof jwk is not a valid public key')
    }
    const entry = { key, thumbprint: await calculateJwkThumbprint(members as JWK, 'sha256') }
    if (this.keys.size >= KEYS_KEPT) this.keys.delete(this.keys.keys().next().value!)
    this.keys.set(id, entry)
    return entry
  }

  /**
   * Checks one proof against the request it came with; resolves with its key's thumbprint, or throws
   * DpopInvalid (with the reason in its message), DpopNonceRequired, or ServiceUnavailable (the replay
   * store is full).
   */
  async verify (proof: string, expected: ProofExpectation): Promise<VerifiedProof> {
    if (proof.length > MAX_PROOF_LENGTH || proof.split('.').length !== 3) throw invalid('The DPoP proof is not a compact JWS')
    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(proof)
    } catch {
      throw invalid('The DPoP proof header is malformed')
    }
    if (header.typ !== 'dpop+jwt') throw invalid('The DPoP proof must have typ "dpop+jwt"')
    const keyType = typeof header.alg === 'string' && Object.hasOwn(KEY_TYPES, header.alg) ? KEY_TYPES[header.alg]! : undefined
    if (keyType === undefined) throw invalid(`The DPoP proof alg must be one of ${DPOP_ALGORITHMS.join(', ')}`)
    const jwk = header.jwk as Record<string, unknown> | undefined
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw invalid('The DPoP proof must carry its public key as jwk')
    if (PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member))) throw invalid('The DPoP proof jwk must be a public key (it carries a private member)')
    if (jwk.kty !== keyType.kty || jwk.crv !== keyType.crv) throw invalid(`The DPoP proof jwk must be a ${keyType.kty} ${keyType.crv} key for ${header.alg as string}`)

    if (typeof jwk.x !== 'string' || (keyType.kty === 'EC' && typeof jwk.y !== 'string')) throw invalid('The DPoP proof jwk is not a valid public key')
    if (header.crit !== undefined) throw invalid('The DPoP proof has critical header extensions this server does not know')
    if ((jwk.use !== undefined && jwk.use !== 'sig') || (jwk.alg !== undefined && jwk.alg !== header.alg)) throw invalid('The DPoP proof jwk is not a signing key for its alg')
    const { key, thumbprint } = await this.publicKey(jwk)
    // The JWS signature (RFC 7515 §5.2) over the encoded header and payload, checked by OpenSSL;
    // ECDSA signatures are the raw r‖s of RFC 7518 §3.4.
    const [encodedHeader, encodedPayload, encodedSignature] = proof.split('.') as [string, string, string]
    const signature = Buffer.from(encodedSignature, 'base64url')
    if (signature.length !== keyType.signatureBytes || signature.toString('base64url') !== encodedSignature ||
        !verify(keyType.hash, Buffer.from(`${encodedHeader}.${encodedPayload}`), { key, dsaEncoding: 'ieee-p1363' }, signature)) {
      throw invalid('The DPoP proof signature does not verify with its jwk')
    }
    let payload: Record<string, unknown>
    try {
      payload = decodeJwt(proof)
    } catch {
      throw invalid('The DPoP proof claims are malformed')
    }
    if (typeof payload.exp === 'number' && payload.exp * 1000 <= this.options.clock()) throw invalid('The DPoP proof has expired (exp)')
    const { jti, htm, htu, iat } = payload
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) throw invalid('The DPoP proof needs a jti of 1 to 256 characters')
    if (htm !== expected.method) throw invalid(`The DPoP proof htm must be ${expected.method}`)
    const expectedUrl = normaliseHtu(expected.url)
    if (typeof htu !== 'string' || expectedUrl === null || normaliseHtu(htu) !== expectedUrl) throw invalid(`The DPoP proof htu must be ${expectedUrl ?? expected.url}`)
    const now = this.options.clock() / 1000
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalid('The DPoP proof needs an iat')
    if (iat < now - this.options.windowSeconds) throw invalid('The DPoP proof is too old (iat)')
    if (iat > now + this.options.windowSeconds) throw invalid('The DPoP proof is dated in the future (iat)')
    if (expected.accessToken !== undefined) {
      if (typeof payload.ath !== 'string') throw invalid('The DPoP proof needs ath, the hash of the access token')
      if (payload.ath !== accessTokenHash(expected.accessToken)) throw invalid('The DPoP proof ath does not match the access token')
    }

    if (expected.thumbprint !== undefined && thumbprint !== expected.thumbprint) throw invalid('The DPoP proof is not signed by the key the token is bound to')
    const { nonces } = this.options
    if (nonces != null && !nonces.isValid(payload.nonce)) {
      throw new DpopNonceRequired(payload.nonce === undefined ? 'A DPoP nonce is required' : 'The DPoP nonce is invalid or expired')
    }

    // Remembered until the proof's iat leaves the window: a replay after that fails the iat check.
    const ttlMs = Math.max(1000, Math.ceil((iat + this.options.windowSeconds - now) * 1000) + 1000)
    const replayKey = createHash('sha256').update(thumbprint).update('\0').update(jti).digest('base64url')
    if (!await this.options.replays.claim(replayKey, ttlMs)) throw invalid('The DPoP proof was already used (jti)')
    return { thumbprint }
  }
}
