// /.well-known/jwks.json: the public keys that verify access tokens, for other services. Empty with
// HS256 (a shared secret is never published); with JWT_PRIVATE_KEY, the current and previous keys.
// /.well-known/oauth-authorization-server: RFC 8414 metadata, with absolute URLs from PUBLIC_URL.
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { publishedKeys } from '../auth/signing-keys.js'

/** Public members only (RFC 7517/8037/7518): a private member (`d`) could not leave even if a key carried one. */
const JwkSet = Type.Object({
  keys: Type.Array(Type.Object({
    kty: Type.String({ examples: ['OKP', 'EC'] }),
    crv: Type.String({ examples: ['Ed25519', 'P-256'] }),
    x: Type.String(),
    y: Type.Optional(Type.String()),
    kid: Type.String(),
    alg: Type.String({ examples: ['EdDSA', 'ES256'] }),
    use: Type.Literal('sig')
  }))
})

const AuthorizationServerMetadata = Type.Object({
  issuer: Type.String(),
  token_endpoint: Type.String(),
  jwks_uri: Type.String(),
  revocation_endpoint: Type.String(),
  introspection_endpoint: Type.String(),
  /** Not in RFC 8414: where @auth-server/verifier reads the revocation feed (its stream is this + /stream). */
  revocation_feed_endpoint: Type.String(),
  grant_types_supported: Type.Array(Type.String()),
  response_types_supported: Type.Array(Type.String()),
  token_endpoint_auth_methods_supported: Type.Array(Type.String()),
  introspection_endpoint_auth_methods_supported: Type.Array(Type.String()),
  revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
  dpop_signing_alg_values_supported: Type.Optional(Type.Array(Type.String()))
})

export default async function wellKnownRoutes (app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const jwks = publishedKeys(fastify.config.jwt.keys)
  // Registered untyped: the JWK type of node:crypto is looser than the schema that serializes it.
  app.get('/.well-known/jwks.json', {
    config: { public: true, noDatabase: true },
    schema: { tags: ['operations'], summary: 'The public keys that verify access tokens (RFC 7517)', response: { 200: JwkSet } }
  }, async (_request, reply) => {
    void reply.header('cache-control', 'public, max-age=300')
    return jwks
  })

  const base = fastify.config.publicUrl
  const metadata = {
    issuer: fastify.config.jwt.issuer,
    token_endpoint: `${base}/oauth/token`,
    jwks_uri: `${base}/.well-known/jwks.json`,
    revocation_endpoint: `${base}/oauth/revoke`,
    introspection_endpoint: `${base}/oauth/introspect`,
    revocation_feed_endpoint: `${base}/oauth/revocations`,
    grant_types_supported: ['password', 'refresh_token'],
    // No authorization endpoint: no response type is offered.
    response_types_supported: [],
    token_endpoint_auth_methods_supported: ['none'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
    revocation_endpoint_auth_methods_supported: ['none'],
    // RFC 9449 §5.1: the proof algorithms /oauth/token accepts, while DPoP is on.
    ...(fastify.config.dpop.mode === 'off' ? {} : { dpop_signing_alg_values_supported: fastify.dpop.algorithms })
  }
  const options = {
    config: { public: true, noDatabase: true },
    schema: { tags: ['oauth'], summary: 'Authorization server metadata (RFC 8414)', response: { 200: AuthorizationServerMetadata } }
  }
  const serveMetadata = async (_request: unknown, reply: { header: (name: string, value: string) => unknown }) => {
    reply.header('cache-control', 'public, max-age=300')
    return metadata
  }
  fastify.get('/.well-known/oauth-authorization-server', options, serveMetadata)
  // RFC 8414 §3: an issuer with a path has its metadata at /.well-known/oauth-authorization-server/<path>.
  let issuerPath = ''
  try {
    issuerPath = new URL(metadata.issuer).pathname.replace(/\/+$/, '')
  } catch {
    // An issuer that is no URL (the default "auth-server") has no such path.
  }
  if (issuerPath !== '') fastify.get(`/.well-known/oauth-authorization-server${issuerPath}`, options, serveMetadata)
}
