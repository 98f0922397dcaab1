// OAuth 2.0 errors (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 7662 §2.3) for the /oauth routes.
export type OAuthErrorCode = 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unsupported_grant_type' | 'unsupported_token_type'

export class OAuthError extends Error {
  /**
   * @param code the contract's machine code for the same failure (the `code` member of every error
   * body), beside the RFC 6749 `error`.
   */
  constructor (readonly error: OAuthErrorCode, description: string, readonly code: string, readonly statusCode = 400) {
    super(description)
  }
}

/**
 * An RFC 6749 §5.2 body (error, error_description) that also has the contract's error shape:
 * statusCode, code (the contract's machine code) and message. `error` stays the OAuth code, as
 * OAuth clients require; the extra members are ignored by them (RFC 6749 §8.2 allows them).
 */
export function oauthErrorBody (statusCode: number, error: OAuthErrorCode, code: string, description: string) {
  return { error, error_description: description, statusCode, code, message: description }
}
