// What a presented token is worth right now, read from the database rather than from memory: the
// answers of the introspection endpoint (RFC 7662) must be exact on every instance, including for
// revocations another instance made a moment ago.
import type { Db } from '../db/client.js'
import { type Clock, hashRefreshToken } from './token-rules.js'

export interface LiveRefreshToken {
  userId: string
  username: string
  sessionId: string
  client: string
  /** ms since the epoch */
  issuedAt: number
  expiresAt: number
  /** The thumbprint of the DPoP key the session is bound to (introspection's cnf.jkt), else null. */
  dpopJkt: string | null
}

export class TokenIntrospection {
  constructor (private readonly db: Db, private readonly clock: Clock) {}

  /** The refresh token, if it is the current token of a live session of an enabled user. */
  async liveRefreshToken (presentedToken: string): Promise<LiveRefreshToken | null> {
    const now = this.clock()
    const token = await this.db.refreshToken.findUnique({
      where: { tokenHash: hashRefreshToken(presentedToken) },
      select: {
        retiredAt: true,
        createdAt: true,
        expiresAt: true,
        session: {
          select: { id: true, client: true, revokedAt: true, expiresAt: true, dpopJkt: true, user: { select: { id: true, username: true, disabled: true } } }
        }
      }
    })
    if (token === null || token.retiredAt !== null || token.expiresAt.getTime() <= now) return null
    const { session } = token
    if (session.revokedAt !== null || session.expiresAt.getTime() <= now || session.user.disabled) return null
    return {
      userId: session.user.id,
      username: session.user.username,
      sessionId: session.id,
      client: session.client,
      issuedAt: token.createdAt.getTime(),
      expiresAt: token.expiresAt.getTime(),
      dpopJkt: session.dpopJkt
    }
  }

  /**
   * Whether a verified access token's session is still live and its token version still current
   * (logout, session deletion, reuse, password change, logout everywhere, a removed user).
   */
  async isAccessTokenLive (claims: { sub: string, sid: string, ver: number }): Promise<boolean> {
    const session = await this.db.session.findUnique({
      where: { id: claims.sid },
      select: { userId: true, revokedAt: true, user: { select: { tokenVersion: true, disabled: true } } }
    })
    if (session === null || session.userId !== claims.sub || session.revokedAt !== null) return false
    return !session.user.disabled && claims.ver >= session.user.tokenVersion
  }
}
