// The RFC 9449 §4.3 checks, one by one, without HTTP: every refusal is told by its error class
// (DpopInvalid / DpopNonceRequired / ServiceUnavailable), never by message text.
import { createPrivateKey, sign } from 'node:crypto'
import { test } from 'tap'
import { Redis } from 'ioredis'
import { DpopNonces, DpopVerifier, MemoryReplayStore, RedisReplayStore, accessTokenHash, normaliseHtu } from '../../src/auth/dpop.js'
import { DpopInvalid, DpopNonceRequired, ServiceUnavailable } from '../../src/errors.js'
import { testClock } from '../helpers.js'
import { freePort } from '../network-support.js'
import { TEST_PUBLIC_URL, dpopKey, hmacProof, makeProof, standardClaims, unsignedProof } from '../dpop-support.js'

const URL_ = `${TEST_PUBLIC_URL}/auth/refresh`
const EXPECT = { method: 'POST', url: URL_ }

function verifier (clock = testClock(), options: { windowSeconds?: number, nonces?: DpopNonces, replays?: MemoryReplayStore } = {}) {
  return new DpopVerifier({ clock, windowSeconds: options.windowSeconds ?? 60, replays: options.replays ?? new MemoryReplayStore(clock), nonces: options.nonces ?? null })
}

test('a valid proof gives its key\'s RFC 7638 thumbprint, for each allowed algorithm', async (t) => {
  for (const alg of ['ES256', 'ES384', 'EdDSA'] as const) {
    const key = await dpopKey(alg)
    const checked = await verifier().verify(await makeProof(key, { htu: '/auth/refresh' }), EXPECT)
    t.equal(checked.thumbprint, key.thumbprint, alg)
  }
})

test('a proof is single-use: the same jti by the same key is refused, another key may use the same jti', async (t) => {
  const v = verifier()
  const key = await dpopKey()
  const proof = await makeProof(key, { htu: '/auth/refresh', jti: 'same' })
  await v.verify(proof, EXPECT)
  await t.rejects(v.verify(proof, EXPECT), DpopInvalid)
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', jti: 'same' }), EXPECT), DpopInvalid, 'a new proof reusing the jti')
  await t.resolves(v.verify(await makeProof(await dpopKey(), { htu: '/auth/refresh', jti: 'same' }), EXPECT), 'jti are per key')
})

test('htm and htu must name the request; htu compares normalised, without query and fragment', async (t) => {
  const key = await dpopKey()
  const v = verifier()
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', htm: 'GET' }), EXPECT), DpopInvalid, 'method')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', htm: 'post' }), EXPECT), DpopInvalid, 'method case')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/login' }), EXPECT), DpopInvalid, 'path')
  await t.rejects(v.verify(await makeProof(key, { htu: 'https://127.0.0.1:3000/auth/refresh' }), EXPECT), DpopInvalid, 'scheme')
  await t.rejects(v.verify(await makeProof(key, { htu: 'http://evil.example/auth/refresh' }), EXPECT), DpopInvalid, 'host')
  await t.rejects(v.verify(await makeProof(key, { htu: 'http://127.0.0.1:3001/auth/refresh' }), EXPECT), DpopInvalid, 'port')
  await t.rejects(v.verify(await makeProof(key, { claims: { htu: 42 } }), EXPECT), DpopInvalid, 'not a string')
  await t.resolves(v.verify(await makeProof(key, { htu: 'HTTP://127.0.0.1:3000/auth/refresh?x=1#f' }), EXPECT), 'scheme case, query, fragment')
  await t.resolves(v.verify(await makeProof(key, { htu: '/auth/refresh' }), { method: 'POST', url: `${URL_}?from=app` }), 'the request\'s query is ignored too')
  t.equal(normaliseHtu('https://Auth.Example.COM:443/a/../b'), 'https://auth.example.com/b')
  t.equal(normaliseHtu('http://user@auth.example.com/b'), null)
  t.equal(normaliseHtu('ftp://auth.example.com/b'), null)
})

test('iat must lie within the window, in the past and in the future', async (t) => {
  const clock = testClock()
  const v = verifier(clock, { windowSeconds: 60 })
  const key = await dpopKey()
  const now = Math.floor(clock() / 1000)
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', iat: now - 61 }), EXPECT), DpopInvalid, 'stale')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', iat: now + 61 }), EXPECT), DpopInvalid, 'future')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', claims: { iat: undefined } }), EXPECT), DpopInvalid, 'missing')
  await t.resolves(v.verify(await makeProof(key, { htu: '/auth/refresh', iat: now - 59 }), EXPECT))
  await t.resolves(v.verify(await makeProof(key, { htu: '/auth/refresh', iat: now + 59 }), EXPECT))
})

test('a remembered jti is forgotten only once its proof is outside the window anyway', async (t) => {
  const clock = testClock()
  const replays = new MemoryReplayStore(clock)
  const v = verifier(clock, { windowSeconds: 60, replays })
  const key = await dpopKey()
  const proof = await makeProof(key, { htu: '/auth/refresh', now: clock() })
  await v.verify(proof, EXPECT)
  clock.advance(59_000)
  await t.rejects(v.verify(proof, EXPECT), DpopInvalid, 'still remembered')
  clock.advance(3_000)
  await t.rejects(v.verify(proof, EXPECT), DpopInvalid, 'stale now')
})

test('refused: alg none, HMAC, RSA, an unknown typ, private members in jwk, a wrong key type, no jwk, a bad signature', async (t) => {
  const v = verifier()
  const key = await dpopKey()
  const claims = standardClaims('/auth/refresh')
  await t.rejects(v.verify(unsignedProof(key, claims), EXPECT), DpopInvalid, 'alg none')
  await t.rejects(v.verify(await hmacProof(claims), EXPECT), DpopInvalid, 'HS256 with an oct jwk')
  await t.rejects(v.verify(await hmacProof(claims, key.publicJwk as Record<string, unknown>), EXPECT), DpopInvalid, 'HS256 with an EC jwk')
  const rsa = await dpopKey('RS256')
  await t.rejects(v.verify(await makeProof(rsa, { htu: '/auth/refresh' }), EXPECT), DpopInvalid, 'RS256 is not on the list')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { typ: 'JWT' } }), EXPECT), DpopInvalid, 'typ JWT')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { typ: undefined } }), EXPECT), DpopInvalid, 'no typ')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { jwk: key.privateJwk } }), EXPECT), DpopInvalid, 'private key in jwk (d)')
  for (const member of ['p', 'q', 'dp', 'dq', 'qi', 'k']) {
    await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { jwk: { ...key.publicJwk, [member]: 'AAAA' } } }), EXPECT), DpopInvalid, `private member ${member}`)
  }
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { jwk: undefined } }), EXPECT), DpopInvalid, 'no jwk')
  const ed = await dpopKey('EdDSA')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { jwk: ed.publicJwk } }), EXPECT), DpopInvalid, 'ES256 with an OKP jwk')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { jwk: (await dpopKey()).publicJwk } }), EXPECT), DpopInvalid, 'signed by another key than its jwk')
  const good = await makeProof(key, { htu: '/auth/refresh' })
  const [h, p] = good.split('.')
  await t.rejects(v.verify(`${h}.${p}.${'A'.repeat(86)}`, EXPECT), DpopInvalid, 'garbage signature')
  await t.rejects(v.verify('not-a-jwt', EXPECT), DpopInvalid, 'not a JWS')
  await t.rejects(v.verify(`${h}.${p}`, EXPECT), DpopInvalid, 'two parts')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { jwk: { ...key.publicJwk, use: 'enc' } } }), EXPECT), DpopInvalid, 'an encryption key')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { jwk: { ...key.publicJwk, alg: 'ES384' } } }), EXPECT), DpopInvalid, 'a jwk for another alg')
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const signingInput = `${encode({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.publicJwk, crit: ['x-demo'], 'x-demo': 1 })}.${encode(standardClaims('/auth/refresh'))}`
  const critSignature = sign('sha256', Buffer.from(signingInput), { key: createPrivateKey({ key: key.privateJwk as never, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }).toString('base64url')
  await t.rejects(v.verify(`${signingInput}.${critSignature}`, EXPECT), DpopInvalid, 'crit')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { jwk: { ...key.publicJwk, y: key.publicJwk.x } } }), EXPECT), DpopInvalid, 'a point off the curve')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', header: { jwk: { kty: 'EC', crv: 'P-256', x: key.publicJwk.x } } }), EXPECT), DpopInvalid, 'no y')
  await t.rejects(v.verify(`${good}=`, EXPECT), DpopInvalid, 'padded signature')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', claims: { exp: Math.floor(Date.now() / 1000) - 10 } }), EXPECT), DpopInvalid, 'an expired exp')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', claims: { jti: undefined } }), EXPECT), DpopInvalid, 'no jti')
  await t.rejects(v.verify(await makeProof(key, { htu: '/auth/refresh', claims: { jti: 'x'.repeat(257) } }), EXPECT), DpopInvalid, 'jti too long')
})

test('ath: required and equal to the access token\'s hash when a token is presented', async (t) => {
  const v = verifier()
  const key = await dpopKey()
  const expect = { method: 'GET', url: `${TEST_PUBLIC_URL}/auth/me`, accessToken: 'the.access.token' }
  await t.rejects(v.verify(await makeProof(key, { htm: 'GET', htu: '/auth/me' }), expect), DpopInvalid, 'missing')
  await t.rejects(v.verify(await makeProof(key, { htm: 'GET', htu: '/auth/me', accessToken: 'another.access.token' }), expect), DpopInvalid, 'another token\'s')
  await t.resolves(v.verify(await makeProof(key, { htm: 'GET', htu: '/auth/me', accessToken: 'the.access.token' }), expect))
  t.equal(accessTokenHash('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0')
})

test('a bound token\'s proof must come from its key', async (t) => {
  const v = verifier()
  const key = await dpopKey()
  const other = await dpopKey()
  await t.rejects(v.verify(await makeProof(other, { htu: '/auth/refresh' }), { ...EXPECT, thumbprint: key.thumbprint }), DpopInvalid)
  await t.resolves(v.verify(await makeProof(key, { htu: '/auth/refresh' }), { ...EXPECT, thumbprint: key.thumbprint }))
})

test('nonces: required when on, the current and the previous step accepted, older ones and forgeries not', async (t) => {
  const clock = testClock(Date.UTC(2026, 11, 2, 8, 0, 0))
  const nonces = new DpopNonces('root-secret-0123456789-0123456789', clock, 300)
  const v = verifier(clock, { nonces })
  const key = await dpopKey()
  const proof = (nonce?: string) => makeProof(key, { htu: '/auth/refresh', now: clock(), ...(nonce === undefined ? {} : { nonce }) })
  await t.rejects(v.verify(await proof(), EXPECT), DpopNonceRequired, 'missing')
  const nonce = nonces.current()
  await t.resolves(v.verify(await proof(nonce), EXPECT))
  clock.advance(300_000)
  t.not(nonces.current(), nonce, 'a new step, a new nonce')
  await t.resolves(v.verify(await proof(nonce), EXPECT), 'the previous step\'s')
  clock.advance(300_000)
  await t.rejects(v.verify(await proof(nonce), EXPECT), DpopNonceRequired, 'two steps old')
  await t.rejects(v.verify(await proof(nonce.slice(0, -2) + (nonce.endsWith('AA') ? 'AB' : 'AA')), EXPECT), DpopNonceRequired, 'forged')
  const elsewhere = new DpopNonces('another-secret-0123456789-01234567', clock, 300)
  await t.rejects(v.verify(await proof(elsewhere.current()), EXPECT), DpopNonceRequired, 'another server\'s')
  t.equal(new DpopNonces('root-secret-0123456789-0123456789', clock, 300).current(), nonces.current(), 'instances with one secret agree')
})

test('the memory replay store is bounded: expired entries make room, live ones are never forgotten (refused instead)', async (t) => {
  const clock = testClock()
  const store = new MemoryReplayStore(clock, 3)
  t.ok(await store.claim('a', 1000))
  t.ok(await store.claim('b', 1000))
  t.ok(await store.claim('c', 5000))
  await t.rejects(store.claim('d', 1000), ServiceUnavailable, 'full of live entries')
  t.notOk(await store.claim('a', 1000), 'a replay is still told apart while full')
  clock.advance(1001)
  t.ok(await store.claim('d', 1000), 'expired entries evicted')
  t.equal(store.size, 2)
  t.notOk(await store.claim('c', 1000), 'the live one kept')
})

test('without a reachable Redis, the shared store still refuses replays to this instance', async (t) => {
  const port = await freePort()
  const redis = new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false })
  t.teardown(() => redis.disconnect())
  const clock = testClock()
  const store = new RedisReplayStore(redis, new MemoryReplayStore(clock))
  t.ok(await store.claim('proof-1', 60_000), 'first use')
  t.notOk(await store.claim('proof-1', 60_000), 'replay refused from memory')
})

const redisUrl = process.env.TEST_REDIS_URL
if (redisUrl) {
  test('RedisReplayStore: a proof claimed by one instance is refused by another', async (t) => {
    const clients = [new Redis(redisUrl), new Redis(redisUrl)]
    t.teardown(() => Promise.all(clients.map(async (client) => client.quit())))
    await Promise.all(clients.map(async (client) => client.ping()))
    const clock = testClock()
    const [a, b] = clients.map((client) => new RedisReplayStore(client, new MemoryReplayStore(clock)))
    const key = `test-${Math.random()}`
    const claims = await Promise.all([a!.claim(key, 5000), b!.claim(key, 5000)])
    t.same(claims.sort(), [false, true], 'exactly one instance wins a concurrent claim')
    t.notOk(await b!.claim(key, 5000))
    t.ok(await clients[0]!.pttl(`auth-server:dpop-jti:${key}`) > 0, 'the entry expires by itself')
  })
}
