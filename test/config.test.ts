// loadConfig: the contract's defaults, refusal of bad values with a message naming the variable, and
// the generated development secret that survives a restart.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'

const SECRET = 'config-test-secret-0123456789-abcdefghijklmnop'

function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'auth-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Asserts that loading fails with a ConfigError naming the variable. */
function assertRefused (t: Test, env: Record<string, string>, variable: string, cwd: string) {
  let caught: unknown
  try {
    loadConfig(env, cwd)
  } catch (error) {
    caught = error
  }
  const label = Object.entries(env).filter(([name]) => name === variable || name !== 'JWT_SECRET').map(([name, value]) => `${name}=${value}`).join(' ')
  t.ok(caught instanceof ConfigError, `${label} throws a ConfigError`)
  if (!(caught instanceof ConfigError)) return
  t.equal(caught.variable, variable, `${label} blames ${variable}`)
  t.match(caught.message, variable, `${label}: the message names ${variable}`)
  t.ok(caught.message.length > variable.length + 10, `${label}: the message says what is wrong: ${caught.message}`)
}

t.test('defaults match the contract', async (t) => {
  const cwd = tempDir(t)
  const config = loadConfig({}, cwd)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.port, 3000)
  t.same(config.ttl, { accessToken: 900, refreshIdle: 1_209_600, refreshAbsolute: 2_592_000, reuseGrace: 10 })
  t.same(config.login, { maxFailures: 5, lockWindow: 900 })
  t.equal(config.rateLimitMax, 100)
  t.equal(config.cookieSecure, true)
  t.equal(config.accessTokenQueryParam, false)
  t.equal(config.allowRegistration, true)
  t.equal(config.trustProxy, false)
  t.equal(config.logLevel, 'info')
  t.same(config.allowedOrigins, ['http://127.0.0.1:3000'], 'the public origin alone (PUBLIC_URL defaults to http://HOST:PORT)')
  t.equal(config.redisUrl, undefined)
  t.equal(config.database.provider, 'sqlite')
  t.equal(config.database.url, 'file:./data/auth.db')
  if (config.database.provider === 'sqlite') t.equal(config.database.file, join(cwd, 'data', 'auth.db'), 'resolved against cwd')
  t.type(config.jwt.issuer, 'string')
  t.ok(config.jwt.issuer.length > 0, 'an issuer is set')
  t.type(config.jwt.audience, 'string')
  t.ok(config.jwt.audience.length > 0, 'an audience is set')
})

t.test('empty values count as unset', async (t) => {
  const config = loadConfig({ JWT_SECRET: SECRET, PORT: '', ACCESS_TOKEN_TTL: '', COOKIE_SECURE: '', ALLOWED_ORIGINS: '' }, tempDir(t))
  t.equal(config.port, 3000)
  t.equal(config.ttl.accessToken, 900)
  t.equal(config.cookieSecure, true)
  t.same(config.allowedOrigins, ['http://127.0.0.1:3000'], 'only the public origin (PUBLIC_URL defaults to http://HOST:PORT)')
  t.equal(config.publicUrl, 'http://127.0.0.1:3000')
  t.same(config.resourceServers, [])
})

t.test('good values are taken as given', async (t) => {
  const cwd = tempDir(t)
  const config = loadConfig({
    JWT_SECRET: SECRET,
    HOST: '0.0.0.0',
    PORT: '8080',
    DATABASE_URL: 'postgresql://auth:pw@db.internal:5432/auth?schema=auth_server',
    ACCESS_TOKEN_TTL: '300',
    REFRESH_IDLE_TTL: '3600',
    REFRESH_ABSOLUTE_TTL: '86400',
    REFRESH_REUSE_GRACE: '0',
    ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:5173',
    COOKIE_SECURE: 'false',
    ACCESS_TOKEN_QUERY_PARAM: 'true',
    ALLOW_REGISTRATION: 'false',
    LOGIN_MAX_FAILURES: '3',
    LOGIN_LOCK_WINDOW: '60',
    RATE_LIMIT_MAX: '20',
    REDIS_URL: 'redis://cache.internal:6379',
    TRUST_PROXY: 'true',
    LOG_LEVEL: 'warn',
    WORKERS: '3'
  }, cwd)
  t.equal(config.jwt.secret, SECRET, 'JWT_SECRET is used as given')
  t.equal(config.host, '0.0.0.0')
  t.equal(config.port, 8080)
  t.equal(config.database.provider, 'postgresql')
  if (config.database.provider === 'postgresql') t.equal(config.database.schema, 'auth_server')
  t.same(config.ttl, { accessToken: 300, refreshIdle: 3600, refreshAbsolute: 86_400, reuseGrace: 0 })
  t.same(config.allowedOrigins, ['https://app.example.com', 'http://localhost:5173', 'http://0.0.0.0:8080'])
  t.equal(config.cookieSecure, false)
  t.equal(config.accessTokenQueryParam, true)
  t.equal(config.allowRegistration, false)
  t.same(config.login, { maxFailures: 3, lockWindow: 60 })
  t.equal(config.rateLimitMax, 20)
  t.equal(config.redisUrl, 'redis://cache.internal:6379')
  t.equal(config.trustProxy, true)
  t.equal(config.logLevel, 'warn')
  t.equal(config.workers, 3)
  t.notOk(existsSync(join(cwd, 'data', 'jwt-secret')), 'no secret is generated when one is configured')
})

t.test('bad values throw a ConfigError that names the variable', async (t) => {
  const cwd = tempDir(t)
  const cases: Array<[string, string]> = [
    ['PORT', 'abc'],
    ['PORT', '3000abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['ACCESS_TOKEN_TTL', '-1'],
    ['ACCESS_TOKEN_TTL', '0'],
    ['ACCESS_TOKEN_TTL', 'fifteen minutes'],
    ['REFRESH_IDLE_TTL', '1e6'],
    ['REFRESH_ABSOLUTE_TTL', '-5'],
    ['REFRESH_REUSE_GRACE', '-1'],
    ['COOKIE_SECURE', 'maybe'],
    ['ACCESS_TOKEN_QUERY_PARAM', 'sometimes'],
    ['ALLOW_REGISTRATION', 'perhaps'],
    ['TRUST_PROXY', 'y e s'],
    ['JWT_SECRET', 'short'],
    ['JWT_SECRET', 'a'.repeat(31)],
    ['DATABASE_URL', 'mysql://localhost/auth'],
    ['DATABASE_URL', 'not a url'],
    ['DATABASE_URL', 'file:'],
    ['DATABASE_URL', 'postgresql://user@host:5432/db?schema=bad;schema'],
    ['ALLOWED_ORIGINS', 'not an origin'],
    ['ALLOWED_ORIGINS', '*'],
    ['ALLOWED_ORIGINS', 'https://app.example.com/path'],
    ['ALLOWED_ORIGINS', 'https://ok.example.com,ftp://files.example.com'],
    ['LOG_LEVEL', 'loud'],
    ['DPOP', 'yes'],
    ['DPOP', 'Required'],
    ['DPOP_NONCE', 'sometimes'],
    ['DPOP_PROOF_WINDOW', '0'],
    ['DPOP_PROOF_WINDOW', '601'],
    ['DPOP_PROOF_WINDOW', '1.5'],
    ['LOGIN_MAX_FAILURES', '0'],
    ['LOGIN_LOCK_WINDOW', 'abc'],
    ['RATE_LIMIT_MAX', '0'],
    ['RATE_LIMIT_MAX', 'lots'],
    ['REDIS_URL', 'http://cache.internal:6379'],
    ['PUBLIC_URL', 'auth.example.com'],
    ['PUBLIC_URL', 'ftp://auth.example.com'],
    ['PUBLIC_URL', 'https://auth.example.com/?x=1'],
    ['PUBLIC_URL', 'https://user:pw@auth.example.com'],
    ['RESOURCE_SERVERS', 'orders'],
    ['RESOURCE_SERVERS', 'orders:short'],
    ['RESOURCE_SERVERS', ':0123456789abcdefghij'],
    ['RESOURCE_SERVERS', 'a:0123456789abcdefghij,a:0123456789abcdefghij'],
    ['REVOCATION_STREAM_HEARTBEAT', '16'],
    ['REVOCATION_STREAMS_PER_CLIENT', '0'],
    ['WORKERS', '0'],
    ['WORKERS', '257'],
    ['WORKERS', 'many']
  ]
  for (const [variable, value] of cases) {
    const env: Record<string, string> = { [variable]: value }
    if (variable !== 'JWT_SECRET') env.JWT_SECRET = SECRET
    assertRefused(t, env, variable, cwd)
  }
})

t.test('every lifetime is configurable on its own: an absolute lifetime below the idle default loads', async (t) => {
  const cwd = tempDir(t)
  const short = loadConfig({ JWT_SECRET: SECRET, REFRESH_ABSOLUTE_TTL: '60' }, cwd)
  t.same(short.ttl, { accessToken: 900, refreshIdle: 1_209_600, refreshAbsolute: 60, reuseGrace: 10 })
  const both = loadConfig({ JWT_SECRET: SECRET, REFRESH_IDLE_TTL: '7200', REFRESH_ABSOLUTE_TTL: '3600' }, cwd)
  t.equal(both.ttl.refreshIdle, 7200)
  t.equal(both.ttl.refreshAbsolute, 3600)
})

t.test('JWT_SECRET is used as given: 32 bytes or more of few distinct characters load, with a warning', async (t) => {
  const cwd = tempDir(t)
  for (const secret of ['x'.repeat(40), 'a'.repeat(32), 'ab'.repeat(24), ' '.repeat(48)]) {
    const config = loadConfig({ JWT_SECRET: secret }, cwd)
    t.equal(config.jwt.secret, secret, `${JSON.stringify(secret.slice(0, 4))}… (${secret.length}) is used as given`)
    t.ok(config.warnings.some((warning) => warning.includes('JWT_SECRET')), 'a warning names JWT_SECRET')
    for (const warning of config.warnings) t.notOk(warning.includes(secret), 'the warning does not show the secret')
  }
  t.same(loadConfig({ JWT_SECRET: SECRET }, cwd).warnings, [], 'a varied secret draws no warning')
})

t.test('NODE_ENV=production requires JWT_SECRET', async (t) => {
  const cwd = tempDir(t)
  assertRefused(t, { NODE_ENV: 'production' }, 'JWT_SECRET', cwd)
  t.notOk(existsSync(join(cwd, 'data', 'jwt-secret')), 'no secret was generated')
  const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET }, cwd)
  t.equal(config.jwt.secret, SECRET)
  t.same(config.warnings, [])
})

t.test('outside production a secret is generated once into the data folder', async (t) => {
  const cwd = tempDir(t)
  const first = loadConfig({}, cwd)
  const file = join(cwd, 'data', 'jwt-secret')
  t.ok(existsSync(file), 'the secret is kept in the data folder')
  t.equal(readFileSync(file, 'utf8').trim(), first.jwt.secret)
  t.ok(Buffer.byteLength(first.jwt.secret) >= 32, 'at least 32 bytes')
  t.equal(statSync(file).mode & 0o077, 0, 'readable by its owner only')
  t.ok(first.warnings.some((warning) => warning.includes('JWT_SECRET')), 'a warning says so')
  for (const warning of first.warnings) t.notOk(warning.includes(first.jwt.secret), 'the warning does not show the secret')

  const second = loadConfig({}, cwd)
  t.equal(second.jwt.secret, first.jwt.secret, 'the same secret after a restart')

  // Another data folder gets its own secret.
  const elsewhere = loadConfig({}, tempDir(t))
  t.not(elsewhere.jwt.secret, first.jwt.secret)
})

t.test('the generated secret lives beside the SQLite file', async (t) => {
  const cwd = tempDir(t)
  const config = loadConfig({ DATABASE_URL: 'file:./var/db/auth.db' }, cwd)
  const file = join(cwd, 'var', 'db', 'jwt-secret')
  t.ok(existsSync(file))
  t.equal(loadConfig({ DATABASE_URL: 'file:./var/db/auth.db' }, cwd).jwt.secret, config.jwt.secret)
})

t.test('PUBLIC_URL and RESOURCE_SERVERS', async (t) => {
  const cwd = tempDir(t)
  const config = loadConfig({
    JWT_SECRET: SECRET,
    PUBLIC_URL: 'https://example.com/auth/',
    ALLOWED_ORIGINS: 'https://app.example.com',
    RESOURCE_SERVERS: 'orders:orders-secret-0123456789, billing:a:secret:with:colons'
  }, cwd)
  t.equal(config.publicUrl, 'https://example.com/auth', 'kept with its path, without the trailing slash')
  t.same(config.allowedOrigins, ['https://app.example.com', 'https://example.com'], 'its origin is allowed')
  t.same(config.resourceServers, [{ id: 'orders', secret: 'orders-secret-0123456789' }, { id: 'billing', secret: 'a:secret:with:colons' }])
  t.same(loadConfig({ JWT_SECRET: SECRET, PUBLIC_URL: 'https://example.com', ALLOWED_ORIGINS: 'https://example.com' }, cwd).allowedOrigins, ['https://example.com'], 'not twice')
  try {
    loadConfig({ JWT_SECRET: SECRET, RESOURCE_SERVERS: 'orders:tiny-secret' }, cwd)
    t.fail('a short secret is refused')
  } catch (error) {
    t.match((error as Error).message, /RESOURCE_SERVERS/)
    t.notOk((error as Error).message.includes('tiny-secret'), 'the message does not show the secret')
  }
})
