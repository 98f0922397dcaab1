// A Fastify plugin that protects routes the way the auth server's own hook does: every route
// registered after it (in its scope) needs `Authorization: Bearer <token>` (or, for a DPoP-bound
// token, `Authorization: DPoP <token>` with its `DPoP` proof) unless its config says `public: true`;
// refusals carry the server's error shape and RFC 6750 / RFC 9449 challenges.
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
  /**
   * Where clients reach this service: its public origin, plus the path prefix a proxy in front of it
   * strips, if any (e.g. https://api.example.com). A DPoP proof names the URL it was made for (htu),
   * checked against this + the request's path; the Host header is not trusted for it. Or a function
   * giving a request's full public URL. Required while the verifier accepts DPoP.
   */
  publicUrl?: string | ((request: FastifyRequest) => string)
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 503: 'Service Unavailable' }

function refuse (reply: FastifyReply, error: VerifierError): FastifyReply {
  if (error.statusCode === 401) {
    void reply.header('www-authenticate', error.challenges.length === 1 ? error.challenges[0] : error.challenges)
    if (error.dpopNonce !== undefined) void reply.header('dpop-nonce', error.dpopNonce)
  } else {
    void reply.header('retry-after', '1')
  }
  return reply.code(error.statusCode).send({ statusCode: error.statusCode, code: error.code, error: STATUS_TEXT[error.statusCode], message: error.message })
}

function publicUrlOf (publicUrl: VerifierPluginOptions['publicUrl']): (request: FastifyRequest) => string {
  if (typeof publicUrl === 'function') return publicUrl
  if (publicUrl === undefined) return () => ''
  let base: URL
  try {
    base = new URL(publicUrl)
  } catch {
    throw new TypeError(`@auth-server/verifier/fastify: publicUrl ${publicUrl} is not an absolute URL`)
  }
  if (base.search !== '' || base.hash !== '') throw new TypeError('@auth-server/verifier/fastify: publicUrl takes no query or fragment')
  const prefix = `${base.origin}${base.pathname.replace(/\/+$/, '')}`
  return (request) => prefix + request.url.split('?')[0]
}

const plugin: FastifyPluginAsync<VerifierPluginOptions> = async function authVerifier (fastify, { verifier, publicUrl }) {
  if (verifier.dpopEnabled && publicUrl === undefined) {
    throw new TypeError('@auth-server/verifier/fastify: publicUrl is required to check DPoP proofs (the URL clients call this service at); or create the verifier with dpop: false to take Bearer tokens only')
  }
  const urlOf = publicUrlOf(publicUrl)
  fastify.decorateRequest('auth', null)
  fastify.addHook('onClose', async () => { await verifier.close() })
  const protect: onRequestHookHandler = async function protect (request, reply) {
    try {
      request.auth = await verifier.verifyRequest({ method: request.method, url: urlOf(request), headers: request.headers })
    } catch (error) {
      if (error instanceof VerifierError) return refuse(reply, error)
      throw error
    }
    // RFC 9449 §8: a client using DPoP learns the nonce to use next from any answer.
    const nonce = verifier.dpopNonce()
    if (nonce !== undefined && request.headers.dpop !== undefined) void reply.header('dpop-nonce', nonce)
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
