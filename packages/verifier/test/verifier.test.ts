// The verifier against a small issuer in the server's protocol (test/issuer.ts), so each edge can be
// driven: key rotation, a flood of unknown kids, a cut stream, a feed that goes silent. The real
// server is exercised end to end by the repository's test/verifier-e2e.test.ts.
import { createServer } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { SignJWT, generateKeyPair } from 'jose'
import t from 'tap'
import { createVerifier, VerifierError } from '../src/index.js'
import verifierPlugin from '../src/fastify.js'
import { AUDIENCE, CLIENT, issuer } from './issuer.js'

async function refusal (promise: Promise<unknown>): Promise<string> {
  return promise.then(() => 'accepted', (error: unknown) => error instanceof VerifierError ? error.code : `unexpected ${String(error)}`)
}

async function eventually (predicate: () => Promise<boolean> | boolean, limitMs = 5000) {
  const started = Date.now()
  while (!await predicate()) {
    if (Date.now() - started > limitMs) return false
    await sleep(20)
  }
  return true
}

t.test('signatures and claims, from the metadata\'s JWKS', async (t) => {
  const as = await issuer()
  t.teardown(as.close)
  const verifier = createVerifier({ issuer: as.base, audience: AUDIENCE, ...CLIENT })
  t.teardown(verifier.close)
  const claims = await verifier.verify(await as.sign({ sub: 'u1' }))
  t.match(claims, { sub: 'u1', sid: 's1', ver: 0 })
  t.equal(await refusal(verifier.verify(await as.sign({}, { typ: 'JWT' }))), 'AUTH_TOKEN_INVALID', 'typ must be at+jwt')
  t.equal(await refusal(verifier.verify(await as.sign({}, { expiresIn: Math.floor(Date.now() / 1000) - 10 }))), 'AUTH_TOKEN_EXPIRED')
  t.equal(await refusal(verifier.verify('not.a.jwt')), 'AUTH_TOKEN_INVALID')
  t.equal(await refusal(verifier.verify((await as.sign()).slice(0, -3) + 'abc')), 'AUTH_TOKEN_INVALID')
  t.equal(await refusal(verifier.verify(await as.sign({ sid: 7 }))), 'AUTH_TOKEN_INVALID', 'sid must be a string')
  t.equal(await refusal(verifier.verify('')), 'AUTH_TOKEN_MISSING')
  t.throws(() => createVerifier({ issuer: as.base, audience: AUDIENCE }), TypeError, 'no silent signature-only mode')
})

t.test('a new kid is fetched once; a flood of unknown kids does not storm the JWKS', async (t) => {
  const as = await issuer()
  t.teardown(as.close)
  const verifier = createVerifier({ issuer: as.base, audience: AUDIENCE, ...CLIENT, jwksCooldownMs: 1000 })
  t.teardown(verifier.close)
  await verifier.verify(await as.sign())
  const flood = await Promise.all(Array.from({ length: 50 }, async (_, index) => as.sign({}, { kid: `unknown-${index}` })))
  await sleep(1100)
  const before = as.jwksFetches
  await as.rotate()
  await verifier.verify(await as.sign({}, { kid: 'k2' }))
  t.equal(as.jwksFetches, before + 1, 'one refetch for the new key')
  const forged = await Promise.all(flood.map(async (token) => refusal(verifier.verify(token))))
  t.ok(forged.every((code) => code === 'AUTH_TOKEN_INVALID'))
  t.equal(as.jwksFetches, before + 1, 'unknown kids within the cooldown fetch nothing')
})

t.test('revocations: snapshot, live stream, catch-up after a cut, fail closed when stale', async (t) => {
  const as = await issuer()
  t.teardown(as.close)
  as.revoke({ kind: 'session', sessionId: 'gone-before-start' })
  const verifier = createVerifier({ issuer: as.base, audience: AUDIENCE, ...CLIENT, maxStalenessMs: 1500, reconnectDelayMs: { min: 50, max: 200 } })
  t.teardown(verifier.close)
  t.equal(await refusal(verifier.verify(await as.sign({ sid: 'gone-before-start' }))), 'AUTH_TOKEN_REVOKED', 'from the snapshot')

  const live = await as.sign({ sid: 'live' })
  t.equal(await refusal(verifier.verify(live)), 'accepted')
  as.revoke({ kind: 'session', sessionId: 'live' })
  t.ok(await eventually(async () => await refusal(verifier.verify(live)) === 'AUTH_TOKEN_REVOKED'), 'pushed by the stream')

  const old = await as.sign({ sub: 'u2', ver: 3 })
  const current = await as.sign({ sub: 'u2', ver: 4, sid: 's9' })
  as.revoke({ kind: 'user', userId: 'u2', minimumTokenVersion: 4 })
  t.ok(await eventually(async () => await refusal(verifier.verify(old)) === 'AUTH_TOKEN_REVOKED'), 'an older token version is refused')
  t.equal(await refusal(verifier.verify(current)), 'accepted', 'the current version is not')

  // Cut the stream; revocations made while it is down arrive on reconnect, from the cursor.
  const cursor = verifier.status().cursor
  const missed = await as.sign({ sid: 'missed' })
  as.cutStreams()
  as.revoke({ kind: 'session', sessionId: 'missed' }, false)
  t.ok(await eventually(async () => await refusal(verifier.verify(missed)) === 'AUTH_TOKEN_REVOKED'), 'caught up after the reconnect')
  t.ok(as.lastEventIds.includes(cursor), `resumed with Last-Event-ID ${cursor}`)

  // The feed goes away: within the staleness bound tokens still pass, past it everything is refused.
  as.setFeedUp(false)
  as.cutStreams()
  t.ok(await eventually(async () => await refusal(verifier.verify(current)) === 'AUTH_VERIFIER_UNAVAILABLE'), 'fails closed once stale')
  as.setFeedUp(true)
  t.ok(await eventually(async () => await refusal(verifier.verify(current)) === 'accepted'), 'and recovers when the feed is back')
})

t.test('the Fastify plugin protects routes as the server does', async (t) => {
  const as = await issuer()
  t.teardown(as.close)
  const verifier = createVerifier({ issuer: as.base, audience: AUDIENCE, ...CLIENT })
  const app = Fastify()
  await app.register(verifierPlugin, { verifier, publicUrl: 'https://orders.example' })
  app.get('/orders', async (request) => ({ user: request.auth?.sub }))
  app.get('/health', { config: { public: true } }, async () => ({ ok: true }))
  t.teardown(() => app.close())
  const token = await as.sign({ sub: 'u7', sid: 'p1' })

  let response = await app.inject({ url: '/orders', headers: { authorization: `Bearer ${token}` } })
  t.equal(response.statusCode, 200)
  t.same(response.json(), { user: 'u7' })
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'public routes need no token')

  response = await app.inject({ url: '/orders' })
  t.equal(response.statusCode, 401)
  t.same(response.headers['www-authenticate'], ['Bearer', 'DPoP algs="ES256 ES384 EdDSA"'], 'both schemes are offered')
  t.same(response.json(), { statusCode: 401, code: 'AUTH_TOKEN_MISSING', error: 'Unauthorized', message: 'An access token is required' })
  response = await app.inject({ url: '/orders', headers: { authorization: 'Bearer a.b.c' } })
  t.equal(response.headers['www-authenticate'], 'Bearer error="invalid_token"')
  t.equal(response.json().code, 'AUTH_TOKEN_INVALID')
  response = await app.inject({ url: '/orders', headers: { authorization: 'Basic abc' } })
  t.equal(response.json().code, 'AUTH_TOKEN_MISSING', 'another scheme is no bearer token')
  await t.rejects(async () => { await Fastify().register(verifierPlugin, { verifier }).ready() }, TypeError, 'DPoP needs the service\'s public URL')

  as.revoke({ kind: 'session', sessionId: 'p1' })
  t.ok(await eventually(async () => (await app.inject({ url: '/orders', headers: { authorization: `Bearer ${token}` } })).json().code === 'AUTH_TOKEN_REVOKED'))
})

t.test('a verifier started before the server fails closed, then works once the server is up', async (t) => {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const port = (probe.address() as { port: number }).port
  await new Promise((resolve) => probe.close(resolve))
  const verifier = createVerifier({ issuer: `http://127.0.0.1:${port}`, audience: AUDIENCE, ...CLIENT, readyTimeoutMs: 300, reconnectDelayMs: { min: 50, max: 200 } })
  t.teardown(verifier.close)
  const early = await issuerlessToken()
  t.equal(await refusal(verifier.verify(early)), 'AUTH_VERIFIER_UNAVAILABLE', 'nothing is accepted while the server is unknown')
  const as = await issuer(port)
  t.teardown(as.close)
  const token = await as.sign()
  t.ok(await eventually(async () => await refusal(verifier.verify(token)) === 'accepted', 10_000), 'accepted once metadata, keys and feed are read')
})

/** Any well-formed JWT: the verifier must not get as far as checking it. */
async function issuerlessToken () {
  const { privateKey } = await generateKeyPair('EdDSA')
  return new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: 'x' }).sign(privateKey)
}
