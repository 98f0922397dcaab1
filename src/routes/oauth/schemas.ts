// Schemas of the OAuth 2.0 surface (revocation, introspection, the revocation feed).
import { Type } from '@fastify/type-provider-typebox'
import { CURSOR_PATTERN } from '../../auth/revocation-feed.js'
import { WITHOUT_NUL } from '../shared-schemas.js'

/** An OAuth error (RFC 6749 §5.2) that is also the contract's error shape; a 404 has the contract's only. */
export const OAuthErrorResponse = Type.Object({
  error: Type.String({ description: 'OAuth error code (invalid_request, invalid_client, …), or the HTTP reason for a 404' }),
  error_description: Type.Optional(Type.String()),
  statusCode: Type.Integer(),
  code: Type.String(),
  message: Type.String()
})

export const TokenTypeHint = Type.String({ maxLength: 64, description: 'access_token or refresh_token (RFC 7009 §2.1)' })

/** A token as presented: bounded, so a huge value is a 400 and never reaches the database. */
const PresentedToken = Type.String({ minLength: 1, maxLength: 8192, pattern: WITHOUT_NUL })

export const RevokeBody = Type.Object({
  token: PresentedToken,
  token_type_hint: Type.Optional(TokenTypeHint),
  client_id: Type.Optional(Type.String({ maxLength: 256 }))
})

export const IntrospectBody = Type.Object({
  token: PresentedToken,
  token_type_hint: Type.Optional(TokenTypeHint)
})

export const BasicAuthHeaders = Type.Object({
  authorization: Type.Optional(Type.String({ description: 'Basic base64(id:secret) of a RESOURCE_SERVERS entry' }))
})

export const IntrospectionResponse = Type.Object({
  active: Type.Boolean(),
  sub: Type.Optional(Type.String()),
  sid: Type.Optional(Type.String()),
  client_id: Type.Optional(Type.String()),
  username: Type.Optional(Type.String()),
  scope: Type.Optional(Type.String()),
  token_type: Type.Optional(Type.String({ description: 'Bearer or DPoP (an access token, DPoP when bound to a key) or refresh_token' })),
  exp: Type.Optional(Type.Integer()),
  iat: Type.Optional(Type.Integer()),
  iss: Type.Optional(Type.String()),
  aud: Type.Optional(Type.String()),
  jti: Type.Optional(Type.String()),
  /** RFC 9449 §6.2: the thumbprint of the DPoP key a bound token must be used with. */
  cnf: Type.Optional(Type.Object({ jkt: Type.String() }))
})

export const Cursor = Type.String({ pattern: CURSOR_PATTERN, description: 'a cursor from an earlier answer (an event id)' })

export const RevocationEvent = Type.Object({
  id: Type.String(),
  kind: Type.Union([Type.Literal('session'), Type.Literal('user')]),
  sessionId: Type.Optional(Type.String()),
  userId: Type.Optional(Type.String()),
  minimumTokenVersion: Type.Optional(Type.Integer()),
  at: Type.String({ format: 'date-time' }),
  relevantUntil: Type.String({ format: 'date-time' })
})

export const RevocationsQuery = Type.Object({ after: Type.Optional(Cursor) })
export const RevocationsResponse = Type.Object({ events: Type.Array(RevocationEvent), cursor: Type.String() })

export const StreamHeaders = Type.Object({
  authorization: Type.Optional(Type.String()),
  'last-event-id': Type.Optional(Cursor)
})
