// Request and response schemas of the /auth routes. Responses are serialized through them, so a
// field that is not listed here never leaves the server.
import { Type } from '@fastify/type-provider-typebox'
import { PASSWORD_MAX_LENGTH } from '../../auth/passwords.js'
import { LOGIN_USERNAME_MAX_LENGTH } from '../../auth/usernames.js'
import { IdParams, Timestamp, WITHOUT_NUL } from '../shared-schemas.js'

export const User = Type.Object({ id: Type.String(), username: Type.String() })

/**
 * Lengths are checked again by the domain; these bounds only keep absurd input cheap to refuse.
 * Ajv counts them in code points, like characterCount (and /oauth/token, which uses it).
 */
const Username = Type.String({ minLength: 1, maxLength: LOGIN_USERNAME_MAX_LENGTH, pattern: WITHOUT_NUL, description: `a username string of 1 to ${LOGIN_USERNAME_MAX_LENGTH} characters` })
const Password = Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH, description: `a password string of 1 to ${PASSWORD_MAX_LENGTH} characters` })
const RefreshTokenField = Type.String({ minLength: 1, maxLength: 512, description: 'a refresh token string of at most 512 characters' })

export const RegisterBody = Type.Object({ username: Username, password: Password }, { additionalProperties: false })
export const LoginBody = Type.Object({
  username: Username,
  password: Password,
  client: Type.Optional(Type.Union([Type.Literal('mobile'), Type.Literal('web')]))
}, { additionalProperties: false })
/** Refresh and logout: the token in the body (mobile), or in the cookie (web) with no body at all. */
export const RefreshBody = Type.Union([
  Type.Object({ refreshToken: Type.Optional(RefreshTokenField) }, { additionalProperties: false }),
  Type.Null()
])
export const PasswordBody = Type.Object({ currentPassword: Password, newPassword: Password }, { additionalProperties: false })
export const SessionParams = IdParams

export const TokenResponse = Type.Object({
  accessToken: Type.String(),
  /** DPoP when the session is bound to a DPoP key (send the access token as `Authorization: DPoP`). */
  tokenType: Type.Union([Type.Literal('Bearer'), Type.Literal('DPoP')]),
  expiresIn: Type.Integer(),
  /** Absent for web clients: their refresh token travels only in the httpOnly cookie. */
  refreshToken: Type.Optional(Type.String()),
  refreshExpiresIn: Type.Integer(),
  user: User
})
export const UserResponse = Type.Object({ user: User })
export const SessionsResponse = Type.Object({
  sessions: Type.Array(Type.Object({
    id: Type.String(),
    createdAt: Timestamp,
    lastUsedAt: Timestamp,
    userAgent: Type.Union([Type.String(), Type.Null()]),
    ip: Type.Union([Type.String(), Type.Null()]),
    /** Rotations so far (routine refreshes are counted here, not listed as events). */
    refreshCount: Type.Integer({ minimum: 0 }),
    current: Type.Boolean()
  }))
})

export const SessionEventsResponse = Type.Object({
  events: Type.Array(Type.Object({
    type: Type.Union([
      Type.Literal('login'), Type.Literal('refresh-new-client'), Type.Literal('replay'), Type.Literal('reuse-detected'),
      Type.Literal('logout'), Type.Literal('revoked'), Type.Literal('expired')
    ]),
    at: Timestamp,
    /** The client that caused the event (for reuse-detected: the reuser); null when an operator did. */
    ip: Type.Union([Type.String(), Type.Null()]),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    /** Only on `revoked`: deleted, password-change, logout-all, operator, password-reset, disabled. */
    reason: Type.Optional(Type.String())
  }))
})
