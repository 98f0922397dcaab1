// buildApp(config): the whole server, with its plugins registered in this visible order. Nothing runs
// at import; server.ts and the tests call this.
import cors from '@fastify/cors'
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify'
import type { Clock } from './auth/token-rules.js'
import type { Config } from './config.js'
import { ValidationFailed } from './errors.js'
import accessTokens from './plugins/access-tokens.js'
import authDomain from './plugins/auth-domain.js'
import authEvents from './plugins/auth-events.js'
import database from './plugins/database.js'
import dpop from './plugins/dpop.js'
import { lazyRequestLogger, logAnsweredRequest, loggerOptions } from './logging.js'
import errorHandler, { sendError } from './plugins/error-handler.js'
import maintenance from './plugins/maintenance.js'
import protect from './plugins/protect.js'
import rateLimits from './plugins/rate-limit.js'
import redis from './plugins/redis.js'
import requestHygiene from './plugins/request-hygiene.js'
import revocationDoorbell from './plugins/revocation-doorbell.js'
import revocationFeed from './plugins/revocation-feed.js'
import securityHeaders from './plugins/security-headers.js'
import authRoutes from './routes/auth/index.js'
import demoRoutes from './routes/demo/index.js'
import healthRoutes from './routes/health.js'
import oauthRoutes from './routes/oauth/index.js'
import orderRoutes from './routes/orders/index.js'
import wellKnownRoutes from './routes/well-known.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

export interface BuildOptions {
  /** Milliseconds since the epoch; tests pass their own. */
  clock?: Clock
  /** Overrides the logger (tests capture log lines with a stream). */
  logger?: FastifyServerOptions['logger']
}

export async function buildApp (config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const clock = options.clock ?? Date.now
  const fastify = Fastify({
    logger: options.logger ?? loggerOptions(config),
    childLoggerFactory: lazyRequestLogger,
    // One access-log line per request instead of Fastify's two (logAnsweredRequest, below).
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: config.trustProxy,
    // The largest legitimate body is a login with a 1024-character password.
    bodyLimit: 32 * 1024,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    ajv: { customOptions: { coerceTypes: false, removeAdditional: true, allErrors: false } },
    routerOptions: { maxParamLength: 200 },
    // A malformed or over-long URL is refused by the router before any hook: still the contract's
    // error shape, and a message that does not echo the URL (nor any token in its query).
    frameworkErrors: (error, request, reply) => {
      const malformed = error.code === 'FST_ERR_BAD_URL' || error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      sendError(request, reply, malformed ? new ValidationFailed('The request URL is malformed or too long') : error)
    }
  })
  fastify.decorate('config', config)
  fastify.addHook('onResponse', logAnsweredRequest)
  // JSON only: any other body type is a 415, not a string that reaches a handler.
  fastify.removeContentTypeParser(['text/plain'])
  for (const warning of config.warnings) fastify.log.warn(warning)

  await fastify.register(errorHandler)
  // Before any route: two Host headers, non-UTF-8 JSON, NUL and lone surrogates are refused (400).
  await fastify.register(requestHygiene)
  // Before anything that adds routes: the docs see every route registered after them.
  // (Loaded only when switched on: the docs and metrics libraries cost start-up time otherwise.)
  if (config.apiDocs) await fastify.register((await import('./plugins/api-docs.js')).default)
  await fastify.register(cors, {
    // Only the configured origins get CORS headers (with credentials); never '*'.
    origin: (origin, callback) => callback(null, origin !== undefined && config.allowedOrigins.includes(origin)),
    credentials: true,
    methods: ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['Content-Type', 'Authorization', 'X-Requested-With', 'DPoP'],
    // Browser apps must read these to back off (429/503), to tell an expired token from a missing one,
    // and to put the server's nonce in their next DPoP proof.
    exposedHeaders: ['Retry-After', 'WWW-Authenticate', 'DPoP-Nonce'],
    maxAge: 600
  })
  await fastify.register(securityHeaders)
  await fastify.register(redis, { url: config.redisUrl })
  await fastify.register(authEvents)
  await fastify.register(rateLimits)
  await fastify.register(database, { database: config.database })
  // The request path: access tokens (sign, verify) → the domain (signs with them) → protect (every
  // route not marked public checks its token against the domain's revocations).
  await fastify.register(dpop, { config, clock })
  await fastify.register(accessTokens)
  await fastify.register(authDomain, { clock })
  await fastify.register(protect, { clock })
  await fastify.register(maintenance)
  await fastify.register(revocationDoorbell)
  if (config.metricsPort !== undefined) await fastify.register((await import('./plugins/metrics.js')).default, { host: config.host, port: config.metricsPort })
  await fastify.register(revocationFeed)

  await fastify.register(healthRoutes)
  await fastify.register(authRoutes)
  await fastify.register(orderRoutes)
  await fastify.register(oauthRoutes)
  await fastify.register(wellKnownRoutes)
  if (config.demo) await fastify.register(demoRoutes)
  return fastify
}
