// Generates the Prisma client for both providers (src/generated/sqlite and src/generated/postgresql).
// Runs after `npm install`.
//
// `prisma generate` needs no schema engine, but Prisma 7 checks that the engine binary exists and tries
// to download it otherwise, which fails on machines without access to Prisma's binary host. Pointing
// PRISMA_SCHEMA_ENGINE_BINARY at any existing file satisfies the check; generate never executes it.
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const prismaCli = require.resolve('prisma/build/index.js')
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
  CHECKPOINT_DISABLE: '1',
  PRISMA_HIDE_UPDATE_MESSAGE: '1'
}
for (const provider of ['sqlite', 'postgresql']) {
  execFileSync(process.execPath, [prismaCli, 'generate', '--schema', `prisma/${provider}`], { stdio: 'inherit', env })
}
