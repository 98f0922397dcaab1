// `node dist/src/scripts/generate-keys.js [--type ed25519|p256] [--out DIR]`: the same as
// `auth-server keys generate` (src/cli/keys.ts), without loading the rest of the CLI.
import { parseArgs } from 'node:util'
import { KEY_TYPES, type KeyType, generateKeyFiles, rotationAdvice } from '../cli/keys.js'

const { values } = parseArgs({ options: { type: { type: 'string', default: 'ed25519' }, out: { type: 'string', default: 'data' } } })
if (!KEY_TYPES.includes(values.type as KeyType)) {
  console.error(`--type must be one of ${KEY_TYPES.join(', ')}`)
  process.exit(2)
}
try {
  console.log(rotationAdvice(generateKeyFiles(values.type as KeyType, values.out)))
} catch (error) {
  console.error((error as Error).message)
  process.exit(1)
}
