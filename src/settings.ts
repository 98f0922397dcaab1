// Every environment variable the server reads, declared once: its schema (type, range, default),
// what it means, and whether its value is a credential. src/config.ts validates the environment
// against the schema derived from this list and maps it into the typed Config; README's table and
// .env.example are generated from it (`npm run settings:docs`, checked by test/settings.test.ts);
// the bench takes the names from here (dist/src/settings.js).
//
// To add a setting: add an entry below (in the group where an operator would look for it), read it
// in loadConfig (src/config.ts) into a Config field, run `npm run settings:docs`, and give it a line
// in test/config.test.ts if its parsing does more than the schema.
import { availableParallelism } from 'node:os'
import Type, { type TSchema } from 'typebox'

export interface Setting<S extends TSchema = TSchema> {
  schema: S
  /** What it does, for README's table and .env.example (one or two sentences, Markdown backticks allowed). */
  description: string
  /** Heading it is listed under in .env.example. */
  group: string
  /**
   * The default in words, when it is not a fixed value of the schema (machine-dependent, derived
   * from another setting, or generated). Such a setting is commented out in .env.example.
   */
  defaultText?: string
  /** A valid value other than the default: shown in .env.example when there is no fixed default, and used by the tests. */
  example: string
  /** The value is, or may contain, a credential: it is never echoed in an error message. */
  secret?: true
}

function setting<S extends TSchema> (schema: S, doc: Omit<Setting<S>, 'schema'>): Setting<S> {
  return { schema, ...doc }
}

const Seconds = (defaultValue: number) => Type.Integer({ minimum: 1, maximum: 10 * 365 * 24 * 3600, default: defaultValue })

const LISTEN = 'Where the server listens'
const STORE = 'Storage'
const TOKENS = 'Tokens and keys'
const LIFETIMES = 'Lifetimes (seconds)'
const WEB = 'Web clients and registration'
const LIMITS = 'Limits'
const DEPLOY = 'Deployment and logging'
const SURFACE = 'OAuth surface and resource servers'
const OPERATORS = 'For operators'

export const SETTINGS = {
  NODE_ENV: setting(Type.String({ default: 'development' }), {
    group: LISTEN,
    description: '`production` requires `JWT_SECRET` and turns the demo, the API docs and readable terminal logs off by default',
    example: 'production'
  }),
  HOST: setting(Type.String({ minLength: 1, default: '127.0.0.1' }), {
    group: LISTEN,
    description: 'address the server listens on',
    example: '0.0.0.0'
  }),
  PORT: setting(Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }), {
    group: LISTEN,
    description: 'port the server listens on',
    example: '8080'
  }),
  WORKERS: setting(Type.Integer({ minimum: 1, maximum: 256, default: availableParallelism() }), {
    group: LISTEN,
    description: 'worker processes of `npm run start:cluster`',
    defaultText: 'one per core',
    example: '2'
  }),
  DATABASE_URL: setting(Type.String({ minLength: 1, default: 'file:./data/auth.db' }), {
    group: STORE,
    description: 'SQLite file (created and migrated on start), or `postgresql://user@host:5432/db?schema=public` (`?schema=` picks the schema)',
    example: 'postgresql://auth@127.0.0.1:5432/auth?schema=auth_server',
    secret: true
  }),
  REDIS_URL: setting(Type.Optional(Type.String({ pattern: '^rediss?://' })), {
    group: STORE,
    description: 'shared store for rate limits, login-failure counts and the revocation doorbell across instances',
    defaultText: 'unset',
    example: 'redis://127.0.0.1:6379',
    secret: true
  }),
  JWT_SECRET: setting(Type.Optional(Type.String()), {
    group: TOKENS,
    description: 'HS256 key, at least 32 bytes, used as given; required when `NODE_ENV=production`',
    defaultText: 'generated once into the data folder (`data/jwt-secret`), with a warning, outside production',
    example: 'change-me-to-at-least-32-random-bytes-eg-openssl-rand',
    secret: true
  }),
  JWT_PRIVATE_KEY: setting(Type.Optional(Type.String()), {
    group: TOKENS,
    description: 'PEM private key (Ed25519 or P-256), or the path of a PEM file: sign with EdDSA / ES256 and publish `/.well-known/jwks.json` (`npm run keys:generate`)',
    defaultText: 'unset (HS256 with `JWT_SECRET`)',
    example: 'data/jwt-private.pem',
    secret: true
  }),
  JWT_PREVIOUS_PUBLIC_KEYS: setting(Type.Optional(Type.String()), {
    group: TOKENS,
    description: 'PEM public keys (or the path of a PEM file) that signed earlier tokens: still accepted and published until those tokens expire, which is how keys are rotated',
    defaultText: 'unset',
    example: 'data/jwt-previous-public.pem'
  }),
  JWT_ISSUER: setting(Type.String({ minLength: 1, default: 'auth-server' }), {
    group: TOKENS,
    description: '`iss` of every access token, checked on each one (set it to `PUBLIC_URL` for OAuth discovery)',
    example: 'https://auth.example.com'
  }),
  JWT_AUDIENCE: setting(Type.String({ minLength: 1, default: 'auth-server-api' }), {
    group: TOKENS,
    description: '`aud` of every access token, checked on each one',
    example: 'orders-api'
  }),
  DPOP: setting(Type.Union(['off', 'optional', 'required'].map((mode) => Type.Literal(mode)), { default: 'optional' }), {
    group: TOKENS,
    description: 'sender-constrained tokens (RFC 9449): `optional` binds sessions started with a `DPoP` proof to its key, `required` refuses sessions without one, `off` binds no new session (sessions bound before stay bound)',
    example: 'required'
  }),
  DPOP_NONCE: setting(Type.Boolean({ default: false }), {
    group: TOKENS,
    description: 'DPoP proofs must carry a server nonce (handed out in the `DPoP-Nonce` response header, valid 5 to 10 minutes on every instance)',
    example: 'true'
  }),
  DPOP_PROOF_WINDOW: setting(Type.Integer({ minimum: 1, maximum: 600, default: 60 }), {
    group: TOKENS,
    description: 'seconds a DPoP proof\'s `iat` may lie before or after the server\'s clock (1–600); each proof is single-use within it',
    example: '30'
  }),
  ACCESS_TOKEN_TTL: setting(Seconds(900), {
    group: LIFETIMES,
    description: 'access token lifetime',
    example: '300'
  }),
  REFRESH_IDLE_TTL: setting(Seconds(1_209_600), {
    group: LIFETIMES,
    description: 'refresh token lifetime (14 days), reset on each rotation',
    example: '3600'
  }),
  REFRESH_ABSOLUTE_TTL: setting(Seconds(2_592_000), {
    group: LIFETIMES,
    description: 'session lifetime from login (30 days), never extended',
    example: '86400'
  }),
  REFRESH_REUSE_GRACE: setting(Type.Integer({ minimum: 0, maximum: 300, default: 10 }), {
    group: LIFETIMES,
    description: 'seconds in which a token retired by rotation is answered with the family\'s current token',
    example: '0'
  }),
  ALLOWED_ORIGINS: setting(Type.String({ default: '' }), {
    group: WEB,
    description: 'comma-separated origins allowed for CORS and the cookie CSRF check, e.g. `https://app.example.com` (`PUBLIC_URL`\'s origin always is)',
    example: 'https://app.example.com'
  }),
  COOKIE_SECURE: setting(Type.Boolean({ default: true }), {
    group: WEB,
    description: '`false` only for plain-HTTP development (the cookie is then named `refresh_token`, without `__Secure-`)',
    example: 'false'
  }),
  ACCESS_TOKEN_QUERY_PARAM: setting(Type.Boolean({ default: false }), {
    group: WEB,
    description: 'accept `?access_token=` (RFC 6750 §2.3); while off such tokens are ignored and never logged',
    example: 'true'
  }),
  ALLOW_REGISTRATION: setting(Type.Boolean({ default: true }), {
    group: WEB,
    description: 'expose `POST /auth/register`',
    example: 'false'
  }),
  LOGIN_MAX_FAILURES: setting(Type.Integer({ minimum: 1, maximum: 1000, default: 5 }), {
    group: LIMITS,
    description: 'login failures per (account, client address) before that pair is locked',
    example: '3'
  }),
  LOGIN_LOCK_WINDOW: setting(Seconds(900), {
    group: LIMITS,
    description: 'window of the login-failure count and length of the lock, seconds',
    example: '60'
  }),
  RATE_LIMIT_MAX: setting(Type.Integer({ minimum: 1, maximum: 1_000_000, default: 100 }), {
    group: LIMITS,
    description: 'requests a minute per address to register, login, refresh and `/oauth/*`',
    example: '20'
  }),
  IPV6_PREFIX_LENGTH: setting(Type.Integer({ minimum: 1, maximum: 128, default: 64 }), {
    group: LIMITS,
    description: 'both limits count an IPv6 client by its network of this prefix length; IPv4-mapped IPv6 counts as its IPv4',
    example: '56'
  }),
  PASSWORD_HASH_CONCURRENCY: setting(Type.Integer({ minimum: 1, maximum: 64, default: Math.max(1, availableParallelism() - 1) }), {
    group: LIMITS,
    description: 'argon2id hashes computed at once (each takes 19 MiB and a core for ~40 ms); the rest queue',
    defaultText: 'cores − 1, at least 1',
    example: '1'
  }),
  TRUST_PROXY: setting(Type.Boolean({ default: false }), {
    group: DEPLOY,
    description: 'take the client address from `X-Forwarded-For` (only behind a proxy you trust)',
    example: 'true'
  }),
  LOG_LEVEL: setting(Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info' }
  ), {
    group: DEPLOY,
    description: 'pino level: fatal, error, warn, info, debug, trace or silent; tokens and passwords never reach the log',
    example: 'warn'
  }),
  REVOCATION_POLL_INTERVAL_MS: setting(Type.Integer({ minimum: 50, maximum: 60_000, default: 500 }), {
    group: DEPLOY,
    description: 'how often an instance reads other instances\' revocations from the database, milliseconds',
    example: '1000'
  }),
  PUBLIC_URL: setting(Type.Optional(Type.String({ minLength: 1 })), {
    group: SURFACE,
    description: 'the server\'s external origin (+ optional path prefix): absolute URLs in the OAuth metadata; its origin is always allowed for CORS and the cookie CSRF check',
    defaultText: '`http://HOST:PORT`',
    example: 'https://auth.example.com'
  }),
  RESOURCE_SERVERS: setting(Type.Optional(Type.String()), {
    group: SURFACE,
    description: '`id:secret` pairs, comma-separated (secrets at least 16 characters): services allowed to introspect tokens and read the revocation feed (HTTP Basic); both endpoints are 404 while unset',
    defaultText: 'unset',
    example: 'orders:change-me-to-a-long-random-secret',
    secret: true
  }),
  REVOCATION_STREAM_HEARTBEAT: setting(Type.Integer({ minimum: 1, maximum: 15, default: 15 }), {
    group: SURFACE,
    description: 'seconds between heartbeat comments on the revocation stream (1–15)',
    example: '5'
  }),
  REVOCATION_STREAMS_PER_CLIENT: setting(Type.Integer({ minimum: 1, maximum: 1000, default: 4 }), {
    group: SURFACE,
    description: 'revocation streams one resource server may hold open at once (then 429)',
    example: '2'
  }),
  DEMO: setting(Type.Optional(Type.Boolean()), {
    group: OPERATORS,
    description: 'serve the demo page at `/demo/` and the client SDK\'s browser build at `/demo/auth-client.js`',
    defaultText: '`true` outside production',
    example: 'false'
  }),
  API_DOCS: setting(Type.Optional(Type.Boolean()), {
    group: OPERATORS,
    description: 'serve the OpenAPI UI at `GET /docs` and the document at `/docs/openapi.json`',
    defaultText: '`true` outside production',
    example: 'false'
  }),
  METRICS_PORT: setting(Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })), {
    group: OPERATORS,
    description: 'Prometheus metrics on a separate listener at `http://HOST:METRICS_PORT/metrics`',
    defaultText: 'unset (off)',
    example: '9464'
  }),
  SESSION_EVENTS_RETENTION: setting(Type.Integer({ minimum: 1, maximum: 3650, default: 30 }), {
    group: OPERATORS,
    description: 'days a session\'s history (`GET /auth/sessions/:id/events`) is kept, also after the session ended',
    example: '7'
  })
}

export type SettingName = keyof typeof SETTINGS

/** The environment's schema, one property per setting, with its type kept (Static<typeof EnvSchema>). */
export const EnvSchema = Type.Object(Object.fromEntries(Object.entries(SETTINGS).map(([name, { schema }]) => [name, schema])) as {
  [Name in SettingName]: (typeof SETTINGS)[Name]['schema']
})

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[]
