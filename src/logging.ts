// Logging: pino's options (what is redacted), and request loggers that cost nothing until they log.
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'

/** Requests are logged without any access token that rode in the query string. */
function urlWithoutToken (url: string): string {
  const start = url.indexOf('?')
  if (start === -1) return url
  // The query parser decodes keys, so `access%5Ftoken` is the same parameter and must be hidden too.
  const pairs = url.slice(start + 1).split('&').map((pair) => {
    const key = pair.split('=', 1)[0]!
    let name: string
    try {
      name = decodeURIComponent(key).toLowerCase()
    } catch {
      name = key.toLowerCase()
    }
    return name === 'access_token' && pair.includes('=') ? `${key}=[REDACTED]` : pair
  })
  return `${url.slice(0, start)}?${pairs.join('&')}`
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
        'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
        '*.password', '*.currentPassword', '*.newPassword', '*.refreshToken', '*.accessToken', '*.refresh_token', '*.access_token'
      ],
      censor: '[REDACTED]'
    },
    serializers: {
      req (request) {
        return { method: request.method, url: urlWithoutToken(request.url), remoteAddress: request.ip }
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
