// What the auth domain tells the world about: one report per thing that happened (a login and how it
// went, a refresh and its verdict, a revocation and its reason, a password change, a limit hit).
// Metrics and the log both subscribe here, so the domain carries no metric or log calls of its own.
// Reports hold ids, never a token, password or username typed at a login.

export type LoginOutcome = 'ok' | 'failed' | 'locked'

/**
 * rotated: a new pair; replayed: the grace window answered with the current successor; reused: a
 * retired token, the session is revoked; invalid: unknown token; expired: idle or absolute lifetime
 * passed; refused: a known token that can never work again (ended session, disabled user, or a
 * rotation that kept losing to concurrent changes).
 */
export type RefreshOutcome = 'rotated' | 'replayed' | 'reused' | 'invalid' | 'expired' | 'refused'

export type RateLimiter = 'login-lockout' | 'requests'

/** Every report may name the request it happened in (the log line carries it); none outside a request. */
export type AuthEvent = { requestId?: string | undefined } & (
  | { type: 'login', outcome: 'ok', userId: string, sessionId: string }
  /** userId is null for an account that does not exist. */
  | { type: 'login', outcome: 'failed' | 'locked', userId: string | null }
  | { type: 'refresh', outcome: RefreshOutcome, userId: string | null, sessionId: string | null }
  /** A revocation written to the log: one session (sessionId) or every session of a user (sessionId null). */
  | { type: 'revocation', reason: string, userId: string | null, sessionId: string | null }
  /** sessionId: the session the caller continues in. */
  | { type: 'password-change', userId: string, sessionId: string }
  | { type: 'rate-limited', limiter: RateLimiter }
)

export interface AuthEventSink {
  report: (event: AuthEvent) => void
}

/** Does nothing: the domain's default when nobody listens (unit tests, scripts). */
export const IGNORE_AUTH_EVENTS: AuthEventSink = { report () {} }

/** Fans reports out to subscribers. A subscriber that throws is not allowed to fail the request. */
export class AuthEvents implements AuthEventSink {
  private readonly listeners: Array<(event: AuthEvent) => void> = []

  constructor (private readonly onListenerError: (error: unknown) => void = () => {}) {}

  subscribe (listener: (event: AuthEvent) => void): void {
    this.listeners.push(listener)
  }

  report (event: AuthEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event)
      } catch (error) {
        this.onListenerError(error)
      }
    }
  }
}
