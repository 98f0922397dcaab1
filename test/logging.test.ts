// The lazy request logger: a request that logs nothing at the configured level costs no pino child,
// and every line that is written still carries its request id, redaction and serializers.
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { lazyRequestLogger } from '../src/logging.js'
import type { Teardown } from './helpers.js'

async function appLoggingAt (t: Teardown, level: string) {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line))
      callback()
    }
  })
  const app = Fastify({ logger: { level, stream, redact: ['secret'] }, childLoggerFactory: lazyRequestLogger })
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

t.test('at info, fastify\'s request lines are written, each with its request id', async (t) => {
  const { app, lines } = await appLoggingAt(t, 'info')
  await app.inject({ url: '/quiet' })
  await app.inject({ url: '/quiet' })
  t.same(lines.map((line) => line.msg), ['incoming request', 'request completed', 'incoming request', 'request completed'])
  const ids = lines.map((line) => line.reqId)
  t.equal(ids[0], ids[1], 'one request, one id')
  t.not(ids[0], ids[2], 'each request its own id')
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
