// Hostile and malformed input: every refusal is a 4xx in the contract's error shape, changes nothing,
// and costs no password hashing; 401s carry the RFC 6750 challenge; tokens never reach the log.
import type { FastifyInstance, InjectOptions } from 'fastify'
import t from 'tap'
import {
  PASSWORD, TEST_ORIGIN, assertError, assertHashingCounted, bearer, countHashing, json, login, refresh, register, signedIn, testApp, testDatabases
} from '../helpers.js'

function rawJson (url: string, payload: string, headers: Record<string, string> = {}): InjectOptions {
  return { method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload }
}

function claims (accessToken: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8'))
}

async function usernameIsFree (app: FastifyInstance, username: string): Promise<boolean> {
  const response = await app.inject({ method: 'POST', url: '/auth/register', payload: { username, password: PASSWORD } })
  return response.statusCode === 201
}

for (const database of testDatabases()) {
  t.test(`malformed JSON is 400 VALIDATION_ERROR and changes nothing (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    const hashing = countHashing(app)
    const username = `fresh${Date.now()}`
    const bodies = [
      `{"username":"${username}","password":"${PASSWORD}"`,
      `{"username":"${username}","password":"${PASSWORD}",}`,
      `{'username':'${username}','password':'${PASSWORD}'}`,
      '{"username":',
      'undefined',
      '\u0000'
    ]
    for (const body of bodies) {
      for (const url of ['/auth/register', '/auth/login', '/auth/refresh', '/auth/logout']) {
        assertError(t, await app.inject(rawJson(url, body)), 400, 'VALIDATION_ERROR')
      }
      assertError(t, await app.inject(rawJson('/orders', body, bearer(tokens.accessToken))), 400, 'VALIDATION_ERROR')
      assertError(t, await app.inject(rawJson('/auth/password', body, bearer(tokens.accessToken))), 400, 'VALIDATION_ERROR')
    }
    assertError(t, await app.inject(rawJson('/auth/login', '')), 400, 'VALIDATION_ERROR')
    t.equal(hashing(), 0, 'no password was hashed')
    await assertHashingCounted(t, app, hashing)
    const orders = await app.inject({ method: 'GET', url: '/orders', headers: bearer(tokens.accessToken) })
    t.same(json(orders).orders, [], 'no order was created')
    t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })).statusCode, 200, 'the session is intact')
    t.ok(await usernameIsFree(app, username), 'no user was created')
  })

  t.test(`other content types are 415 and change nothing (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    const hashing = countHashing(app)
    const username = `fresh${Date.now()}`
    const cases: Array<[string, string]> = [
      ['text/plain', JSON.stringify({ username, password: PASSWORD })],
      ['application/x-www-form-urlencoded', `username=${username}&password=${encodeURIComponent(PASSWORD)}`],
      ['multipart/form-data; boundary=x', `--x\r\nContent-Disposition: form-data; name="username"\r\n\r\n${username}\r\n--x--\r\n`],
      ['application/xml', `<user><username>${username}</username></user>`],
      ['application/octet-stream', 'binary']
    ]
    for (const [contentType, payload] of cases) {
      for (const url of ['/auth/register', '/auth/login', '/auth/refresh']) {
        assertError(t, await app.inject({ method: 'POST', url, headers: { 'content-type': contentType }, payload }), 415, 'UNSUPPORTED_MEDIA_TYPE', `${url} as ${contentType}`)
      }
      const order = await app.inject({ method: 'POST', url: '/orders', headers: { ...bearer(tokens.accessToken), 'content-type': contentType }, payload: 'item=x&quantity=1' })
      assertError(t, order, 415, 'UNSUPPORTED_MEDIA_TYPE')
    }
    t.equal(hashing(), 0, 'no password was hashed')
    await assertHashingCounted(t, app, hashing)
    t.same(json(await app.inject({ method: 'GET', url: '/orders', headers: bearer(tokens.accessToken) })).orders, [])
    t.ok(await usernameIsFree(app, username), 'no user was created')
  })

  t.test(`oversized bodies are 413 before any hashing (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { username, tokens } = await signedIn(app)
    const hashing = countHashing(app)
    const megabyte = 'x'.repeat(1024 * 1024)
    assertError(t, await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: megabyte } }), 413, 'PAYLOAD_TOO_LARGE')
    assertError(t, await app.inject({ method: 'POST', url: '/auth/register', payload: { username: 'bigpassword', password: megabyte } }), 413, 'PAYLOAD_TOO_LARGE')
    assertError(t, await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: 'y'.repeat(33 * 1024) } }), 413, 'PAYLOAD_TOO_LARGE')
    assertError(t, await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: 'z'.repeat(40 * 1024) } }), 413, 'PAYLOAD_TOO_LARGE')
    assertError(t, await app.inject({
      method: 'POST', url: '/auth/password', headers: bearer(tokens.accessToken), payload: { currentPassword: PASSWORD, newPassword: megabyte }
    }), 413, 'PAYLOAD_TOO_LARGE')
    assertError(t, await app.inject({ method: 'POST', url: '/orders', headers: bearer(tokens.accessToken), payload: { item: megabyte, quantity: 1 } }), 413, 'PAYLOAD_TOO_LARGE')
    // Within the body limit but over the password limit: refused by the schema, still unhashed.
    assertError(t, await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: 'p'.repeat(1025) } }), 400, 'VALIDATION_ERROR')
    t.equal(hashing(), 0, 'no password was hashed')
    await assertHashingCounted(t, app, hashing)
    t.ok(await usernameIsFree(app, 'bigpassword'), 'no user was created')
    t.same(json(await app.inject({ method: 'GET', url: '/orders', headers: bearer(tokens.accessToken) })).orders, [])
    // The account is untouched: the oversized attempts did not count as failures either.
    t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD } })).statusCode, 200)
  })

  t.test(`wrong field types are 400 VALIDATION_ERROR, never coerced (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { username, tokens } = await signedIn(app)
    const hashing = countHashing(app)
    const wrongCredentials: unknown[] = [
      { username: 12345678, password: PASSWORD },
      { username: [username], password: PASSWORD },
      { username: null, password: PASSWORD },
      { username: { $ne: '' }, password: PASSWORD },
      { username: true, password: PASSWORD },
      { username, password: 12345678 },
      { username, password: [PASSWORD] },
      { username, password: null },
      { username, password: { $gt: '' } },
      { username },
      { password: PASSWORD },
      {},
      [],
      [username, PASSWORD],
      'username',
      42,
      null
    ]
    for (const payload of wrongCredentials) {
      const body = JSON.stringify(payload)
      assertError(t, await app.inject(rawJson('/auth/login', body)), 400, 'VALIDATION_ERROR')
      assertError(t, await app.inject(rawJson('/auth/register', body)), 400, 'VALIDATION_ERROR')
    }
    assertError(t, await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD, client: 'desktop' } }), 400, 'VALIDATION_ERROR')
    assertError(t, await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD, client: ['web'] } }), 400, 'VALIDATION_ERROR')
    for (const refreshToken of [12345, ['x'], { token: 'x' }, true, '', 'not a token']) {
      assertError(t, await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken } }), 400, 'VALIDATION_ERROR')
    }
    for (const payload of [{ currentPassword: 1, newPassword: 'another long passphrase' }, { currentPassword: PASSWORD, newPassword: null }, { currentPassword: PASSWORD }]) {
      assertError(t, await app.inject({ method: 'POST', url: '/auth/password', headers: bearer(tokens.accessToken), payload }), 400, 'VALIDATION_ERROR')
    }
    t.equal(hashing(), 0, 'no password was hashed')
    await assertHashingCounted(t, app, hashing)
    // The real session and password are untouched.
    t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })).statusCode, 200)
    t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD } })).statusCode, 200)
  })

  t.test(`prototype-pollution keys are 400 and change nothing (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    const hashing = countHashing(app)
    const username = `proto${Date.now()}`
    const bodies = [
      `{"username":"${username}","password":"${PASSWORD}","__proto__":{"tokenVersion":99,"isAdmin":true}}`,
      `{"__proto__":{"username":"${username}","password":"${PASSWORD}"}}`,
      `{"username":"${username}","password":"${PASSWORD}","constructor":{"prototype":{"tokenVersion":99}}}`,
      `{"username":"${username}","password":"${PASSWORD}","extra":{"nested":{"__proto__":{"polluted":true}}}}`
    ]
    for (const body of bodies) {
      assertError(t, await app.inject(rawJson('/auth/register', body)), 400, 'VALIDATION_ERROR')
      assertError(t, await app.inject(rawJson('/auth/login', body)), 400, 'VALIDATION_ERROR')
    }
    for (const body of [
      '{"item":"pen","quantity":1,"__proto__":{"userId":"someone-else"}}',
      '{"item":"pen","quantity":1,"constructor":{"prototype":{"userId":"someone-else"}}}'
    ]) {
      assertError(t, await app.inject(rawJson('/orders', body, bearer(tokens.accessToken))), 400, 'VALIDATION_ERROR')
    }
    t.equal(hashing(), 0, 'no password was hashed')
    await assertHashingCounted(t, app, hashing)
    t.equal(({} as Record<string, unknown>).tokenVersion, undefined, 'Object.prototype is clean')
    t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is clean')
    t.equal(({} as Record<string, unknown>).userId, undefined, 'Object.prototype is clean')
    t.same(json(await app.inject({ method: 'GET', url: '/orders', headers: bearer(tokens.accessToken) })).orders, [])
    t.ok(await usernameIsFree(app, username), 'no user was created')
  })

  t.test(`deeply nested JSON is refused or ignored, never a 5xx (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { username, tokens } = await signedIn(app)
    const depth = 5000
    const nestedArray = `${'['.repeat(depth)}${']'.repeat(depth)}`
    const nestedObject = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
    assertError(t, await app.inject(rawJson('/auth/login', nestedArray)), 400, 'VALIDATION_ERROR')
    assertError(t, await app.inject(rawJson('/auth/login', nestedObject)), 400, 'VALIDATION_ERROR')
    assertError(t, await app.inject(rawJson('/auth/login', `{"username":${nestedArray},"password":"${PASSWORD}"}`)), 400, 'VALIDATION_ERROR')
    assertError(t, await app.inject(rawJson('/auth/login', `{"username":"${username}","password":${nestedObject}}`)), 400, 'VALIDATION_ERROR')
    const unbalanced = await app.inject(rawJson('/auth/login', '['.repeat(30_000)))
    assertError(t, unbalanced, 400, 'VALIDATION_ERROR')
    const withExtra = await app.inject(rawJson('/orders', `{"item":"pen","quantity":2,"notes":${nestedObject}}`, bearer(tokens.accessToken)))
    t.ok(withExtra.statusCode === 201 || withExtra.statusCode === 400, `status ${withExtra.statusCode}`)
    const orders = json(await app.inject({ method: 'GET', url: '/orders', headers: bearer(tokens.accessToken) })).orders as Array<Record<string, unknown>>
    for (const order of orders) t.same(Object.keys(order).sort(), ['createdAt', 'id', 'item', 'quantity', 'updatedAt'])
    t.equal(orders.length, withExtra.statusCode === 201 ? 1 : 0)
  })

  t.test(`unknown body fields never change state (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const victim = await signedIn(app)
    const baseline = await signedIn(app)
    const baselineVersion = claims(baseline.tokens.accessToken).ver

    // Register: no chosen id, token version, role or disabled flag.
    const username = `smuggler${Date.now()}`
    const registered = await app.inject({
      method: 'POST',
      url: '/auth/register',
      payload: {
        username, password: PASSWORD, id: victim.user.id, userId: victim.user.id, tokenVersion: 41, role: 'admin', disabled: true,
        passwordHash: 'x', usernameKey: victim.username
      }
    })
    let smuggler: { id: string, username: string } | undefined
    if (registered.statusCode === 201) {
      smuggler = json(registered).user
      t.same(Object.keys(json(registered).user).sort(), ['id', 'username'])
    } else {
      assertError(t, registered, 400, 'VALIDATION_ERROR')
      smuggler = (await register(app, username)).user
    }
    t.not(smuggler!.id, victim.user.id, 'the id was not chosen by the client')
    t.equal(smuggler!.username, username)

    // Login: the token is the caller's own, with the ordinary token version.
    const loggedIn = await app.inject({
      method: 'POST',
      url: '/auth/login',
      payload: { username, password: PASSWORD, userId: victim.user.id, sub: victim.user.id, tokenVersion: 41, ver: 41, sid: 'chosen', role: 'admin' }
    })
    const tokens = loggedIn.statusCode === 200 ? json(loggedIn) : (assertError(t, loggedIn, 400, 'VALIDATION_ERROR'), await login(app, username))
    const own = claims(tokens.accessToken)
    t.equal(own.sub, smuggler!.id)
    t.equal(own.ver, baselineVersion, 'the ordinary token version')
    t.not(own.sid, 'chosen')
    t.equal(own.role, undefined)
    t.same(tokens.user, smuggler)
    const me = json(await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) }))
    t.same(me.user, smuggler)

    // Refresh: the successor belongs to the same user.
    const renewed = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: tokens.refreshToken, userId: victim.user.id } })
    if (renewed.statusCode === 200) {
      t.equal(claims(json(renewed).accessToken).sub, smuggler!.id)
    } else {
      assertError(t, renewed, 400, 'VALIDATION_ERROR')
      t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200, 'the refused request did not spend the token')
    }

    // Orders: neither the owner, the id nor the timestamps can be chosen.
    const created = await app.inject({
      method: 'POST',
      url: '/orders',
      headers: bearer(tokens.accessToken),
      payload: { item: 'pen', quantity: 1, userId: victim.user.id, id: 'chosen-order-id', createdAt: '2000-01-01T00:00:00.000Z' }
    })
    let orderId: string
    if (created.statusCode === 201) {
      const order = json(created).order
      t.not(order.id, 'chosen-order-id')
      t.not(order.createdAt, '2000-01-01T00:00:00.000Z')
      orderId = order.id
    } else {
      assertError(t, created, 400, 'VALIDATION_ERROR')
      orderId = json(await app.inject({ method: 'POST', url: '/orders', headers: bearer(tokens.accessToken), payload: { item: 'pen', quantity: 1 } })).order.id
    }
    const updated = await app.inject({
      method: 'PUT', url: `/orders/${orderId}`, headers: bearer(tokens.accessToken), payload: { item: 'ink', quantity: 3, userId: victim.user.id, id: 'moved' }
    })
    if (updated.statusCode !== 200) assertError(t, updated, 400, 'VALIDATION_ERROR')
    const victimOrders = json(await app.inject({ method: 'GET', url: '/orders', headers: bearer(victim.tokens.accessToken) })).orders
    t.same(victimOrders, [], 'nothing landed in the victim\'s orders')
    const ownOrders = json(await app.inject({ method: 'GET', url: '/orders', headers: bearer(tokens.accessToken) })).orders
    t.equal(ownOrders.length, 1)
    t.equal(ownOrders[0].id, orderId, 'the id did not change')
    const victimView = await app.inject({ method: 'GET', url: `/orders/${orderId}`, headers: bearer(victim.tokens.accessToken) })
    assertError(t, victimView, 404, 'NOT_FOUND')

    // The victim's token version did not move: their token still works.
    t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(victim.tokens.accessToken) })).statusCode, 200)
  })

  t.test(`unknown routes are 404 NOT_FOUND in the error shape (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    const cases: InjectOptions[] = [
      { method: 'GET', url: '/nope' },
      { method: 'GET', url: '/' },
      { method: 'POST', url: '/auth/nope', payload: {} },
      { method: 'GET', url: '/auth/login' },
      { method: 'PATCH', url: '/orders', headers: bearer(tokens.accessToken) },
      { method: 'GET', url: '/nope', headers: bearer(tokens.accessToken) },
      { method: 'GET', url: '/nope?access_token=whatever' },
      { method: 'DELETE', url: '/health' }
    ]
    for (const request of cases) {
      const response = await app.inject(request)
      assertError(t, response, 404, 'NOT_FOUND')
      t.equal(response.headers['www-authenticate'], undefined, `${request.method} ${request.url}: no challenge on a 404`)
      t.notMatch(json(response).message, /whatever/, 'the query is not echoed')
    }
  })

  t.test(`malformed or over-long URLs are 4xx in the error shape (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    const badUrl = await app.inject({ method: 'GET', url: `/orders/%E0%A4%A?access_token=${tokens.accessToken}`, headers: bearer(tokens.accessToken) })
    assertError(t, badUrl, 400, 'VALIDATION_ERROR', 'a malformed percent-encoding')
    t.notOk(badUrl.body.includes(tokens.accessToken), 'the URL (and its token) is not echoed')
    const longId = await app.inject({ method: 'GET', url: `/orders/${'a'.repeat(5000)}`, headers: bearer(tokens.accessToken) })
    assertError(t, longId, 400, 'VALIDATION_ERROR', 'an over-long id')
    const nul = await app.inject({ method: 'GET', url: '/orders/a%00b', headers: bearer(tokens.accessToken) })
    assertError(t, nul, 400, 'VALIDATION_ERROR', 'a NUL in the id')
  })

  t.test(`no input gives a 5xx (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { username, tokens } = await signedIn(app)
    const auth = bearer(tokens.accessToken)
    // Each with the refusal it must get: the status and the code, in the error shape.
    const requests: Array<[number, string, InjectOptions]> = [
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/login', payload: { username: 'a\u0000b', password: PASSWORD } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/login', payload: { username: `${username}\u0000`, password: PASSWORD } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/login', payload: { username, password: `${PASSWORD}\u0000` } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/login', payload: { username: '\ud800', password: PASSWORD } }],
      [401, 'AUTH_INVALID_CREDENTIALS', { method: 'POST', url: '/auth/login', payload: { username: 'x'.repeat(256), password: PASSWORD } }],
      [401, 'AUTH_INVALID_CREDENTIALS', { method: 'POST', url: '/auth/login', payload: { username: ' ', password: PASSWORD } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/register', payload: { username: 'a\u0000bcd', password: PASSWORD } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/register', payload: { username: 'nul-password', password: `${PASSWORD}\u0000!` } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/register', payload: { username: '\u{1F600}\u{1F600}\u{1F600}', password: PASSWORD } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/refresh', payload: { refreshToken: `${'a'.repeat(42)}\u0000` } }],
      [401, 'AUTH_REFRESH_INVALID', { method: 'POST', url: '/auth/refresh', payload: null as unknown as string }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/refresh', cookies: { '__Secure-refresh_token': 'a\u0000b' }, headers: { origin: TEST_ORIGIN, 'x-requested-with': 'fetch' } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/auth/refresh', cookies: { '__Secure-refresh_token': '%E0%A4%A' }, headers: { origin: TEST_ORIGIN, 'x-requested-with': 'fetch' } }],
      [401, 'AUTH_REFRESH_INVALID', { method: 'POST', url: '/auth/logout', payload: { refreshToken: 'A'.repeat(43) } }],
      [401, 'AUTH_TOKEN_INVALID', { method: 'POST', url: '/auth/logout', headers: { authorization: 'Bearer' } }],
      [401, 'AUTH_TOKEN_INVALID', { method: 'POST', url: '/auth/logout', headers: { authorization: `Bearer ${'a'.repeat(5000)}` } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/orders', headers: auth, payload: { item: 'a\u0000b', quantity: 1 } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/orders', headers: auth, payload: { item: 'a', quantity: 1e300 } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/orders', headers: auth, payload: { item: 'a', quantity: -1 } }],
      [400, 'VALIDATION_ERROR', { method: 'POST', url: '/orders', headers: auth, payload: { item: 'a', quantity: '1' } }],
      [400, 'VALIDATION_ERROR', { method: 'PUT', url: '/orders/a%00b', headers: auth, payload: { item: 'a', quantity: 1 } }],
      [400, 'VALIDATION_ERROR', { method: 'DELETE', url: '/orders/a%00b', headers: auth }],
      [404, 'NOT_FOUND', { method: 'GET', url: `/orders/${"' OR 1=1 --"}`, headers: auth }],
      [400, 'VALIDATION_ERROR', { method: 'DELETE', url: '/auth/sessions/a%00b', headers: auth }],
      [404, 'NOT_FOUND', { method: 'DELETE', url: `/auth/sessions/${'9'.repeat(100)}`, headers: auth }],
      [401, 'AUTH_TOKEN_INVALID', { method: 'GET', url: '/auth/me', headers: { authorization: 'Bearer a.b.c' } }],
      [401, 'AUTH_TOKEN_INVALID', { method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.e30.` } }],
      [401, 'AUTH_TOKEN_MISSING', { method: 'GET', url: '/auth/me?access_token[]=x' }],
      [401, 'AUTH_TOKEN_MISSING', { method: 'GET', url: '/auth/me', headers: { authorization: 'Basic dXNlcjpwYXNz' } }]
    ]
    for (const [status, code, request] of requests) {
      assertError(t, await app.inject(request), status, code, `${request.method} ${request.url}`)
    }
    const orders = json(await app.inject({ method: 'GET', url: '/orders', headers: auth })).orders
    t.same(orders, [], 'no refused order was stored')
  })

  t.test(`a 401 on a protected route carries the RFC 6750 challenge (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    const [header, payload] = tokens.accessToken.split('.')
    const tampered = `${header}.${payload}.${'A'.repeat(43)}`
    const routes: Array<Pick<InjectOptions, 'method' | 'url' | 'payload'>> = [
      { method: 'GET', url: '/auth/me' },
      { method: 'GET', url: '/auth/sessions' },
      { method: 'GET', url: '/orders' },
      { method: 'POST', url: '/orders', payload: { item: 'pen', quantity: 1 } },
      { method: 'DELETE', url: '/orders/some-id' },
      { method: 'POST', url: '/auth/logout-all' },
      { method: 'POST', url: '/auth/password', payload: { currentPassword: PASSWORD, newPassword: 'another long passphrase' } }
    ]
    for (const route of routes) {
      const missing = await app.inject({ ...route })
      assertError(t, missing, 401, 'AUTH_TOKEN_MISSING')
      t.equal(missing.headers['www-authenticate'], 'Bearer', `${route.method} ${route.url} without credentials`)
      // RFC 6750 §3.1: an unsupported scheme is no bearer credential; the challenge carries no error.
      const basic = await app.inject({ ...route, headers: { authorization: 'Basic dXNlcjpwYXNz' } })
      assertError(t, basic, 401, 'AUTH_TOKEN_MISSING', `${route.method} ${route.url} with Basic`)
      t.equal(basic.headers['www-authenticate'], 'Bearer')
      for (const [label, authorization] of [['garbage', 'Bearer not-a-jwt'], ['tampered', `Bearer ${tampered}`], ['empty bearer', 'Bearer ']]) {
        const invalid = await app.inject({ ...route, headers: { authorization } })
        assertError(t, invalid, 401, 'AUTH_TOKEN_INVALID')
        t.equal(invalid.headers['www-authenticate'], 'Bearer error="invalid_token"', `${route.method} ${route.url} with a ${label} token`)
      }
    }
    // A revoked token is an invalid one too.
    t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.accessToken) })).statusCode, 204)
    const revoked = await app.inject({ method: 'GET', url: '/orders', headers: bearer(tokens.accessToken) })
    assertError(t, revoked, 401, 'AUTH_TOKEN_REVOKED')
    t.equal(revoked.headers['www-authenticate'], 'Bearer error="invalid_token"')
  })

  t.test(`?access_token= is not accepted while ACCESS_TOKEN_QUERY_PARAM is off (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    for (const url of [`/auth/me?access_token=${tokens.accessToken}`, `/orders?access_token=${tokens.accessToken}`, `/auth/me?access%5Ftoken=${tokens.accessToken}`]) {
      const response = await app.inject({ method: 'GET', url })
      assertError(t, response, 401, 'AUTH_TOKEN_MISSING')
      t.equal(response.headers['www-authenticate'], 'Bearer')
    }
  })

  t.test(`?access_token= is accepted when ACCESS_TOKEN_QUERY_PARAM is on, and never cached (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { ACCESS_TOKEN_QUERY_PARAM: 'true' } })
    const { tokens, user } = await signedIn(app)
    const me = await app.inject({ method: 'GET', url: `/auth/me?access_token=${tokens.accessToken}` })
    t.equal(me.statusCode, 200)
    t.same(json(me).user, user)
    const cacheControl = String(me.headers['cache-control'])
    t.match(cacheControl, /\bprivate\b/)
    t.match(cacheControl, /\bno-store\b/)
    const orders = await app.inject({ method: 'GET', url: `/orders?access_token=${tokens.accessToken}` })
    t.equal(orders.statusCode, 200)
    t.match(String(orders.headers['cache-control']), /no-store/)
    // A refused query token is not cached either.
    const invalid = await app.inject({ method: 'GET', url: '/auth/me?access_token=not-a-jwt' })
    assertError(t, invalid, 401, 'AUTH_TOKEN_INVALID')
    t.equal(invalid.headers['www-authenticate'], 'Bearer error="invalid_token"')
    t.match(String(invalid.headers['cache-control']), /no-store/)
    // Header and query together: 400.
    const both = await app.inject({ method: 'GET', url: `/auth/me?access_token=${tokens.accessToken}`, headers: bearer(tokens.accessToken) })
    assertError(t, both, 400, 'VALIDATION_ERROR')
    const twice = await app.inject({ method: 'GET', url: `/auth/me?access_token=${tokens.accessToken}&access_token=${tokens.accessToken}` })
    assertError(t, twice, 400, 'VALIDATION_ERROR')
    // The header alone still works as ever.
    t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })).statusCode, 200)
  })

  for (const queryParam of ['false', 'true']) {
    t.test(`passwords, tokens and cookies never reach the log (ACCESS_TOKEN_QUERY_PARAM=${queryParam}, ${database})`, async (t) => {
      const logLines: Array<Record<string, unknown>> = []
      const app = await testApp(t, { database, logLines, env: { ACCESS_TOKEN_QUERY_PARAM: queryParam } })
      const secrets: string[] = []
      const keep = (...values: string[]) => { secrets.push(...values) }
      const username = `logged${Date.now()}`
      keep(PASSWORD)
      t.equal((await app.inject({ method: 'POST', url: '/auth/register', payload: { username, password: PASSWORD } })).statusCode, 201)
      const mobile = json(await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD } }))
      keep(mobile.accessToken, mobile.refreshToken)
      const wrongPassword = 'a wrong password that must stay secret'
      keep(wrongPassword)
      t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: wrongPassword } })).statusCode, 401)
      t.equal((await app.inject(rawJson('/auth/login', `{"username":"${username}","password":"${wrongPassword}"`))).statusCode, 400)
      t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: wrongPassword, extra: 1, client: 'tv' } })).statusCode, 400)
      const renewed = json(await refresh(app, mobile.refreshToken))
      keep(renewed.accessToken, renewed.refreshToken)
      const bogusRefresh = 'B'.repeat(43)
      keep(bogusRefresh)
      t.equal((await refresh(app, bogusRefresh)).statusCode, 401)
      t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(renewed.accessToken) })).statusCode, 200)
      const viaQuery = await app.inject({ method: 'GET', url: `/auth/me?access_token=${renewed.accessToken}&other=1` })
      t.equal(viaQuery.statusCode, queryParam === 'true' ? 200 : 401)
      await app.inject({ method: 'GET', url: `/orders?ACCESS_TOKEN=${renewed.accessToken}` })
      await app.inject({ method: 'GET', url: `/orders?access%5Ftoken=${renewed.accessToken}` })
      await app.inject({ method: 'GET', url: `/nope?access_token=${renewed.accessToken}` })
      await app.inject({ method: 'GET', url: `/orders/%E0?access_token=${renewed.accessToken}` })
      const invalidToken = `${renewed.accessToken.slice(0, -5)}AAAAA`
      keep(invalidToken)
      t.equal((await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(invalidToken) })).statusCode, 401)

      // Web client: cookie login, refresh and logout.
      const web = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: PASSWORD, client: 'web' } })
      const cookie = (web.cookies as Array<{ name: string, value: string }>)[0]!
      keep(json(web).accessToken, cookie.value)
      const csrf = { origin: TEST_ORIGIN, 'x-requested-with': 'fetch' }
      const webRefresh = await app.inject({ method: 'POST', url: '/auth/refresh', headers: csrf, cookies: { [cookie.name]: cookie.value } })
      const nextCookie = (webRefresh.cookies as Array<{ name: string, value: string }>)[0]!
      keep(json(webRefresh).accessToken, nextCookie.value)
      t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', headers: { origin: TEST_ORIGIN }, cookies: { [cookie.name]: nextCookie.value } })).statusCode, 403)
      t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: csrf, cookies: { [cookie.name]: nextCookie.value } })).statusCode, 204)

      // Password change.
      const newPassword = 'the new secret passphrase'
      keep(newPassword)
      const changed = await app.inject({
        method: 'POST', url: '/auth/password', headers: bearer(renewed.accessToken), payload: { currentPassword: PASSWORD, newPassword }
      })
      t.equal(changed.statusCode, 200)
      keep(json(changed).accessToken, json(changed).refreshToken)

      t.ok(logLines.length > 10, `${logLines.length} log lines captured`)
      const urls = logLines.map((line) => (line.req as { url?: string } | undefined)?.url).filter((url): url is string => url !== undefined)
      t.ok(urls.some((url) => url.startsWith('/auth/me?')), 'the query-token request was logged')
      t.ok(urls.includes('/auth/refresh'), 'the refresh requests were logged')
      for (const secret of new Set(secrets)) {
        const parts = secret.includes('.') ? [secret, secret.split('.')[2]!] : [secret]
        for (const part of parts) {
          const leaking = logLines.filter((line) => JSON.stringify(line).includes(part))
          t.same(leaking, [], `a secret (${part.slice(0, 6)}…) never reaches the log`)
        }
      }
    })
  }
}
