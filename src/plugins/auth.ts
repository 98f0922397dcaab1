// Authentication glue: builds the auth domain (accounts, sessions, the revocation list), issues and
// verifies access tokens through @fastify/jwt, and protects every route by default.
// A route opts out with `config: { public: true }`.
//
// The check on a protected request is: token from `Authorization: Bearer` (or `?access_token=` when
// enabled) → @fastify/jwt verify (pinned algorithm, typ, iss, aud, exp, nbf; results cached per token)
// → isAccessTokenRevoked against the in-memory revocation list. No database round trip, except the
// first time this instance sees a token: then its session must exist, belong to its `sub` and be live.
import { randomUUID } from 'node:crypto'
import fastifyJwt from '@fastify/jwt'
import type { FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { AccountService } from '../auth/accounts.js'
import { buildAuthDomain } from '../auth/domain.js'
import { MemoryLoginAttemptStore, RedisLoginAttemptStore } from '../auth/login-throttle.js'
import type { PasswordHasher } from '../auth/passwords.js'
import type { RevocationList } from '../auth/revocation-list.js'
import type { ClientKind, SessionService } from '../auth/sessions.js'
import { type SigningAlgorithm, readKid } from '../auth/signing-keys.js'
import { type AccessTokenClaims, type Clock, isAccessTokenRevoked } from '../auth/token-rules.js'
import type { Config } from '../config.js'
import { TokenExpired, TokenInvalid, TokenMissing, TokenRevoked, ValidationFailed } from '../errors.js'

export interface Principal {
  userId: string
  username: string
  sessionId: string
  tokenVersion: number
  client: ClientKind
}

export interface AccessTokenPayload extends AccessTokenClaims {
  preferred_username: string
  jti: string
  iat: number
  exp: number
}

declare module 'fastify' {
  interface FastifyInstance {
    accounts: AccountService
    sessions: SessionService
    revocations: RevocationList
    passwordHasher: PasswordHasher
    /** Verifies the request's access token; rejects with the contract's AUTH_TOKEN_* errors. */
    verifyAccessToken: (request: FastifyRequest) => Promise<Principal>
    /** The claims of a token this server signed and that has not expired, else null; revocation not checked. */
    inspectAccessToken: (token: string) => AccessTokenPayload | null
  }
  interface FastifyRequest {
    /** Set on every protected route; null on public ones. */
    principal: Principal | null
  }
  interface FastifyContextConfig {
    /** Serve without an access token (login, refresh, health, …). */
    public?: boolean
  }
}

export const ACCESS_TOKEN_TYPE = 'at+jwt'
const REQUIRED_CLAIMS = ['iss', 'aud', 'sub', 'sid', 'ver', 'jti', 'iat', 'exp']
const BEARER = /^Bearer +([^ ]+) *$/i
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

export interface AuthPluginOptions { config: Config, clock: Clock }

/** A verifier bound to one key: @fastify/jwt's verify for the current key or a previous one. */
type Verify = (token: string) => { header: { kid?: string }, payload: AccessTokenPayload }

export default fp(async function auth (fastify, { config, clock }: AuthPluginOptions) {
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
  const verifiers = new Map<string, Verify>([[current.kid, (token) => fastify.jwt.verify(token)]])
  for (const [index, key] of previous.entries()) {
    const namespace = `previousKey${index}`
    await fastify.register(fastifyJwt, { namespace, secret: { public: key.verifyWith }, verify: verifyOptions(key.alg) })
    const jwt = (fastify.jwt as unknown as Record<string, { verify: Verify }>)[namespace]!
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
  // request all the same.
  // A token is remembered only once the database has confirmed it (see confirmFirstSight).
  const verified = new Map<string, AccessTokenPayload>()
  /** The remembered payload, or the signature-checked payload of a token seen for the first time. */
  const verifyAccessJwt = (token: string): { payload: AccessTokenPayload, firstSight: boolean } => {
    const known = verified.get(token)
    if (known !== undefined) {
      if (known.exp * 1000 > Date.now()) return { payload: known, firstSight: false }
      verified.delete(token)
    }
    return { payload: verifySignedToken(token), firstSight: true }
  }
  const remember = (token: string, payload: AccessTokenPayload) => {
    if (verified.size >= VERIFIED_TOKENS_KEPT) verified.delete(verified.keys().next().value!)
    verified.set(token, payload)
  }

  const { db } = fastify
  const localAttempts = new MemoryLoginAttemptStore(clock)
  const { revocations, passwordHasher, sessions, accounts } = buildAuthDomain({
    db,
    clock,
    config,
    loginAttempts: fastify.redis === null ? localAttempts : new RedisLoginAttemptStore(fastify.redis, localAttempts, clock),
    events: fastify.authEvents,
    signAccessToken: (claims) => fastify.jwt.sign({ ...claims, jti: randomUUID() })
  })
  await revocations.load()
  await accounts.backfillUsernameSkeletons()

  function readToken (request: FastifyRequest): string | undefined {
    const header = request.headers.authorization
    const fromQuery = (request.query as Record<string, unknown> | undefined)?.access_token
    // Two credentials are ambiguous whether or not the query is accepted: refused either way.
    if (header !== undefined && fromQuery !== undefined) throw new ValidationFailed('Send the access token in the Authorization header or the query, not both')
    if (fromQuery !== undefined && config.accessTokenQueryParam) {
      if (typeof fromQuery !== 'string') throw new ValidationFailed('access_token must be given once')
      return fromQuery
    }
    if (header === undefined) return undefined
    const match = BEARER.exec(header)
    if (match === null) {
      // Another scheme (Basic, …) is no bearer credential at all; a broken Bearer header is an invalid one.
      if (/^Bearer\b/i.test(header)) throw new TokenInvalid()
      return undefined
    }
    return match[1]
  }

  // A correctly signed token is honoured only if its session exists, belongs to its `sub` and is
  // live, and its `ver` is not below the user's: after a database restore or reset that kept the
  // signing key, tokens of sessions or users that no longer exist must not work. Checked once per
  // instance and token; concurrent first sights of one token share one query.
  const confirming = new Map<string, Promise<void>>()
  const confirmFirstSight = async (token: string, payload: AccessTokenPayload): Promise<void> => {
    let pending = confirming.get(token)
    if (pending === undefined) {
      pending = (async () => {
        const session = await db.session.findUnique({
          where: { id: payload.sid },
          select: { userId: true, revokedAt: true, expiresAt: true, user: { select: { tokenVersion: true } } }
        })
        const live = session !== null && session.userId === payload.sub && session.revokedAt === null &&
          session.expiresAt.getTime() > clock() && payload.ver >= session.user.tokenVersion
        if (!live) throw new TokenRevoked()
        remember(token, payload)
      })().finally(() => confirming.delete(token))
      confirming.set(token, pending)
    }
    await pending
  }

  /** The principal of the request's token: at once from memory, or a promise on a token's first sight. */
  function checkAccessToken (request: FastifyRequest): Principal | Promise<Principal> {
    const token = readToken(request)
    if (token === undefined) throw new TokenMissing()
    let checked: { payload: AccessTokenPayload, firstSight: boolean }
    try {
      checked = verifyAccessJwt(token)
    } catch (error) {
      throw (error as { code?: string }).code === 'FAST_JWT_EXPIRED' ? new TokenExpired() : new TokenInvalid()
    }
    const { payload } = checked
    if (isAccessTokenRevoked(payload, revocations)) throw new TokenRevoked()
    const principal: Principal = { userId: payload.sub, username: payload.preferred_username, sessionId: payload.sid, tokenVersion: payload.ver, client: payload.client_id === 'web' ? 'web' : 'mobile' }
    if (!checked.firstSight) return principal
    return confirmFirstSight(token, payload).then(() => {
      // A revocation may have arrived while the query ran.
      if (isAccessTokenRevoked(payload, revocations)) throw new TokenRevoked()
      return principal
    })
  }
  const verifyAccessToken = async (request: FastifyRequest): Promise<Principal> => checkAccessToken(request)

  fastify.decorate('accounts', accounts)
  fastify.decorate('sessions', sessions)
  fastify.decorate('revocations', revocations)
  fastify.decorate('passwordHasher', passwordHasher)
  fastify.decorate('verifyAccessToken', verifyAccessToken)
  fastify.decorate('inspectAccessToken', (token: string) => {
    try {
      return verifyAccessJwt(token).payload
    } catch {
      return null
    }
  })
  fastify.decorateRequest('principal', null)

  // Protected by default: every route gets the check unless its config says `public: true`. Attached
  // per route, so public routes and unknown URLs (404) pay nothing for it.
  const protect: onRequestHookHandler = function protect (request, _reply, done) {
    let checked: Principal | Promise<Principal>
    try {
      checked = checkAccessToken(request)
    } catch (error) {
      return done(error as Error)
    }
    if (checked instanceof Promise) {
      checked.then((principal) => { request.principal = principal; done() }, done)
      return
    }
    request.principal = checked
    done()
  }
  fastify.addHook('onRoute', (route) => {
    if (route.config?.public === true) return
    route.onRequest = route.onRequest === undefined ? [protect] : [...[route.onRequest].flat(), protect]
  })
  fastify.addHook('onRequest', function noStoreTokenUrls (request, reply, done) {
    // A URL that carries a credential (accepted or not) must not be kept by any cache, nor passed on
    // as a referrer, whatever route it names.
    if ((request.query as Record<string, unknown> | undefined)?.access_token !== undefined) {
      void reply.header('cache-control', 'private, no-store').header('referrer-policy', 'no-referrer')
    }
    done()
  })

  // Other instances' revocations arrive by polling the event log; expired entries are forgotten.
  const poll = setInterval(() => {
    revocations.poll().catch((error: unknown) => fastify.log.warn({ err: error }, 'revocation poll failed'))
  }, config.revocationPollIntervalMs)
  const forget = setInterval(() => revocations.prune(), 60_000)
  // Sealed successors must not outlive the grace window by much; the full prune runs hourly.
  const eraseSeals = setInterval(() => {
    sessions.eraseExpiredSeals().catch((error: unknown) => fastify.log.warn({ err: error }, 'erasing sealed refresh tokens failed'))
  }, Math.min(60, Math.max(1, config.ttl.reuseGrace)) * 1000)
  const prune = setInterval(() => {
    sessions.prune().catch((error: unknown) => fastify.log.warn({ err: error }, 'pruning expired tokens failed'))
  }, 3600_000)
  for (const timer of [poll, forget, eraseSeals, prune]) timer.unref()
  fastify.addHook('onClose', async () => {
    for (const timer of [poll, forget, eraseSeals, prune]) clearInterval(timer)
  })
}, { name: 'auth', dependencies: ['database', 'redis', 'auth-events'] })
