// The keys access tokens are signed and verified with. Each key has a `kid` and exactly one algorithm:
// the verifier looks a token's kid up in this set only (never in the token's jku, x5u or jwk headers)
// and accepts only that key's algorithm, so a token cannot choose how it is checked.
//
//   JWT_SECRET alone          HS256 with the secret; nothing is published.
//   JWT_PRIVATE_KEY (PEM)     Ed25519 → EdDSA, P-256 → ES256; the public half is served as a JWK.
//   JWT_PREVIOUS_PUBLIC_KEYS  public keys that signed earlier tokens: still accepted (and published)
//                             until those tokens expire, which is how keys are rotated.
import { createHash, createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'

export type SigningAlgorithm = 'HS256' | 'EdDSA' | 'ES256'

export interface VerificationKey {
  kid: string
  alg: SigningAlgorithm
  /** What @fastify/jwt verifies with: the secret (HS256) or the public key as PEM. */
  verifyWith: string
  /** The public JWK, for /.well-known/jwks.json; absent for the HMAC secret. */
  jwk?: JsonWebKey & { kid: string, alg: SigningAlgorithm, use: 'sig' }
}

export interface SigningKey extends VerificationKey {
  /** What @fastify/jwt signs with: the secret (HS256) or the private key as PEM. */
  signWith: string
}

export interface KeySet {
  current: SigningKey
  previous: VerificationKey[]
}

export class KeyError extends Error {
  constructor (readonly variable: string, problem: string) {
    super(problem)
  }
}

/** A PEM given inline (literal "\n" escapes allowed, as env files often need) or as a file path. */
function readPem (variable: string, value: string): string {
  const text = value.includes('-----BEGIN') ? value : readPemFile(variable, value)
  return text.replace(/\\n/g, '\n').trim()
}

function readPemFile (variable: string, path: string): string {
  try {
    return readFileSync(path.trim(), 'utf8')
  } catch {
    throw new KeyError(variable, 'must be a PEM key, or the path of a readable PEM file')
  }
}

function algorithmOf (variable: string, key: KeyObject): SigningAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  throw new KeyError(variable, 'must be an Ed25519 or P-256 (prime256v1) key')
}

/** RFC 7638 JWK thumbprint: the kid names the key and changes with it. */
function thumbprint (jwk: JsonWebKey): string {
  const members = jwk.kty === 'OKP' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

function verificationKey (variable: string, publicKey: KeyObject): VerificationKey {
  const alg = algorithmOf(variable, publicKey)
  const exported = publicKey.export({ format: 'jwk' })
  const kid = thumbprint(exported)
  const { kty, crv, x, y } = exported
  return {
    kid,
    alg,
    verifyWith: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    jwk: { kty, crv, x, ...(y === undefined ? {} : { y }), kid, alg, use: 'sig' }
  }
}

export function buildKeySet (options: { secret: string, privateKey?: string | undefined, previousPublicKeys?: string | undefined }): KeySet {
  const previous: VerificationKey[] = []
  if (options.previousPublicKeys !== undefined) {
    const pems = readPem('JWT_PREVIOUS_PUBLIC_KEYS', options.previousPublicKeys).match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? []
    if (pems.length === 0) throw new KeyError('JWT_PREVIOUS_PUBLIC_KEYS', 'must hold one or more PEM public keys')
    for (const pem of pems) {
      let key: KeyObject
      try {
        key = createPublicKey(pem)
      } catch {
        throw new KeyError('JWT_PREVIOUS_PUBLIC_KEYS', 'holds a PEM block that is not a public key')
      }
      previous.push(verificationKey('JWT_PREVIOUS_PUBLIC_KEYS', key))
    }
  }
  if (options.privateKey === undefined) {
    // HS256: the kid is derived from the secret, saying nothing usable about it.
    const kid = createHash('sha256').update(`kid:${options.secret}`).digest('base64url').slice(0, 16)
    return { current: { kid, alg: 'HS256', signWith: options.secret, verifyWith: options.secret }, previous }
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(readPem('JWT_PRIVATE_KEY', options.privateKey))
  } catch (error) {
    if (error instanceof KeyError) throw error
    throw new KeyError('JWT_PRIVATE_KEY', 'is not a PEM private key')
  }
  const current = verificationKey('JWT_PRIVATE_KEY', createPublicKey(privateKey))
  return {
    current: { ...current, signWith: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() },
    previous: previous.filter((key) => key.kid !== current.kid)
  }
}

/** The JSON Web Key Set to publish: public keys only, never a secret. */
export function publishedKeys (keys: KeySet): { keys: NonNullable<VerificationKey['jwk']>[] } {
  return { keys: [keys.current, ...keys.previous].flatMap((key) => key.jwk === undefined ? [] : [key.jwk]) }
}

/** The kid in a JWT's header, read without trusting anything else in it; undefined if unreadable. */
export function readKid (token: string): string | undefined {
  const end = token.indexOf('.')
  if (end <= 0 || end > 1024) return undefined
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, end), 'base64url').toString('utf8')) as { kid?: unknown }
    return typeof header.kid === 'string' ? header.kid : undefined
  } catch {
    return undefined
  }
}
