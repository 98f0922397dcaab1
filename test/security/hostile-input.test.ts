// Hostile input from outside (issue 10): credentials in URLs never reach the log, ill-formed Unicode
// and NUL are refused on every route, IPv6 clients share one budget per prefix, claims must have the
// shapes the server issues, and two Host headers are refused.
import { connect, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { normalizeIP } from '@fastify/rate-limit'
import { clientAddressKey } from '../../src/auth/client-address.js'
import { PASSWORD, assertError, assertTokenRejected, bearer, json, login, register, signedIn, testApp, testDatabases } from '../helpers.js'
import { b64url, decodeJwt, hmacSigner, snapshot } from './support.js'

const SECRET = 'Zr9vQ1sEcReTvAlUe0000000000000000000000000x'

function assertValidation (t: Test, response: LightMyRequestResponse, what: string) {
  assertError(t, response, 400, 'VALIDATION_ERROR', what)
}

t.test('no credential in a URL reaches the log, whatever its name or spelling', async (t) => {
  const logLines: Array<Record<string, unknown>> = []
  const app = await testApp(t, { logLines })
  const urls = [
    `/auth/refresh?refreshToken=${SECRET}`,
    `/auth/refresh?token=${SECRET}`,
    `/auth/login?password=${SECRET}`,
    `/auth/me?accessToken=${SECRET}`,
    `/auth/me?bearer=${SECRET}`,
    `/orders?access_token[]=${SECRET}`,
    `/orders?access_token%00=${SECRET}`,
    `/orders?access%5Ftoken=${SECRET}`,
    `/auth/refresh;access_token=${SECRET}`,
    `/health?a=1&refresh_token=${SECRET}&b`,
    `/nowhere?${SECRET}`,
    `/health?x=${encodeURIComponent(SECRET)}`
  ]
  for (const url of urls) {
    logLines.length = 0
    await app.inject({ method: url.startsWith('/auth/refresh') || url.startsWith('/auth/login') ? 'POST' : 'GET', url, payload: url.startsWith('/auth/') && !url.startsWith('/auth/me') ? {} : undefined })
    t.ok(logLines.length > 0, `${url}: the request was logged`)
    t.notOk(JSON.stringify(logLines).includes(SECRET), `${url}: the value is in no log line`)
  }
  // Positive control: the lines still say which path and which parameter names came.
  logLines.length = 0
  await app.inject({ method: 'GET', url: `/health?a=1&refresh_token=${SECRET}&b` })
  const incoming = logLines.find((line) => line.msg === 'request completed') as { req: { url: string } } | undefined
  t.equal(incoming?.req.url, '/health?a=[REDACTED]&refresh_token=[REDACTED]&b', 'path and parameter names are kept')
  logLines.length = 0
  await app.inject({ method: 'GET', url: `/health;access_token=${SECRET}` })
  t.notOk(JSON.stringify(logLines).includes(SECRET), 'a ;parameter in the path is cut too')
})

for (const database of testDatabases()) {
  t.test(`lone surrogates and NUL are refused on every route and field (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { username, tokens } = await signedIn(app)
    const before = await snapshot(app)
    const raw = (method: 'POST' | 'PUT', url: string, body: string, headers: Record<string, string> = {}) =>
      app.inject({ method, url, payload: body, headers: { 'content-type': 'application/json', ...headers } })
    const cases: Array<[string, () => Promise<LightMyRequestResponse>]> = [
      ['register password', () => raw('POST', '/auth/register', '{"username":"surrogate1","password":"correct horse \\ud800 staple"}')],
      ['register username', () => raw('POST', '/auth/register', '{"username":"sur\\udc00rogate","password":"correct horse battery staple"}')],
      ['register NUL username', () => raw('POST', '/auth/register', '{"username":"nul\\u0000name","password":"correct horse battery staple"}')],
      ['login password', () => raw('POST', '/auth/login', JSON.stringify({ username }).replace('}', ',"password":"correct horse \\udfff staple"}'))],
      ['login NUL username', () => raw('POST', '/auth/login', '{"username":"a\\u0000b","password":"correct horse battery staple"}')],
      ['login NUL password', () => raw('POST', '/auth/login', JSON.stringify({ username }).replace('}', ',"password":"correct\\u0000horse"}'))],
      ['refresh token', () => raw('POST', '/auth/refresh', '{"refreshToken":"\\ud800"}')],
      ['password change', () => raw('POST', '/auth/password', '{"currentPassword":"correct horse battery staple","newPassword":"new \\ud800 password!!"}', bearer(tokens.accessToken))],
      ['order item', () => raw('POST', '/orders', '{"item":"book \\ud83d","quantity":1}', bearer(tokens.accessToken))],
      ['order item NUL', () => raw('POST', '/orders', '{"item":"book\\u0000","quantity":1}', bearer(tokens.accessToken))],
      ['unknown field', () => raw('POST', '/orders', '{"item":"book","quantity":1,"note":"\\udc00"}', bearer(tokens.accessToken))],
      ['field name', () => raw('POST', '/orders', '{"item":"book","quantity":1,"\\ud800":1}', bearer(tokens.accessToken))],
      ['query NUL', () => app.inject({ method: 'GET', url: '/orders?x=%00', headers: bearer(tokens.accessToken) })],
      ['path NUL', () => app.inject({ method: 'GET', url: '/orders/a%00b', headers: bearer(tokens.accessToken) })],
      ['JSON bytes that are not UTF-8 (an encoded lone surrogate)', () => app.inject({
        method: 'POST', url: '/orders', headers: { 'content-type': 'application/json', ...bearer(tokens.accessToken) },
        payload: Buffer.concat([Buffer.from('{"item":"book '), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('","quantity":1}')])
      })]
    ]
    for (const [what, send] of cases) assertValidation(t, await send(), what)
    for (const body of [`grant_type=password&username=a%00b&password=${encodeURIComponent(PASSWORD)}`, `grant_type=password&username=${username}&password=ab%00cdefgh`]) {
      const response = await app.inject({ method: 'POST', url: '/oauth/token', payload: body, headers: { 'content-type': 'application/x-www-form-urlencoded' } })
      t.equal(response.statusCode, 400, `/oauth/token with NUL: ${body.slice(0, 30)}`)
      t.equal(json(response).code, 'VALIDATION_ERROR')
      t.equal(json(response).error, 'invalid_request')
    }
    t.equal(await snapshot(app), before, 'nothing was written')
    // Positive control: a well-formed astral character (a surrogate pair) is ordinary text.
    const good = await raw('POST', '/orders', '{"item":"book \\ud83d\\udcda","quantity":1}', bearer(tokens.accessToken))
    t.equal(good.statusCode, 201)
    t.equal(json(good).order.item, 'book \u{1F4DA}')
  })
}

t.test('clientAddressKey: IPv6 by its prefix, IPv4-mapped as IPv4', async (t) => {
  t.equal(clientAddressKey('2001:db8:1:2:3:4:5:6'), clientAddressKey('2001:db8:1:2:ffff::1'), 'one /64')
  t.not(clientAddressKey('2001:db8:1:2::1'), clientAddressKey('2001:db8:1:3::1'), 'another /64')
  t.equal(clientAddressKey('2001:db8:1:2::1', 48), clientAddressKey('2001:db8:1:3::1', 48), 'one /48')
  t.not(clientAddressKey('2001:db8::1', 128), clientAddressKey('2001:db8::2', 128), '/128 is each address')
  t.equal(clientAddressKey('::ffff:192.0.2.1'), '192.0.2.1')
  t.equal(clientAddressKey('192.0.2.1'), '192.0.2.1')
})

t.test('clientAddressKey: every spelling of an IPv4-mapped address is the key the IPv6 parser gives it', async (t) => {
  const spellings = [
    '::ffff:192.0.2.1', '::FFFF:192.0.2.1', '::ffff:0.0.0.0', '::ffff:255.255.255.255', '0:0:0:0:0:ffff:192.0.2.1',
    '::ffff:c000:201', '::ffff:192.0.2.01', '::ffff:192.0.2', '::ffff:192.0.2.256', '::ffff:', '::ffff:1.2.3.4%eth0'
  ]
  for (const address of spellings) t.equal(clientAddressKey(address), normalizeIP(address.toLowerCase()), address)
  t.equal(clientAddressKey('0:0:0:0:0:ffff:192.0.2.1'), '192.0.2.1', 'the long form is the same client')
  t.equal(clientAddressKey('::ffff:c000:201'), '192.0.2.1', 'so is the hexadecimal form')
})

for (const database of testDatabases()) {
  t.test(`one IPv6 /64 shares one request budget and one login throttle (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { RATE_LIMIT_MAX: '3' } })
    const hit = (remoteAddress: string) => app.inject({ method: 'POST', url: '/auth/refresh', payload: {}, remoteAddress })
    for (const address of ['2001:db8:0:1::1', '2001:db8:0:1::2', '2001:db8:0:1:abcd::9']) t.not((await hit(address)).statusCode, 429, address)
    t.equal((await hit('2001:db8:0:1::77')).statusCode, 429, 'a fourth address of the same /64 has no budget left')
    t.not((await hit('2001:db8:0:2::1')).statusCode, 429, 'another /64 has its own')
    for (const address of ['192.0.2.9', '::ffff:192.0.2.9', '192.0.2.9']) t.not((await hit(address)).statusCode, 429, address)
    t.equal((await hit('::ffff:192.0.2.9')).statusCode, 429, 'IPv4-mapped IPv6 counts as its IPv4 address')
  })

  t.test(`the login throttle groups IPv6 alike, by the configured prefix (${database})`, async (t) => {
    for (const [prefix, shared] of [['64', true], ['128', false]] as const) {
      const app = await testApp(t, { database, env: { LOGIN_MAX_FAILURES: '2', IPV6_PREFIX_LENGTH: prefix } })
      const { username } = await register(app)
      const attempt = (password: string, remoteAddress: string) => app.inject({ method: 'POST', url: '/auth/login', payload: { username, password }, remoteAddress })
      t.equal((await attempt('wrong password one', '2001:db8:5:5::1')).statusCode, 401)
      t.equal((await attempt('wrong password two', '2001:db8:5:5::2')).statusCode, 401)
      const third = await attempt(PASSWORD, '2001:db8:5:5::3')
      t.equal(third.statusCode, shared ? 429 : 200, `/${prefix}: a third address of the /64 ${shared ? 'is locked' : 'is its own pair'}`)
    }
  })
}

/** A JWT whose claims segment is exactly this JSON text (so 1e309 can be written), signed by the key. */
function withClaimsText (token: string, claimsText: string): string {
  const [header] = token.split('.')
  const input = `${header}.${b64url(claimsText)}`
  return `${input}.${hmacSigner('test-secret-0123456789-abcdefghijklmnopqrstuvwxyz')(input).toString('base64url')}`
}

t.test('claims must have the exact types and shapes the server issues', async (t) => {
  const app = await testApp(t)
  const { tokens } = await signedIn(app)
  const { claims } = decodeJwt(tokens.accessToken)
  const text = (changes: Record<string, unknown>) => JSON.stringify({ ...claims, ...changes })
  const me = (token: string) => app.inject({ method: 'GET', url: '/auth/me', headers: bearer(token) })
  // Control: the forging machinery reproduces a token the server accepts.
  t.equal((await me(withClaimsText(tokens.accessToken, text({})))).statusCode, 200, 'control: an unchanged re-signed token works')
  const forged: Array<[string, string]> = [
    ['exp 1e309', text({ exp: 0 }).replace('"exp":0', '"exp":1e309')],
    ['exp fractional', text({ exp: (claims.exp as number) + 0.5 })],
    ['exp a string', text({ exp: String(claims.exp) })],
    ['iat a string', text({ iat: String(claims.iat) })],
    ['iat fractional', text({ iat: (claims.iat as number) + 0.25 })],
    ['iat missing', text({ iat: undefined })],
    ['nbf fractional', text({ nbf: (claims.iat as number) - 0.5 })],
    ['nbf a string', text({ nbf: '0' })],
    ['sub empty', text({ sub: '' })],
    ['sub upper case', text({ sub: (claims.sub as string).toUpperCase() })],
    ['sub not an id', text({ sub: 'admin' })],
    ['sid with a trailing space', text({ sid: `${claims.sid as string} ` })],
    ['sid upper case', text({ sid: (claims.sid as string).toUpperCase() })],
    ['ver negative', text({ ver: -1 })],
    ['ver fractional', text({ ver: 0.5 })],
    ['ver a string', text({ ver: '0' })],
    ['ver beyond safe integers', text({ ver: 0 }).replace('"ver":0', '"ver":9007199254740993')],
    ['jti empty', text({ jti: '' })]
  ]
  for (const [what, claimsText] of forged) assertTokenRejected(t, await me(withClaimsText(tokens.accessToken, claimsText)), 'AUTH_TOKEN_INVALID', what)
})

t.test('a revoked session stays revoked under another spelling of its sid', async (t) => {
  const app = await testApp(t)
  const { tokens } = await signedIn(app)
  const { claims } = decodeJwt(tokens.accessToken)
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.accessToken) })).statusCode, 204)
  for (const sid of [(claims.sid as string).toUpperCase(), `${claims.sid as string} `, ` ${claims.sid as string}`]) {
    const token = withClaimsText(tokens.accessToken, JSON.stringify({ ...claims, sid }))
    const response = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(token) })
    t.equal(response.statusCode, 401, JSON.stringify(sid))
  }
  const original = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })
  assertTokenRejected(t, original, 'AUTH_TOKEN_REVOKED', 'control: the original token is revoked')
})

async function rawRequest (app: FastifyInstance, text: string): Promise<{ status: number, body: string }> {
  const { port } = app.server.address() as AddressInfo
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(text))
    let received = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => { received += chunk })
    socket.on('error', reject)
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1])
      resolve({ status, body: received.slice(received.indexOf('\r\n\r\n') + 4) })
    })
  })
}

t.test('two Host headers are a 400 in the contract\'s shape (RFC 9112 §3.2)', async (t) => {
  const app = await testApp(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const one = await rawRequest(app, 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  t.equal(one.status, 200, 'control: one Host header is served')
  for (const hosts of [['localhost', 'localhost'], ['localhost', 'evil.example'], ['a', 'b', 'c']]) {
    const response = await rawRequest(app, `GET /health HTTP/1.1\r\n${hosts.map((host) => `Host: ${host}\r\n`).join('')}Connection: close\r\n\r\n`)
    t.equal(response.status, 400, hosts.join(', '))
    const body = JSON.parse(response.body.slice(response.body.indexOf('{'), response.body.lastIndexOf('}') + 1))
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
    t.equal(body.code, 'VALIDATION_ERROR')
  }
  // Node's header types allow one Host; sending two is the point of this request.
  const twoHosts: Record<string, string | string[]> = { host: ['a.example', 'b.example'] }
  const injected = await app.inject({ method: 'GET', url: '/health', headers: twoHosts })
  assertValidation(t, injected, 'two Host headers through inject')
  t.equal((await login(app, (await register(app)).username)).tokenType, 'Bearer', 'requests with one Host keep working')
})
