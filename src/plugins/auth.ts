// Authentication glue: builds the auth domain (accounts, sessions, the revocation list), issues and
// verifies access tokens through @fastify/jwt, and protects every route by default.
// A route opts out with `config: { public: true }`.
//
// The check on a protected request is: token from `Authorization: Bearer` (or `?access_token=` when
// enabled) → @fastify/jwt verify (pinned algorithm, typ, iss, aud, exp, nbf; results cached per token)
// → isAccessTokenRevoked against the in-memory revocation list. No database round trip.
import { randomUUID } from 'node:crypto'
import fastifyJwt from '@fastify/jwt'
import type { FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { AccountService } from '../auth/accounts.js'
import { LoginThrottle, MemoryFailureCounterStore, RedisFailureCounterStore } from '../auth/login-throttle.js'
import { PasswordHasher } from '../auth/passwords.js'
import { RevocationList } from '../auth/revocation-list.js'
import { type ClientKind, SessionService } from '../auth/sessions.js'
import { type SigningAlgorithm, readKid } from '../auth/signing-keys.js'
import { SuccessorSeal } from '../auth/successor-seal.js'
import { type AccessTokenClaims, type Clock, isAccessTokenRevoked, revocationRelevantUntil } from '../auth/token-rules.js'
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
    /** Verifies the request's access token; throws the contract's AUTH_TOKEN_* errors. */
    verifyAccessToken: (request: FastifyRequest) => Principal
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
    if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string' || !Number.isSafeInteger(payload.ver)) throw new TokenInvalid()
    return payload
  }
  // A client sends the same access token with every request for its lifetime, and the signature
  // check is most of the cost of a protected request: tokens that passed it are remembered (by their
  // exact text, bounded, oldest forgotten first) until they expire. Revocation is checked on every
  // request all the same.
  const verified = new Map<string, AccessTokenPayload>()
  const verifyAccessJwt = (token: string): AccessTokenPayload => {
    const known = verified.get(token)
    if (known !== undefined) {
      if (known.exp * 1000 > Date.now()) return known
      verified.delete(token)
    }
    const payload = verifySignedToken(token)
    if (verified.size >= VERIFIED_TOKENS_KEPT) verified.delete(verified.keys().next().value!)
    verified.set(token, payload)
    return payload
  }

  const { db } = fastify
  const revocations = new RevocationList(db, clock, (createdAt) => revocationRelevantUntil(createdAt, config.ttl))
  await revocations.load()
  const passwordHasher = new PasswordHasher(config.passwordHashConcurrency)
  const localCounters = new MemoryFailureCounterStore(clock)
  const throttle = new LoginThrottle(
    fastify.redis === null ? localCounters : new RedisFailureCounterStore(fastify.redis, localCounters, clock),
    clock, config.login.maxFailures, config.login.lockWindow)
  const sessions = new SessionService({
    db,
    clock,
    lifetimes: config.ttl,
    seal: new SuccessorSeal(config.jwt.secret),
    revocations,
    signAccessToken: (claims) => fastify.jwt.sign({ ...claims, jti: randomUUID() })
  })
  const accounts = new AccountService({ db, clock, hasher: passwordHasher, throttle, sessions })

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

  function verifyAccessToken (request: FastifyRequest): Principal {
    const token = readToken(request)
    if (token === undefined) throw new TokenMissing()
    let payload: AccessTokenPayload
    try {
      payload = verifyAccessJwt(token)
    } catch (error) {
      throw (error as { code?: string }).code === 'FAST_JWT_EXPIRED' ? new TokenExpired() : new TokenInvalid()
    }
    if (isAccessTokenRevoked(payload, revocations)) throw new TokenRevoked()
    return { userId: payload.sub, username: payload.preferred_username, sessionId: payload.sid, tokenVersion: payload.ver, client: payload.client_id === 'web' ? 'web' : 'mobile' }
  }

  fastify.decorate('accounts', accounts)
  fastify.decorate('sessions', sessions)
  fastify.decorate('revocations', revocations)
  fastify.decorate('passwordHasher', passwordHasher)
  fastify.decorate('verifyAccessToken', verifyAccessToken)
  fastify.decorate('inspectAccessToken', (token: string) => {
    try {
      return verifyAccessJwt(token)
    } catch {
      return null
    }
  })
  fastify.decorateRequest('principal', null)

  // Protected by default: every route gets the check unless its config says `public: true`. Attached
  // per route, so public routes and unknown URLs (404) pay nothing for it.
  const protect: onRequestHookHandler = function protect (request, _reply, done) {
    try {
      request.principal = verifyAccessToken(request)
    } catch (error) {
      return done(error as Error)
    }
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
}, { name: 'auth', dependencies: ['database', 'redis'] })
