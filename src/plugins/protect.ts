// Protected by default: every route checks the request's access token unless its config says
// `public: true`, and a protected handler finds the verified caller in `request.principal`.
//
// The check on a protected request is: token from `Authorization: Bearer` (or `?access_token=` when
// enabled; readToken) → signature and claims (access-tokens.ts; remembered per token) →
// isAccessTokenRevoked against the in-memory revocation list. No database round trip, except the
// first time this instance sees a token: then its session must exist, belong to its `sub` and be live.
import type { FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { ClientKind } from '../auth/sessions.js'
import { type Clock, isAccessTokenRevoked } from '../auth/token-rules.js'
import { TokenInvalid, TokenMissing, TokenRevoked, ValidationFailed } from '../errors.js'
import type { AccessTokenPayload, CheckedToken } from './access-tokens.js'

export interface Principal {
  userId: string
  username: string
  sessionId: string
  tokenVersion: number
  client: ClientKind
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Verifies the request's access token; rejects with the contract's AUTH_TOKEN_* errors. */
    verifyAccessToken: (request: FastifyRequest) => Promise<Principal>
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

const BEARER = /^Bearer +([^ ]+) *$/i

export interface ProtectOptions { clock: Clock }

export default fp(async function protect (fastify, { clock }: ProtectOptions) {
  const { config, db, revocations, accessTokens } = fastify

  /** The request's access token, if it sent one; where the Authorization scheme is read. */
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
        accessTokens.remember(token, payload)
      })().finally(() => confirming.delete(token))
      confirming.set(token, pending)
    }
    await pending
  }

  /** The principal of the request's token: at once from memory, or a promise on a token's first sight. */
  function checkAccessToken (request: FastifyRequest): Principal | Promise<Principal> {
    const token = readToken(request)
    if (token === undefined) throw new TokenMissing()
    const checked: CheckedToken = accessTokens.check(token)
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

  fastify.decorate('verifyAccessToken', verifyAccessToken)
  fastify.decorateRequest('principal', null)

  // Attached per route, so public routes and unknown URLs (404) pay nothing for it.
  const protectRoute: onRequestHookHandler = function protect (request, _reply, done) {
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
    route.onRequest = route.onRequest === undefined ? [protectRoute] : [...[route.onRequest].flat(), protectRoute]
  })
  fastify.addHook('onRequest', function noStoreTokenUrls (request, reply, done) {
    // A URL that carries a credential (accepted or not) must not be kept by any cache, nor passed on
    // as a referrer, whatever route it names.
    if ((request.query as Record<string, unknown> | undefined)?.access_token !== undefined) {
      void reply.header('cache-control', 'private, no-store').header('referrer-policy', 'no-referrer')
    }
    done()
  })
}, { name: 'protect', dependencies: ['database', 'access-tokens', 'auth-domain'] })
