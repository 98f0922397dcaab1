// The SDK and the demo in real Chromium (Debian's /usr/bin/chromium driven by playwright-core, never
// a downloaded browser) against the real server on 127.0.0.1: tabs share one refresh, a logout in one
// tab ends the others, the refresh cookie is out of the page's reach, and the demo works end to end
// on a phone-sized screen (its screenshot is kept in test-artifacts/).
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type BrowserContext, type Page, chromium } from 'playwright-core'
import t from 'tap'
import { PASSWORD, registerUser, startServer, testDatabases, uniqueName } from './support.js'

const CHROMIUM = '/usr/bin/chromium'
const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const ARTIFACTS = join(ROOT, 'test-artifacts')

// The server serves the SDK's build (dist/index.js) at /demo/auth-client.js: build it as it is now.
const built = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'packages', 'client', 'tsconfig.json')], { encoding: 'utf8' })
if (built.status !== 0) throw new Error(`building the client failed: ${built.stdout}${built.stderr}`)

interface Teardown { teardown: (fn: () => unknown) => void }

async function launch (t: Teardown, viewport = { width: 1000, height: 800 }): Promise<BrowserContext> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'auth-client-chromium-'))
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport
  })
  t.teardown(async () => {
    await context.close()
    rmSync(userDataDir, { recursive: true, force: true })
  })
  return context
}

/** Script errors and CSP violations a page reports; a failed request is the page's business. */
function watchErrors (page: Page): string[] {
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`))
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) errors.push(message.text())
  })
  return errors
}

const signedIn = (page: Page) => page.waitForSelector('#signed-in:not([hidden])')
const signedOut = (page: Page) => page.waitForSelector('#signed-out:not([hidden])')

async function uiLogin (page: Page, username: string, password: string, action: 'login' | 'register' = 'login') {
  await page.fill('#login-form [name=username]', username)
  await page.fill('#login-form [name=password]', password)
  await page.click(`#login-form button[value=${action}]`)
  await signedIn(page)
}

async function until (condition: () => boolean, what: string, ms = 20_000) {
  for (let waited = 0; !condition(); waited += 25) {
    if (waited > ms) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

const [database] = testDatabases()

t.test('real Chromium', async (t) => {
  t.ok(await import('node:fs').then((fs) => fs.existsSync(CHROMIUM)), `Debian's chromium is installed at ${CHROMIUM}`)

  t.test('three tabs: one refresh between them when their tokens expire, and a logout ends them all', async (t) => {
    // 6 s tokens: the tabs refresh on their own some 3.75 s after a token arrives.
    const server = await startServer(t, database!, { ACCESS_TOKEN_TTL: '6' })
    let logouts = 0
    server.app.server.on('request', (request) => { if (request.url === '/auth/logout') logouts++ })
    const context = await launch(t)
    const { username, password } = await registerUser(server.baseUrl)
    const tabs: Page[] = []
    const errors: string[] = []
    for (let i = 0; i < 3; i++) {
      const page = i === 0 ? (context.pages()[0] ?? await context.newPage()) : await context.newPage()
      errors.push(...watchErrors(page))
      await page.goto(`${server.baseUrl}/demo/`)
      if (i === 0) await uiLogin(page, username, password)
      else await signedIn(page) // the new tab finds the session through the cookie or the other tabs
      tabs.push(page)
    }

    await t.test('the refresh cookie is invisible to document.cookie', async (t) => {
      const cookies = await context.cookies(server.baseUrl + '/auth/refresh')
      const refreshCookie = cookies.find((cookie) => cookie.name.endsWith('refresh_token'))
      t.ok(refreshCookie, 'the browser holds the refresh cookie')
      t.match(refreshCookie, { name: '__Secure-refresh_token', httpOnly: true, secure: true, sameSite: 'Strict', path: '/auth' },
        'Secure and __Secure- work on http://127.0.0.1 (a potentially trustworthy origin)')
      for (const page of tabs) {
        const visible = await page.evaluate(() => document.cookie)
        t.notMatch(visible, /refresh_token/, 'document.cookie does not show it')
        t.notMatch(visible, refreshCookie!.value)
      }
    })

    // All three tabs hold the same token (one tab refreshes, the others get its answer)…
    await tabs[0]!.evaluate(() => (window as any).demoAuth.refresh())
    await new Promise((resolve) => setTimeout(resolve, 300))
    server.resetRefreshes()
    // … so their timers fire together.
    await until(() => server.refreshes() > 0, 'the tabs to refresh on their own')
    await new Promise((resolve) => setTimeout(resolve, 1000))
    t.equal(server.refreshes(), 1, 'three tabs whose tokens expired together made one refresh request')
    for (const page of tabs) {
      const statuses = await page.evaluate(() => Promise.all([1, 2, 3].map(() => (window as any).demoAuth.fetch('/orders').then((r: Response) => r.status))))
      t.same(statuses, [200, 200, 200], 'every tab keeps working')
    }
    t.equal(server.refreshes(), 1, 'with the new token handed to each tab')

    server.resetRefreshes()
    const results = await Promise.all(tabs.map((page) => page.evaluate(() => (window as any).demoAuth.refresh())))
    t.same(results, [true, true, true], 'three tabs refreshing at the same moment all end up with a token')
    t.equal(server.refreshes(), 1, '… through one refresh request')

    await tabs[1]!.click('#logout')
    await Promise.all(tabs.map(signedOut))
    t.equal(logouts, 1, 'one logout request')
    for (const page of [tabs[0]!, tabs[2]!]) {
      t.match(await page.textContent('#status'), /logged out/, 'the other tabs say so')
      t.equal(await page.evaluate(() => (window as any).demoAuth.user()), null)
      t.equal(await page.evaluate(() => (window as any).demoAuth.fetch('/orders').then((r: Response) => r.status)), 401, 'and no longer send a token')
    }
    t.equal(await tabs[0]!.evaluate(() => (window as any).demoAuth.refresh()), false, 'the cookie no longer refreshes')
    t.same(errors, [], 'no script errors or CSP violations')
  })

  t.test('DPoP in web mode: three tabs share one key and still make one refresh between them', async (t) => {
    const server = await startServer(t, database!, {})
    const { username, password } = await registerUser(server.baseUrl)
    const context = await launch(t)
    // A blank page of the server's origin (served by the browser's router, so the demo's own client
    // does not join the tabs' channel); the SDK itself comes from the server.
    await context.route(`${server.baseUrl}/blank.html`, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>blank</title>' }))
    const tabs: Page[] = []
    const errors: string[] = []
    for (let i = 0; i < 3; i++) {
      const page = i === 0 ? (context.pages()[0] ?? await context.newPage()) : await context.newPage()
      errors.push(...watchErrors(page))
      await page.goto(`${server.baseUrl}/blank.html`)
      await page.evaluate(async () => {
        const sdk = await import('/demo/auth-client.js' as string)
        ;(window as any).sent = []
        const recording: typeof fetch = async (input, init) => {
          ;(window as any).sent.push(new Headers(init?.headers).get('authorization')?.split(' ')[0] ?? '-')
          return fetch(input, init)
        }
        ;(window as any).dpopAuth = sdk.createAuthClient({ baseUrl: location.origin, mode: 'web', dpop: true, autoRefresh: false, fetch: recording })
      })
      tabs.push(page)
    }
    await tabs[0]!.evaluate(({ username, password }) => (window as any).dpopAuth.login(username, password), { username, password })
    for (const page of tabs.slice(1)) t.match(await page.evaluate(() => (window as any).dpopAuth.resume()), { username }, 'the other tabs pick up the session')
    const status = (page: Page) => page.evaluate(() => (window as any).dpopAuth.fetch('/orders').then((r: Response) => r.status))
    for (const page of tabs) t.equal(await status(page), 200, 'each tab calls the API with the bound token')
    t.same(await tabs[2]!.evaluate(() => (window as any).sent.slice(-1)), ['DPoP'], 'as Authorization: DPoP')

    server.resetRefreshes()
    const results = await Promise.all(tabs.map((page) => page.evaluate(() => (window as any).dpopAuth.refresh())))
    t.same(results, [true, true, true], 'three tabs refreshing at once all end up with a token')
    t.equal(server.refreshes(), 1, '… through one refresh request, with a proof by the shared key')
    for (const page of tabs) t.equal(await status(page), 200)
    const keys = await tabs[1]!.evaluate(() => new Promise<number>((resolve) => {
      const open = indexedDB.open('auth-server-client')
      open.onsuccess = () => { const count = open.result.transaction('dpop-keys').objectStore('dpop-keys').count(); count.onsuccess = () => resolve(count.result) }
    }))
    t.equal(keys, 1, 'one key pair for all tabs')
    t.same(errors, [], 'no script errors')
  })

  t.test('DPoP in mobile mode: a non-extractable WebCrypto key, kept in IndexedDB across a reload', async (t) => {
    const server = await startServer(t, database!, {})
    const { username, password } = await registerUser(server.baseUrl)
    const context = await launch(t)
    const page = context.pages()[0] ?? await context.newPage()
    const errors = watchErrors(page)
    await page.goto(`${server.baseUrl}/demo/`)
    // A mobile-mode client in the page (the refresh token in localStorage stands in for an app's store).
    const start = async (action: 'login' | 'resume') => page.evaluate(async ({ action, username, password }) => {
      const sdk = await import('/demo/auth-client.js' as string)
      const storage = { get: (key: string) => localStorage.getItem(key), set: (key: string, value: string) => localStorage.setItem(key, value), delete: (key: string) => localStorage.removeItem(key) }
      const seen: string[] = []
      const recording: typeof fetch = async (input, init) => {
        seen.push(new Headers(init?.headers).get('authorization')?.split(' ')[0] ?? '-')
        return fetch(input, init)
      }
      const auth = sdk.createAuthClient({ baseUrl: location.origin, mode: 'mobile', storage, dpop: true, autoRefresh: false, fetch: recording })
      const user = action === 'login' ? await auth.login(username, password) : await auth.resume()
      const status = (await auth.fetch('/orders')).status
      const pair = await new Promise<CryptoKeyPair>((resolve, reject) => {
        const open = indexedDB.open('auth-server-client')
        open.onsuccess = () => {
          const names = open.result.transaction('dpop-keys').objectStore('dpop-keys').getAllKeys()
          names.onsuccess = () => {
            const get = open.result.transaction('dpop-keys').objectStore('dpop-keys').get(names.result[0]!)
            get.onsuccess = () => resolve(get.result as CryptoKeyPair)
          }
        }
        open.onerror = () => reject(open.error)
      })
      const exported = await crypto.subtle.exportKey('jwk', pair.privateKey).then(() => 'exported', (error: Error) => error.name)
      const publicJwk = await crypto.subtle.exportKey('jwk', pair.publicKey)
      return { user: user?.username ?? null, status, seen, extractable: pair.privateKey.extractable, exported, publicX: publicJwk.x }
    }, { action, username, password })

    const first = await start('login')
    t.equal(first.user, username)
    t.equal(first.status, 200, 'GET /orders with the bound token and a proof')
    t.same(first.seen.slice(-1), ['DPoP'], 'the API call went out as Authorization: DPoP')
    t.equal(first.extractable, false, 'the private key is not extractable')
    t.equal(first.exported, 'InvalidAccessError', 'the page cannot export it')

    await page.reload()
    const again = await start('resume')
    t.equal(again.user, username, 'after a reload the stored refresh token works: the key came back from IndexedDB')
    t.equal(again.status, 200)
    t.equal(again.publicX, first.publicX, 'the same key pair')
    t.same(errors, [], 'no script errors or CSP violations')
  })

  t.test('the demo end to end on a phone-sized screen', async (t) => {
    const server = await startServer(t, database!, {})
    const context = await launch(t, { width: 390, height: 844 })
    const page = context.pages()[0] ?? await context.newPage()
    const errors = watchErrors(page)
    await page.goto(`${server.baseUrl}/demo`)
    t.equal(new URL(page.url()).pathname, '/demo/', '/demo redirects to /demo/')
    const username = uniqueName('demo')
    await uiLogin(page, username, PASSWORD, 'register')
    t.match(await page.textContent('#who'), username)

    for (const item of ['tea', 'book']) {
      await page.fill('#order-form [name=item]', item)
      await page.fill('#order-form [name=quantity]', '2')
      await page.click('#order-form button[type=submit]')
      await page.waitForSelector(`#orders li:has-text("${item}")`)
    }
    await page.click('#orders li:has-text("tea") button')
    await page.waitForSelector('#orders li:has-text("tea")', { state: 'detached' })
    t.same(await page.$$eval('#orders li[data-order-id]', (items) => items.map((item) => item.textContent)), ['2 × bookDelete'], 'orders: created, listed, deleted')

    // Another device of the same user appears in the sessions list and is revoked from here.
    const other = await fetch(`${server.baseUrl}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'PhoneApp/1.0' }, body: JSON.stringify({ username, password: PASSWORD }) })
    const otherTokens = await other.json()
    await page.reload()
    await signedIn(page)
    await page.waitForSelector('#sessions li:nth-child(2)')
    t.equal(await page.locator('#sessions li').count(), 2, 'two sessions listed')
    t.equal(await page.locator('#sessions li:has(.badge)').count(), 1, 'one is marked as this browser')

    await page.screenshot({ path: join(ARTIFACTS, 'demo-phone.png'), fullPage: true, ...(mkdirSync(ARTIFACTS, { recursive: true }), {}) })
    t.comment(`screenshot: ${join(ARTIFACTS, 'demo-phone.png')}`)
    t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'nothing wider than a phone screen')

    // Session history: this server has GET /auth/sessions/:id/events, so the page must render it (it
    // stops offering history only on a server without that endpoint).
    await page.click('#sessions li:has(.badge) [data-history]')
    await page.waitForFunction(() => document.querySelector('#sessions .events') !== null || document.querySelector('[data-history]') === null)
    t.equal(await page.locator('#sessions .events').count(), 1, 'the history is shown')
    t.match(await page.textContent('#sessions .events'), /login/, 'the history shows the login')

    await page.click('#sessions li:not(:has(.badge)) button:has-text("Revoke")')
    await page.waitForFunction(() => document.querySelectorAll('#sessions li').length === 1)
    const revoked = await fetch(`${server.baseUrl}/auth/orders`.replace('/auth', ''), { headers: { authorization: `Bearer ${otherTokens.accessToken}` } })
    t.equal(revoked.status, 401, 'the revoked session\'s access token is refused')

    await page.fill('#password-form [name=currentPassword]', PASSWORD)
    await page.fill('#password-form [name=newPassword]', 'a different passphrase')
    await page.click('#password-form button[type=submit]')
    await page.waitForFunction(() => /Password changed/.test(document.querySelector('#status')?.textContent ?? ''))
    t.equal(await page.evaluate(() => (window as any).demoAuth.fetch('/orders').then((r: Response) => r.status)), 200, 'still signed in after the password change')

    await page.click('#logout-all')
    await signedOut(page)
    const oldPassword = await fetch(`${server.baseUrl}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: PASSWORD }) })
    t.equal(oldPassword.status, 401, 'the old password no longer works')
    await uiLogin(page, username, 'a different passphrase')
    t.pass('logged in again with the new password')
    await page.click('#logout')
    await signedOut(page)
    t.same(errors, [], 'no script errors or CSP violations')
  })
})
