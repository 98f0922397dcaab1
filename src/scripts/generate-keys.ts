// `npm run keys:generate [-- --type ed25519|p256] [--out DIR]`: an alias of `auth-server keys generate`
// (src/cli/keys.ts), kept so that running this file directly still works.
import { runCli } from '../cli/program.js'

process.exit(await runCli(['keys', 'generate', ...process.argv.slice(2)]))
