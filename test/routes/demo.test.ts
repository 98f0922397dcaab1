// /demo/: served while DEMO=true (default outside production) with its own CSP, which lets the page
// run its scripts from this origin only; every other route keeps the API's CSP. The SDK's browser
// build is served as one ESM file. The page itself is exercised in real Chromium
// (packages/client/test/browser.test.ts).
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { DEMO_CSP } from '../../src/routes/demo/index.js'
import { TEST_SECRET, signedIn, testApp } from '../helpers.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const built = spawnSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}packages/client/tsconfig.json`], { encoding: 'utf8' })
if (built.status !== 0) throw new Error(`building the client failed: ${built.stdout}${built.stderr}`)

t.test('DEMO defaults to true outside production and false in production', async (t) => {
  const base = { DATABASE_URL: 'file:./data/x.db', JWT_SECRET: TEST_SECRET }
  t.equal(loadConfig(base).demo, true)
  t.equal(loadConfig({ ...base, NODE_ENV: 'production' }).demo, false)
  t.equal(loadConfig({ ...base, NODE_ENV: 'production', DEMO: 'true' }).demo, true)
  t.equal(loadConfig({ ...base, DEMO: 'false' }).demo, false)
  t.throws(() => loadConfig({ ...base, DEMO: 'sometimes' }), /DEMO/)
})

t.test('DEMO=true: the page, its assets and the SDK, each with the demo CSP', async (t) => {
  const app = await testApp(t, { env: { DEMO: 'true' } })
  const redirect = await app.inject({ method: 'GET', url: '/demo' })
  t.equal(redirect.statusCode, 302)
  t.equal(redirect.headers.location, 'demo/')

  const page = await app.inject({ method: 'GET', url: '/demo/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<script type="module" src="demo.js"><\/script>/)
  t.equal(page.headers['content-security-policy'], DEMO_CSP)
  t.match(DEMO_CSP, /script-src 'self'/)
  t.notMatch(DEMO_CSP, /unsafe-inline|unsafe-eval|\*/, 'no inline scripts, no eval, no wildcard')
  t.match(DEMO_CSP, /frame-ancestors 'none'/)
  t.equal(page.headers['x-frame-options'], 'DENY')

  for (const [url, type] of [['/demo/demo.js', /^text\/javascript/], ['/demo/demo.css', /^text\/css/], ['/demo/auth-client.js', /^text\/javascript/]] as const) {
    const asset = await app.inject({ method: 'GET', url })
    t.equal(asset.statusCode, 200, url)
    t.match(asset.headers['content-type'], type, `${url} content type`)
    t.equal(asset.headers['content-security-policy'], DEMO_CSP)
  }
  const sdk = await app.inject({ method: 'GET', url: '/demo/auth-client.js' })
  t.match(sdk.body, /export function createAuthClient/, 'the SDK is an ES module')
  t.notMatch(sdk.body, /^\s*import .* from /m, 'in one file (it imports nothing)')

  const { tokens } = await signedIn(app)
  for (const url of ['/health', '/orders', '/nowhere']) {
    const response = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${tokens.accessToken}` } })
    t.match(response.headers['content-security-policy'], /^default-src 'none'/, `${url} keeps the API policy`)
    t.notMatch(response.headers['content-security-policy'], /script-src/, `${url}: no scripts allowed`)
  }
})

t.test('DEMO=false: no demo routes', async (t) => {
  const app = await testApp(t, { env: { DEMO: 'false' } })
  for (const url of ['/demo/', '/demo/auth-client.js', '/demo/demo.js']) {
    const response = await app.inject({ method: 'GET', url })
    t.equal(response.statusCode, 404, url)
    t.equal(response.json().code, 'NOT_FOUND')
  }
})
