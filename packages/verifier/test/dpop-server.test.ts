// The verifier with real DPoP-bound tokens from the real auth server (buildApp, listening on a free
// port, Ed25519-signed tokens, its revocation feed): a session logged in with a proof gives a token
// with cnf.jkt that a resource server (the Fastify plugin) accepts only with a proof by the same key;
// the attack battery of the server's own protected routes, where it applies to a resource server;
// an unbound session's token keeps working as Bearer; a logout reaches the resource server.
import { generateKeyPairSync } from 'node:crypto'
import Fastify from 'fastify'
import { decodeJwt } from 'jose'
import t from 'tap'
import { buildApp } from '../../../src/app.js'
import { PASSWORD, freshDatabaseUrl, testConfig, testDatabases } from '../../../test/helpers.js'
import { freePort } from '../../../test/network-support.js'
import { createVerifier } from '../src/index.js'
import verifierPlugin from '../src/fastify.js'
import { ath, hmacProof, proof, proofKey, unsignedProof, type ProofKey } from './proofs.js'

const RS = { clientId: 'orders', clientSecret: 'orders-feed-secret-0123456789' }
const RS_URL = 'https://orders.example'

async function authServer (t: { teardown: (fn: () => unknown) => void }) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const [database] = testDatabases()
  const config = testConfig(await freshDatabaseUrl(t, database!), {
    JWT_PRIVATE_KEY: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    JWT_ISSUER: base,
    PUBLIC_URL: base,
    RESOURCE_SERVERS: `${RS.clientId}:${RS.clientSecret}`
  })
  const app = await buildApp(config)
  await app.listen({ host: '127.0.0.1', port })
  t.teardown(() => app.close())
  return base
}

async function post (url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json().catch(() => null) as any }
}

t.test('real DPoP-bound tokens at a resource server', async (t) => {
  const base = await authServer(t)
  const username = `rs${Math.random().toString(36).slice(2, 10)}`
  t.equal((await post(`${base}/auth/register`, { username, password: PASSWORD })).status, 201)
  const key = await proofKey('ES256')
  const login = async (withKey?: ProofKey) => post(`${base}/auth/login`, { username, password: PASSWORD },
    withKey === undefined ? {} : { dpop: await proof(withKey, { htm: 'POST', htu: `${base}/auth/login` }) })
  const bound = await login(key)
  t.equal(bound.status, 200, 'login with a proof')
  t.equal(bound.body.tokenType, 'DPoP')
  t.equal(decodeJwt(bound.body.accessToken).cnf && (decodeJwt(bound.body.accessToken).cnf as { jkt: string }).jkt, key.jkt, 'the access token is bound to the key')
  const plain = await login()
  t.equal(plain.body.tokenType, 'Bearer', 'login without a proof: an unbound session')

  const verifier = createVerifier({ issuer: base, audience: 'auth-server-api', ...RS, reconnectDelayMs: { min: 50, max: 200 } })
  const rs = Fastify()
  await rs.register(verifierPlugin, { verifier, publicUrl: RS_URL })
  rs.get('/orders', async (request) => ({ user: request.auth?.sub, jkt: request.auth?.cnf?.jkt ?? null }))
  rs.post('/orders', async (request) => ({ user: request.auth?.sub }))
  t.teardown(() => rs.close())
  await verifier.ready()

  const token = bound.body.accessToken as string
  const htu = `${RS_URL}/orders`
  const call = async (authorization: string, dpop?: string | string[], method: 'GET' | 'POST' = 'GET') => {
    const response = await rs.inject({ method, url: '/orders?page=1', headers: { authorization, ...(dpop === undefined ? {} : { dpop }) } })
    return { status: response.statusCode, code: response.json().code as string | undefined, challenge: response.headers['www-authenticate'], body: response.json() }
  }
  const good = () => proof(key, { htm: 'GET', htu, accessToken: token })

  let answer = await call(`DPoP ${token}`, await good())
  t.equal(answer.status, 200, 'the bound token with a proof by its key')
  t.same(answer.body, { user: bound.body.user.id, jkt: key.jkt })
  t.equal((await call(`DPoP ${token}`, await proof(key, { htm: 'POST', htu, accessToken: token }), 'POST')).status, 200, 'POST with a POST proof')
  t.equal((await call(`Bearer ${plain.body.accessToken}`)).status, 200, 'the unbound token as Bearer')

  const replayed = await good()
  t.equal((await call(`DPoP ${token}`, replayed)).status, 200)
  const now = Math.floor(Date.now() / 1000)
  const other = await proofKey('EdDSA')
  const battery: Record<string, Promise<string> | string> = {
    'replayed proof': replayed,
    'wrong htu': proof(key, { htm: 'GET', htu: `${base}/orders`, accessToken: token }),
    'wrong htm': proof(key, { htm: 'DELETE', htu, accessToken: token }),
    'stale iat': proof(key, { htm: 'GET', htu, accessToken: token, iat: now - 300 }),
    'future iat': proof(key, { htm: 'GET', htu, accessToken: token, iat: now + 300 }),
    'proof signed by another key': proof(other, { htm: 'GET', htu, accessToken: token }),
    'jwk of the key, signature by another': proof(key, { htm: 'GET', htu, accessToken: token, signWith: (await proofKey('ES256')).privateKey }),
    'alg none': unsignedProof(key, { htm: 'GET', htu, ath: ath(token) }),
    'HMAC proof': hmacProof({ htm: 'GET', htu, ath: ath(token) }),
    'private key in jwk': proof(key, { htm: 'GET', htu, accessToken: token, header: { jwk: key.privateJwk } }),
    'missing ath': proof(key, { htm: 'GET', htu }),
    'wrong ath (another token\'s)': proof(key, { htm: 'GET', htu, accessToken: plain.body.accessToken })
  }
  for (const [attack, made] of Object.entries(battery)) {
    answer = await call(`DPoP ${token}`, await made)
    t.match(answer, { status: 401, code: 'AUTH_DPOP_INVALID', challenge: /^DPoP error="invalid_dpop_proof"/ }, attack)
  }
  t.match(await call(`DPoP ${token}`), { status: 401, code: 'AUTH_DPOP_INVALID' }, 'no proof')
  t.match(await call(`DPoP ${token}`, [await good(), await good()]), { status: 401, code: 'AUTH_DPOP_INVALID' }, 'two proofs')
  t.match(await call(`Bearer ${token}`), { status: 401, code: 'AUTH_DPOP_INVALID', challenge: /^DPoP error="invalid_token"/ }, 'the bound token as Bearer')
  t.match(await call(`DPoP ${plain.body.accessToken}`, await proof(key, { htm: 'GET', htu, accessToken: plain.body.accessToken })), { status: 401, code: 'AUTH_DPOP_INVALID', challenge: /^DPoP error="invalid_token"/ }, 'the unbound token as DPoP')

  // The refreshed token of the bound session is bound to the same key.
  const refreshed = await post(`${base}/auth/refresh`, { refreshToken: bound.body.refreshToken }, { dpop: await proof(key, { htm: 'POST', htu: `${base}/auth/refresh` }) })
  t.equal(refreshed.status, 200, 'refresh with a proof by the key')
  t.equal(refreshed.body.tokenType, 'DPoP')
  const next = refreshed.body.accessToken as string
  t.equal((await call(`DPoP ${next}`, await proof(key, { htm: 'GET', htu, accessToken: next }))).status, 200, 'the refreshed token with a proof')
  t.match(await call(`DPoP ${next}`, await proof(other, { htm: 'GET', htu, accessToken: next })), { status: 401, code: 'AUTH_DPOP_INVALID' }, '… and not with another key')

  // A logout at the auth server reaches the resource server through the feed, bound tokens included.
  t.equal((await post(`${base}/auth/logout`, { refreshToken: refreshed.body.refreshToken })).status, 204)
  let code: string | undefined
  for (let i = 0; i < 100 && code !== 'AUTH_TOKEN_REVOKED'; i++) {
    code = (await call(`DPoP ${next}`, await proof(key, { htm: 'GET', htu, accessToken: next }))).code
    if (code !== 'AUTH_TOKEN_REVOKED') await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(code, 'AUTH_TOKEN_REVOKED', 'the logged-out bound token is refused as revoked')
})
