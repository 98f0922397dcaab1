// DPoP in mobile mode against the real server (in this process, on a free port; SQLite and, with
// TEST_DATABASE_URL, PostgreSQL): the session is bound at login, API calls go out as DPoP with a proof
// naming the token, the guarantees of sdk.test.ts hold (one refresh for 20 racing requests), a copied
// refresh token is useless without the key, nonces are fetched with one retry, and a key provider
// that keeps its key carries the session across a restart.
import { generateKeyPairSync } from 'node:crypto'
import Fastify from 'fastify'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import t from 'tap'
import { createVerifier, timeStepNonces } from '../../verifier/src/index.js'
import verifierPlugin from '../../verifier/src/fastify.js'
import { freePort } from '../../../test/network-support.js'
import { AuthError, createAuthClient, webCryptoKeyProvider } from '../src/index.js'
import { memoryStorage, registerUser, startServer, testDatabases } from './support.js'

const STORAGE_KEY = 'auth-server.refresh-token'

/** Passes every request through and records what went out and what came back. */
function wire () {
  const sent: Array<{ url: string, method: string, authorization: string | null, dpop: string | null, status: number, code?: string }> = []
  const impl: typeof fetch = async (input, init) => {
    const headers = new Headers(init?.headers)
    const response = await fetch(input, init)
    const body = await response.clone().json().catch(() => ({}))
    sent.push({ url: String(input instanceof Request ? input.url : input), method: init?.method ?? 'GET', authorization: headers.get('authorization'), dpop: headers.get('dpop'), status: response.status, code: body?.code })
    return response
  }
  return { impl, sent }
}

const proofClaims = (proof: string | null) => decodeJwt(proof!) as { htm: string, htu: string, ath?: string, nonce?: string, jti: string }

for (const database of testDatabases()) {
  t.test(`SDK with DPoP, mobile mode, on ${database}`, async (t) => {
    t.test('login binds the session; API calls carry Authorization: DPoP and a proof naming the token', async (t) => {
      const server = await startServer(t, database)
      const { username, password } = await registerUser(server.baseUrl)
      const w = wire()
      const provider = webCryptoKeyProvider({ store: null })
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage(), fetch: w.impl, dpop: { keyProvider: provider }, autoRefresh: false })
      t.teardown(() => client.close())
      await client.login(username, password)
      const login = w.sent[0]!
      t.ok(login.dpop, 'the login carried a proof')
      t.match(proofClaims(login.dpop), { htm: 'POST', htu: `${server.baseUrl}/auth/login` })
      t.equal((decodeProtectedHeader(login.dpop!).jwk as { d?: string }).d, undefined, 'only the public key travels')

      const response = await client.fetch('/orders?limit=5')
      t.equal(response.status, 200)
      const call = w.sent[1]!
      t.match(call.authorization, /^DPoP /, 'the bound token goes out as DPoP')
      const claims = proofClaims(call.dpop)
      t.match(claims, { htm: 'GET', htu: `${server.baseUrl}/orders` }, 'htu without the query')
      t.type(claims.ath, 'string', 'the proof names the token (ath)')
      const token = call.authorization!.slice(5)
      t.equal((decodeJwt(token).cnf as { jkt: string }).jkt.length, 43, 'the access token carries cnf.jkt')

      const posted = await client.fetch('/orders', { method: 'POST', body: JSON.stringify({ item: 'tea', quantity: 1 }) })
      t.equal(posted.status, 201)
      t.equal(proofClaims(w.sent[2]!.dpop).htm, 'POST')
      t.equal(new Set(w.sent.map((request) => proofClaims(request.dpop).jti)).size, w.sent.length, 'a new jti every time')
      t.equal((await client.sessions()).length, 1, 'the SDK\'s own calls work bound too')
      await client.changePassword(password, 'another long passphrase')
      t.equal((await client.fetch('/orders')).status, 200, 'after a password change')
      t.match(w.sent[w.sent.length - 1]!.authorization, /^DPoP /, 'still bound')
      await client.logout()
      t.equal(client.user(), null)
    })

    t.test('20 concurrent fetches with an expired bound token: one refresh with a proof, all succeed', async (t) => {
      const server = await startServer(t, database, { ACCESS_TOKEN_TTL: '2' })
      const { username, password } = await registerUser(server.baseUrl)
      const w = wire()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage(), fetch: w.impl, dpop: true, autoRefresh: false })
      t.teardown(() => client.close())
      await client.login(username, password)
      t.equal((await client.fetch('/auth/me')).status, 200)
      // The token's 2 s are over (bound tokens cannot be probed as Bearer, as untilExpired does).
      await new Promise((resolve) => setTimeout(resolve, 3000))
      server.resetRefreshes()
      const responses = await Promise.all(Array.from({ length: 20 }, () => client.fetch('/orders')))
      t.same(responses.map((response) => response.status), Array(20).fill(200), 'every request succeeded')
      t.equal(server.refreshes(), 1, 'exactly one refresh reached the server')
      const refresh = w.sent.find((request) => request.url.endsWith('/auth/refresh'))!
      t.match(proofClaims(refresh.dpop), { htm: 'POST', htu: `${server.baseUrl}/auth/refresh` }, 'the refresh carried a proof')
    })

    t.test('20 concurrent 401 AUTH_TOKEN_EXPIRED answers to DPoP calls: one refresh, each request retried once', async (t) => {
      const server = await startServer(t, database, { ACCESS_TOKEN_TTL: '2' })
      const { username, password } = await registerUser(server.baseUrl)
      const w = wire()
      // A client whose clock stands still believes its token is fresh: only the server's 401 tells.
      const frozen = Date.now()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage(), fetch: w.impl, dpop: true, autoRefresh: false, clock: () => frozen })
      t.teardown(() => client.close())
      await client.login(username, password)
      await new Promise((resolve) => setTimeout(resolve, 3000))
      server.resetRefreshes()
      w.sent.length = 0
      const responses = await Promise.all(Array.from({ length: 20 }, () => client.fetch('/orders')))
      t.same(responses.map((response) => response.status), Array(20).fill(200), 'every request succeeded on its retry')
      t.equal(server.refreshes(), 1, 'exactly one refresh reached the server')
      const calls = w.sent.filter((request) => request.url.endsWith('/orders'))
      t.equal(calls.filter((request) => request.code === 'AUTH_TOKEN_EXPIRED').length, 20, 'each went out once with the expired token')
      t.equal(calls.filter((request) => request.status === 200).length, 20, '… and once more with the new one')
      t.ok(calls.every((request) => /^DPoP /.test(request.authorization ?? '')), 'always as DPoP')
    })

    t.test('a resource server that wants its own nonce: one 401 use_dpop_nonce, one retry', async (t) => {
      const key = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
      const server = await startServer(t, database, { JWT_PRIVATE_KEY: key })
      const { username, password } = await registerUser(server.baseUrl)
      const rsPort = await freePort()
      const verifier = createVerifier({ issuer: 'auth-server', audience: 'auth-server-api', checkRevocations: false, jwksUri: `${server.baseUrl}/.well-known/jwks.json`, dpop: { nonce: timeStepNonces({ secret: 'the resource server\'s own nonce secret' }) } })
      const rs = Fastify()
      await rs.register(verifierPlugin, { verifier, publicUrl: `http://127.0.0.1:${rsPort}` })
      rs.get('/things', async (request) => ({ sub: request.auth?.sub }))
      await rs.listen({ host: '127.0.0.1', port: rsPort })
      t.teardown(() => rs.close())
      const w = wire()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage(), fetch: w.impl, dpop: true, autoRefresh: false })
      t.teardown(() => client.close())
      await client.login(username, password)
      w.sent.length = 0
      t.equal((await client.fetch(`http://127.0.0.1:${rsPort}/things`)).status, 200)
      t.same(w.sent.map((request) => [request.status, request.code ?? null]), [[401, 'AUTH_DPOP_NONCE'], [200, null]], 'challenged once, then accepted')
      t.equal(proofClaims(w.sent[1]!.dpop).nonce, verifier.dpopNonce(), 'the retry carried the resource server\'s nonce')
      t.equal((await client.fetch(`http://127.0.0.1:${rsPort}/things`)).status, 200)
      t.equal(w.sent.length, 3, 'the next call carries it from the start')
    })

    t.test('a copied refresh token is useless without the key; the owner goes on', async (t) => {
      const server = await startServer(t, database)
      const { username, password } = await registerUser(server.baseUrl)
      const storage = memoryStorage()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage, dpop: true, autoRefresh: false })
      t.teardown(() => client.close())
      await client.login(username, password)
      const stolen = storage.values.get(STORAGE_KEY)!

      // The thief: the same refresh token, another device's key.
      const thiefStorage = memoryStorage()
      await thiefStorage.set(STORAGE_KEY, stolen)
      const thief = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: thiefStorage, dpop: true, autoRefresh: false })
      t.teardown(() => thief.close())
      const refused = await thief.refresh().then(() => null, (error: unknown) => error)
      t.ok(refused instanceof AuthError, 'the thief\'s refresh is refused')
      t.equal((refused as AuthError).code, 'AUTH_DPOP_INVALID')
      t.equal(thiefStorage.values.get(STORAGE_KEY), stolen, 'a refused proof ends nothing (the SDK keeps the token)')
      // Without any proof at all (a plain HTTP client): refused too.
      const bare = await fetch(`${server.baseUrl}/auth/refresh`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken: stolen }) })
      t.equal(bare.status, 401)
      t.equal((await bare.json()).code, 'AUTH_DPOP_INVALID')

      t.equal(await client.refresh(), true, 'the owner still refreshes: nothing rotated, no reuse detected')
      t.not(storage.values.get(STORAGE_KEY), stolen)
      t.equal((await client.fetch('/orders')).status, 200)
    })

    t.test('server nonces: one retry with the DPoP-Nonce, then every proof carries it', async (t) => {
      const server = await startServer(t, database, { DPOP_NONCE: 'true' })
      const { username, password } = await registerUser(server.baseUrl)
      const w = wire()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage(), fetch: w.impl, dpop: true, autoRefresh: false })
      t.teardown(() => client.close())
      await client.login(username, password)
      t.same(w.sent.map((request) => request.status), [401, 200], 'the login was challenged once, then accepted')
      t.equal(w.sent[0]!.code, 'AUTH_DPOP_NONCE')
      t.type(proofClaims(w.sent[1]!.dpop).nonce, 'string', 'the retry carried the nonce')
      t.equal(await client.refresh(), true)
      t.equal((await client.fetch('/orders')).status, 200)
      t.same(w.sent.slice(2).map((request) => request.status), [200, 200], 'no more challenges: the nonce was kept')
      t.ok(w.sent.slice(2).every((request) => typeof proofClaims(request.dpop).nonce === 'string'))
    })

    t.test('a key provider that keeps its key carries the bound session across a restart', async (t) => {
      const server = await startServer(t, database)
      const { username, password } = await registerUser(server.baseUrl)
      const storage = memoryStorage()
      const keys = new Map<string, CryptoKeyPair>()
      const keyStore = { get: async (name: string) => keys.get(name), set: async (name: string, pair: CryptoKeyPair) => { keys.set(name, pair) } }
      const first = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage, dpop: { keyProvider: webCryptoKeyProvider({ store: keyStore }) }, autoRefresh: false })
      await first.login(username, password)
      first.close()
      const restarted = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage, dpop: { keyProvider: webCryptoKeyProvider({ store: keyStore }) }, autoRefresh: false })
      t.teardown(() => restarted.close())
      t.match(await restarted.resume(), { username }, 'the stored refresh token works with the kept key')
      t.equal((await restarted.fetch('/orders')).status, 200)
    })

    t.test('a device clock five minutes off: the proof is refused once, then made on the server\'s time', async (t) => {
      const server = await startServer(t, database)
      const { username, password } = await registerUser(server.baseUrl)
      const w = wire()
      const client = createAuthClient({ baseUrl: server.baseUrl, mode: 'mobile', storage: memoryStorage(), fetch: w.impl, dpop: true, autoRefresh: false, clock: () => Date.now() - 300_000 })
      t.teardown(() => client.close())
      await client.login(username, password)
      t.same(w.sent.map((request) => [request.status, request.code ?? null]), [[401, 'AUTH_DPOP_INVALID'], [200, null]], 'refused for its iat, then accepted')
      const iat = decodeJwt(w.sent[1]!.dpop!).iat!
      t.ok(Math.abs(iat - Date.now() / 1000) < 30, 'the retry\'s iat is the server\'s time')
      t.equal(await client.refresh(), true, 'later proofs use it from the start')
      t.equal(w.sent.length, 3)
    })

    t.test('a broken key provider is named', async (t) => {
      t.throws(() => createAuthClient({ baseUrl: 'http://127.0.0.1:1', mode: 'mobile', storage: memoryStorage(), dpop: { keyProvider: {} as never } }), TypeError)
    })
  })
}
