// The one place that reads process.env. Every variable is declared once, in src/settings.ts, and
// validated against the schema derived from there; here it becomes the typed Config the rest of the
// app receives. A bad value throws ConfigError naming the variable.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import type { Static } from 'typebox'
import Value from 'typebox/value'
import { type KeySet, KeyError, buildKeySet } from './auth/signing-keys.js'
import { EnvSchema, SETTINGS, type SettingName } from './settings.js'

type Env = Static<typeof EnvSchema>

export class ConfigError extends Error {
  constructor (readonly variable: string, problem: string) {
    super(`Invalid configuration: ${variable} ${problem}`)
    this.name = 'ConfigError'
  }
}

export type DatabaseConfig =
  | { provider: 'sqlite', url: string, file: string }
  | { provider: 'postgresql', url: string, schema: string }

export interface Config {
  env: string
  host: string
  port: number
  /** Worker processes of `npm run start:cluster` (src/cluster.ts); a single server ignores it. */
  workers: number
  logLevel: string
  trustProxy: boolean
  database: DatabaseConfig
  redisUrl: string | undefined
  jwt: {
    /** HS256 key (its UTF-8 bytes); also the root from which the grace-window cipher key is derived. */
    secret: string
    /** The keys access tokens are signed and verified with (src/auth/signing-keys.ts). */
    keys: KeySet
    issuer: string
    audience: string
  }
  /** All lifetimes in seconds. */
  ttl: { accessToken: number, refreshIdle: number, refreshAbsolute: number, reuseGrace: number }
  allowedOrigins: string[]
  cookieSecure: boolean
  accessTokenQueryParam: boolean
  allowRegistration: boolean
  login: { maxFailures: number, lockWindow: number }
  rateLimitMax: number
  /** IPv6 clients are counted per network of this prefix length by both limits (src/auth/client-address.ts). */
  ipv6PrefixLength: number
  passwordHashConcurrency: number
  revocationPollIntervalMs: number
  /** Serve GET /docs and /docs/openapi.json. */
  apiDocs: boolean
  /** Port of the separate Prometheus listener (on HOST); undefined: no metrics at all. */
  metricsPort: number | undefined
  /** Serve the demo page and the client SDK's browser build under /demo/. */
  demo: boolean
  /** Days a session's history (GET /auth/sessions/:id/events) is kept. */
  sessionEventsRetentionDays: number
  /** The server's external origin and optional path prefix, without a trailing slash. */
  publicUrl: string
  /** Services that may introspect tokens and read the revocation feed (HTTP Basic). Never logged. */
  resourceServers: ResourceServerCredential[]
  revocationStream: { heartbeatSeconds: number, perClient: number }
  /**
   * DPoP (RFC 9449): `off` binds nothing new, `optional` binds sessions started with a proof,
   * `required` refuses sessions without one. `nonce`: proofs must carry a server nonce.
   * `proofWindow`: seconds a proof's iat may lie before or after the server's time.
   */
  dpop: { mode: 'off' | 'optional' | 'required', nonce: boolean, proofWindow: number }
  /** Messages for the log once the logger exists (e.g. a generated secret). */
  warnings: string[]
}

export interface ResourceServerCredential { id: string, secret: string }

const BOOLEAN_WORDS: Record<string, boolean> = { true: true, false: false, 1: true, 0: false, yes: true, no: false }

/** Turns raw strings into the schema's types, refusing what is not exactly one of them. */
function coerce (name: SettingName, raw: string): unknown {
  const type = (SETTINGS[name].schema as { type?: string }).type
  // A credential's value is never repeated in a message (it would reach the terminal and the log).
  const got = SETTINGS[name].secret === true ? '' : ` (got "${raw}")`
  if (type === 'integer') {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number${got}`)
    return Number(raw.trim())
  }
  if (type === 'boolean') {
    const value = BOOLEAN_WORDS[raw.trim().toLowerCase()]
    if (value === undefined) throw new ConfigError(name, `must be true or false${got}`)
    return value
  }
  return raw
}

function parseDatabaseUrl (url: string, cwd: string): DatabaseConfig {
  if (url.startsWith('file:')) {
    const path = url.slice('file:'.length).split('?')[0] ?? ''
    if (path === '' || path === ':memory:') throw new ConfigError('DATABASE_URL', 'must name a SQLite file (file:./data/auth.db)')
    return { provider: 'sqlite', url, file: resolve(cwd, path) }
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new ConfigError('DATABASE_URL', 'is not a valid postgresql:// URL')
    }
    const schema = parsed.searchParams.get('schema') ?? 'public'
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw new ConfigError('DATABASE_URL', `has an invalid schema name "${schema}"`)
    return { provider: 'postgresql', url, schema }
  }
  throw new ConfigError('DATABASE_URL', 'must start with file: (SQLite) or postgresql:// (PostgreSQL)')
}

function parseOrigins (list: string): string[] {
  return list.split(',').map((origin) => origin.trim()).filter(Boolean).map((origin) => {
    let url: URL
    try {
      url = new URL(origin)
    } catch {
      throw new ConfigError('ALLOWED_ORIGINS', `has an entry that is not an origin: "${origin}"`)
    }
    if (url.origin !== origin.replace(/\/$/, '') || !/^https?:$/.test(url.protocol)) {
      throw new ConfigError('ALLOWED_ORIGINS', `entries must be bare origins like https://app.example.com (got "${origin}")`)
    }
    return url.origin
  })
}

function parsePublicUrl (value: string | undefined, host: string, port: number): string {
  if (value === undefined) return `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError('PUBLIC_URL', `must be an absolute URL like https://auth.example.com (got "${value}")`)
  }
  if (!/^https?:$/.test(url.protocol) || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new ConfigError('PUBLIC_URL', `must be an http(s) origin with an optional path, no query or credentials (got "${value}")`)
  }
  return (url.origin + url.pathname).replace(/\/+$/, '')
}

/** `id:secret` pairs, comma-separated. Messages name the entry by its id, never by its secret. */
function parseResourceServers (list: string | undefined): ResourceServerCredential[] {
  const servers: ResourceServerCredential[] = []
  for (const [index, entry] of (list ?? '').split(',').map((item) => item.trim()).filter(Boolean).entries()) {
    const colon = entry.indexOf(':')
    const id = colon < 0 ? '' : entry.slice(0, colon)
    const secret = colon < 0 ? '' : entry.slice(colon + 1)
    if (!/^[A-Za-z0-9._~-]{1,100}$/.test(id)) {
      throw new ConfigError('RESOURCE_SERVERS', `entry ${index + 1} must be id:secret, the id made of letters, digits and . _ ~ -`)
    }
    if (secret.length < 16) throw new ConfigError('RESOURCE_SERVERS', `the secret of "${id}" must be at least 16 characters`)
    if (servers.some((server) => server.id === id)) throw new ConfigError('RESOURCE_SERVERS', `names "${id}" twice`)
    servers.push({ id, secret })
  }
  return servers
}

/**
 * The HS256 secret: as configured; outside production, generated once into the data folder so
 * tokens survive a restart; in production its absence is an error.
 */
function resolveSecret (env: Env, dataDir: string, warnings: string[]): string {
  if (env.JWT_SECRET !== undefined) {
    if (Buffer.byteLength(env.JWT_SECRET) < 32) throw new ConfigError('JWT_SECRET', 'must be at least 32 bytes long')
    // The contract takes any key of 32 bytes or more as given; a low-variety one is only worth a word.
    if (new Set(env.JWT_SECRET).size < 8) {
      warnings.push('JWT_SECRET has very few distinct characters; a random secret (e.g. `openssl rand -base64 48`) is much harder to guess.')
    }
    return env.JWT_SECRET
  }
  if (env.NODE_ENV === 'production') {
    throw new ConfigError('JWT_SECRET', 'is required when NODE_ENV=production (at least 32 random bytes, e.g. `openssl rand -base64 48`)')
  }
  const file = join(dataDir, 'jwt-secret')
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  mkdirSync(dataDir, { recursive: true })
  const secret = randomBytes(48).toString('base64url')
  writeFileSync(file, secret + '\n', { mode: 0o600 })
  warnings.push(`JWT_SECRET is not set: generated one into ${file}. Set JWT_SECRET explicitly for anything but development.`)
  return secret
}

function signingKeys (secret: string, env: Env): KeySet {
  try {
    return buildKeySet({ secret, privateKey: env.JWT_PRIVATE_KEY, previousPublicKeys: env.JWT_PREVIOUS_PUBLIC_KEYS })
  } catch (error) {
    if (error instanceof KeyError) throw new ConfigError(error.variable, error.message)
    throw error
  }
}

export function loadConfig (source: Record<string, string | undefined> = process.env, cwd = process.cwd()): Config {
  const raw: Record<string, unknown> = {}
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const value = source[name]
    if (value !== undefined && value !== '') raw[name] = coerce(name, value)
  }
  const env = Value.Default(EnvSchema, raw) as Env
  const firstError = [...Value.Errors(EnvSchema, env)][0]
  if (firstError !== undefined) {
    const name = firstError.instancePath.replace(/^\//, '') || 'environment'
    // A choice of words (LOG_LEVEL) reads better as the list of those words than as schema jargon.
    const choices = (EnvSchema.properties as Record<string, { anyOf?: Array<{ const?: unknown }> }>)[name]?.anyOf
    throw new ConfigError(name, choices === undefined ? firstError.message : `must be one of ${choices.map((choice) => choice.const).join(', ')} (got "${String(env[name as keyof Env])}")`)
  }
  const database = parseDatabaseUrl(env.DATABASE_URL, cwd)
  const dataDir = database.provider === 'sqlite' ? dirname(database.file) : resolve(cwd, 'data')
  const warnings: string[] = []
  // An idle lifetime longer than the absolute one is allowed: a refresh token never outlives its
  // session's absolute end (refreshTokenExpiry takes the earlier of the two).
  const allowedOrigins = parseOrigins(env.ALLOWED_ORIGINS)
  const publicUrl = parsePublicUrl(env.PUBLIC_URL, env.HOST, env.PORT)
  // The server's own pages (e.g. a demo) call it from its public origin.
  if (!allowedOrigins.includes(new URL(publicUrl).origin)) allowedOrigins.push(new URL(publicUrl).origin)
  const secret = resolveSecret(env, dataDir, warnings)
  return {
    env: env.NODE_ENV,
    host: env.HOST,
    port: env.PORT,
    workers: env.WORKERS,
    logLevel: env.LOG_LEVEL,
    trustProxy: env.TRUST_PROXY,
    database,
    redisUrl: env.REDIS_URL,
    jwt: {
      secret,
      keys: signingKeys(secret, env),
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE
    },
    ttl: {
      accessToken: env.ACCESS_TOKEN_TTL,
      refreshIdle: env.REFRESH_IDLE_TTL,
      refreshAbsolute: env.REFRESH_ABSOLUTE_TTL,
      reuseGrace: env.REFRESH_REUSE_GRACE
    },
    allowedOrigins,
    cookieSecure: env.COOKIE_SECURE,
    accessTokenQueryParam: env.ACCESS_TOKEN_QUERY_PARAM,
    allowRegistration: env.ALLOW_REGISTRATION,
    login: { maxFailures: env.LOGIN_MAX_FAILURES, lockWindow: env.LOGIN_LOCK_WINDOW },
    rateLimitMax: env.RATE_LIMIT_MAX,
    ipv6PrefixLength: env.IPV6_PREFIX_LENGTH,
    passwordHashConcurrency: env.PASSWORD_HASH_CONCURRENCY,
    revocationPollIntervalMs: env.REVOCATION_POLL_INTERVAL_MS,
    apiDocs: env.API_DOCS ?? env.NODE_ENV !== 'production',
    metricsPort: env.METRICS_PORT,
    demo: env.DEMO ?? env.NODE_ENV !== 'production',
    sessionEventsRetentionDays: env.SESSION_EVENTS_RETENTION,
    publicUrl,
    resourceServers: parseResourceServers(env.RESOURCE_SERVERS),
    revocationStream: { heartbeatSeconds: env.REVOCATION_STREAM_HEARTBEAT, perClient: env.REVOCATION_STREAMS_PER_CLIENT },
    dpop: { mode: env.DPOP as Config['dpop']['mode'], nonce: env.DPOP_NONCE, proofWindow: env.DPOP_PROOF_WINDOW },
    warnings
  }
}
