// DPoP proofs for tests (RFC 9449 §4.2), made with jose the way a client makes them, plus the
// malformed ones an attacker would try. PUBLIC_URL of the test config is http://127.0.0.1:3000.
import { createHash, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { type CryptoKey, type JWK, SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose'

export const TEST_PUBLIC_URL = 'http://127.0.0.1:3000'

export interface ProofKey {
  alg: string
  privateKey: CryptoKey
  publicJwk: JWK
  privateJwk: JWK
  thumbprint: string
}

export async function dpopKey (alg: 'ES256' | 'ES384' | 'EdDSA' | 'RS256' = 'ES256'): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const publicJwk = await exportJWK(publicKey)
  return { alg, privateKey, publicJwk, privateJwk: await exportJWK(privateKey), thumbprint: await calculateJwkThumbprint(publicJwk, 'sha256') }
}

export interface ProofOptions {
  htm?: string
  /** A path (PUBLIC_URL is put before it) or an absolute URL. */
  htu?: string
  /** Seconds; default now (or the test clock's now, via `now`). */
  iat?: number
  now?: number
  jti?: string
  /** The access token the proof goes with: ath is its hash. */
  accessToken?: string
  ath?: string
  nonce?: string
  /** Replaces or adds protected-header members (typ, jwk, …); undefined removes one. */
  header?: Record<string, unknown>
  /** Replaces or adds claims; undefined removes one. */
  claims?: Record<string, unknown>
}

export const ath = (accessToken: string) => createHash('sha256').update(accessToken).digest('base64url')

export async function makeProof (key: ProofKey, options: ProofOptions = {}): Promise<string> {
  const htu = options.htu === undefined ? `${TEST_PUBLIC_URL}/auth/login` : options.htu.startsWith('/') ? TEST_PUBLIC_URL + options.htu : options.htu
  const claims: Record<string, unknown> = {
    jti: options.jti ?? randomUUID(),
    htm: options.htm ?? 'POST',
    htu,
    iat: options.iat ?? Math.floor((options.now ?? Date.now()) / 1000),
    ...(options.accessToken === undefined ? {} : { ath: ath(options.accessToken) }),
    ...(options.ath === undefined ? {} : { ath: options.ath }),
    ...(options.nonce === undefined ? {} : { nonce: options.nonce }),
    ...options.claims
  }
  const header: Record<string, unknown> = { typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk, ...options.header }
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name]
  for (const [name, value] of Object.entries(header)) if (value === undefined) delete header[name]
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key.privateKey)
}

/** A JWS with alg "none": header and claims, an empty signature. */
export function unsignedProof (key: ProofKey, claims: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${encode({ typ: 'dpop+jwt', alg: 'none', jwk: key.publicJwk })}.${encode(claims)}.`
}

/** An HMAC "proof": signed with a shared secret, carrying an oct jwk (or the given one). */
export async function hmacProof (claims: Record<string, unknown>, jwk: Record<string, unknown> = { kty: 'oct', k: Buffer.from('0123456789abcdef0123456789abcdef').toString('base64url') }): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ typ: 'dpop+jwt', alg: 'HS256', jwk } as { alg: string }).sign(Buffer.from('0123456789abcdef0123456789abcdef'))
}

export function standardClaims (path: string, now = Date.now()) {
  return { jti: randomUUID(), htm: 'POST', htu: TEST_PUBLIC_URL + path, iat: Math.floor(now / 1000) }
}

export async function dpopLogin (app: FastifyInstance, key: ProofKey, username: string, password: string, extra: Record<string, unknown> = {}, proofOptions: ProofOptions = {}) {
  return app.inject({
    method: 'POST',
    url: '/auth/login',
    headers: { dpop: await makeProof(key, { htu: '/auth/login', ...proofOptions }) },
    payload: { username, password, ...extra }
  })
}

export async function dpopRefresh (app: FastifyInstance, key: ProofKey | null, refreshToken: string, proofOptions: ProofOptions = {}) {
  return app.inject({
    method: 'POST',
    url: '/auth/refresh',
    headers: key === null ? {} : { dpop: await makeProof(key, { htu: '/auth/refresh', ...proofOptions }) },
    payload: { refreshToken }
  })
}

/** A protected request with `Authorization: DPoP` and a proof for it. */
export async function dpopGet (app: FastifyInstance, key: ProofKey, accessToken: string, url = '/auth/me', proofOptions: ProofOptions = {}) {
  return app.inject({
    method: 'GET',
    url,
    headers: { authorization: `DPoP ${accessToken}`, dpop: await makeProof(key, { htm: 'GET', htu: url.split('?')[0], accessToken, ...proofOptions }) }
  })
}

/** The claims of a JWT, unverified (tests read what the server put in). */
export function claimsOf (jwt: string): Record<string, any> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'))
}
