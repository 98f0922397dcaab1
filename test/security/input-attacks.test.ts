// Hostile input against every JSON endpoint: deep and huge JSON, prototype-pollution keys, NoSQL- and
// SQL-shaped values, Unicode look-alike usernames, passwords that differ only in normalization or
// beyond byte 72, and a 1 MB password. Every case asserts the status, the error code, and that no row
// of any table changed (and, where a password was involved, whether argon2 ran at all).
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { PASSWORD, assertError, assertHashingCounted, bearer, countHashing, json, signedIn, testApp, testDatabases } from '../helpers.js'
import { snapshot } from './support.js'

const raw = (url: string, payload: string, headers: Record<string, string> = {}, method: InjectOptions['method'] = 'POST'): InjectOptions =>
  ({ method, url, headers: { 'content-type': 'application/json', ...headers }, payload })

const loginAs = (app: FastifyInstance, username: unknown, password: unknown) =>
  app.inject({ method: 'POST', url: '/auth/login', payload: { username, password } })

const registerAs = (app: FastifyInstance, username: unknown, password: unknown) =>
  app.inject({ method: 'POST', url: '/auth/register', payload: { username, password } })

function assertLoggedIn (t: Test, response: LightMyRequestResponse, userId: string, what: string): void {
  t.equal(response.statusCode, 200, `${what}: 200`)
  if (response.statusCode === 200) t.equal(json(response).user.id, userId, `${what}: the right account`)
}

/** Runs requests and asserts each gets `status`/`code`, that nothing in the database changed, and how much hashing ran. */
async function unchanged (t: Test, app: FastifyInstance, what: string, run: () => Promise<void>, options: { hashing?: 'none' } = {}) {
  const hashing = countHashing(app)
  const before = await snapshot(app)
  await run()
  t.equal(await snapshot(app), before, `${what}: no row changed`)
  if (options.hashing === 'none') {
    t.equal(hashing(), 0, `${what}: no password was hashed`)
    await assertHashingCounted(t, app, hashing, `${what}: control`)
  }
}

for (const database of testDatabases()) {
  t.test(`input attacks (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { LOGIN_MAX_FAILURES: '1000' } })
    const victim = await signedIn(app)
    const auth = bearer(victim.tokens.accessToken)
    const created = await app.inject({ method: 'POST', url: '/orders', headers: auth, payload: { item: 'book', quantity: 1 } })
    const orderId = json(created).order.id as string

    /** Every endpoint that takes a JSON body, with a body it would accept. */
    const endpoints: Array<{ method: InjectOptions['method'], url: string, headers: Record<string, string>, fields: string }> = [
      { method: 'POST', url: '/auth/register', headers: {}, fields: `"username":"newcomer","password":"${PASSWORD}"` },
      { method: 'POST', url: '/auth/login', headers: {}, fields: `"username":"${victim.username}","password":"${PASSWORD}"` },
      { method: 'POST', url: '/auth/refresh', headers: {}, fields: `"refreshToken":"${victim.tokens.refreshToken}"` },
      { method: 'POST', url: '/auth/logout', headers: {}, fields: `"refreshToken":"${victim.tokens.refreshToken}"` },
      { method: 'POST', url: '/auth/password', headers: auth, fields: `"currentPassword":"${PASSWORD}","newPassword":"another horse battery"` },
      { method: 'POST', url: '/orders', headers: auth, fields: '"item":"pen","quantity":2' },
      { method: 'PUT', url: `/orders/${orderId}`, headers: auth, fields: '"item":"pen","quantity":2' }
    ]

    await t.test('deeply nested JSON within the body limit is 400 VALIDATION_ERROR on every endpoint', async (t) => {
      const depth = 10_000
      const arrays = `${'['.repeat(depth)}${']'.repeat(depth)}`
      const objects = `${'{"a":'.repeat(depth / 2)}1${'}'.repeat(depth / 2)}`
      t.ok(arrays.length < 32 * 1024 && objects.length < 32 * 1024, 'setup: within the 32 KB body limit')
      await unchanged(t, app, 'deep JSON', async () => {
        for (const endpoint of endpoints) {
          const firstField = /^"([^"]+)"/.exec(endpoint.fields)![1]!
          for (const [what, body] of [
            ['10 000 nested arrays', arrays],
            ['5 000 nested objects under the first field', `{"${firstField}":${objects}}`],
            ['nested arrays instead of the first field', `{${endpoint.fields.replace(/:("[^"]*"|\d+)/, `:${arrays}`)}}`],
            ['unbalanced nesting', '['.repeat(30_000)]
          ] as Array<[string, string]>) {
            assertError(t, await app.inject(raw(endpoint.url, body, endpoint.headers, endpoint.method)), 400, 'VALIDATION_ERROR', `${endpoint.method} ${endpoint.url}, ${what}`)
          }
        }
      })
    })

    await t.test('JSON over the body limit is 413 PAYLOAD_TOO_LARGE on every endpoint, before any hashing', async (t) => {
      await unchanged(t, app, 'huge JSON', async () => {
        for (const endpoint of endpoints) {
          for (const [what, body] of [
            ['40 KB of padding', `{${endpoint.fields},"padding":"${'x'.repeat(40 * 1024)}"}`],
            ['1 MB array', `[${'1,'.repeat(512 * 1024)}1]`],
            ['5 MB string', `"${'x'.repeat(5 * 1024 * 1024)}"`]
          ] as Array<[string, string]>) {
            const started = process.hrtime.bigint()
            assertError(t, await app.inject(raw(endpoint.url, body, endpoint.headers, endpoint.method)), 413, 'PAYLOAD_TOO_LARGE', `${endpoint.method} ${endpoint.url}, ${what}`)
            t.ok(Number(process.hrtime.bigint() - started) / 1e6 < 2000, `${endpoint.url}, ${what}: answered quickly`)
          }
        }
      }, { hashing: 'none' })
    })

    await t.test('prototype-pollution keys are 400 on every endpoint and pollute nothing', async (t) => {
      await unchanged(t, app, 'prototype pollution', async () => {
        for (const endpoint of endpoints) {
          for (const [what, body] of [
            ['__proto__ beside the fields', `{${endpoint.fields},"__proto__":{"tokenVersion":99,"isAdmin":true,"userId":"x"}}`],
            ['__proto__ holding the fields', `{"__proto__":{${endpoint.fields}}}`],
            ['constructor.prototype', `{${endpoint.fields},"constructor":{"prototype":{"isAdmin":true}}}`],
            ['__proto__ nested deeper', `{${endpoint.fields},"extra":{"nested":{"__proto__":{"polluted":true}}}}`],
            ['__proto__ inside an array', `{${endpoint.fields},"list":[{"__proto__":{"polluted":true}}]}`],
            ['__proto__ with a unicode escape', `{${endpoint.fields},"\\u005f_proto__":{"polluted":true}}`]
          ] as Array<[string, string]>) {
            assertError(t, await app.inject(raw(endpoint.url, body, endpoint.headers, endpoint.method)), 400, 'VALIDATION_ERROR', `${endpoint.method} ${endpoint.url}, ${what}`)
          }
        }
        // Query strings and forms are parsed into plain records too.
        const query = await app.inject({ method: 'GET', url: '/orders?__proto__[isAdmin]=1&constructor[prototype][isAdmin]=1&__proto__=x', headers: auth })
        t.equal(query.statusCode, 200, 'pollution keys in a query string are inert')
        const form = await app.inject({
          method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: '__proto__[isAdmin]=1&constructor[prototype][isAdmin]=1&grant_type=refresh_token&refresh_token=x'
        })
        t.equal(form.statusCode, 400, 'pollution keys in a form are inert')
        t.equal(json(form).error, 'invalid_grant')
      })
      for (const key of ['tokenVersion', 'isAdmin', 'userId', 'polluted']) {
        t.equal(({} as Record<string, unknown>)[key], undefined, `Object.prototype has no ${key}`)
      }
    })

    await t.test('NoSQL-shaped values are 400 VALIDATION_ERROR, never operators', async (t) => {
      const operators: unknown[] = [{ $gt: '' }, { $ne: null }, { $regex: '.*' }, { $where: '1' }, ['a'], null, true, 1]
      await unchanged(t, app, 'NoSQL-shaped values', async () => {
        for (const value of operators) {
          const label = JSON.stringify(value)
          assertError(t, await loginAs(app, value, PASSWORD), 400, 'VALIDATION_ERROR', `login username ${label}`)
          assertError(t, await loginAs(app, victim.username, value), 400, 'VALIDATION_ERROR', `login password ${label}`)
          assertError(t, await loginAs(app, value, value), 400, 'VALIDATION_ERROR', `login both ${label}`)
          assertError(t, await registerAs(app, value, PASSWORD), 400, 'VALIDATION_ERROR', `register username ${label}`)
          assertError(t, await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: value } }), 400, 'VALIDATION_ERROR', `refresh ${label}`)
          assertError(t, await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: value } }), 400, 'VALIDATION_ERROR', `logout ${label}`)
          assertError(t, await app.inject({ method: 'POST', url: '/auth/password', headers: auth, payload: { currentPassword: value, newPassword: 'another horse battery' } }), 400, 'VALIDATION_ERROR', `password change ${label}`)
          assertError(t, await app.inject({ method: 'POST', url: '/orders', headers: auth, payload: { item: value, quantity: 1 } }), 400, 'VALIDATION_ERROR', `order item ${label}`)
        }
        // The same shapes as text are just strings that name no account.
        for (const text of ['{"$gt": ""}', '[$ne]=1', 'username[$ne]']) {
          assertError(t, await loginAs(app, text, text), 401, 'AUTH_INVALID_CREDENTIALS', `login with the text ${text}`)
        }
        const form = await app.inject({
          method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: `grant_type=password&username[$ne]=x&password[$ne]=x&client_id=app`
        })
        t.equal(form.statusCode, 400, 'bracketed form keys are no operators')
      })
    })

    await t.test('SQL-shaped strings are plain data: 401, and the users table is unchanged', async (t) => {
      const sql = [
        '\' OR 1=1 --', '\' OR \'1\'=\'1', `${victim.username}' --`, `${victim.username}'; --`, '"; DROP TABLE "User"; --',
        '\'; DELETE FROM "Session"; --', '1; UPDATE "User" SET "tokenVersion" = 0', '%', '_', `${victim.username.slice(0, 4)}%`, '\\', '\' UNION SELECT * FROM "User" --'
      ]
      await unchanged(t, app, 'SQL-shaped logins', async () => {
        for (const value of sql) {
          assertError(t, await loginAs(app, value, PASSWORD), 401, 'AUTH_INVALID_CREDENTIALS', `username ${value}`)
          assertError(t, await loginAs(app, value, value), 401, 'AUTH_INVALID_CREDENTIALS', `username and password ${value}`)
          assertError(t, await loginAs(app, victim.username, value), 401, 'AUTH_INVALID_CREDENTIALS', `the victim with password ${value}`)
          assertError(t, await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: value } }), 400, 'VALIDATION_ERROR', `refresh token ${value}`)
          const order = await app.inject({ method: 'GET', url: `/orders/${encodeURIComponent(value)}`, headers: auth })
          assertError(t, order, 404, 'NOT_FOUND', `order id ${value}`)
          const session = await app.inject({ method: 'DELETE', url: `/auth/sessions/${encodeURIComponent(value)}`, headers: auth })
          assertError(t, session, 404, 'NOT_FOUND', `session id ${value}`)
        }
        for (const value of sql) {
          assertError(t, await registerAs(app, value, PASSWORD), 400, 'VALIDATION_ERROR', `register username ${value}`)
        }
      })
      // Stored and compared as literal text: an SQL-shaped password and order item work as themselves.
      const password = '\' OR \'1\'=\'1\' -- pw'
      const registered = await registerAs(app, 'bobby.tables', password)
      t.equal(registered.statusCode, 201, 'an SQL-shaped password is just a password')
      assertLoggedIn(t, await loginAs(app, 'bobby.tables', password), json(registered).user.id, 'login with it')
      assertError(t, await loginAs(app, 'bobby.tables', '\' OR \'1\'=\'1'), 401, 'AUTH_INVALID_CREDENTIALS', 'its prefix')
      const item = 'x\'); DROP TABLE "Order"; --'
      const order = await app.inject({ method: 'POST', url: '/orders', headers: auth, payload: { item, quantity: 1 } })
      t.equal(order.statusCode, 201)
      t.equal(json(order).order.item, item, 'stored verbatim')
      t.equal(await app.db.order.count(), 2, 'the orders table is intact')
      t.equal(await app.db.user.count(), 2, 'exactly the victim and bobby.tables exist')
    })

    await t.test('Unicode look-alike usernames are taken; logins use the PRECIS form (width, case)', async (t) => {
      const alice = await registerAs(app, 'alice', PASSWORD)
      t.equal(alice.statusCode, 201)
      const aliceId = json(alice).user.id as string
      const fiona = await registerAs(app, 'fiona', PASSWORD)
      const kate = await registerAs(app, 'kate', PASSWORD)
      const jose = await registerAs(app, 'jos\u00e9', PASSWORD)
      t.same([fiona.statusCode, kate.statusCode, jose.statusCode], [201, 201, 201], 'setup')
      await unchanged(t, app, 'look-alike registrations', async () => {
        for (const [what, username] of [
          ['Alice', 'Alice'],
          ['ALICE', 'ALICE'],
          ['full-width ＡＬＩＣＥ', '\uff21\uff2c\uff29\uff23\uff25'],
          ['full-width ａｌｉｃｅ', '\uff41\uff4c\uff49\uff43\uff45'],
          ['mathematical bold 𝐚𝐥𝐢𝐜𝐞', '\u{1d41a}\u{1d425}\u{1d422}\u{1d41c}\u{1d41e}'],
          ['circled ⓐⓛⓘⓒⓔ', '\u24d0\u24db\u24d8\u24d2\u24d4'],
          ['the ﬁ ligature', '\ufb01ona'],
          ['the Kelvin sign', '\u212aate'],
          ['josé decomposed (NFD)', 'jose\u0301'],
          ['JOSÉ decomposed', 'JOSE\u0301']
        ] as Array<[string, string]>) {
          assertError(t, await registerAs(app, username, PASSWORD), 409, 'AUTH_USERNAME_TAKEN', what)
        }
        for (const [what, username] of [
          ['a zero-width space inside', 'ali\u200bce'],
          ['a zero-width joiner inside', 'ali\u200dce'],
          ['a right-to-left override', '\u202ealice'],
          ['a trailing combining mark only', '\u0301alice'],
          ['a NUL byte', 'alice\u0000']
        ] as Array<[string, string]>) {
          assertError(t, await registerAs(app, username, PASSWORD), 400, 'VALIDATION_ERROR', what)
        }
      }, { hashing: 'none' })
      for (const [what, username] of [['Alice', 'Alice'], ['full-width', '\uff21\uff2c\uff29\uff23\uff25']] as Array<[string, string]>) {
        assertLoggedIn(t, await loginAs(app, username, PASSWORD), aliceId, `login as ${what}`)
      }
      // PRECIS (RFC 8265) maps width and case only: a mathematical-bold name is no spelling of alice.
      assertError(t, await loginAs(app, '\u{1d41a}\u{1d425}\u{1d422}\u{1d41c}\u{1d41e}', PASSWORD), 401, 'AUTH_INVALID_CREDENTIALS', 'login as mathematical bold')
      assertLoggedIn(t, await loginAs(app, 'JOSE\u0301', PASSWORD), json(jose).user.id, 'login as JOSÉ (NFD)')
    })

    await t.test('passwords are compared exactly as received', async (t) => {
      const nfc = 'P\u00e4ssw\u00f6rd-Stra\u00dfe-42'
      const nfd = nfc.normalize('NFD')
      t.not(nfc, nfd, 'setup: two encodings of the same text')
      const registered = await registerAs(app, 'exact.person', nfc)
      t.equal(registered.statusCode, 201)
      await unchanged(t, app, 'near-miss passwords', async () => {
        for (const [what, attempt] of [
          ['the NFD form', nfd],
          ['a full-width letter in place of P', nfc.replace('P', '\uff30')],
          ['upper-cased', nfc.toUpperCase()],
          ['lower-cased', nfc.toLowerCase()],
          ['with a trailing space', `${nfc} `],
          ['with a leading space', ` ${nfc}`],
          ['with a trailing newline', `${nfc}\n`],
          ['with a zero-width space', `${nfc}\u200b`],
          ['without its last character', nfc.slice(0, -1)]
        ] as Array<[string, string]>) {
          assertError(t, await loginAs(app, 'exact.person', attempt), 401, 'AUTH_INVALID_CREDENTIALS', what)
        }
      })
      assertLoggedIn(t, await loginAs(app, 'exact.person', nfc), json(registered).user.id, 'the exact password')
      const decomposed = await registerAs(app, 'decomposed.person', nfd)
      t.equal(decomposed.statusCode, 201)
      assertError(t, await loginAs(app, 'decomposed.person', nfc), 401, 'AUTH_INVALID_CREDENTIALS', 'registered NFD, NFC refused')
      assertLoggedIn(t, await loginAs(app, 'decomposed.person', nfd), json(decomposed).user.id, 'registered NFD, NFD works')
    })

    await t.test('passwords longer than 72 bytes are never truncated', async (t) => {
      const ascii = 'Long-password-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ-'.padEnd(100, '0123456789')
      t.equal(Buffer.byteLength(ascii), 100, 'setup: 100 bytes')
      const multibyte = '\u00e9\u00e8\u00ea\u00eb'.repeat(25)
      t.equal(Buffer.byteLength(multibyte), 200, 'setup: 100 characters, 200 bytes')
      for (const [name, password] of [['long.ascii', ascii], ['long.multibyte', multibyte]] as Array<[string, string]>) {
        const registered = await registerAs(app, name, password)
        t.equal(registered.statusCode, 201, `${name}: registered`)
        const bytes = Buffer.from(password)
        const prefix72 = bytes.subarray(0, 72).toString('utf8')
        await unchanged(t, app, `${name} near misses`, async () => {
          for (const [what, attempt] of [
            ['the first 72 bytes and a different tail', prefix72 + 'Z'.repeat(28)],
            ['the first 72 bytes alone', prefix72],
            ['all but the last character', [...password].slice(0, -1).join('')],
            ['the last character changed', [...password].slice(0, -1).join('') + '!']
          ] as Array<[string, string]>) {
            assertError(t, await loginAs(app, name, attempt), 401, 'AUTH_INVALID_CREDENTIALS', `${name}: ${what}`)
          }
        })
        assertLoggedIn(t, await loginAs(app, name, password), json(registered).user.id, `${name}: the whole password`)
      }
      // The longest allowed password works, one character more is refused before hashing.
      const longest = 'x1y2z3'.repeat(171).slice(0, 1024)
      t.equal((await registerAs(app, 'longest.password', longest)).statusCode, 201, '1024 characters')
      await unchanged(t, app, 'over-long passwords', async () => {
        assertError(t, await registerAs(app, 'too.long', `${longest}!`), 400, 'VALIDATION_ERROR', '1025 characters at registration')
        assertError(t, await loginAs(app, 'longest.password', `${longest}!`), 400, 'VALIDATION_ERROR', '1025 characters at login')
      }, { hashing: 'none' })
    })

    await t.test('a 1 MB password is a fast 4xx without hashing', async (t) => {
      const huge = 'p'.repeat(1024 * 1024)
      await unchanged(t, app, '1 MB passwords', async () => {
        for (const [what, request] of [
          ['register', { method: 'POST', url: '/auth/register', payload: { username: 'megabyte', password: huge } }],
          ['login', { method: 'POST', url: '/auth/login', payload: { username: victim.username, password: huge } }],
          ['login, unknown user', { method: 'POST', url: '/auth/login', payload: { username: 'nobody-at-all', password: huge } }],
          ['password change (current)', { method: 'POST', url: '/auth/password', headers: auth, payload: { currentPassword: huge, newPassword: 'another horse battery' } }],
          ['password change (new)', { method: 'POST', url: '/auth/password', headers: auth, payload: { currentPassword: PASSWORD, newPassword: huge } }]
        ] as Array<[string, InjectOptions]>) {
          const started = process.hrtime.bigint()
          const response = await app.inject(request)
          const elapsed = Number(process.hrtime.bigint() - started) / 1e6
          assertError(t, response, 413, 'PAYLOAD_TOO_LARGE', what)
          t.ok(elapsed < 1000, `${what}: answered in ${elapsed.toFixed(0)} ms`)
        }
        const started = process.hrtime.bigint()
        const form = await app.inject({
          method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: `grant_type=password&client_id=app&username=${victim.username}&password=${huge}`
        })
        t.equal(form.statusCode, 413, 'OAuth password grant: 413')
        t.equal(json(form).error, 'invalid_request')
        t.ok(Number(process.hrtime.bigint() - started) / 1e6 < 1000, 'OAuth password grant: answered quickly')
      }, { hashing: 'none' })
      assertLoggedIn(t, await loginAs(app, victim.username, PASSWORD), victim.user.id, 'the victim still logs in')
    })
  })
}
