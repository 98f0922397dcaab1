// `npm run keys:generate [-- --type ed25519|p256] [--out DIR]`: writes a new signing key pair
// (jwt-private-key.pem, jwt-public-key.pem; default folder ./data) and prints how to rotate to it.
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { buildKeySet } from '../auth/signing-keys.js'

const { values } = parseArgs({ options: { type: { type: 'string', default: 'ed25519' }, out: { type: 'string', default: 'data' } } })
if (values.type !== 'ed25519' && values.type !== 'p256') {
  console.error('--type must be ed25519 or p256')
  process.exit(1)
}
const pair = values.type === 'ed25519'
  ? generateKeyPairSync('ed25519')
  : generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
const privatePem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
const publicPem = pair.publicKey.export({ format: 'pem', type: 'spki' }).toString()
const dir = resolve(values.out)
mkdirSync(dir, { recursive: true })
const privateFile = join(dir, 'jwt-private-key.pem')
const publicFile = join(dir, 'jwt-public-key.pem')
for (const file of [privateFile, publicFile]) {
  if (existsSync(file)) {
    console.error(`${file} exists; move it away first (it may be the key in use)`)
    process.exit(1)
  }
}
writeFileSync(privateFile, privatePem, { mode: 0o600 })
writeFileSync(publicFile, publicPem)
const { current } = buildKeySet({ secret: 'unused-for-asymmetric-keys-0123456789', privateKey: privatePem })
console.log(`Wrote ${privateFile} and ${publicFile} (${current.alg}, kid ${current.kid}).
To rotate: set JWT_PRIVATE_KEY=${privateFile} and add the old public key to JWT_PREVIOUS_PUBLIC_KEYS;
tokens signed by the old key stay valid until they expire (ACCESS_TOKEN_TTL), then drop it.`)
