// The docs UI in a real browser (Debian's Chromium driven by playwright-core): it renders every
// operation from this server alone, with no request to another host and no CSP violation.
import type { AddressInfo } from 'node:net'
import { chromium } from 'playwright-core'
import t from 'tap'
import { testApp } from '../helpers.js'

const CHROMIUM = '/usr/bin/chromium'
// Without the background-networking switches Chromium tries to reach Google's hosts at start.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

t.test('Swagger UI renders the whole API offline, within its CSP', async (t) => {
  const app = await testApp(t, { env: { API_DOCS: 'true' } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  const requested: string[] = []
  const problems: string[] = []
  page.on('request', (request) => { requested.push(request.url()) })
  page.on('pageerror', (error) => { problems.push(`page error: ${error.message}`) })
  page.on('console', (message) => { if (message.type() === 'error') problems.push(`console: ${message.text()}`) })
  await page.addInitScript(() => {
    const violations: string[] = []
    Object.assign(window, { cspViolations: violations })
    document.addEventListener('securitypolicyviolation', (event) => { violations.push(`${event.violatedDirective} ${event.blockedURI}`) })
  })

  const response = await page.goto(`${origin}/docs`)
  t.equal(response?.status(), 200)
  await page.waitForSelector('.opblock-summary-path', { timeout: 60_000 })
  const paths = await page.$$eval('.opblock-summary-path', (elements) => elements.map((element) => element.textContent?.replace(/\u200b/g, '').trim()))
  for (const path of ['/auth/login', '/auth/refresh', '/auth/sessions/{id}', '/oauth/token', '/orders/{id}', '/health', '/.well-known/jwks.json']) {
    t.ok(paths.includes(path), `${path} is rendered`)
  }
  t.ok(paths.length >= 15, `every operation is rendered (${paths.length})`)

  const violations = await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations.slice())
  t.same(violations, [], 'no CSP violation')
  t.same(problems, [], 'no script error')
  t.ok(requested.length >= 5, 'the page loaded its files')
  t.same(requested.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith('data:')), [], 'nothing requested from another host')

  // Positive control: the detector does see a violation when there is one.
  await page.evaluate(() => {
    const image = document.createElement('img')
    image.src = 'https://elsewhere.invalid/pixel.png'
    document.body.append(image)
  })
  await page.waitForFunction(() => (window as unknown as { cspViolations: string[] }).cspViolations.length > 0)
  const caught = await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations.slice())
  t.match(caught, [/^img-src https:\/\/elsewhere\.invalid/], 'an outside image is refused by the CSP')
})
