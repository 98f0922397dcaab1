#!/usr/bin/env node
// `npx auth-server <command>` (package.json "bin"): the operator CLI. See src/cli/program.ts.
import { runCli } from './cli/program.js'

try {
  process.loadEnvFile()
} catch {
  // No .env file: the environment alone configures the CLI, as it does the server.
}
process.exit(await runCli(process.argv.slice(2)))
