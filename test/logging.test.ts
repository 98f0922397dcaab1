// The lazy request logger: a request that logs nothing at the configured level costs no pino child,
// and every line that is written still carries its request id, redaction and serializers.
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import type { Config } from '../src/config.js'
import { lazyRequestLogger, logAnsweredRequest, loggerOptions } from '../src/logging.js'
import type { Teardown } from './helpers.js'

async function appLoggingAt (t: Teardown, level: string) {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line))
      callback()
    }
  })
  // The request logging buildApp sets up: lazy request loggers and one access-log line per request.
  const app = Fastify({ logger: { level, stream, redact: ['secret'] }, childLoggerFactory: lazyRequestLogger, disableRequestLogging: true })
  app.addHook('onResponse', logAnsweredRequest)
  // Counts the pino children made from the app's logger: the cost a lazy request logger avoids.
  // (pino's children inherit from their parent, this property included: count only the root's.)
  const children = { made: 0 }
  const root = app.log
  const child = root.child
  root.child = function (this: typeof root, ...args: Parameters<typeof child>) {
    if (this === root) children.made++
    return child.apply(this, args)
  }
  app.get('/quiet', async () => ({ ok: true }))
  app.get('/warns', async (request) => {
    request.log.info('below warn')
    request.log.warn({ secret: 'hunter2', detail: 1 }, 'a warning')
    request.log.child({ part: 'inner' }).error('from a child')
    return { ok: true }
  })
  t.teardown(() => app.close())
  return { app, lines, children }
}

t.test('at warn, a quiet request writes nothing and a warning carries the request id', async (t) => {
  const { app, lines, children } = await appLoggingAt(t, 'warn')
  await app.ready()
  const before = children.made
  const quiet = await app.inject({ url: '/quiet' })
  t.equal(quiet.statusCode, 200)
  t.same(lines, [], 'no line for a request that logged nothing at warn')
  t.equal(children.made, before, 'no pino child was made for it')

  const warns = await app.inject({ url: '/warns' })
  t.equal(warns.statusCode, 200)
  t.equal(children.made, before + 1, 'one child, made at the first line at an enabled level')
  t.same(lines.map((line) => line.msg), ['a warning', 'from a child'], 'info is below the level; warn and error are written')
  const [warning, fromChild] = lines as [Record<string, unknown>, Record<string, unknown>]
  t.match(warning.reqId, /^req-/, 'the request id is bound')
  t.equal(warning.secret, '[Redacted]', 'the parent logger\'s redaction applies')
  t.equal(warning.detail, 1)
  t.equal(fromChild.reqId, warning.reqId, 'a child of the request logger keeps the request id')
  t.equal(fromChild.part, 'inner')
})

t.test('at info, each answered request writes one access-log line with its request id', async (t) => {
  const { app, lines } = await appLoggingAt(t, 'info')
  await app.inject({ url: '/quiet' })
  await app.inject({ url: '/nowhere' })
  t.same(lines.map((line) => line.msg), ['request completed', 'request completed'], 'one line a request, 404s included')
  const [quiet, missing] = lines as Array<{ reqId: string, req: { method: string, url: string }, res: { statusCode: number }, responseTime: number }>
  t.same([quiet!.req.method, quiet!.req.url, quiet!.res.statusCode], ['GET', '/quiet', 200], 'what came and how it was answered')
  t.equal(typeof quiet!.responseTime, 'number', 'and how long it took')
  t.equal(missing!.res.statusCode, 404)
  t.match(quiet!.reqId, /^req-/)
  t.not(quiet!.reqId, missing!.reqId, 'each request its own id')
  t.equal(app.log.level, 'info')
})

t.test('a route with its own log level gets an ordinary pino child', async (t) => {
  const { app, lines } = await appLoggingAt(t, 'warn')
  app.get('/chatty', { logLevel: 'debug' }, async (request) => {
    request.log.debug('debug line')
    return { ok: true }
  })
  await app.inject({ url: '/chatty' })
  t.ok(lines.some((line) => line.msg === 'debug line' && typeof line.reqId === 'string'), 'the route\'s level wins')
})

t.test('the server\'s logger censors secret fields in any object of a line, child bindings included', async (t) => {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line))
      callback()
    }
  })
  const options = loggerOptions({ logLevel: 'info', env: 'production' } as Config, false) as object
  const app = Fastify({ logger: { ...options, stream }, childLoggerFactory: lazyRequestLogger, disableRequestLogging: true })
  app.addHook('onResponse', logAnsweredRequest)
  app.post('/echo', async (request) => {
    request.log.info({ body: request.body, headers: { authorization: 'Bearer sekrit-header', accept: 'json' } }, 'body seen')
    request.log.child({ credentials: { refreshToken: 'sekrit-child' } }).info('from a child')
    request.log.info('plain message')
    return { ok: true }
  })
  t.teardown(() => app.close())
  const body = { username: 'someone', password: 'sekrit-password', newPassword: 'sekrit-new', access_token: 'sekrit-at' }
  t.equal((await app.inject({ method: 'POST', url: '/echo?refresh_token=sekrit-query', payload: body })).statusCode, 200)
  const text = lines.map((line) => JSON.stringify(line)).join('\n')
  t.notMatch(text, /sekrit/, 'no secret value in any line')
  const seen = lines.find((line) => line.msg === 'body seen')!
  t.same(seen.body, { username: 'someone', password: '[REDACTED]', newPassword: '[REDACTED]', access_token: '[REDACTED]' }, 'the other fields are kept')
  t.same(seen.headers, { authorization: '[REDACTED]', accept: 'json' })
  t.same(body.password, 'sekrit-password', 'the logged object itself is not changed')
  const reqIds = new Set(lines.map((line) => line.reqId))
  t.equal(reqIds.size, 1, 'every line of the request carries its id')
  t.equal(lines.find((line) => line.msg === 'from a child')?.credentials.refreshToken, '[REDACTED]')
  t.equal(lines.find((line) => line.msg === 'request completed')?.req.url, '/echo?refresh_token=[REDACTED]')
  t.ok(lines.some((line) => line.msg === 'plain message' && typeof line.reqId === 'string'))
})
