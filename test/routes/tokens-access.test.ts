// Access-token rejections on a protected route: expired, forged or mis-typed tokens, and tokens whose
// version is older than the user's. Tokens are re-signed by hand from a real one, so each differs from
// a valid token in exactly one respect (a re-signed copy of the real token is accepted: the control).
import { createHmac, randomUUID } from 'node:crypto'
import t from 'tap'
import { TEST_SECRET, bearer, login, signedIn, testApp, testDatabases } from '../helpers.js'
import { assertAccessRevoked, assertAccessWorks, assertTokenRejected, decodeJwt, me, nowSeconds, resign } from './tokens-support.js'

for (const database of testDatabases()) {
  t.test(`access token rejections (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { user, tokens } = await signedIn(app)
    const real = tokens.accessToken

    await t.test('control: a faithful re-signed copy is accepted', async (t) => {
      await assertAccessWorks(t, app, resign(real, { claims: { jti: randomUUID() } }), user.id, 're-signed copy')
    })

    await t.test('an expired token is AUTH_TOKEN_EXPIRED', async (t) => {
      const { claims } = decodeJwt(real)
      // Signed by the app itself, issued 1000 s ago with the default 900 s lifetime.
      const issuedLongAgo = app.jwt.current.sign({
        sub: claims.sub, sid: claims.sid, ver: claims.ver, preferred_username: claims.preferred_username, jti: randomUUID(), iat: nowSeconds() - 1000
      })
      t.ok((decodeJwt(issuedLongAgo).claims.exp as number) < nowSeconds(), 'setup: exp is in the past')
      assertTokenRejected(t, await me(app, issuedLongAgo), 'AUTH_TOKEN_EXPIRED', 'app-signed, expired')
      const crafted = resign(real, { claims: { jti: randomUUID(), iat: nowSeconds() - 120, exp: nowSeconds() - 60 } })
      assertTokenRejected(t, await me(app, crafted), 'AUTH_TOKEN_EXPIRED', 'hand-signed, expired')
    })

    await t.test('forged, mis-addressed or mis-typed tokens are AUTH_TOKEN_INVALID', async (t) => {
      const [head, body, signature] = real.split('.') as [string, string, string]
      // Change a character in the middle of the signature (the last one carries padding bits).
      const flipped = signature.slice(0, 10) + (signature[10] === 'A' ? 'B' : 'A') + signature.slice(11)
      const { claims } = decodeJwt(real)
      const otherClaims = Buffer.from(JSON.stringify({ ...claims, sub: randomUUID() })).toString('base64url')
      const cases: Array<[string, string]> = [
        ['tampered signature', `${head}.${body}.${flipped}`],
        ['tampered claims, original signature', `${head}.${otherClaims}.${signature}`],
        ['no signature', `${head}.${body}.`],
        ['signed with another key', resign(real, {}, 'another-secret-0123456789-abcdefghijklmnopq')],
        ['wrong iss', resign(real, { claims: { iss: 'https://evil.example.com' } })],
        ['wrong aud', resign(real, { claims: { aud: 'some-other-api' } })],
        ['typ JWT instead of at+jwt', resign(real, { header: { typ: 'JWT' } })],
        ['no typ', resign(real, { header: { typ: undefined } })],
        ['alg none', `${Buffer.from(JSON.stringify({ ...decodeJwt(real).header, alg: 'none' })).toString('base64url')}.${body}.`],
        ['alg HS512 (not allowed)', craftHs512(real)],
        ['not yet valid (nbf in the future)', resign(real, { claims: { jti: randomUUID(), nbf: nowSeconds() + 600 } })],
        ['no sid claim', resign(real, { claims: { sid: undefined } })],
        ['no exp claim', resign(real, { claims: { exp: undefined } })],
        ['not a JWT at all', 'not-a-jwt']
      ]
      for (const [what, token] of cases) assertTokenRejected(t, await me(app, token), 'AUTH_TOKEN_INVALID', what)
      const broken = await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: 'Bearer ' } })
      assertTokenRejected(t, broken, 'AUTH_TOKEN_INVALID', 'an empty Bearer credential')
      await assertAccessWorks(t, app, real, user.id, 'the real token, after all that')
    })

    await t.test('a token older than the user\'s token version is AUTH_TOKEN_REVOKED', async (t) => {
      const other = await signedIn(app)
      const response = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(other.tokens.accessToken) })
      t.equal(response.statusCode, 204, 'setup: logout-all raises the version')
      const fresh = await login(app, other.username)
      const { claims } = decodeJwt(fresh.accessToken)
      t.equal(claims.ver, 1, 'a new login carries the raised version')
      // The fresh session is live; only the version in the token differs.
      const outdated = resign(fresh.accessToken, { claims: { jti: randomUUID(), ver: 0 } })
      assertTokenRejected(t, await me(app, outdated), 'AUTH_TOKEN_REVOKED', 'ver below the user\'s version')
      await assertAccessWorks(t, app, resign(fresh.accessToken, { claims: { jti: randomUUID() } }), other.user.id, 'control with the current version')
      // Only that user's tokens are affected.
      await assertAccessWorks(t, app, real, user.id, 'another user\'s token')
    })
  })

  t.test(`a user deleted or disabled in the database loses their access tokens (${database})`, async (t) => {
    // The API cannot delete or disable users; an operator does it in the database. A trigger writes
    // the revocation event, which the instance reads at its next poll (called here instead of waiting).
    const app = await testApp(t, { database })
    const bystander = await signedIn(app)
    const deleted = await signedIn(app)
    const disabled = await signedIn(app)
    await assertAccessWorks(t, app, deleted.tokens.accessToken, deleted.user.id, 'control: before the deletion')

    await app.db.user.delete({ where: { id: deleted.user.id } })
    await app.db.user.update({ where: { id: disabled.user.id }, data: { disabled: true } })
    await app.revocations.poll()
    await assertAccessRevoked(t, app, deleted.tokens.accessToken, 'a deleted user\'s token')
    await assertAccessRevoked(t, app, disabled.tokens.accessToken, 'a disabled user\'s token')
    const order = await app.inject({ method: 'POST', url: '/orders', headers: bearer(deleted.tokens.accessToken), payload: { item: 'x', quantity: 1 } })
    assertTokenRejected(t, order, 'AUTH_TOKEN_REVOKED', 'a write by a deleted user')
    await assertAccessWorks(t, app, bystander.tokens.accessToken, bystander.user.id, 'another user\'s token')

    // Re-enabled: older tokens stay refused, a new login works.
    await app.db.user.update({ where: { id: disabled.user.id }, data: { disabled: false } })
    const again = await login(app, disabled.username)
    t.equal(decodeJwt(again.accessToken).claims.ver, 1, 'disabling raised the token version')
    await assertAccessWorks(t, app, again.accessToken, disabled.user.id, 'a login after re-enabling')
    await assertAccessRevoked(t, app, disabled.tokens.accessToken, 'the token from before disabling')

    // A restarted instance reads the same events from the log.
    const restarted = await testApp(t, { sameDatabaseAs: app })
    await assertAccessRevoked(t, restarted, deleted.tokens.accessToken, 'after a restart: the deleted user\'s token')
    await assertAccessRevoked(t, restarted, disabled.tokens.accessToken, 'after a restart: the disabled user\'s token')
  })

  t.test(`ACCESS_TOKEN_TTL is honoured (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { ACCESS_TOKEN_TTL: '60' } })
    const { tokens } = await signedIn(app)
    t.equal(tokens.expiresIn, 60)
    const { claims } = decodeJwt(tokens.accessToken)
    t.equal((claims.exp as number) - (claims.iat as number), 60)
  })
}

/** The real token's claims under alg HS512, properly signed with the right secret: the algorithm is pinned. */
function craftHs512 (real: string): string {
  const { header, claims } = decodeJwt(real)
  const head = Buffer.from(JSON.stringify({ ...header, alg: 'HS512' })).toString('base64url')
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url')
  return `${head}.${body}.${createHmac('sha512', TEST_SECRET).update(`${head}.${body}`).digest('base64url')}`
}
