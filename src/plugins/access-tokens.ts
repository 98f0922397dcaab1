// Access tokens, through @fastify/jwt: signing with the current key, verifying with the current or a
// previous one (each pinned to its own algorithm, typ, iss, aud), and the memory of tokens already
// verified. It knows nothing of sessions: whether a verified token is still honoured (revocation,
// its session in the database) is decided by the protect plugin (src/plugins/protect.ts).
import { randomUUID } from 'node:crypto'
import fastifyJwt from '@fastify/jwt'
import fp from 'fastify-plugin'
import type { AccessTokenSigner } from '../auth/sessions.js'
import { type SigningAlgorithm, readKid } from '../auth/signing-keys.js'
import type { AccessTokenClaims } from '../auth/token-rules.js'
import { TokenExpired, TokenInvalid } from '../errors.js'

export interface AccessTokenPayload extends AccessTokenClaims {
  preferred_username: string
  jti: string
  iat: number
  exp: number
}

/** A token's verified payload; firstSight: not remembered yet (its session is still to be confirmed). */
export interface CheckedToken { payload: AccessTokenPayload, firstSight: boolean }

export interface AccessTokens {
  /** Signs claims with the current key (adds jti; iss, aud, exp, kid and typ come from the configuration). */
  sign: AccessTokenSigner
  /**
   * The payload of a token this server signed that has not expired: from memory if it was
   * remembered, else signature-checked (firstSight). Throws TokenExpired or TokenInvalid.
   * Revocation is not checked here.
   */
  check: (token: string) => CheckedToken
  /** Remember a token whose session was confirmed, so that its next requests skip the signature check. */
  remember: (token: string, payload: AccessTokenPayload) => void
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    /** One namespace per key: `current` signs and verifies, `previous<N>` verify what earlier keys signed. */
    namespaces: 'current' | `previous${number}`
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    accessTokens: AccessTokens
    /** The claims of a token this server signed and that has not expired, else null; revocation not checked. */
    inspectAccessToken: (token: string) => AccessTokenPayload | null
  }
}

export const ACCESS_TOKEN_TYPE = 'at+jwt'
const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'sid', 'ver', 'jti', 'iat', 'exp']
const VERIFIED_TOKENS_KEPT = 10_000

/** The ids this server issues (users, sessions): crypto.randomUUID(), lower case. */
const ISSUED_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const isNumericDate = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0

/**
 * Defence in depth behind the signature: the claims must have exactly the types and shapes this
 * server puts in them, so that a token made with the key by anything else (or a bug) cannot smuggle
 * in a `sid` that names a revoked session differently (upper case, a trailing space), an empty
 * `sub`, or a date that never comes (`exp` 1e309 parses as Infinity).
 */
function hasIssuedClaimShapes (claims: object): boolean {
  const payload = claims as Record<string, unknown>
  return typeof payload.sub === 'string' && ISSUED_ID.test(payload.sub) &&
    typeof payload.sid === 'string' && ISSUED_ID.test(payload.sid) &&
    Number.isSafeInteger(payload.ver) && (payload.ver as number) >= 0 &&
    typeof payload.jti === 'string' && payload.jti !== '' &&
    isNumericDate(payload.exp) && isNumericDate(payload.iat) &&
    (payload.nbf === undefined || isNumericDate(payload.nbf)) &&
    (payload.preferred_username === undefined || typeof payload.preferred_username === 'string') &&
    (payload.client_id === undefined || typeof payload.client_id === 'string')
}

/** A verifier bound to one key: @fastify/jwt's verify for the current key or a previous one. */
type Verify = (token: string) => { header: { kid?: string }, payload: AccessTokenPayload }

export default fp(async function accessTokens (fastify) {
  const { config } = fastify
  const { current, previous } = config.jwt.keys
  const verifyOptions = (alg: SigningAlgorithm) => ({
    algorithms: [alg],
    allowedIss: config.jwt.issuer,
    allowedAud: config.jwt.audience,
    requiredClaims: REQUIRED_CLAIMS,
    checkTyp: ACCESS_TOKEN_TYPE,
    complete: true
  })
  await fastify.register(fastifyJwt, {
    namespace: 'current',
    secret: current.alg === 'HS256' ? current.signWith : { private: current.signWith, public: current.verifyWith },
    sign: {
      algorithm: current.alg,
      iss: config.jwt.issuer,
      aud: config.jwt.audience,
      expiresIn: config.ttl.accessToken,
      kid: current.kid,
      header: { alg: current.alg, typ: ACCESS_TOKEN_TYPE }
    },
    verify: verifyOptions(current.alg)
  })
  // Keys that signed earlier tokens verify them until they expire; each pinned to its own algorithm.
  const verifiers = new Map<string, Verify>([[current.kid, (token) => fastify.jwt.current.verify(token)]])
  for (const [index, key] of previous.entries()) {
    const namespace = `previous${index}` as const
    await fastify.register(fastifyJwt, { namespace, secret: { public: key.verifyWith }, verify: verifyOptions(key.alg) })
    const jwt = fastify.jwt[namespace]
    if (jwt === undefined) throw new Error(`@fastify/jwt did not register the namespace ${namespace}`)
    verifiers.set(key.kid, (token) => jwt.verify(token))
  }
  /** The verifier named by the token's kid; with a single key the kid is checked after verifying. */
  const verifySignedToken = (token: string): AccessTokenPayload => {
    const verify = verifiers.size === 1 ? verifiers.get(current.kid)! : verifiers.get(readKid(token) ?? '')
    if (verify === undefined) throw new TokenInvalid()
    const { header, payload } = verify(token)
    if (header.kid === undefined || !verifiers.has(header.kid)) throw new TokenInvalid()
    if (!hasIssuedClaimShapes(payload)) throw new TokenInvalid()
    return payload
  }
  // A client sends the same access token with every request for its lifetime, and the signature
  // check is most of the cost of a protected request: tokens that passed it are remembered (by their
  // exact text, bounded, oldest forgotten first) until they expire. Revocation is checked on every
  // request all the same. A token is remembered only once the database has confirmed it (protect.ts).
  const verified = new Map<string, AccessTokenPayload>()
  /** The remembered payload, or the signature-checked payload of a token seen for the first time. */
  const verifyAccessJwt = (token: string): CheckedToken => {
    const known = verified.get(token)
    if (known !== undefined) {
      if (known.exp * 1000 > Date.now()) return { payload: known, firstSight: false }
      verified.delete(token)
    }
    return { payload: verifySignedToken(token), firstSight: true }
  }

  const tokens: AccessTokens = {
    sign: (claims) => fastify.jwt.current.sign({ ...claims, jti: randomUUID() }),
    check (token) {
      try {
        return verifyAccessJwt(token)
      } catch (error) {
        throw (error as { code?: string }).code === 'FAST_JWT_EXPIRED' ? new TokenExpired() : new TokenInvalid()
      }
    },
    remember (token, payload) {
      if (verified.size >= VERIFIED_TOKENS_KEPT) verified.delete(verified.keys().next().value!)
      verified.set(token, payload)
    }
  }
  fastify.decorate('accessTokens', tokens)
  fastify.decorate('inspectAccessToken', (token: string) => {
    try {
      return verifyAccessJwt(token).payload
    } catch {
      return null
    }
  })
}, { name: 'access-tokens' })
