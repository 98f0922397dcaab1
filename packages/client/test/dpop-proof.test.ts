// The SDK's DPoP proofs in isolation: made with its own encoders and SHA-256 (no TextEncoder, btoa or
// WebCrypto digest needed), checked by jose and by the resource-server verifier's proof rules.
import { createHash, randomBytes } from 'node:crypto'
import { EmbeddedJWK, calculateJwkThumbprint, generateKeyPair, jwtVerify } from 'jose'
import t from 'tap'
import { createProof, webCryptoKeyProvider } from '../src/index.js'
import { base64url, sha256 } from '../src/index.js'
import { createProofChecker } from '../../verifier/src/dpop.js'

t.test('SHA-256 and base64url agree with node:crypto', async (t) => {
  for (const length of [0, 1, 55, 56, 63, 64, 65, 119, 1000]) {
    const data = randomBytes(length)
    t.equal(base64url(sha256(new Uint8Array(data))), createHash('sha256').update(data).digest('base64url'), `${length} bytes`)
  }
})

t.test('proofs from the WebCrypto provider verify with their embedded key', async (t) => {
  for (const alg of ['ES256', 'EdDSA'] as const) {
    const provider = webCryptoKeyProvider({ alg })
    const keys = await provider.keyPair()
    t.equal(keys.privateKey.extractable, false, `${alg}: the private key cannot be exported`)
    const accessToken = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiLDqSJ9.sig'
    const proof = await createProof(provider, { method: 'post', url: 'https://api.example/orders?x=1#y', accessToken, nonce: 'n-1', iat: Math.floor(Date.now() / 1000) })
    const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [alg] })
    t.match(protectedHeader, { typ: 'dpop+jwt', alg })
    t.notOk('d' in (protectedHeader.jwk as object), 'only the public key travels')
    t.match(payload, { htm: 'POST', htu: 'https://api.example/orders', nonce: 'n-1', ath: createHash('sha256').update(accessToken).digest('base64url') })
    t.type(payload.jti, 'string')
    const checker = createProofChecker({ nonce: { current: () => 'n-1', isValid: (nonce) => nonce === 'n-1' } })
    const checked = await checker.check(proof, { method: 'POST', url: 'https://api.example/orders', accessToken })
    t.equal(checked.jkt, await calculateJwkThumbprint(await provider.publicJwk(), 'sha256'), 'the verifier accepts it and derives the same thumbprint')
    const again = await createProof(provider, { method: 'POST', url: 'https://api.example/orders', iat: Math.floor(Date.now() / 1000) })
    t.not(JSON.parse(Buffer.from(again.split('.')[1]!, 'base64url').toString()).jti, payload.jti, 'a new jti each time')
  }
})

t.test('a custom key provider (the shape a native keystore module fits)', async (t) => {
  const { privateKey, publicKey } = await generateKeyPair('ES256')
  let signed = 0
  const provider = {
    alg: 'ES256',
    publicJwk: async () => { const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', publicKey); return { kty, crv, x, y } },
    // The SDK hands over bytes it encoded itself (never a SharedArrayBuffer view), as src/index.ts's own signer assumes.
    sign: async (data: Uint8Array) => { signed++; return new Uint8Array(await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data as BufferSource)) }
  }
  const proof = await createProof(provider, { method: 'GET', url: 'https://api.example/', iat: Math.floor(Date.now() / 1000) })
  await t.resolves(jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] }))
  t.equal(signed, 1)
  const broken = await createProof({ ...provider, sign: async () => new Uint8Array(64) }, { method: 'GET', url: 'https://api.example/', iat: 0 })
  await t.rejects(jwtVerify(broken, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] }), 'a bad signature is not a proof (the test can fail)')
})
