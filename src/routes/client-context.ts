// Who made a request, as the auth domain records it (session history) and names it (the log line of
// an auth event carries the request id): one place, so every route that changes sessions says the same.
import type { FastifyRequest } from 'fastify'
import type { ClientContext, ClientKind, SessionContext } from '../auth/sessions.js'

const USER_AGENT_MAX_LENGTH = 512

/** The requesting client: its address, user agent (cut to a sane length) and the request's id. */
export function clientContext (request: FastifyRequest): ClientContext {
  return { userAgent: request.headers['user-agent']?.slice(0, USER_AGENT_MAX_LENGTH), ip: request.ip, requestId: request.id }
}

/** The client of a request that starts a session, with the kind of client it is. */
export function sessionContext (request: FastifyRequest, client: ClientKind): SessionContext {
  return { client, ...clientContext(request) }
}
