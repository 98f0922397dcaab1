// DPoP proofs made as a client makes them (jose, WebCrypto keys), and every way of making them wrong.
import { createHash, randomUUID } from 'node:crypto'
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose'

export interface ProofKey {
  alg: 'ES256' | 'ES384' | 'EdDSA' | 'PS256'
  privateKey: CryptoKey
  publicJwk: JWK
  privateJwk: JWK
  jkt: string
}

export async function proofKey (alg: ProofKey['alg'] = 'ES256'): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const publicJwk = await exportJWK(publicKey)
  return { alg, privateKey, publicJwk, privateJwk: await exportJWK(privateKey), jkt: await calculateJwkThumbprint(publicJwk, 'sha256') }
}

export const ath = (token: string) => createHash('sha256').update(token, 'ascii').digest('base64url')

export interface ProofClaims {
  htm: string
  htu: string
  accessToken?: string
  nonce?: string
  /** Seconds since the epoch; default now. */
  iat?: number
  jti?: string
  /** Overrides: what a broken or malicious client might send. */
  header?: Record<string, unknown>
  claims?: Record<string, unknown>
  /** Sign with this key instead (the header's jwk stays the proof key's). */
  signWith?: CryptoKey
}

export async function proof (key: ProofKey, options: ProofClaims): Promise<string> {
  const payload: Record<string, unknown> = {
    jti: options.jti ?? randomUUID(),
    htm: options.htm,
    htu: options.htu,
    iat: options.iat ?? Math.floor(Date.now() / 1000),
    ...(options.accessToken === undefined ? {} : { ath: ath(options.accessToken) }),
    ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
    ...options.claims
  }
  return new SignJWT(payload)
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk, ...options.header } as never)
    .sign(options.signWith ?? key.privateKey)
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** An unsigned proof (`alg: none`). */
export function unsignedProof (key: ProofKey, payload: Record<string, unknown>): string {
  return `${b64({ typ: 'dpop+jwt', alg: 'none', jwk: key.publicJwk })}.${b64({ jti: randomUUID(), iat: Math.floor(Date.now() / 1000), ...payload })}.`
}

/** A proof MACed with a secret that it carries itself as an `oct` jwk. */
export async function hmacProof (payload: Record<string, unknown>): Promise<string> {
  const secret = new TextEncoder().encode('a shared secret of thirty-two b!')
  return new SignJWT({ jti: randomUUID(), iat: Math.floor(Date.now() / 1000), ...payload })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'HS256', jwk: { kty: 'oct', k: Buffer.from(secret).toString('base64url') } } as never)
    .sign(secret)
}

/** An ES256 proof with exactly this header, signed without jose's header checks. */
export async function rawEs256Proof (key: ProofKey, header: Record<string, unknown>, payload: Record<string, unknown>): Promise<string> {
  const input = `${b64(header)}.${b64(payload)}`
  const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, new TextEncoder().encode(input))
  return `${input}.${Buffer.from(signature).toString('base64url')}`
}
