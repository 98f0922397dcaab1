// What the bench needs to know about the server, taken from the server's own built code (dist/, made
// by `npm run build`) rather than copied: the configuration it would load, the names of the variables
// it reads (its settings declaration), its password hasher, and its session domain for the in-process
// refresh ceiling.
// If one of these moves in src/, this file is the one place to follow it.
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(dirname(fileURLToPath(import.meta.url))))
export const distDir = join(root, 'dist', 'src')

function distModule (path) {
  const file = join(distDir, path)
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first (npm run bench does)`)
  return import(file)
}

/** Every environment variable the server reads: the names of its one declaration (src/settings.ts). */
export async function configVariables () {
  const { SETTING_NAMES } = await distModule('settings.js')
  return [...SETTING_NAMES]
}

/** The Config the server will build from `env` (its defaults filled in), e.g. PASSWORD_HASH_CONCURRENCY. */
export async function serverConfig (env, cwd) {
  const { loadConfig } = await distModule('config.js')
  return loadConfig(env, cwd)
}

/** The server's own password hasher (its argon2id parameters, through its limiter), `concurrency` at a time. */
export async function passwordHasher (concurrency = 1) {
  const { PasswordHasher } = await distModule('auth/passwords.js')
  return new PasswordHasher(concurrency)
}

/**
 * The server's session domain, built exactly as the server builds it (buildApp registers the database,
 * Redis and auth plugins, which make the SessionService over the Prisma client), without listening:
 * no HTTP. When src/ gains a factory for the domain objects, call it here instead.
 * Returns { sessions, close }.
 */
export async function buildSessionDomain (config) {
  const { buildApp } = await distModule('app.js')
  const app = await buildApp(config)
  await app.ready()
  return { sessions: app.sessions, close: () => app.close() }
}
