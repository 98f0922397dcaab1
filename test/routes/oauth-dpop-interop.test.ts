// DPoP with a client library nobody here wrote: oauth4webapi's DPoP handle (its own keys, proofs and
// nonce cache) against the real server over HTTP: the password grant (through its generic token
// endpoint request, as it has no password-grant helper), the refresh grant, the nonce challenge with
// DPOP_NONCE=true, and protected resource requests, to the server's own routes and to a resource
// server using @auth-server/verifier.
import { generateKeyPairSync } from 'node:crypto'
import Fastify from 'fastify'
import { decodeJwt } from 'jose'
import * as oauth from 'oauth4webapi'
import t from 'tap'
import { createVerifier } from '../../packages/verifier/src/index.js'
import verifierPlugin from '../../packages/verifier/src/fastify.js'
import { PASSWORD, register, testApp, testDatabases } from '../helpers.js'
import { freePort } from '../network-support.js'

const RS = { clientId: 'orders-service', clientSecret: 'orders-secret-0123456789' }

const insecure = { [oauth.allowInsecureRequests]: true } as const

async function listeningApp (t: Parameters<typeof testApp>[0], database: 'sqlite' | 'postgresql', env: Record<string, string> = {}) {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  // Ed25519-signed tokens, so a resource server can check them from the JWKS.
  const JWT_PRIVATE_KEY = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const app = await testApp(t, { database, env: { PUBLIC_URL: base, JWT_ISSUER: base, JWT_PRIVATE_KEY, RESOURCE_SERVERS: `${RS.clientId}:${RS.clientSecret}`, ...env } })
  await app.listen({ host: '127.0.0.1', port })
  return { app, base }
}

/** Runs `request` and, on a use_dpop_nonce answer, once more (the handle has cached the nonce), as oauth4webapi's docs show. */
async function withNonceRetry<T> (attempt: () => Promise<T>, seen: { challenges: number }): Promise<T> {
  try {
    return await attempt()
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error
    seen.challenges++
    return attempt()
  }
}

for (const database of testDatabases()) {
  for (const nonce of [false, true]) {
    t.test(`oauth4webapi DPoP: password and refresh grants, protected resources (${database}, DPOP_NONCE=${nonce})`, async (t) => {
      const { app, base } = await listeningApp(t, database, nonce ? { DPOP_NONCE: 'true' } : {})
      const { username } = await register(app)
      const issuer = new URL(base)
      const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...insecure }))
      t.ok(as.dpop_signing_alg_values_supported?.includes('ES256'), 'the metadata lists the proof algorithms')
      const client: oauth.Client = { client_id: 'mobile' }
      const keyPair = await oauth.generateKeyPair('ES256')
      t.equal(keyPair.privateKey.extractable, false, 'oauth4webapi\'s private key is not extractable')
      const DPoP = oauth.DPoP(client, keyPair)
      const seen = { challenges: 0 }

      const grant = await withNonceRetry(async () => oauth.processGenericTokenEndpointResponse(as, client,
        await oauth.genericTokenEndpointRequest(as, client, oauth.None(), 'password', { username, password: PASSWORD }, { DPoP, ...insecure })), seen)
      t.equal(grant.token_type, 'dpop', 'password grant: a DPoP token')
      t.equal(seen.challenges, nonce ? 1 : 0, nonce ? 'one use_dpop_nonce challenge, then accepted' : 'no nonce asked for')
      t.ok(grant.refresh_token)

      const refreshed = await withNonceRetry(async () => oauth.processRefreshTokenResponse(as, client,
        await oauth.refreshTokenGrantRequest(as, client, oauth.None(), grant.refresh_token!, { DPoP, ...insecure })), seen)
      t.equal(refreshed.token_type, 'dpop', 'refresh grant with a proof by the same key')
      t.not(refreshed.refresh_token, grant.refresh_token, 'rotated')

      // Another key (the refresh token copied to another device) is refused, and nothing rotates.
      const thief = oauth.DPoP(client, await oauth.generateKeyPair('ES256'))
      const stolen = await withNonceRetry(async () => oauth.processRefreshTokenResponse(as, client,
        await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshed.refresh_token!, { DPoP: thief, ...insecure })), { challenges: 0 }).catch((error: unknown) => error)
      t.ok(stolen instanceof oauth.ResponseBodyError, 'a proof by another key is refused')
      t.equal((stolen as oauth.ResponseBodyError).error, 'invalid_dpop_proof')

      // The server's own protected route, then a resource server with the verifier.
      let response = await withNonceRetry(async () => oauth.protectedResourceRequest(refreshed.access_token, 'GET', new URL(`${base}/orders`), undefined, undefined, { DPoP, ...insecure }), seen)
      t.equal(response.status, 200, 'GET /orders with oauth4webapi\'s proof')
      response = await withNonceRetry(async () => oauth.protectedResourceRequest(refreshed.access_token, 'POST', new URL(`${base}/orders`),
        new Headers({ 'content-type': 'application/json' }), JSON.stringify({ item: 'tea', quantity: 2 }), { DPoP, ...insecure }), seen)
      t.equal(response.status, 201, 'POST /orders too')
      const bearer = await fetch(`${base}/orders`, { headers: { authorization: `Bearer ${refreshed.access_token}` } })
      t.equal(bearer.status, 401, 'the same token as Bearer is refused')

      const verifier = createVerifier({ issuer: base, audience: 'auth-server-api', checkRevocations: false, jwksUri: `${base}/.well-known/jwks.json` })
      const rsPort = await freePort()
      const rs = Fastify()
      await rs.register(verifierPlugin, { verifier, publicUrl: `http://127.0.0.1:${rsPort}` })
      rs.get('/things', async (request) => ({ sub: request.auth?.sub }))
      await rs.listen({ host: '127.0.0.1', port: rsPort })
      t.teardown(() => rs.close())
      response = await oauth.protectedResourceRequest(refreshed.access_token, 'GET', new URL(`http://127.0.0.1:${rsPort}/things?x=1`), undefined, undefined, { DPoP, ...insecure })
      t.equal(response.status, 200, 'a resource server with @auth-server/verifier accepts oauth4webapi\'s proof')
      t.same(await response.json(), { sub: decodeJwt(refreshed.access_token).sub })
    })
  }
}
