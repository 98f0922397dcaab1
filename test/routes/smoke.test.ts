import t from 'tap'
import { bearer, json, refresh, signedIn, testApp, testDatabases } from '../helpers.js'

for (const database of testDatabases()) {
  t.test(`login → me → refresh → logout (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens, user } = await signedIn(app)
    const me = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })
    t.equal(me.statusCode, 200)
    t.same(json(me).user, user)
    const renewed = await refresh(app, tokens.refreshToken)
    t.equal(renewed.statusCode, 200)
    const out = await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.accessToken) })
    t.equal(out.statusCode, 204)
    const after = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })
    t.equal(after.statusCode, 401)
    t.equal(json(after).code, 'AUTH_TOKEN_REVOKED')
  })
}
