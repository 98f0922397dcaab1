// Access tokens in the query string (ACCESS_TOKEN_QUERY_PARAM): answers to a URL that carries one are
// never cached (Cache-Control: private, no-store), and no log line ever holds the token, whether the
// request was served, refused, unrouted or malformed, and whether the option is on or off. Also the
// security headers (helmet, src/plugins/security-headers.ts) every answer carries.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { PASSWORD, assertError, assertTokenRejected, bearer, json, signedIn, testApp, testDatabases } from '../helpers.js'


/** Every secret a log line must not contain, including fragments that would still be useful. */
function secretsOf (account: Awaited<ReturnType<typeof signedIn>>): Array<[string, string]> {
  const [head, body, signature] = account.tokens.accessToken.split('.') as [string, string, string]
  return [
    ['access token', account.tokens.accessToken],
    ['access token claims segment', body],
    ['access token signature', signature],
    ['access token, percent-encoded', encodeURIComponent(`${head}.${body}.${signature}`).replace(/\./g, '%2E')],
    ['refresh token', account.tokens.refreshToken],
    ['password', PASSWORD]
  ]
}

function assertLogClean (t: Test, lines: Array<Record<string, unknown>>, secrets: Array<[string, string]>): void {
  t.ok(lines.length > 0, `setup: ${lines.length} log lines were captured`)
  const text = lines.map((line) => JSON.stringify(line))
  for (const [what, secret] of secrets) {
    const leaking = text.filter((line) => line.includes(secret))
    t.same(leaking, [], `no log line contains the ${what}`)
  }
}

function assertNoStore (t: Test, response: LightMyRequestResponse, what: string): void {
  const cacheControl = String(response.headers['cache-control'] ?? '')
  t.match(cacheControl, /\bno-store\b/, `${what}: Cache-Control no-store`)
  t.match(cacheControl, /\bprivate\b/, `${what}: Cache-Control private`)
  t.notMatch(cacheControl, /\bpublic\b|max-age=[1-9]/, `${what}: never cacheable`)
}

/** `tokenInUrl`: the request URL carried an access token, so the answer must not pass it on as a referrer. */
function assertSecurityHeaders (t: Test, response: LightMyRequestResponse, what: string, tokenInUrl = true): void {
  const headers = response.headers
  t.equal(headers['x-content-type-options'], 'nosniff', `${what}: nosniff`)
  const csp = String(headers['content-security-policy'] ?? '')
  t.match(csp, /(^|;)\s*default-src 'none'/, `${what}: CSP default-src 'none'`)
  t.ok(/frame-ancestors 'none'/.test(csp) || /^(DENY|SAMEORIGIN)$/i.test(String(headers['x-frame-options'] ?? '')), `${what}: no framing`)
  t.match(String(headers['strict-transport-security'] ?? ''), /max-age=(\d{8,}|[2-9]\d{6,}|1[6-9]\d{6}|15[5-9]\d{5})/, `${what}: HSTS for at least 180 days`)
  if (tokenInUrl) t.equal(headers['referrer-policy'], 'no-referrer', `${what}: no referrer (the URL carries a token)`)
  t.equal(headers['x-powered-by'], undefined, `${what}: no x-powered-by`)
}

const urlsOf = (lines: Array<Record<string, unknown>>) =>
  lines.map((line) => (line.req as { url?: string } | undefined)?.url).filter((url): url is string => url !== undefined)

for (const database of testDatabases()) {
  t.test(`?access_token= with ACCESS_TOKEN_QUERY_PARAM=true (${database})`, async (t) => {
    const logLines: Array<Record<string, unknown>> = []
    const app = await testApp(t, { database, env: { ACCESS_TOKEN_QUERY_PARAM: 'true' }, logLines })
    const account = await signedIn(app)
    const token = account.tokens.accessToken
    const [head, body, signature] = token.split('.') as [string, string, string]
    const q = (url: string, value = token) => `${url}${url.includes('?') ? '&' : '?'}access_token=${value}`
    const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers })

    await t.test('a valid token in the query is served, and the answer is never cached', async (t) => {
      for (const url of [q('/auth/me'), q('/orders?limit=1'), q('/auth/sessions'), `/auth/me?access%5Ftoken=${token}`]) {
        const response = await get(url)
        t.equal(response.statusCode, 200, `${url.slice(0, 24)}…: 200`)
        assertNoStore(t, response, url.slice(0, 24))
        assertSecurityHeaders(t, response, url.slice(0, 24))
      }
      t.equal(json(await get(q('/auth/me'))).user.id, account.user.id, 'the token\'s user')
      const encoded = await get(q('/auth/me', `${head}%2E${body}%2E${signature}`))
      t.equal(encoded.statusCode, 200, 'a percent-encoded token is the same token')
    })

    await t.test('refusals of a query token are never cached either', async (t) => {
      const tampered = `${head}.${body}.${signature.slice(0, -4)}AAAA`
      const invalid = await get(q('/auth/me', tampered))
      assertTokenRejected(t, invalid, 'AUTH_TOKEN_INVALID', 'a tampered query token')
      assertNoStore(t, invalid, 'a tampered query token')
      const both = await get(q('/auth/me'), bearer(token))
      assertError(t, both, 400, 'VALIDATION_ERROR', 'header and query')
      assertNoStore(t, both, 'header and query')
      const twice = await get(`/auth/me?access_token=${token}&access_token=${token}`)
      assertError(t, twice, 400, 'VALIDATION_ERROR', 'the parameter twice')
      assertNoStore(t, twice, 'the parameter twice')
      const unrouted = await get(q('/no/such/route'))
      assertError(t, unrouted, 404, 'NOT_FOUND', 'an unknown route')
      t.notOk(unrouted.body.includes(signature), 'the 404 message does not echo the token')
      assertNoStore(t, unrouted, 'an unknown route')
      const publicRoute = await get(q('/health'))
      t.equal(publicRoute.statusCode, 200, 'a public route')
      assertNoStore(t, publicRoute, 'a public route')
      const malformed = await get(q('/auth/%E0%A4%A'))
      t.ok(malformed.statusCode >= 400 && malformed.statusCode < 500, `a malformed URL: ${malformed.statusCode}`)
      t.notOk(malformed.body.includes(signature), 'the malformed-URL message does not echo the token')
      const longParam = await get(q(`/auth/sessions/${'s'.repeat(300)}`))
      t.ok(longParam.statusCode >= 400 && longParam.statusCode < 500, `an over-long parameter: ${longParam.statusCode}`)
      t.notOk(longParam.body.includes(signature), 'the over-long-parameter message does not echo the token')
    })

    await t.test('security headers on error answers too', async (t) => {
      assertSecurityHeaders(t, await get('/auth/me'), '401', false)
      assertSecurityHeaders(t, await get('/no/such/route'), '404', false)
      assertSecurityHeaders(t, await app.inject({ method: 'POST', url: '/auth/login', payload: { username: account.username, password: 'wrong password!' } }), 'failed login', false)
    })

    await t.test('no log line holds the token, while the requests themselves were logged', async (t) => {
      assertLogClean(t, logLines, secretsOf(account))
      const urls = urlsOf(logLines)
      t.ok(urls.includes('/auth/me?access_token=[REDACTED]'), 'control: the request URL is logged, the token redacted')
      t.ok(urls.includes('/auth/me?access%5Ftoken=[REDACTED]'), 'an encoded parameter name is redacted too')
      t.ok(urls.some((url) => url.startsWith('/no/such/route?access_token=[REDACTED]')), 'the 404 is logged, redacted')
      t.ok(logLines.some((line) => line.level === 10 || line.level === 20 || line.level === 30), 'lines at every level were captured')
    })
  })

  t.test(`?access_token= with the option off is ignored and never logged (${database})`, async (t) => {
    const logLines: Array<Record<string, unknown>> = []
    const app: FastifyInstance = await testApp(t, { database, logLines })
    const account = await signedIn(app)
    const token = account.tokens.accessToken
    const missing = await app.inject({ method: 'GET', url: `/auth/me?access_token=${token}` })
    assertError(t, missing, 401, 'AUTH_TOKEN_MISSING', 'the query token is not a credential')
    t.equal(missing.headers['www-authenticate'], 'Bearer', 'a bare challenge: no credentials came')
    const unrouted = await app.inject({ method: 'GET', url: `/nowhere?access_token=${token}` })
    assertError(t, unrouted, 404, 'NOT_FOUND', 'an unknown route')
    const withHeader = await app.inject({ method: 'GET', url: `/auth/me?access_token=${token}`, headers: bearer(token) })
    assertError(t, withHeader, 400, 'VALIDATION_ERROR', 'header and query together are refused even with the option off')
    assertSecurityHeaders(t, withHeader, 'option off')
    const headerOnly = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(token) })
    t.equal(headerOnly.statusCode, 200, 'control: the header alone is served')
    assertLogClean(t, logLines, secretsOf(account))
    t.ok(urlsOf(logLines).includes('/auth/me?access_token=[REDACTED]'), 'control: the request URL is logged, the token redacted')
  })
}
