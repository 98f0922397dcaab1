// A Fastify plugin that protects routes the way the auth server's own hook does: every route
// registered after it (in its scope) needs `Authorization: Bearer <token>` unless its config says
// `public: true`; refusals carry the server's error shape and RFC 6750 challenges.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import { type AccessTokenClaims, type Verifier, VerifierError } from './index.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified token's claims on a protected route; null on public ones. */
    auth: AccessTokenClaims | null
  }
  interface FastifyContextConfig {
    /** Serve without an access token. */
    public?: boolean
  }
}

export interface VerifierPluginOptions {
  verifier: Verifier
}

const BEARER = /^Bearer +([^ ]+) *$/i
const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 503: 'Service Unavailable' }

function refuse (reply: FastifyReply, error: VerifierError): FastifyReply {
  if (error.statusCode === 401) void reply.header('www-authenticate', error.code === 'AUTH_TOKEN_MISSING' ? 'Bearer' : 'Bearer error="invalid_token"')
  else void reply.header('retry-after', '1')
  return reply.code(error.statusCode).send({ statusCode: error.statusCode, code: error.code, error: STATUS_TEXT[error.statusCode], message: error.message })
}

function bearerToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  const match = BEARER.exec(header)
  if (match === null) {
    // Another scheme is no bearer credential at all; a broken Bearer header is an invalid one.
    if (/^Bearer\b/i.test(header)) throw new VerifierError('AUTH_TOKEN_INVALID', 'The access token is invalid')
    return undefined
  }
  return match[1]
}

const plugin: FastifyPluginAsync<VerifierPluginOptions> = async function authVerifier (fastify, { verifier }) {
  fastify.decorateRequest('auth', null)
  fastify.addHook('onClose', async () => { await verifier.close() })
  const protect: onRequestHookHandler = async function protect (request, reply) {
    try {
      const token = bearerToken(request)
      if (token === undefined) throw new VerifierError('AUTH_TOKEN_MISSING', 'An access token is required')
      request.auth = await verifier.verify(token)
    } catch (error) {
      if (error instanceof VerifierError) return refuse(reply, error)
      throw error
    }
  }
  fastify.addHook('onRoute', (route) => {
    if (route.config?.public === true) return
    route.onRequest = route.onRequest === undefined ? [protect] : [...[route.onRequest].flat(), protect]
  })
}

// Not encapsulated (what fastify-plugin does), so it protects the routes of the scope it is registered in.
Object.assign(plugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: '@auth-server/verifier' })

export default plugin
export { plugin as verifierPlugin }
