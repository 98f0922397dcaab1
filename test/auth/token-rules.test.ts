import { createHash } from 'node:crypto'
import t from 'tap'
import {
  type Lifetimes, type PresentedToken, type RevocationView, type SuccessorState, type TokenSession,
  generateRefreshToken, hashRefreshToken, isAccessTokenRevoked, isWellFormedRefreshToken, judgeRefreshToken,
  refreshExpiresIn, refreshTokenExpiry, revocationRelevantUntil, sessionExpiry
} from '../../src/auth/token-rules.js'

const lifetimes: Lifetimes = { accessToken: 900, refreshIdle: 3600, refreshAbsolute: 4 * 3600, reuseGrace: 10 }
const NOW = 1_800_000_000_000
const SECOND = 1000

const liveSession: TokenSession = { revokedAt: null, expiresAt: NOW + 3600 * SECOND, outdated: false }
const currentToken: PresentedToken = { retiredAt: null, expiresAt: NOW + 600 * SECOND, hasSealedSuccessor: false }
/** Rotated 2 s ago; its successor is the current token. */
const justRotated: PresentedToken = { retiredAt: NOW - 2 * SECOND, expiresAt: NOW + 600 * SECOND, hasSealedSuccessor: true }
const currentSuccessor: SuccessorState = { retiredAt: null, expiresAt: NOW + 3600 * SECOND }

t.test('judgeRefreshToken', async (t) => {
  t.test('a current token within its lifetimes is rotated', async (t) => {
    t.same(judgeRefreshToken(currentToken, liveSession, null, NOW, lifetimes), { action: 'rotate' })
  })

  t.test('a current token past its idle expiry is refused (the boundary itself is expired)', async (t) => {
    const token = { ...currentToken, expiresAt: NOW }
    t.same(judgeRefreshToken(token, liveSession, null, NOW, lifetimes), { action: 'refuse', reason: 'idle-expired' })
    t.same(judgeRefreshToken(token, liveSession, null, NOW - 1, lifetimes), { action: 'rotate' })
  })

  t.test('a session past its absolute end is refused, whatever the token', async (t) => {
    const session = { revokedAt: null, expiresAt: NOW, outdated: false }
    t.same(judgeRefreshToken(currentToken, session, null, NOW, lifetimes), { action: 'refuse', reason: 'session-expired' })
    t.same(judgeRefreshToken(justRotated, session, currentSuccessor, NOW, lifetimes), { action: 'refuse', reason: 'session-expired' })
    t.same(judgeRefreshToken(currentToken, session, null, NOW - 1, lifetimes), { action: 'rotate' })
  })

  t.test('a revoked session (logout, password change, reuse) is refused, even for a token that would otherwise be replayed or reused', async (t) => {
    const session = { revokedAt: NOW - SECOND, expiresAt: NOW + 3600 * SECOND, outdated: false }
    t.same(judgeRefreshToken(currentToken, session, null, NOW, lifetimes), { action: 'refuse', reason: 'session-ended' })
    t.same(judgeRefreshToken(justRotated, session, currentSuccessor, NOW, lifetimes), { action: 'refuse', reason: 'session-ended' })
    const oldAncestor = { ...justRotated, retiredAt: NOW - 3600 * SECOND, hasSealedSuccessor: false }
    t.same(judgeRefreshToken(oldAncestor, session, null, NOW, lifetimes), { action: 'refuse', reason: 'session-ended' })
  })

  t.test('a session of an older token version is refused, whatever the token', async (t) => {
    const outdated = { ...liveSession, outdated: true }
    t.same(judgeRefreshToken(currentToken, outdated, null, NOW, lifetimes), { action: 'refuse', reason: 'session-ended' })
    t.same(judgeRefreshToken(justRotated, outdated, currentSuccessor, NOW, lifetimes), { action: 'refuse', reason: 'session-ended' })
  })

  t.test('the immediate predecessor within grace, with a current successor and a seal, is replayed', async (t) => {
    t.same(judgeRefreshToken(justRotated, liveSession, currentSuccessor, NOW, lifetimes), { action: 'replay' })
    const lastMoment = { ...justRotated, retiredAt: NOW - lifetimes.reuseGrace * SECOND + 1 }
    t.same(judgeRefreshToken(lastMoment, liveSession, currentSuccessor, NOW, lifetimes), { action: 'replay' })
  })

  t.test('a rotated token once the grace window has passed revokes the session', async (t) => {
    const atBoundary = { ...justRotated, retiredAt: NOW - lifetimes.reuseGrace * SECOND }
    t.same(judgeRefreshToken(atBoundary, liveSession, currentSuccessor, NOW, lifetimes), { action: 'revoke-session' })
    const longAgo = { ...justRotated, retiredAt: NOW - 3600 * SECOND }
    t.same(judgeRefreshToken(longAgo, liveSession, currentSuccessor, NOW, lifetimes), { action: 'revoke-session' })
  })

  t.test('an older ancestor (its successor already rotated) revokes the session, even within grace', async (t) => {
    const rotatedSuccessor = { retiredAt: NOW - SECOND, expiresAt: NOW + 3600 * SECOND }
    t.same(judgeRefreshToken(justRotated, liveSession, rotatedSuccessor, NOW, lifetimes), { action: 'revoke-session' })
  })

  t.test('within grace but with no seal, no known successor or an expired successor: revoke the session', async (t) => {
    t.same(judgeRefreshToken({ ...justRotated, hasSealedSuccessor: false }, liveSession, currentSuccessor, NOW, lifetimes), { action: 'revoke-session' })
    t.same(judgeRefreshToken(justRotated, liveSession, null, NOW, lifetimes), { action: 'revoke-session' })
    t.same(judgeRefreshToken(justRotated, liveSession, { retiredAt: null, expiresAt: NOW }, NOW, lifetimes), { action: 'revoke-session' })
  })

  t.test('with a zero grace window a retired token is always reuse', async (t) => {
    const noGrace = { ...lifetimes, reuseGrace: 0 }
    const rotatedNow = { ...justRotated, retiredAt: NOW }
    t.same(judgeRefreshToken(rotatedNow, liveSession, currentSuccessor, NOW, noGrace), { action: 'revoke-session' })
  })
})

t.test('refreshTokenExpiry: idle lifetime from now, never past the absolute end', async (t) => {
  const sessionEnd = NOW + 4 * 3600 * SECOND
  t.equal(refreshTokenExpiry(NOW, sessionEnd, lifetimes), NOW + 3600 * SECOND)
  t.equal(refreshTokenExpiry(sessionEnd - 10 * SECOND, sessionEnd, lifetimes), sessionEnd)
  t.equal(refreshTokenExpiry(sessionEnd - 3600 * SECOND, sessionEnd, lifetimes), sessionEnd)
  for (let now = NOW; now < sessionEnd; now += 17 * 60 * SECOND) {
    t.ok(refreshTokenExpiry(now, sessionEnd, lifetimes) <= sessionEnd, `not past the end at +${(now - NOW) / SECOND}s`)
  }
})

t.test('refreshExpiresIn: whole seconds left, rounded up, never above the absolute lifetime', async (t) => {
  t.equal(refreshExpiresIn(NOW, NOW + 3600 * SECOND, lifetimes), 3600)
  t.equal(refreshExpiresIn(NOW, NOW + 400, lifetimes), 1, '0.4 s left is 1, not 0')
  t.equal(refreshExpiresIn(NOW, NOW + 59_001, lifetimes), 60)
  t.equal(refreshExpiresIn(NOW, NOW, lifetimes), 0)
  t.equal(refreshExpiresIn(NOW, NOW - 5 * SECOND, lifetimes), 0, 'never negative')
  t.equal(refreshExpiresIn(NOW, NOW + lifetimes.refreshAbsolute * SECOND + 1, lifetimes), lifetimes.refreshAbsolute, 'capped at the absolute lifetime')
  // A session shorter than the idle lifetime: every token expiry and its reading stay within the absolute end.
  const short: Lifetimes = { ...lifetimes, refreshIdle: 1_209_600, refreshAbsolute: 60 }
  const sessionEnd = sessionExpiry(NOW, short)
  for (const elapsed of [0, 1, 30_500, 59_999]) {
    const expiresAt = refreshTokenExpiry(NOW + elapsed, sessionEnd, short)
    t.equal(expiresAt, sessionEnd, `at +${elapsed} ms the token ends with the session`)
    t.ok(refreshExpiresIn(NOW + elapsed, expiresAt, short) <= 60, 'never told more than the absolute lifetime')
  }
})

t.test('sessionExpiry and revocationRelevantUntil', async (t) => {
  t.equal(sessionExpiry(NOW, lifetimes), NOW + lifetimes.refreshAbsolute * SECOND)
  // Outlives every access token minted up to the revocation.
  t.ok(revocationRelevantUntil(NOW, lifetimes) > NOW + lifetimes.accessToken * SECOND)
})

t.test('generateRefreshToken: 43 base64url characters from 32 random bytes, unique', async (t) => {
  const tokens = Array.from({ length: 1000 }, () => generateRefreshToken())
  t.same(tokens.filter((token) => !/^[A-Za-z0-9_-]{43}$/.test(token)), [], 'every token is 43 base64url characters')
  t.same(tokens.filter((token) => Buffer.from(token, 'base64url').length !== 32), [], 'every token carries 32 bytes')
  t.equal(new Set(tokens).size, tokens.length, 'no two tokens alike')
})

t.test('hashRefreshToken: stable SHA-256 of the token', async (t) => {
  const token = generateRefreshToken()
  const expected = createHash('sha256').update(token).digest()
  t.equal(hashRefreshToken(token), hashRefreshToken(token))
  t.same(Buffer.from(hashRefreshToken(token), 'base64url'), expected)
  t.not(hashRefreshToken(token), hashRefreshToken(generateRefreshToken()))
  // A known vector, so the stored form cannot drift unnoticed (existing rows would stop matching).
  t.equal(hashRefreshToken('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0')
  t.not(hashRefreshToken(token), token)
})

t.test('isWellFormedRefreshToken', async (t) => {
  t.ok(isWellFormedRefreshToken(generateRefreshToken()))
  t.ok(isWellFormedRefreshToken('A'.repeat(43)))
  t.notOk(isWellFormedRefreshToken('A'.repeat(42)), 'too short')
  t.notOk(isWellFormedRefreshToken('A'.repeat(44)), 'too long')
  t.notOk(isWellFormedRefreshToken('A'.repeat(42) + '='), 'padding')
  t.notOk(isWellFormedRefreshToken('A'.repeat(42) + '+'), 'base64, not base64url')
  t.notOk(isWellFormedRefreshToken('A'.repeat(21) + '.' + 'A'.repeat(21)), 'a dot')
  t.notOk(isWellFormedRefreshToken(generateRefreshToken() + '\n'), 'trailing newline')
  t.notOk(isWellFormedRefreshToken(''))
  t.notOk(isWellFormedRefreshToken(undefined))
  t.notOk(isWellFormedRefreshToken(null))
  t.notOk(isWellFormedRefreshToken(42))
  t.notOk(isWellFormedRefreshToken(['A'.repeat(43)]))
})

t.test('isAccessTokenRevoked', async (t) => {
  const view: RevocationView = {
    isSessionRevoked: (sid) => sid === 'revoked-session',
    minimumTokenVersion: (userId) => (userId === 'user-1' ? 3 : 0)
  }
  t.notOk(isAccessTokenRevoked({ sub: 'user-2', sid: 'live-session', ver: 0 }, view), 'nothing revoked')
  t.ok(isAccessTokenRevoked({ sub: 'user-2', sid: 'revoked-session', ver: 0 }, view), 'session revoked')
  t.ok(isAccessTokenRevoked({ sub: 'user-1', sid: 'live-session', ver: 2 }, view), 'version below the minimum')
  t.notOk(isAccessTokenRevoked({ sub: 'user-1', sid: 'live-session', ver: 3 }, view), 'version at the minimum')
  t.notOk(isAccessTokenRevoked({ sub: 'user-1', sid: 'live-session', ver: 4 }, view), 'version above the minimum')
  t.ok(isAccessTokenRevoked({ sub: 'user-1', sid: 'revoked-session', ver: 4 }, view), 'session revoked, version fine')
})
