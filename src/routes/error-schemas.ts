// The error responses a route declares beside its success responses: the contract's error body
// { statusCode, code, error, message } with the codes that status can carry on that route. They are
// what the error handler sends anyway, so serializing through them drops nothing; the OpenAPI document
// lists them (src/plugins/api-docs.ts adds the errors every route shares, e.g. the token checks).
import { STATUS_CODES } from 'node:http'
import { Type } from '@fastify/type-provider-typebox'

export function errorBody (statusCode: number, codes: string[]) {
  return Type.Object({
    statusCode: Type.Integer({ examples: [statusCode] }),
    code: Type.Unsafe<string>({ type: 'string', enum: codes }),
    error: Type.String({ examples: [STATUS_CODES[statusCode] ?? 'Error'] }),
    message: Type.String()
  }, { description: `${STATUS_CODES[statusCode] ?? 'Error'}: ${codes.join(', ')}` })
}

/** `{ 401: ['AUTH_INVALID_CREDENTIALS'], … }` → the response schemas for those statuses. */
export function errorResponses<S extends number> (codesByStatus: Record<S, string[]>): Record<S, ReturnType<typeof errorBody>> {
  const responses = {} as Record<S, ReturnType<typeof errorBody>>
  for (const [status, codes] of Object.entries(codesByStatus) as Array<[string, string[]]>) {
    responses[Number(status) as S] = errorBody(Number(status), codes)
  }
  return responses
}

/** Why a session ended, on the 401 that refuses a refresh token of it (`reason` beside `code`). */
export const SESSION_END_REASONS = ['logout', 'reused', 'revoked', 'expired', 'password-changed']

/** The refresh endpoint's 401: the error body, plus `reason` when the token's session has ended. */
export function refreshRefusedBody (codes: string[]) {
  const body = errorBody(401, codes)
  return Type.Object({
    ...body.properties,
    reason: Type.Optional(Type.Unsafe<string>({ type: 'string', enum: SESSION_END_REASONS, description: 'why the session ended (when it has)' }))
  }, { description: `${STATUS_CODES[401] ?? 'Unauthorized'}: ${codes.join(', ')}` })
}

/** A 204: no body. */
export const NoContent = (description: string) => Type.Unsafe<void>(Type.Null({ description }))
