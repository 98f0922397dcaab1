// Shared helpers of the security suites: forging JWTs by hand (no JWT library, so nothing is checked
// for us), the app modes (HS256, EdDSA, ES256), and the two assertions every attack repeats: the
// contract's rejection, and "nothing in the database changed".
import { type KeyObject, createHmac, generateKeyPairSync, sign } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { TEST_SECRET, json } from '../helpers.js'

/** The few tap assertions the helpers use (a tap test object satisfies it). */
export interface Asserts {
  equal: (found: any, wanted: any, ...message: [] | [string]) => unknown
  same: (found: any, wanted: any, ...message: [] | [string]) => unknown
  ok: (value: any, ...message: [] | [string]) => unknown
}

export const b64url = (value: string | Buffer | object): string =>
  Buffer.from(typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value)).toString('base64url')

export function decodeSegment (segment: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
}

export function decodeJwt (token: string): { header: Record<string, unknown>, claims: Record<string, unknown> } {
  const [header = '', claims = ''] = token.split('.')
  return { header: decodeSegment(header), claims: decodeSegment(claims) }
}

/** Produces the signature segment's bytes for a signing input. */
export type Signer = (input: string) => Buffer

export const hmacSigner = (key: string | Buffer, hash = 'sha256'): Signer => (input) => createHmac(hash, key).update(input).digest()
export const ed25519Signer = (key: KeyObject): Signer => (input) => sign(null, Buffer.from(input), key)
export const es256Signer = (key: KeyObject): Signer => (input) => sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })

/** A JWT from a header and claims, encoded and signed exactly as given. */
export function forge (header: object, claims: object, signer: Signer): string {
  const input = `${b64url(header)}.${b64url(claims)}`
  return `${input}.${signer(input).toString('base64url')}`
}

/** A copy of `token` with header fields or claims changed (undefined removes one), signed again by `signer`. */
export function resign (token: string, signer: Signer, changes: { header?: Record<string, unknown>, claims?: Record<string, unknown> } = {}): string {
  const { header, claims } = decodeJwt(token)
  const merged = (base: Record<string, unknown>, patch: Record<string, unknown> = {}) => {
    const result = { ...base, ...patch }
    for (const [key, value] of Object.entries(patch)) if (value === undefined) delete result[key]
    return result
  }
  return forge(merged(header, changes.header), merged(claims, changes.claims), signer)
}

export const nowSeconds = () => Math.floor(Date.now() / 1000)

export interface KeyMode {
  name: 'HS256' | 'EdDSA' | 'ES256'
  env: Record<string, string>
  /** Signs exactly as the server's own key does. */
  signer: Signer
  privateKey?: KeyObject
  publicKey?: KeyObject
}

export function ed25519Pair () {
  return generateKeyPairSync('ed25519')
}

export function p256Pair () {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
}

export const privatePem = (key: KeyObject) => key.export({ format: 'pem', type: 'pkcs8' }).toString()
export const publicPem = (key: KeyObject) => key.export({ format: 'pem', type: 'spki' }).toString()

/** The three ways the server can sign: the test secret, a fresh Ed25519 key, a fresh P-256 key. */
export function keyModes (): KeyMode[] {
  const ed = ed25519Pair()
  const ec = p256Pair()
  return [
    { name: 'HS256', env: {}, signer: hmacSigner(TEST_SECRET) },
    { name: 'EdDSA', env: { JWT_PRIVATE_KEY: privatePem(ed.privateKey) }, signer: ed25519Signer(ed.privateKey), ...ed },
    { name: 'ES256', env: { JWT_PRIVATE_KEY: privatePem(ec.privateKey) }, signer: es256Signer(ec.privateKey), ...ec }
  ]
}

/**
 * Every row of every table, in a stable order: comparing two snapshots shows whether anything at all
 * was written (users, sessions, refresh tokens, revocations, orders).
 */
export async function snapshot (app: FastifyInstance): Promise<string> {
  const { db } = app
  const [users, sessions, refreshTokens, revocationEvents, orders] = await Promise.all([
    db.user.findMany({ orderBy: { id: 'asc' } }),
    db.session.findMany({ orderBy: { id: 'asc' } }),
    db.refreshToken.findMany({ orderBy: { id: 'asc' } }),
    db.revocationEvent.findMany({ orderBy: { seq: 'asc' } }),
    db.order.findMany({ orderBy: { id: 'asc' } })
  ])
  return JSON.stringify({ users, sessions, refreshTokens, revocationEvents, orders })
}
