// The settings are declared once (src/settings.ts). These tests hold the rest to that list: README's
// table and .env.example name exactly the declared settings and are what `npm run settings:docs`
// renders; every declared setting changes the Config (none is declared and then ignored); and no
// refusal of a credential's value repeats that value.
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'
import { README_TABLE_END, README_TABLE_START, renderEnvExample, withReadmeTable } from '../src/settings-docs.js'
import { SETTINGS, SETTING_NAMES, type SettingName } from '../src/settings.js'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const envExample = readFileSync(join(root, '.env.example'), 'utf8')
const SECRET = 'settings-test-secret-0123456789-abcdefghijklmn'

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'auth-settings-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('README\'s settings table names every setting once, and no other', async (t) => {
  const start = readme.indexOf(README_TABLE_START)
  const end = readme.indexOf(README_TABLE_END)
  t.ok(start !== -1 && end > start, 'README.md holds the table between its markers')
  const rows = readme.slice(start, end).split('\n').filter((line) => line.startsWith('| `'))
  const named = rows.map((row) => /^\| `([A-Z0-9_]+)` \|/.exec(row)?.[1])
  t.same(named, SETTING_NAMES, 'one row per declared setting, in the declaration\'s order')
})

t.test('.env.example names every setting once, and no other', async (t) => {
  const named = envExample.split('\n').map((line) => /^(?:# )?([A-Z][A-Z0-9_]*)=/.exec(line)?.[1]).filter((name) => name !== undefined)
  t.same(named, SETTING_NAMES, 'one line per declared setting, in the declaration\'s order')
  // What the file sets must load: copied to .env as it is, it starts a server.
  const assigned = Object.fromEntries(envExample.split('\n').filter((line) => /^[A-Z]/.test(line)).map((line) => line.split(/=(.*)/s).slice(0, 2)))
  const config = loadConfig({ ...assigned, JWT_SECRET: SECRET }, tempDir(t))
  // typebox's schema types do not carry their options; src/settings-docs.ts reads the default the same way.
  t.equal(config.port, (SETTINGS.PORT.schema as { default?: unknown }).default)
})

t.test('README\'s table and .env.example are what `npm run settings:docs` renders', async (t) => {
  t.equal(readme, withReadmeTable(readme), 'README.md is up to date (run npm run settings:docs)')
  t.equal(envExample, renderEnvExample(), '.env.example is up to date (run npm run settings:docs)')
})

t.test('every declared setting changes the Config: none is declared and then ignored', async (t) => {
  const cwd = tempDir(t)
  const { privateKey } = generateKeyPairSync('ed25519')
  const previous = generateKeyPairSync('ed25519').publicKey
  // Examples that name files on an operator's machine; the test hands over the keys themselves.
  const probes: Partial<Record<SettingName, string>> = {
    JWT_PRIVATE_KEY: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    JWT_PREVIOUS_PUBLIC_KEYS: previous.export({ format: 'pem', type: 'spki' }).toString()
  }
  const base = { JWT_SECRET: SECRET }
  const baseline = JSON.stringify(loadConfig(base, cwd))
  for (const name of SETTING_NAMES) {
    const { schema, example } = SETTINGS[name]
    // A machine-dependent default (WORKERS: one per core) may equal the example here: step past it.
    const defaultValue = (schema as { default?: unknown }).default
    const probe = probes[name] ?? (String(defaultValue) === example ? String(Number(example) + 1) : example)
    t.not(probe, String(defaultValue), `${name}: the probe differs from the default`)
    t.not(JSON.stringify(loadConfig({ ...base, [name]: probe }, cwd)), baseline, `${name}=${probe.slice(0, 40)} changes the Config`)
  }
})

t.test('a refused credential is never repeated in the message', async (t) => {
  const cwd = tempDir(t)
  const marker = 'hunter2-do-not-print'
  // A bad value per secret setting: a new secret setting fails here until it has one.
  const bad: Partial<Record<SettingName, string>> = {
    DATABASE_URL: `mysql://auth:${marker}@db.internal/auth`,
    REDIS_URL: `http://:${marker}@cache.internal:6379`,
    JWT_SECRET: marker,
    JWT_PRIVATE_KEY: `-----BEGIN PRIVATE KEY-----\n${marker}\n-----END PRIVATE KEY-----`,
    RESOURCE_SERVERS: `orders:0123456789abcdefghij,bad id:${marker}`
  }
  const secrets = SETTING_NAMES.filter((name) => SETTINGS[name].secret === true)
  t.same(Object.keys(bad).sort(), [...secrets].sort(), 'every secret setting has a bad value here')
  for (const name of secrets) {
    let caught: unknown
    try {
      loadConfig({ JWT_SECRET: SECRET, [name]: bad[name] }, cwd)
    } catch (error) {
      caught = error
    }
    t.ok(caught instanceof ConfigError, `${name}: refused`)
    t.equal((caught as ConfigError | undefined)?.variable, name, `${name}: the message blames ${name}`)
    t.notOk(String((caught as Error | undefined)?.message).includes(marker), `${name}: the message does not repeat the value`)
  }
})
