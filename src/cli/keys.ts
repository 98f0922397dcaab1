// `auth-server keys generate`: a new signing key pair (jwt-private-key.pem, jwt-public-key.pem) in a
// folder, never over an existing key (it may be the one in use).
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { buildKeySet } from '../auth/signing-keys.js'

export type KeyType = 'ed25519' | 'p256'
export const KEY_TYPES: KeyType[] = ['ed25519', 'p256']

export class KeyFileExists extends Error {}

export interface GeneratedKeys { privateFile: string, publicFile: string, alg: string, kid: string }

export function generateKeyFiles (type: KeyType, out: string): GeneratedKeys {
  const dir = resolve(out)
  const privateFile = join(dir, 'jwt-private-key.pem')
  const publicFile = join(dir, 'jwt-public-key.pem')
  for (const file of [privateFile, publicFile]) {
    if (existsSync(file)) throw new KeyFileExists(`${file} exists; move it away first (it may be the key in use)`)
  }
  const pair = type === 'ed25519'
    ? generateKeyPairSync('ed25519')
    : generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const privatePem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const publicPem = pair.publicKey.export({ format: 'pem', type: 'spki' }).toString()
  mkdirSync(dir, { recursive: true })
  // 'wx': fails rather than overwrite a key written meanwhile.
  writeFileSync(privateFile, privatePem, { mode: 0o600, flag: 'wx' })
  writeFileSync(publicFile, publicPem, { flag: 'wx' })
  const { current } = buildKeySet({ secret: 'unused-for-asymmetric-keys-0123456789', privateKey: privatePem })
  return { privateFile, publicFile, alg: current.alg, kid: current.kid }
}

/** What to do with a new key pair, for people. */
export function rotationAdvice (keys: GeneratedKeys): string {
  return `Wrote ${keys.privateFile} and ${keys.publicFile} (${keys.alg}, kid ${keys.kid}).
To rotate: set JWT_PRIVATE_KEY=${keys.privateFile} and add the old public key to JWT_PREVIOUS_PUBLIC_KEYS;
tokens signed by the old key stay valid until they expire (ACCESS_TOKEN_TTL), then drop it.`
}
