// The OpenAPI document: valid OpenAPI 3.1, listing every route the server registers (collected by an
// onRoute hook, so a route added later is checked too) with its security and error codes; the UI at
// /docs is served from this server alone; API_DOCS=false serves neither.
import { Validator } from '@seriousme/openapi-schema-validator'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { PASSWORD, TEST_SECRET, json, register, testApp } from '../helpers.js'

/**
 * Routes left out of the document on purpose, and why. Anything else hidden fails the test.
 * (HEAD routes that Fastify adds for each GET are the GET without a body: covered by the GET.)
 */
const DELIBERATELY_HIDDEN: Array<{ method: string, url: RegExp, why: string }> = [
  { method: 'GET', url: /^\/docs(\/.*)?$/, why: 'the docs UI, its files, and the document itself' },
  { method: 'HEAD', url: /^\/docs(\/.*)?$/, why: 'the same, HEAD' },
  { method: 'OPTIONS', url: /^\*$/, why: 'CORS preflight answered by @fastify/cors for every path' },
  { method: 'GET', url: /^\/demo(\/.*)?$/, why: 'the demo page and the client SDK\'s browser build (DEMO=true): files for people, not API' },
  { method: 'HEAD', url: /^\/demo(\/.*)?$/, why: 'the same, HEAD' }
]
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']

async function docsApp (t: Parameters<typeof testApp>[0], env: Record<string, string> = {}) {
  return testApp(t, { env: { API_DOCS: 'true', ...env } })
}

async function openapiDocument (app: FastifyInstance) {
  const response = await app.inject({ url: '/docs/openapi.json' })
  t.equal(response.statusCode, 200, 'the document is served')
  return json(response)
}

function openapiPath (url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
}

t.test('the document is valid OpenAPI 3.1 (and the validator does refuse a broken one)', async (t) => {
  const app = await docsApp(t)
  const document = await openapiDocument(app)
  t.equal(document.openapi, '3.1.0')
  const result = await new Validator().validate(structuredClone(document))
  t.ok(result.valid, `valid: ${JSON.stringify(result.errors ?? []).slice(0, 2000)}`)

  const broken = structuredClone(document)
  broken.paths['/auth/login'].post.responses['200'] = { content: 'not an object' }
  t.notOk((await new Validator().validate(broken)).valid, 'positive control: a broken response is caught')
})

t.test('every route the server registers is in the document, or deliberately hidden', async (t) => {
  const app = await docsApp(t)
  const document = await openapiDocument(app)
  const { routes } = app.apiDocs
  t.ok(routes.some((route) => route.method === 'POST' && route.url === '/auth/login'), 'the collector saw the routes')
  t.ok(routes.some((route) => route.method === 'OPTIONS' && route.url === '*'), 'it also saw the plugins\' routes (CORS)')

  const gets = new Set(routes.filter((route) => route.method === 'GET').map((route) => route.url))
  let documented = 0
  for (const route of routes) {
    const hiddenBecause = DELIBERATELY_HIDDEN.find((hidden) => hidden.method === route.method && hidden.url.test(route.url))
    if (route.hidden) {
      t.ok(hiddenBecause, `${route.method} ${route.url} is hidden only if listed as deliberately hidden`)
      continue
    }
    t.notOk(hiddenBecause, `${route.method} ${route.url} is not among the hidden ones`)
    if (route.method === 'HEAD' && gets.has(route.url)) continue
    const operation = document.paths[openapiPath(route.url)]?.[route.method.toLowerCase()]
    t.ok(operation, `${route.method} ${route.url} is documented`)
    documented++
  }
  t.ok(documented >= 15, `the API's routes are all there (${documented})`)

  // And nothing is documented that the server does not have.
  const registered = new Set(routes.map((route) => `${route.method} ${openapiPath(route.url)}`))
  for (const [path, item] of Object.entries<Record<string, unknown>>(document.paths)) {
    for (const method of Object.keys(item).filter((key) => METHODS.includes(key))) {
      t.ok(registered.has(`${method.toUpperCase()} ${path}`), `${method} ${path} is a real route`)
    }
  }
})

t.test('each operation has its responses, error codes and security', async (t) => {
  const app = await docsApp(t)
  const document = await openapiDocument(app)
  const schemes = Object.keys(document.components.securitySchemes)
  t.same(schemes.sort(), ['bearerAuth', 'csrfHeader', 'dpopAuth', 'refreshCookie', 'resourceServerBasic'])
  for (const [path, item] of Object.entries<Record<string, any>>(document.paths)) {
    for (const [method, operation] of Object.entries<any>(item)) {
      const name = `${method.toUpperCase()} ${path}`
      t.ok(operation.summary, `${name} has a summary`)
      t.ok(Array.isArray(operation.security), `${name} states its security`)
      for (const requirement of operation.security) {
        for (const scheme of Object.keys(requirement)) t.ok(schemes.includes(scheme), `${name}: ${scheme} is a declared scheme`)
      }
      const statuses = Object.keys(operation.responses)
      t.ok(statuses.some((status) => /^2\d\d$/.test(status)), `${name} has a success response`)
      const errors = statuses.filter((status) => /^[45]\d\d$/.test(status))
      t.ok(errors.includes('500'), `${name} documents 500`)
      for (const status of errors) {
        const schema = operation.responses[status].content?.['application/json']?.schema
        t.ok(schema?.properties?.code?.enum?.length > 0, `${name} ${status} lists its codes`)
        t.ok(schema?.properties?.statusCode && schema?.properties?.message, `${name} ${status} has the error shape`)
      }
      const isProtected = operation.security.some((requirement: object) => 'bearerAuth' in requirement)
      if (isProtected && path !== '/auth/logout') {
        t.same(operation.security, [{ bearerAuth: [] }, { dpopAuth: [] }], `${name} takes a Bearer or a DPoP-bound token`)
        t.type(operation.parameters.find((parameter: { in: string, name: string }) => parameter.in === 'header' && parameter.name === 'dpop'), 'object', `${name} documents the DPoP header`)
        const unauthorized: string[] = operation.responses['401'].content['application/json'].schema.properties.code.enum
        t.ok(['AUTH_TOKEN_MISSING', 'AUTH_TOKEN_INVALID', 'AUTH_TOKEN_EXPIRED', 'AUTH_TOKEN_REVOKED', 'AUTH_DPOP_INVALID', 'AUTH_DPOP_NONCE'].every((code) => unauthorized.includes(code)), `${name} lists the token errors`)
      }
    }
  }

  const codes = (path: string, method: string, status: number): string[] =>
    document.paths[path][method].responses[String(status)].content['application/json'].schema.properties.code.enum
  const login = document.paths['/auth/login'].post
  t.same(login.security, [], 'login needs no credentials')
  t.same(codes('/auth/login', 'post', 401), ['AUTH_INVALID_CREDENTIALS', 'AUTH_DPOP_INVALID', 'AUTH_DPOP_NONCE'])
  t.ok(login.parameters.some((parameter: { in: string, name: string }) => parameter.in === 'header' && parameter.name === 'dpop'), 'login documents the DPoP header')
  t.same(document.components.securitySchemes.dpopAuth.scheme, 'dpop')
  t.same(codes('/auth/login', 'post', 429), ['AUTH_RATE_LIMITED'])
  t.match(login.requestBody.content['application/json'].schema.required, ['username', 'password'])
  t.same(document.paths['/auth/refresh'].post.security, [{}, { refreshCookie: [], csrfHeader: [] }], 'refresh: body token, or cookie and CSRF header')
  t.same(codes('/auth/refresh', 'post', 401), ['AUTH_REFRESH_INVALID', 'AUTH_REFRESH_REUSED', 'AUTH_DPOP_INVALID', 'AUTH_DPOP_NONCE'])
  t.same(codes('/auth/refresh', 'post', 403), ['AUTH_CSRF'])
  t.same(document.paths['/auth/logout'].post.security, [{ refreshCookie: [], csrfHeader: [] }, { bearerAuth: [] }, { dpopAuth: [] }, {}])
  t.same(document.components.securitySchemes.refreshCookie, { type: 'apiKey', in: 'cookie', name: '__Secure-refresh_token', description: document.components.securitySchemes.refreshCookie.description })
  t.same(codes('/auth/sessions/{id}', 'delete', 404), ['NOT_FOUND'])
  t.ok(document.paths['/auth/sessions/{id}'].delete.responses['204'], 'a 204 is documented')
  t.same(codes('/ready', 'get', 503), ['SERVICE_UNAVAILABLE'])
  t.notOk(document.paths['/health'].get.responses['503'], 'liveness does not depend on the database')

  const token = document.paths['/oauth/token'].post
  t.ok(token.requestBody.content['application/x-www-form-urlencoded'], '/oauth/token takes a form')
  t.same(token.requestBody.content['application/x-www-form-urlencoded'].schema.properties.grant_type.anyOf.map((choice: { enum: string[] }) => choice.enum[0]), ['password', 'refresh_token'])
  t.same(Object.keys(token.responses['200'].content['application/json'].schema.properties), ['access_token', 'token_type', 'expires_in', 'refresh_token'])
  t.same(token.responses['400'].content['application/json'].schema.properties.error.enum, ['invalid_request', 'invalid_grant', 'unsupported_grant_type', 'invalid_dpop_proof', 'use_dpop_nonce'])
  t.ok(token.parameters.some((parameter: { in: string, name: string }) => parameter.in === 'header' && parameter.name === 'dpop'), 'the token endpoint documents the DPoP header')
})

t.test('response schemas serialize every field the contract requires', async (t) => {
  const app = await docsApp(t)
  const account = await register(app)
  const wrong = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: account.username, password: 'wrong password!' } })
  t.same(Object.keys(json(wrong)).sort(), ['code', 'error', 'message', 'statusCode'], 'an error body keeps its four members')
  const ok = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: account.username, password: PASSWORD } })
  t.same(Object.keys(json(ok)).sort(), ['accessToken', 'expiresIn', 'refreshExpiresIn', 'refreshToken', 'tokenType', 'user'])
  const ready = await app.inject({ url: '/ready' })
  t.same(json(ready), { status: 'ready', database: 'ok' })
  const form = await app.inject({
    method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: `grant_type=password&username=${account.username}&password=${encodeURIComponent(PASSWORD)}`
  })
  t.same(Object.keys(json(form)).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type'])
  const unsupported = await app.inject({
    method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=client_credentials'
  })
  t.equal(unsupported.statusCode, 400)
  t.same(Object.keys(json(unsupported)).sort(), ['code', 'error', 'error_description', 'message', 'statusCode'], 'the OAuth error keeps RFC 6749 and contract members')
  t.equal(json(unsupported).error, 'unsupported_grant_type', 'the handler, not the documenting schema, judges the grant type')
})

t.test('the UI is served from this server alone, under its own strict CSP', async (t) => {
  const app = await docsApp(t)
  const page = await app.inject({ url: '/docs' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  const csp = String(page.headers['content-security-policy'])
  t.match(csp, /script-src 'self'(;|$)/, 'scripts from this origin only')
  t.notMatch(csp, /unsafe-inline|unsafe-eval|https?:|\*/, 'no inline code (but one style, by its hash), no other hosts')
  t.equal(page.headers['x-content-type-options'], 'nosniff', 'the API\'s other security headers apply too')
  t.notMatch(page.body, /(src|href)="(https?:)?\/\//, 'no asset from another host')
  t.notMatch(page.body, /<script>|<style>| style=/, 'no inline script or style')
  const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!)
  t.ok(assets.length >= 4, `the page loads its assets (${assets.join(', ')})`)
  for (const asset of assets) {
    const response = await app.inject({ url: asset })
    t.equal(response.statusCode, 200, `${asset} is served here`)
  }
  const bundle = await app.inject({ url: '/docs/static/swagger-ui-bundle.js' })
  t.match(bundle.headers['content-type'], /javascript/)
  t.ok(bundle.body.length > 100_000, 'the real Swagger UI bundle')
  const uiDocument = await app.inject({ url: '/docs/json' })
  t.same(json(uiDocument), await openapiDocument(app), 'the UI reads the same document')
  const api = await app.inject({ url: '/health' })
  t.equal(api.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'", 'the API keeps its own CSP')
})

t.test('API_DOCS=false serves no docs; production defaults to off', async (t) => {
  const app = await testApp(t, { env: { API_DOCS: 'false' } })
  for (const url of ['/docs', '/docs/openapi.json', '/docs/json', '/docs/static/swagger-ui-bundle.js']) {
    const response = await app.inject({ url })
    t.equal(response.statusCode, 404, `${url} is 404`)
    t.equal(json(response).code, 'NOT_FOUND')
  }
  const base = { DATABASE_URL: 'file:./data/x.db', JWT_SECRET: TEST_SECRET }
  t.equal(loadConfig({ ...base, NODE_ENV: 'production' }).apiDocs, false)
  t.equal(loadConfig({ ...base, NODE_ENV: 'development' }).apiDocs, true)
  t.equal(loadConfig({ ...base, NODE_ENV: 'production', API_DOCS: 'true' }).apiDocs, true)
  t.throws(() => loadConfig({ ...base, API_DOCS: 'maybe' }), /API_DOCS/)
})
