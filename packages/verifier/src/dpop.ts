// DPoP (RFC 9449) at a resource server: the proof that travels beside `Authorization: DPoP <token>`
// is checked as §4.3 and §7.1 say, and its jti is remembered so the same proof is never accepted twice.
// Kept apart from the token checks so each rule can be tested alone.
import { type KeyObject, createHash, createHmac, createPublicKey, timingSafeEqual, verify as verifySignature } from 'node:crypto'
import { EmbeddedJWK, calculateJwkThumbprint, errors as joseErrors, jwtVerify, type JWK } from 'jose'

/** The auth server's own list (its metadata's dpop_signing_alg_values_supported). */
export const DEFAULT_DPOP_ALGORITHMS = ['ES256', 'ES384', 'EdDSA']
/** Asymmetric algorithms only: a proof must be checkable with the public key it carries. */
const ASYMMETRIC = new Set(['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'])
/** JWK members that only a private (or symmetric) key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']
const MAX_JTI_LENGTH = 256
const MAX_PROOF_LENGTH = 8192

/**
 * The algorithms checked with node:crypto directly (synchronous, ~0.1 ms a proof with its key cached)
 * rather than through jose's WebCrypto path (~0.5 ms: a key import and a thread-pool job per proof).
 * Each names the key type and curve it takes, the hash and the signature encoding.
 */
const NATIVE: Record<string, { kty: string, crv: string, hash: string | null }> = {
  ES256: { kty: 'EC', crv: 'P-256', hash: 'sha256' },
  ES384: { kty: 'EC', crv: 'P-384', hash: 'sha384' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519', hash: null }
}

/** RFC 7638: the SHA-256 of the required members, in lexicographic order, without whitespace. */
function thumbprintOf (jwk: JWK): string {
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

/** Public keys seen lately, by their thumbprint: a client signs every request with the same key. */
class KeyCache {
  private readonly keys = new Map<string, KeyObject>()
  constructor (private readonly max = 10_000) {}
  get (jkt: string, jwk: JWK): KeyObject {
    let key = this.keys.get(jkt)
    if (key !== undefined) return key
    key = createPublicKey({ key: jwk as never, format: 'jwk' })
    if (this.keys.size >= this.max) this.keys.delete(this.keys.keys().next().value!)
    this.keys.set(jkt, key)
    return key
  }
}

function decodeSegment (segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/**
 * Where used proof ids are remembered until their proofs are too old to be accepted anyway. Share one
 * between the instances of a service (e.g. Redis, see redisReplayStore) so a proof used on one is
 * refused on the others.
 */
export interface DpopReplayStore {
  /**
   * Remembers `key` until `expiresAt` (ms since the epoch). True when it was not known yet (first
   * use), false when it was (a replay). Must be atomic across everyone sharing the store.
   */
  remember: (key: string, expiresAt: number) => Promise<boolean> | boolean
}

/** Thrown when a bounded store is full of proofs still inside their window: fail closed. */
export class ReplayStoreFullError extends Error {
  constructor () {
    super('The DPoP replay cache is full')
    this.name = 'ReplayStoreFullError'
  }
}

/**
 * Used proof ids in this process's memory, at most `maxEntries` at once. Entries leave when their
 * proofs' iat window has passed; while it is full of live entries, new proofs are refused (a proof is
 * never forgotten early, which would let it be replayed).
 */
export function memoryReplayStore ({ maxEntries = 100_000 }: { maxEntries?: number } = {}): DpopReplayStore & { size: () => number } {
  const entries = new Map<string, number>()
  const prune = (now: number) => {
    for (const [key, until] of entries) if (until <= now) entries.delete(key)
  }
  return {
    size: () => entries.size,
    remember (key, expiresAt) {
      const now = Date.now()
      const known = entries.get(key)
      if (known !== undefined && known > now) return false
      // Entries arrive roughly in expiry order: drop the expired head cheaply, sweep all when full.
      for (const [oldKey, until] of entries) {
        if (until > now) break
        entries.delete(oldKey)
      }
      if (entries.size >= maxEntries) prune(now)
      if (entries.size >= maxEntries) throw new ReplayStoreFullError()
      entries.set(key, expiresAt)
      return true
    }
  }
}

/** The part of an ioredis (or compatible) client the Redis store uses. */
export interface RedisSetNx {
  set: (key: string, value: string, px: 'PX', ms: number, nx: 'NX') => Promise<string | null>
}

/** Used proof ids in Redis (SET NX with an expiry), shared by every instance that uses the same Redis. */
export function redisReplayStore (redis: RedisSetNx, { prefix = 'dpop:jti:' }: { prefix?: string } = {}): DpopReplayStore {
  return {
    async remember (key, expiresAt) {
      const ms = Math.max(1, Math.ceil(expiresAt - Date.now()))
      return await redis.set(prefix + key, '1', 'PX', ms, 'NX') === 'OK'
    }
  }
}

/** Server-chosen nonces (RFC 9449 §9): what the resource server hands out and accepts. */
export interface DpopNonceSource {
  /** The nonce to hand out now (sent in `DPoP-Nonce`). */
  current: () => string
  /** Whether a proof's nonce is (still) acceptable. */
  isValid: (nonce: string) => boolean
}

/**
 * Stateless nonces as the auth server makes them: an HMAC of the current time step, the current and
 * the previous step accepted, so every instance with the same secret agrees without sharing state.
 */
export function timeStepNonces ({ secret, stepSeconds = 300 }: { secret: string | Uint8Array, stepSeconds?: number }): DpopNonceSource {
  if (typeof secret === 'string' ? secret.length < 16 : secret.byteLength < 16) throw new TypeError('timeStepNonces: the secret must be at least 16 bytes')
  const forStep = (step: number) => createHmac('sha256', secret).update(`dpop-nonce:${step}`).digest('base64url')
  const step = () => Math.floor(Date.now() / 1000 / stepSeconds)
  return {
    current: () => forStep(step()),
    isValid (nonce) {
      const presented = Buffer.from(nonce)
      const now = step()
      return [now, now - 1].some((candidate) => {
        const expected = Buffer.from(forStep(candidate))
        return expected.length === presented.length && timingSafeEqual(expected, presented)
      })
    }
  }
}

export interface DpopOptions {
  /** Accepted proof algorithms (asymmetric only). Default ES256, ES384, EdDSA, as the auth server. */
  algorithms?: string[]
  /** A proof's iat must lie within this many seconds of this service's clock, either way. Default 60. */
  proofWindowSeconds?: number
  /** Where used jti values are kept. Default: memoryReplayStore({ maxEntries: replayCacheSize }). */
  replayStore?: DpopReplayStore
  /** Size of the default in-memory replay cache. Default 100 000. */
  replayCacheSize?: number
  /** Require server nonces in proofs (RFC 9449 §9). Default: none. */
  nonce?: DpopNonceSource
  /** Refuse Bearer tokens altogether: every token must be DPoP-bound. Default false. */
  required?: boolean
}

/** Why a proof was refused: `error` is the RFC 9449 error code for the challenge. */
export class DpopProofError extends Error {
  constructor (readonly error: 'invalid_dpop_proof' | 'use_dpop_nonce', message: string) {
    super(message)
    this.name = 'DpopProofError'
  }
}

export interface CheckedProof {
  /** RFC 7638 thumbprint (SHA-256, base64url) of the proof's key. */
  jkt: string
  jti: string
  /** Seconds since the epoch. */
  iat: number
}

export interface ProofContext {
  method: string
  /** The request's URL as the client addressed it (scheme, host, path; query and fragment are ignored). */
  url: string
  /** The access token the proof must name (ath). */
  accessToken: string
}

/** base64url(SHA-256(ASCII(token))), the proof's ath (RFC 9449 §4.2). */
export function accessTokenHash (token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url')
}

/** The URL the way htu is compared (RFC 9449 §4.3 step 9): normalized, without query and fragment. */
export function htuOf (url: string): string | undefined {
  try {
    const parsed = new URL(url)
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return undefined
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  } catch {
    return undefined
  }
}

export interface ProofChecker {
  readonly algorithms: string[]
  readonly replayStore: DpopReplayStore
  readonly nonce: DpopNonceSource | undefined
  readonly required: boolean
  /** §4.3 steps 1–11 and ath: everything but the key binding and the jti's single use. */
  check: (proof: string, context: ProofContext) => Promise<CheckedProof>
  /** The jti's single use, once everything else passed (so only holders of a valid token fill the cache). */
  spend: (proof: CheckedProof) => Promise<void>
}

export function createProofChecker (options: DpopOptions = {}): ProofChecker {
  const algorithms = options.algorithms ?? DEFAULT_DPOP_ALGORITHMS
  for (const alg of algorithms) {
    if (!ASYMMETRIC.has(alg)) throw new TypeError(`createVerifier: DPoP algorithm ${alg} is not an asymmetric JWS algorithm`)
  }
  const window = options.proofWindowSeconds ?? 60
  if (!(window > 0)) throw new TypeError('createVerifier: dpop.proofWindowSeconds must be a positive number')
  const replayStore = options.replayStore ?? memoryReplayStore({ maxEntries: options.replayCacheSize })
  const nonce = options.nonce
  const keys = new KeyCache()
  const invalid = (message: string) => new DpopProofError('invalid_dpop_proof', message)

  async function check (proof: string, context: ProofContext): Promise<CheckedProof> {
    if (typeof proof !== 'string' || proof.length > MAX_PROOF_LENGTH || !/^[\w-]+\.[\w-]+\.[\w-]+$/.test(proof)) throw invalid('The DPoP proof is not one compact JWS')
    const [encodedHeader, encodedPayload, encodedSignature] = proof.split('.') as [string, string, string]
    const header = decodeSegment(encodedHeader)
    if (header === undefined) throw invalid('The DPoP proof\'s header cannot be read')
    // Checked before any library sees the key: a private or symmetric key in a proof is refused as such.
    const jwk = header.jwk as JWK | undefined
    if (jwk === undefined || typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw invalid('The DPoP proof carries no jwk')
    if (PRIVATE_MEMBERS.some((member) => member in jwk)) throw invalid('The DPoP proof\'s jwk must be a public key')
    if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) throw invalid('The DPoP proof\'s alg is not accepted')
    const native = NATIVE[header.alg]
    let payload: Record<string, unknown> | undefined
    let jkt: string
    if (native !== undefined) {
      if (header.typ !== 'dpop+jwt' && header.typ !== 'application/dpop+jwt') throw invalid('The DPoP proof\'s typ must be dpop+jwt')
      // RFC 7515 §4.1.11: an extension this service does not know must not be ignored.
      if (header.crit !== undefined) throw invalid('The DPoP proof names critical extensions')
      if (jwk.kty !== native.kty || jwk.crv !== native.crv || typeof jwk.x !== 'string' || (native.kty === 'EC' && typeof jwk.y !== 'string')) {
        throw invalid(`A ${header.alg} DPoP proof needs a ${native.crv} key`)
      }
      // As jose's EmbeddedJWK: a key that says what it is for must say this.
      if ((jwk.use !== undefined && jwk.use !== 'sig') || (jwk.alg !== undefined && jwk.alg !== header.alg)) throw invalid('The DPoP proof\'s jwk is not a signing key for its alg')
      const signature = Buffer.from(encodedSignature, 'base64url')
      if (signature.toString('base64url') !== encodedSignature) throw invalid('The DPoP proof\'s signature is not canonical base64url')
      jkt = thumbprintOf(jwk)
      let valid: boolean
      try {
        const key = keys.get(jkt, jwk)
        valid = verifySignature(native.hash, Buffer.from(`${encodedHeader}.${encodedPayload}`), native.hash === null ? key : { key, dsaEncoding: 'ieee-p1363' }, signature)
      } catch {
        valid = false
      }
      if (!valid) throw invalid('The DPoP proof\'s signature does not verify with its jwk')
      payload = decodeSegment(encodedPayload)
      if (payload === undefined) throw invalid('The DPoP proof\'s payload cannot be read')
      // jose refuses an expired JWT; a proof has no business expiring before its iat window does, but if it says so, it is.
      if (payload.exp !== undefined && (typeof payload.exp !== 'number' || payload.exp <= Date.now() / 1000)) throw invalid('The DPoP proof has expired')
    } else {
      // Other asymmetric algorithms (RSA, when allowed): through jose.
      try {
        ({ payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms }))
      } catch (error) {
        if (error instanceof joseErrors.JOSEError) throw invalid(`The DPoP proof is invalid (${error.code})`)
        throw error
      }
      jkt = await calculateJwkThumbprint(jwk, 'sha256')
    }
    const { jti, htm, htu, iat, ath } = payload
    if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) throw invalid('The DPoP proof needs a jti')
    if (htm !== context.method.toUpperCase()) throw invalid('The DPoP proof\'s htm does not match the request method')
    const expected = htuOf(context.url)
    if (expected === undefined) throw new TypeError(`DPoP: the request URL ${context.url} is not an absolute http(s) URL; set the resource server's publicUrl`)
    if (typeof htu !== 'string' || htuOf(htu) !== expected) throw invalid('The DPoP proof\'s htu does not match the request URL')
    if (typeof iat !== 'number' || !Number.isFinite(iat)) throw invalid('The DPoP proof needs an iat')
    const now = Date.now() / 1000
    if (iat > now + window) throw invalid('The DPoP proof\'s iat is in the future')
    if (iat < now - window) throw invalid('The DPoP proof is too old')
    if (ath !== accessTokenHash(context.accessToken)) throw invalid('The DPoP proof\'s ath does not match the access token')
    if (nonce !== undefined && (typeof payload.nonce !== 'string' || !nonce.isValid(payload.nonce))) {
      throw new DpopProofError('use_dpop_nonce', 'The resource server requires a nonce in the DPoP proof')
    }
    return { jkt, jti, iat }
  }

  async function spend (proof: CheckedProof): Promise<void> {
    // Kept until the proof is refused by its iat anyway.
    const expiresAt = (proof.iat + window) * 1000 + 1000
    if (!await replayStore.remember(`${proof.jkt}.${proof.jti}`, expiresAt)) throw invalid('The DPoP proof has been used before')
  }

  return { algorithms, replayStore, nonce, required: options.required ?? false, check, spend }
}

/** An RFC 9449 §7.1 challenge: `DPoP algs="…"` with the error, when there is one. */
export function dpopChallenge (algorithms: string[], error?: string, description?: string): string {
  const params: string[] = []
  if (error !== undefined) params.push(`error="${error}"`)
  if (description !== undefined) params.push(`error_description="${description.replace(/["\\]/g, '')}"`)
  params.push(`algs="${algorithms.join(' ')}"`)
  return `DPoP ${params.join(', ')}`
}
