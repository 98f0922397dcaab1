// Logging: pino's options (what is redacted), and request loggers that cost nothing until they log.
import type { FastifyBaseLogger, FastifyServerOptions, onResponseHookHandler } from 'fastify'
import type { Config } from './config.js'

/** Longer parameter names are logged as [REDACTED]: a bare `?<token>` is a value, not a name. */
const NAME_MAX_LOGGED = 32

/**
 * The URL as logged: its path, and of its query only the parameter names, never a value. A credential
 * can ride in any parameter under any spelling (`?refreshToken=`, `?access_token[]=`, a percent-encoded
 * or NUL-suffixed name, `;token=` in the path), so no list of names to hide can be complete: every value
 * is dropped instead. Path parameters that follow a `;` are cut the same way.
 */
export function loggedUrl (url: string): string {
  const queryStart = url.indexOf('?')
  const rawPath = queryStart === -1 ? url : url.slice(0, queryStart)
  const semicolon = rawPath.indexOf(';')
  const path = semicolon === -1 ? rawPath : `${rawPath.slice(0, semicolon)};[REDACTED]`
  if (queryStart === -1) return path
  const names = url.slice(queryStart + 1).split('&').filter((pair) => pair !== '').map((pair) => {
    const key = pair.split('=', 1)[0]!
    // Names are kept as sent (still percent-encoded), never decoded into the line. A long "name" with
    // no value is a value in disguise (`?<token>`): hidden too.
    const name = key.length > NAME_MAX_LOGGED ? '[REDACTED]' : key
    return pair.includes('=') ? `${name}=[REDACTED]` : name
  })
  return names.length === 0 ? path : `${path}?${names.join('&')}`
}

/**
 * Readable lines (pino-pretty, in a worker thread) for a person at a terminal during development;
 * JSON lines, one object each, for everything else (production, files, log collectors, tests).
 */
export function wantsPrettyLogs (config: Pick<Config, 'env'>, stdoutIsTTY = process.stdout.isTTY === true): boolean {
  return stdoutIsTTY && config.env !== 'production'
}

/** Fields whose values never reach the log, in any object of a line (`{ body: { password } }`). */
const SECRET_FIELDS = ['password', 'currentPassword', 'newPassword', 'refreshToken', 'accessToken', 'refresh_token', 'access_token']
/** Headers never logged: in a line's `headers`, or the `headers` of any object of a line. */
const SECRET_HEADERS = ['authorization', 'dpop', 'cookie', 'set-cookie']
export const CENSORED = '[REDACTED]'

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype

function withoutSecretHeaders (headers: Record<string, unknown>): Record<string, unknown> | undefined {
  let censored: Record<string, unknown> | undefined
  for (const name of SECRET_HEADERS) if (headers[name] !== undefined) (censored ??= { ...headers })[name] = CENSORED
  return censored
}

/** A censored copy of one object of a line (`key` is its name in the line), or undefined when it holds no secret. */
function withoutSecrets (key: string, value: object): Record<string, unknown> | undefined {
  const fields = value as Record<string, unknown>
  let censored = key === 'headers' && isPlainObject(value) ? withoutSecretHeaders(fields) : undefined
  for (const name of SECRET_FIELDS) if (fields[name] !== undefined) (censored ??= { ...fields })[name] = CENSORED
  const headers = isPlainObject(value) ? fields.headers : undefined
  const censoredHeaders = isPlainObject(headers) ? withoutSecretHeaders(headers) : undefined
  if (censoredHeaders !== undefined) (censored ??= { ...fields }).headers = censoredHeaders
  return censored
}

/**
 * A line's fields with every secret field of its objects (one level down, as pino's `*.password`
 * would) replaced by [REDACTED]; the same object when there is none (the usual case: nothing is
 * copied). pino's redact option did this with wildcard paths at ~9 µs a line, most of the cost of
 * a request's log lines; this check costs a fraction of a µs. Objects that are not plain (a Fastify
 * request, an Error) are left to their serializers unless they hold a secret field themselves; then
 * only a censored copy of their own fields is logged.
 */
export function censorSecrets (fields: Record<string, unknown>): Record<string, unknown> {
  let line = fields
  for (const key in fields) {
    const value = fields[key]
    if (value === null || typeof value !== 'object') continue
    const censored = withoutSecrets(key, value)
    if (censored === undefined) continue
    if (line === fields) line = { ...fields }
    line[key] = censored
  }
  return line
}

export function loggerOptions (config: Config, pretty = wantsPrettyLogs(config)): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
    // Secrets are censored before pino serializes a line (see censorSecrets); the request serializer
    // below logs no headers at all, and Fastify's response serializer only the status code.
    // (pino applies no formatter to a child's bindings: the request loggers below censor those.)
    formatters: { log: censorSecrets },
    serializers: {
      req (request) {
        return { method: request.method, url: loggedUrl(request.url), remoteAddress: request.ip }
      }
    }
  }
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
type LogArguments = Parameters<FastifyBaseLogger['info']>
type Bindings = Parameters<FastifyBaseLogger['child']>[0]
type ChildLoggerOptions = NonNullable<Parameters<FastifyBaseLogger['child']>[1]>

/**
 * request.log for one request. Fastify makes a pino child (binding the request id) for every request,
 * and at the usual levels (warn in production) most requests never log a line: the child is made
 * on the first message at an enabled level instead, and calls below the level do nothing. Each line
 * still carries the request id, with the same censoring and serializers as before. (Writing a line
 * through the parent with the request id among its fields was tried: twice the cost of a child with
 * its bindings serialized once, for a request's two lines.)
 */
class RequestLogger implements FastifyBaseLogger {
  private made: FastifyBaseLogger | undefined

  constructor (private readonly parent: FastifyBaseLogger & { isLevelEnabled: (level: string) => boolean }, private readonly bindings: Bindings) {}

  get level (): string { return this.parent.level }
  set level (level: string) { this.logger().level = level }

  fatal (...args: LogArguments): void { this.write('fatal', args) }
  error (...args: LogArguments): void { this.write('error', args) }
  warn (...args: LogArguments): void { this.write('warn', args) }
  info (...args: LogArguments): void { this.write('info', args) }
  debug (...args: LogArguments): void { this.write('debug', args) }
  trace (...args: LogArguments): void { this.write('trace', args) }
  silent (): void {}

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger().child(censorSecrets(bindings), options)
  }

  private write (level: Level, args: LogArguments): void {
    if (this.made === undefined && !this.parent.isLevelEnabled(level)) return
    this.logger()[level](...args)
  }

  private logger (): FastifyBaseLogger {
    this.made ??= this.parent.child(censorSecrets(this.bindings))
    return this.made
  }
}

/**
 * The access log: one line per answered request, at info, with what came (method, the URL as
 * logged, the address), its status and the time it took. It replaces Fastify's own two lines per
 * request ("incoming request", "request completed": buildApp sets disableRequestLogging), which
 * cost a request about as much as the rest of a protected route; below info it writes nothing
 * and makes no child logger.
 */
export const logAnsweredRequest: onResponseHookHandler = function logAnsweredRequest (request, reply, done) {
  request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
  done()
}

/** Fastify's childLoggerFactory: a lazy request logger, or pino's own child when a route sets its own level or serializers. */
export function lazyRequestLogger (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  const parent = logger as ConstructorParameters<typeof RequestLogger>[0]
  if (options.level !== undefined || options.serializers !== undefined || typeof parent.isLevelEnabled !== 'function') return logger.child(censorSecrets(bindings), options)
  return new RequestLogger(parent, bindings)
}
