// DPoP at the resource server, rule by rule, against the small issuer (test/issuer.ts) whose tokens
// can carry any cnf.jkt: the proof checks of RFC 9449 §4.3, the key binding, single use (in memory,
// shared, bounded, and in Redis with TEST_REDIS_URL), nonces, and the challenges of §7.1 through the
// Fastify plugin. The same battery against tokens of the real server: dpop-server.test.ts.
import Fastify from 'fastify'
import t from 'tap'
import { createVerifier, memoryReplayStore, redisReplayStore, timeStepNonces, VerifierError, type VerifierOptions } from '../src/index.js'
import verifierPlugin from '../src/fastify.js'
import { AUDIENCE, CLIENT, issuer } from './issuer.js'
import { ath, hmacProof, proof, proofKey, rawEs256Proof, unsignedProof } from './proofs.js'

const PUBLIC_URL = 'https://orders.example'
const URL_ORDERS = `${PUBLIC_URL}/orders`

async function outcome (promise: Promise<unknown>): Promise<string> {
  return promise.then(() => 'accepted', (error: unknown) => error instanceof VerifierError ? error.code : `unexpected ${String(error)}`)
}

async function setup (t: { teardown: (fn: () => unknown) => void }, options: Partial<VerifierOptions> = {}) {
  const as = await issuer()
  t.teardown(as.close)
  const verifier = createVerifier({ issuer: as.base, audience: AUDIENCE, ...CLIENT, ...options })
  t.teardown(verifier.close)
  const key = await proofKey('ES256')
  const token = await as.sign({ cnf: { jkt: key.jkt } })
  return { as, verifier, key, token }
}

t.test('a bound token with a good proof is accepted; the attack battery is not', async (t) => {
  const { as, verifier, key, token } = await setup(t)
  const request = { method: 'GET', url: URL_ORDERS }
  const good = () => proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token })
  const now = Math.floor(Date.now() / 1000)

  t.match(await verifier.verifyDpop(token, await good(), request), { sub: 'u1', cnf: { jkt: key.jkt } }, 'ES256 proof by the bound key')
  const edKey = await proofKey('EdDSA')
  const edToken = await as.sign({ cnf: { jkt: edKey.jkt } })
  t.equal(await outcome(verifier.verifyDpop(edToken, await proof(edKey, { htm: 'GET', htu: URL_ORDERS, accessToken: edToken }), request)), 'accepted', 'EdDSA proof')
  t.equal(await outcome(verifier.verifyDpop(token, await proof(key, { htm: 'GET', htu: `${URL_ORDERS}?page=2#top`, accessToken: token }), { method: 'get', url: `${URL_ORDERS}?page=3` })), 'accepted',
    'query and fragment are ignored on both sides; the method compares case-insensitively on the request side')
  t.equal(await outcome(verifier.verifyDpop(token, await proof(key, { htm: 'GET', htu: 'HTTPS://Orders.EXAMPLE:443/orders', accessToken: token }), request)), 'accepted', 'htu is compared after URL normalization')

  const replayed = await good()
  t.equal(await outcome(verifier.verifyDpop(token, replayed, request)), 'accepted')
  const other = await proofKey('ES256')
  const battery: Record<string, Promise<string> | string> = {
    'replayed proof': replayed,
    'wrong htu (another path)': proof(key, { htm: 'GET', htu: `${PUBLIC_URL}/admin`, accessToken: token }),
    'wrong htu (another host)': proof(key, { htm: 'GET', htu: 'https://evil.example/orders', accessToken: token }),
    'wrong htm': proof(key, { htm: 'POST', htu: URL_ORDERS, accessToken: token }),
    'stale iat': proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, iat: now - 120 }),
    'future iat': proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, iat: now + 120 }),
    'string iat': proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, claims: { iat: String(now) } }),
    'signed by another key than its jwk': proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, signWith: other.privateKey }),
    'a valid proof by another key': proof(other, { htm: 'GET', htu: URL_ORDERS, accessToken: token }),
    'alg none': unsignedProof(key, { htm: 'GET', htu: URL_ORDERS, ath: ath(token) }),
    'HMAC proof': hmacProof({ htm: 'GET', htu: URL_ORDERS, ath: ath(token) }),
    'private key in jwk': proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, header: { jwk: key.privateJwk } }),
    'no jwk': proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, header: { jwk: undefined } }),
    'typ JWT': proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, header: { typ: 'JWT' } }),
    'missing ath': proof(key, { htm: 'GET', htu: URL_ORDERS }),
    'wrong ath': proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: `${token}x` }),
    'missing jti': proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, claims: { jti: undefined } }),
    'not a JWS': 'not-a-proof',
    'no proof': ''
  }
  for (const [attack, made] of Object.entries(battery)) {
    t.equal(await outcome(verifier.verifyDpop(token, await made, request)), 'AUTH_DPOP_INVALID', attack)
  }
  t.equal(await outcome(verifier.verify(token)), 'AUTH_DPOP_INVALID', 'bound token sent as Bearer')
  const unbound = await as.sign()
  t.equal(await outcome(verifier.verifyDpop(unbound, await proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: unbound }), request)), 'AUTH_DPOP_INVALID', 'unbound token sent as DPoP')
  t.equal(await outcome(verifier.verify(unbound)), 'accepted', 'unbound token as Bearer still works')
  const expired = await as.sign({ cnf: { jkt: key.jkt } }, { expiresIn: now - 10 })
  t.equal(await outcome(verifier.verifyDpop(expired, await proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: expired }), request)), 'AUTH_TOKEN_EXPIRED', 'an expired bound token')
  as.revoke({ kind: 'session', sessionId: 's1' })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(await outcome(verifier.verifyDpop(token, await good(), request)), 'AUTH_TOKEN_REVOKED', 'revocations hold for bound tokens too')
})

t.test('verifyRequest without Fastify: fetch Headers or Node\'s headers', async (t) => {
  const { as, verifier, key, token } = await setup(t)
  const dpop = () => proof(key, { htm: 'PUT', htu: `${URL_ORDERS}/7`, accessToken: token })
  t.match(await verifier.verifyRequest({ method: 'PUT', url: `${URL_ORDERS}/7?x=1`, headers: new Headers({ authorization: `DPoP ${token}`, dpop: await dpop() }) }), { cnf: { jkt: key.jkt } }, 'a fetch Headers object')
  t.equal(await outcome(verifier.verifyRequest({ method: 'PUT', url: `${URL_ORDERS}/7`, headers: { authorization: `DPoP ${token}`, dpop: `${await dpop()}, ${await dpop()}` } })), 'AUTH_DPOP_INVALID', 'two DPoP headers joined by Node')
  const unbound = await as.sign({ sid: 'x' })
  t.equal(await outcome(verifier.verifyRequest({ method: 'GET', url: URL_ORDERS, headers: { authorization: `bearer ${unbound}` } })), 'accepted', 'the scheme is case-insensitive')
  const refused = await verifier.verifyRequest({ method: 'GET', url: URL_ORDERS, headers: {} }).catch((error: unknown) => error as VerifierError)
  t.same([refused.code, refused.statusCode, refused.challenges], ['AUTH_TOKEN_MISSING', 401, ['Bearer', 'DPoP algs="ES256 ES384 EdDSA"']], 'no credentials: both schemes offered')
})

t.test('proofs are checked against the service\'s own algorithm list', async (t) => {
  t.throws(() => createVerifier({ issuer: 'https://as.example', audience: AUDIENCE, checkRevocations: false, jwksUri: 'https://as.example/jwks', dpop: { algorithms: ['HS256'] } }), TypeError, 'symmetric algorithms cannot be allowed')
  const { as, verifier, key, token } = await setup(t, { dpop: { algorithms: ['EdDSA'] } })
  const request = { method: 'GET', url: URL_ORDERS }
  t.equal(await outcome(verifier.verifyDpop(token, await proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token }), request)), 'AUTH_DPOP_INVALID', 'ES256 refused when only EdDSA is allowed')

  // ES256, ES384 and EdDSA are checked with node:crypto, anything else through jose: both hold the rules.
  const wide = createVerifier({ issuer: as.base, audience: AUDIENCE, ...CLIENT, dpop: { algorithms: ['ES256', 'ES384', 'PS256'] } })
  t.teardown(wide.close)
  for (const alg of ['ES384', 'PS256'] as const) {
    const other = await proofKey(alg)
    const bound = await as.sign({ cnf: { jkt: other.jkt } })
    t.equal(await outcome(wide.verifyDpop(bound, await proof(other, { htm: 'GET', htu: URL_ORDERS, accessToken: bound }), request)), 'accepted', `${alg} when allowed`)
    t.equal(await outcome(wide.verifyDpop(bound, await proof(other, { htm: 'GET', htu: URL_ORDERS, accessToken: bound, header: { typ: 'JWT' } }), request)), 'AUTH_DPOP_INVALID', `${alg}: typ is checked`)
  }
  const p384 = await proofKey('ES384')
  const es256Token = await as.sign({ cnf: { jkt: key.jkt } })
  const made = (options: Partial<Parameters<typeof proof>[1]>) => proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: es256Token, ...options })
  t.equal(await outcome(wide.verifyDpop(es256Token, await made({ header: { typ: 'application/dpop+jwt' } }), request)), 'accepted', 'typ as a full media type')
  t.equal(await outcome(wide.verifyDpop(es256Token, await made({ header: { jwk: p384.publicJwk } }), request)), 'AUTH_DPOP_INVALID', 'ES256 with a P-384 jwk')
  const claims = { jti: 'j-crit', htm: 'GET', htu: URL_ORDERS, iat: Math.floor(Date.now() / 1000), ath: ath(es256Token) }
  const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk }
  t.equal(await outcome(wide.verifyDpop(es256Token, await rawEs256Proof(key, header, claims), request)), 'accepted', 'the raw signer makes good proofs')
  t.equal(await outcome(wide.verifyDpop(es256Token, await rawEs256Proof(key, { ...header, crit: ['urn:x'], 'urn:x': 1 }, { ...claims, jti: 'j-crit-2' }), request)), 'AUTH_DPOP_INVALID', 'unknown critical header')
  t.equal(await outcome(wide.verifyDpop(es256Token, await rawEs256Proof(key, { ...header, jwk: { ...key.publicJwk, use: 'enc' } }, { ...claims, jti: 'j-use' }), request)), 'AUTH_DPOP_INVALID', 'a jwk for encryption')
  t.equal(await outcome(wide.verifyDpop(es256Token, await rawEs256Proof(key, { ...header, jwk: { ...key.publicJwk, alg: 'ES384' } }, { ...claims, jti: 'j-alg' }), request)), 'AUTH_DPOP_INVALID', 'a jwk for another alg')
  t.equal(await outcome(wide.verifyDpop(es256Token, await rawEs256Proof(key, header, { ...claims, jti: 'j-exp', exp: Math.floor(Date.now() / 1000) - 5 }), request)), 'AUTH_DPOP_INVALID', 'an exp in the past')
  const canonical = await rawEs256Proof(key, header, { ...claims, jti: 'j-b64' })
  const last = canonical.slice(-1)
  // The signature is 64 bytes: its last base64url character carries 4 unused bits, which must be zero.
  const twisted = canonical.slice(0, -1) + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(last) ^ 1]!
  t.equal(await outcome(wide.verifyDpop(es256Token, twisted, request)), 'AUTH_DPOP_INVALID', 'a non-canonical signature encoding')
  t.equal(await outcome(wide.verifyDpop(es256Token, canonical, request)), 'accepted', '… while the canonical one passes')
  t.equal(await outcome(wide.verifyDpop(es256Token, await made({ header: { jwk: { ...key.publicJwk, x: p384.publicJwk.x } } }), request)), 'AUTH_DPOP_INVALID', 'a jwk that is no P-256 point')
})

t.test('jti single use: shared between verifiers through one store; bounded in memory, failing closed when full', async (t) => {
  const store = memoryReplayStore({ maxEntries: 3 })
  const first = await setup(t, { dpop: { replayStore: store } })
  const second = createVerifier({ issuer: first.as.base, audience: AUDIENCE, ...CLIENT, dpop: { replayStore: store } })
  t.teardown(second.close)
  const request = { method: 'GET', url: URL_ORDERS }
  const made = await proof(first.key, { htm: 'GET', htu: URL_ORDERS, accessToken: first.token })
  t.equal(await outcome(first.verifier.verifyDpop(first.token, made, request)), 'accepted')
  t.equal(await outcome(second.verifyDpop(first.token, made, request)), 'AUTH_DPOP_INVALID', 'a proof used at one instance is refused at the other')
  for (let i = 0; i < 2; i++) {
    t.equal(await outcome(second.verifyDpop(first.token, await proof(first.key, { htm: 'GET', htu: URL_ORDERS, accessToken: first.token }), request)), 'accepted')
  }
  t.equal(store.size(), 3)
  const overflow = await outcome(first.verifier.verifyDpop(first.token, await proof(first.key, { htm: 'GET', htu: URL_ORDERS, accessToken: first.token }), request))
  t.equal(overflow, 'AUTH_VERIFIER_UNAVAILABLE', 'a full cache refuses new proofs (503) instead of forgetting live ones')
  t.equal(await outcome(first.verifier.verifyDpop(first.token, made, request)), 'AUTH_DPOP_INVALID', '… and the used ones stay refused')

  // A bad proof never takes a place in the cache: only requests that passed every other check do.
  const roomy = memoryReplayStore({ maxEntries: 10 })
  const third = createVerifier({ issuer: first.as.base, audience: AUDIENCE, ...CLIENT, dpop: { replayStore: roomy } })
  t.teardown(third.close)
  const stranger = await proofKey()
  await outcome(third.verifyDpop(first.token, await proof(stranger, { htm: 'GET', htu: URL_ORDERS, accessToken: first.token }), request))
  await outcome(third.verifyDpop(first.token, await proof(first.key, { htm: 'POST', htu: URL_ORDERS, accessToken: first.token }), request))
  t.equal(roomy.size(), 0, 'refused proofs are not remembered')
})

const redisUrl = process.env.TEST_REDIS_URL
if (redisUrl !== undefined) {
  t.test('jti single use across services through Redis', async (t) => {
    const { Redis } = await import('ioredis')
    const redis = new Redis(redisUrl)
    t.teardown(() => redis.quit())
    const prefix = `dpop-test:${Date.now()}:${Math.random()}:`
    const first = await setup(t, { dpop: { replayStore: redisReplayStore(redis, { prefix }) } })
    const second = createVerifier({ issuer: first.as.base, audience: AUDIENCE, ...CLIENT, dpop: { replayStore: redisReplayStore(redis, { prefix }) } })
    t.teardown(second.close)
    const request = { method: 'GET', url: URL_ORDERS }
    const made = await proof(first.key, { htm: 'GET', htu: URL_ORDERS, accessToken: first.token })
    const results = await Promise.all([first.verifier.verifyDpop(first.token, made, request), second.verifyDpop(first.token, made, request)].map(outcome))
    t.same(results.sort(), ['AUTH_DPOP_INVALID', 'accepted'], 'the same proof at two instances at once: exactly one accepted')
    const ttl = await redis.pttl((await redis.keys(`${prefix}*`))[0]!)
    t.ok(ttl > 0 && ttl <= 62_000, `the entry expires with the proof window (${ttl} ms)`)
  })
}

t.test('DPoP-only services and nonces', async (t) => {
  const only = await setup(t, { dpop: { required: true } })
  const unbound = await only.as.sign()
  t.equal(await outcome(only.verifier.verify(unbound)), 'AUTH_DPOP_INVALID', 'dpop.required refuses unbound Bearer tokens')

  const nonces = timeStepNonces({ secret: 'a nonce secret of some length' })
  const { verifier, key, token } = await setup(t, { dpop: { nonce: nonces } })
  const request = { method: 'GET', url: URL_ORDERS }
  const error = await verifier.verifyDpop(token, await proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token }), request).catch((caught: unknown) => caught)
  t.ok(error instanceof VerifierError)
  t.equal((error as VerifierError).code, 'AUTH_DPOP_NONCE', 'a proof without the nonce')
  t.equal((error as VerifierError).dpopNonce, nonces.current(), 'the refusal carries the nonce to use')
  t.match((error as VerifierError).challenges, [/^DPoP error="use_dpop_nonce"/])
  t.equal(await outcome(verifier.verifyDpop(token, await proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, nonce: 'made-up' }), request)), 'AUTH_DPOP_NONCE', 'a wrong nonce')
  t.equal(await outcome(verifier.verifyDpop(token, await proof(key, { htm: 'GET', htu: URL_ORDERS, accessToken: token, nonce: nonces.current() }), request)), 'accepted', 'the retry with the nonce')
})

t.test('the Fastify plugin: schemes, challenges, headers', async (t) => {
  const { as, verifier, key, token } = await setup(t, { dpop: { nonce: timeStepNonces({ secret: 'a nonce secret of some length' }) } })
  const app = Fastify()
  await app.register(verifierPlugin, { verifier, publicUrl: `${PUBLIC_URL}/api/` })
  app.get('/orders', async (request) => ({ user: request.auth?.sub, jkt: request.auth?.cnf?.jkt }))
  t.teardown(() => app.close())
  const htu = `${PUBLIC_URL}/api/orders`
  const nonce = verifier.dpopNonce()!
  const call = async (headers: Record<string, string | string[]>) => app.inject({ url: '/orders?x=1', headers })

  let response = await call({ authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu, accessToken: token, nonce }) })
  t.equal(response.statusCode, 200, 'htu = publicUrl (with its path prefix) + the request path')
  t.same(response.json(), { user: 'u1', jkt: key.jkt })
  t.equal(response.headers['dpop-nonce'], nonce, 'a DPoP answer carries the current nonce')

  response = await call({ authorization: `dpop ${token}`, dpop: await proof(key, { htm: 'GET', htu, accessToken: token }) })
  t.equal(response.statusCode, 401)
  t.equal(response.json().code, 'AUTH_DPOP_NONCE')
  t.equal(response.headers['dpop-nonce'], nonce)
  t.match(response.headers['www-authenticate'], /^DPoP error="use_dpop_nonce", error_description="[^"]+", algs="ES256 ES384 EdDSA"$/)

  response = await call({ authorization: `DPoP ${token}`, dpop: await proof(key, { htm: 'GET', htu: `${PUBLIC_URL}/orders`, accessToken: token, nonce }) })
  t.equal(response.json().code, 'AUTH_DPOP_INVALID', 'a proof for the URL without the prefix')
  t.match(response.headers['www-authenticate'], /^DPoP error="invalid_dpop_proof"/)

  const two = [await proof(key, { htm: 'GET', htu, accessToken: token, nonce }), await proof(key, { htm: 'GET', htu, accessToken: token, nonce })]
  response = await call({ authorization: `DPoP ${token}`, dpop: two })
  t.equal(response.json().code, 'AUTH_DPOP_INVALID', 'two DPoP headers')

  response = await call({ authorization: `Bearer ${token}` })
  t.equal(response.statusCode, 401)
  t.equal(response.json().code, 'AUTH_DPOP_INVALID', 'a bound token as Bearer')
  t.match(response.headers['www-authenticate'], /^DPoP error="invalid_token"/)

  response = await call({ authorization: `DPoP ${token}` })
  t.equal(response.json().code, 'AUTH_DPOP_INVALID', 'DPoP without a proof')
  response = await call({ authorization: 'DPoP a.b.c', dpop: await proof(key, { htm: 'GET', htu, accessToken: 'a.b.c', nonce }) })
  t.equal(response.json().code, 'AUTH_TOKEN_INVALID')
  t.match(response.headers['www-authenticate'], /^DPoP error="invalid_token"/, 'a bad token sent as DPoP is challenged as DPoP')

  const unbound = await as.sign({ sid: 'other' })
  response = await call({ authorization: `Bearer ${unbound}` })
  t.equal(response.statusCode, 200, 'an unbound token as Bearer')
  t.equal(response.headers['dpop-nonce'], undefined, 'no nonce for a request without DPoP')
})
