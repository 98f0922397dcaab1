// The auth event hub (src/auth/events.ts) for this app, and its first subscriber: the log. Each auth
// event is written once, at info, with the user id, session id and the request id of the request it
// happened in (never a token, password or typed username). Metrics subscribe in plugins/metrics.ts.
// The request id comes with the event (the routes hand it to the domain in the client context,
// src/routes/client-context.ts), not from an AsyncLocalStorage: that would switch on Node's promise
// hooks for the whole process, a cost every promise of every request pays.
import fp from 'fastify-plugin'
import { type AuthEvent, AuthEvents } from '../auth/events.js'

declare module 'fastify' {
  interface FastifyInstance {
    authEvents: AuthEvents
  }
}

interface LogLine { msg: string, fields: Record<string, unknown> }

/**
 * What the log says of an event, or undefined for what is routine (a rotation) or said elsewhere
 * (the 429 of a request limit is the error handler's line). A reuse also ends its session and a
 * password change all of them: those revocations are part of the one line already written.
 */
export function logLineOf (event: AuthEvent): LogLine | undefined {
  switch (event.type) {
    case 'login':
      if (event.outcome === 'ok') return { msg: 'login', fields: { event: 'login', userId: event.userId, sessionId: event.sessionId } }
      return event.outcome === 'locked'
        ? { msg: 'login refused: locked out after repeated failures', fields: { event: 'login-locked', userId: event.userId, sessionId: null } }
        : { msg: 'login failed', fields: { event: 'login-failed', userId: event.userId, sessionId: null } }
    case 'refresh':
      if (event.outcome !== 'reused') return undefined
      return { msg: 'refresh token reuse detected: session revoked', fields: { event: 'refresh-reuse', userId: event.userId, sessionId: event.sessionId } }
    case 'revocation':
      if (event.reason === 'reuse' || event.reason === 'password-change') return undefined
      if (event.reason === 'logout') return { msg: 'logout', fields: { event: 'logout', userId: event.userId, sessionId: event.sessionId } }
      return { msg: `revoked (${event.reason})`, fields: { event: 'revocation', reason: event.reason, userId: event.userId, sessionId: event.sessionId } }
    case 'password-change':
      return { msg: 'password changed: every other session and access token ended', fields: { event: 'password-change', userId: event.userId, sessionId: event.sessionId } }
    case 'rate-limited':
      return undefined
  }
}

export default fp(async function authEvents (fastify) {
  const events = new AuthEvents((error) => fastify.log.error({ err: error }, 'an auth event subscriber failed'))
  events.subscribe((event) => {
    const line = logLineOf(event)
    if (line === undefined) return
    // reqId: the key Fastify's request loggers bind the request id to, so the line joins its request's.
    fastify.log.info(event.requestId === undefined ? line.fields : { reqId: event.requestId, ...line.fields }, line.msg)
  })
  fastify.decorate('authEvents', events)
}, { name: 'auth-events' })
