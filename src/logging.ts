// Logging: pino's options (what is redacted), and request loggers that cost nothing until they log.
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'
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

export function loggerOptions (config: Config, pretty = wantsPrettyLogs(config)): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
    redact: {
      paths: [
        'req.headers.authorization', 'req.headers.dpop', 'req.headers.cookie', 'res.headers["set-cookie"]',
        '*.password', '*.currentPassword', '*.newPassword', '*.refreshToken', '*.accessToken', '*.refresh_token', '*.access_token'
      ],
      censor: '[REDACTED]'
    },
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
 * still carries the request id, with the same redaction and serializers as before.
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
    return this.logger().child(bindings, options)
  }

  private write (level: Level, args: LogArguments): void {
    if (this.made === undefined && !this.parent.isLevelEnabled(level)) return
    this.logger()[level](...args)
  }

  private logger (): FastifyBaseLogger {
    this.made ??= this.parent.child(this.bindings)
    return this.made
  }
}

/** Fastify's childLoggerFactory: a lazy request logger, or pino's own child when a route sets its own level or serializers. */
export function lazyRequestLogger (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  const parent = logger as ConstructorParameters<typeof RequestLogger>[0]
  if (options.level !== undefined || options.serializers !== undefined || typeof parent.isLevelEnabled !== 'function') return logger.child(bindings, options)
  return new RequestLogger(parent, bindings)
}
