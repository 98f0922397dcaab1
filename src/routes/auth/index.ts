// /auth: register, login, refresh, logout, logout-all, password change, me, sessions.
// Each handler reads the request, calls the auth domain (src/auth/), and shapes the answer;
// the decisions about tokens are made in src/auth/token-rules.ts.
import type { FastifyInstance } from 'fastify'
import cookie from '@fastify/cookie'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { NotFound, RefreshInvalid } from '../../errors.js'
import {
  LoginBody, PasswordBody, RefreshBody, RegisterBody, SessionEventsResponse, SessionParams, SessionsResponse,
  TokenResponse, UserResponse
} from './schemas.js'
import { clearRefreshCookie, presentedRefreshToken, sendTokens } from './web-clients.js'
import { clientContext, sessionContext } from '../client-context.js'
import { NoContent, errorResponses, refreshRefusedBody } from '../error-schemas.js'

/** Refresh and logout take the token in the body (no scheme), or in the cookie with the CSRF header. */
const COOKIE_SECURITY: Record<string, string[]> = { refreshCookie: [], csrfHeader: [] }
const REFRESH_TOKEN_SECURITY: Array<Record<string, string[]>> = [{}, COOKIE_SECURITY]

export default async function authRoutes (app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { config, accounts, sessions } = fastify
  /** The unauthenticated endpoints share a per-address request budget. */
  const publicLimited = { public: true, rateLimit: { max: config.rateLimitMax, timeWindow: 60_000 } }
  const sessionDoor = { ...publicLimited, dpop: true }

  // The routes that read or write the refresh cookie; only they pay for cookie parsing.
  await fastify.register(async function cookieRoutes (app) {
    const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
    await fastify.register(cookie)

    if (config.allowRegistration) {
      fastify.post('/auth/register', {
        config: publicLimited,
        schema: {
          tags: ['auth'],
          summary: 'Create an account',
          body: RegisterBody,
          response: { 201: UserResponse, ...errorResponses({ 400: ['VALIDATION_ERROR', 'AUTH_WEAK_PASSWORD'], 409: ['AUTH_USERNAME_TAKEN'] }) }
        }
      }, async (request, reply) => {
        const user = await accounts.register(request.body.username, request.body.password)
        return reply.code(201).send({ user })
      })
    }

    fastify.post('/auth/login', {
      config: sessionDoor,
      schema: {
        tags: ['auth'],
        summary: 'Log in: start a session',
        description: 'With `"client": "web"` the refresh token is set in the httpOnly cookie instead of the body.',
        body: LoginBody,
        response: { 200: TokenResponse, ...errorResponses({ 401: ['AUTH_INVALID_CREDENTIALS'], 429: ['AUTH_RATE_LIMITED'] }) }
      }
    }, async (request, reply) => {
      const { username, password, client = 'mobile' } = request.body
      // The proof is checked before the password: a request that cannot start a session costs no hash.
      const dpopThumbprint = await fastify.dpop.bindingOf(request)
      const issued = await accounts.login(username, password, request.ip, { ...sessionContext(request, client), dpopThumbprint })
      return sendTokens(reply, config, issued)
    })

    fastify.post('/auth/refresh', {
      config: sessionDoor,
      schema: {
        tags: ['auth'],
        summary: 'Exchange a refresh token for a new pair (rotation)',
        description: 'A retired token revokes its session (AUTH_REFRESH_REUSED), except within the grace window after its rotation.',
        security: REFRESH_TOKEN_SECURITY,
        body: RefreshBody,
        response: {
          200: TokenResponse,
          ...errorResponses({ 400: ['VALIDATION_ERROR'], 403: ['AUTH_CSRF'] }),
          401: refreshRefusedBody(['AUTH_REFRESH_INVALID', 'AUTH_REFRESH_REUSED'])
        }
      }
    }, async (request, reply) => {
      const presented = presentedRefreshToken(request, config)
      if (presented === undefined) throw new RefreshInvalid()
      const issued = await sessions.refresh(presented.token, { ...clientContext(request), ...await fastify.dpop.refreshContextOf(request) })
      return sendTokens(reply, config, issued)
    })

    // Ends the session named by the refresh token (body or cookie), or else by the access token.
    fastify.post('/auth/logout', {
      config: { public: true },
      schema: {
        tags: ['auth'],
        summary: 'End the session of a refresh token (body or cookie), or else of the access token',
        security: [COOKIE_SECURITY, { bearerAuth: [] }, { dpopAuth: [] }, {}],
        body: RefreshBody,
        response: {
          204: NoContent('The session ended'),
          ...errorResponses({
            400: ['VALIDATION_ERROR'],
            401: ['AUTH_REFRESH_INVALID', 'AUTH_TOKEN_MISSING', 'AUTH_TOKEN_INVALID', 'AUTH_TOKEN_EXPIRED', 'AUTH_TOKEN_REVOKED'],
            403: ['AUTH_CSRF']
          })
        }
      }
    }, async (request, reply) => {
      const presented = presentedRefreshToken(request, config, () => clearRefreshCookie(reply, config))
      if (presented !== undefined) {
        const session = await sessions.findLiveSession(presented.token)
        if (session === null) throw new RefreshInvalid()
        await sessions.revokeSession(session.id, 'logout', session.userId, clientContext(request))
      } else {
        const principal = await fastify.verifyAccessToken(request)
        await sessions.revokeSession(principal.sessionId, 'logout', principal.userId, clientContext(request))
      }
      return reply.code(204).send()
    })

    fastify.post('/auth/logout-all', {
      schema: { tags: ['auth'], summary: 'End every session and access token of the caller', response: { 204: NoContent('Every session ended') } }
    }, async (request, reply) => {
      await sessions.logoutEverywhere(request.principal!.userId, clientContext(request))
      return reply.code(204).send()
    })

    fastify.post('/auth/password', {
      schema: {
        tags: ['auth'],
        summary: 'Change the password: every session ends, the caller gets a new one',
        body: PasswordBody,
        response: {
          200: TokenResponse,
          ...errorResponses({ 400: ['VALIDATION_ERROR', 'AUTH_WEAK_PASSWORD'], 401: ['AUTH_INVALID_CREDENTIALS'], 429: ['AUTH_RATE_LIMITED'] })
        }
      }
    }, async (request, reply) => {
      const principal = request.principal!
      const issued = await accounts.changePassword(
        // A DPoP-bound caller's new session is bound to the same key (its proof came with this request).
        principal.userId, request.body.currentPassword, request.body.newPassword, request.ip, { ...sessionContext(request, principal.client), dpopThumbprint: principal.dpopThumbprint })
      return sendTokens(reply, config, issued)
    })
  })

  fastify.get('/auth/me', { schema: { tags: ['auth'], summary: 'The caller', response: { 200: UserResponse } } }, async (request) => {
    const { userId, username } = request.principal!
    return { user: { id: userId, username } }
  })

  fastify.get('/auth/sessions', { schema: { tags: ['auth'], summary: 'The caller\'s live sessions', response: { 200: SessionsResponse } } }, async (request) => {
    const { userId, sessionId } = request.principal!
    return { sessions: await sessions.listSessions(userId, sessionId) }
  })

  fastify.delete('/auth/sessions/:id', {
    schema: {
      tags: ['auth'],
      summary: 'End one of the caller\'s sessions',
      params: SessionParams,
      response: { 204: NoContent('The session ended'), ...errorResponses({ 404: ['NOT_FOUND'] }) }
    }
  }, async (request, reply) => {
    const ended = await sessions.revokeSession(request.params.id, 'deleted', request.principal!.userId, clientContext(request))
    if (!ended) throw new NotFound('No such session')
    return reply.code(204).send()
  })

  // The session's history; ended sessions too, while retained. Another user's session is 404, as an unknown one.
  fastify.get('/auth/sessions/:id/events', {
    schema: {
      tags: ['auth'],
      summary: 'The history of one of the caller\'s sessions (ended ones too, while retained)',
      params: SessionParams,
      response: { 200: SessionEventsResponse, ...errorResponses({ 404: ['NOT_FOUND'] }) }
    }
  }, async (request) => {
    const events = await sessions.listSessionEvents(request.principal!.userId, request.params.id)
    if (events === null) throw new NotFound('No such session')
    return { events }
  })
}
