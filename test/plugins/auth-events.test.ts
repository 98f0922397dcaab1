// Auth events in the log: each (login, lockout, failed login, refresh reuse, logout, password change,
// other revocations) is written once at info, with the user id, session id and the request id of the
// request it happened in, and never a token or password. Also: pretty lines only on a development TTY.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { censorSecrets, loggerOptions, wantsPrettyLogs } from '../../src/logging.js'
import { PASSWORD, TEST_SECRET, bearer, json, login, refresh, register, testApp, testClock, testDatabases } from '../helpers.js'

type Line = Record<string, unknown>

/** The URL of the request each request id belongs to, from Fastify's "request completed" lines. */
function urlsByRequestId (lines: Line[]): Map<unknown, string> {
  const urls = new Map<unknown, string>()
  for (const line of lines) if (line.msg === 'request completed') urls.set(line.reqId, (line.req as { url: string }).url)
  return urls
}

for (const database of testDatabases()) {
  t.test(`each auth event is logged once, with user, session and request ids, and no secret (${database})`, async (t) => {
    const lines: Line[] = []
    const clock = testClock()
    const app = await testApp(t, { database, clock, logLines: lines, env: { LOGIN_MAX_FAILURES: '1' } })
    const alice = await register(app)
    const mallory = await register(app)
    const first = await login(app, alice.username)
    const wrong = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: mallory.username, password: 'a wrong password' } })
    t.equal(wrong.statusCode, 401)
    const locked = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: mallory.username, password: PASSWORD } })
    t.equal(locked.statusCode, 429)
    const nobody = `nobody${randomBytes(4).toString('hex')}`
    await app.inject({ method: 'POST', url: '/auth/login', payload: { username: nobody, password: 'a wrong password' } })

    const rotated = json(await refresh(app, first.refreshToken))
    clock.advance(11_000)
    t.equal(json(await refresh(app, first.refreshToken)).code, 'AUTH_REFRESH_REUSED')

    const second = await login(app, alice.username)
    const third = await login(app, alice.username)
    t.equal((await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: second.refreshToken } })).statusCode, 204)
    t.equal((await app.inject({ method: 'DELETE', url: `/auth/sessions/${sessionIdOf(third.accessToken)}`, headers: bearer(third.accessToken) })).statusCode, 204)
    const fourth = await login(app, alice.username)
    const newPassword = 'a brand new passphrase'
    const changed = await app.inject({ method: 'POST', url: '/auth/password', headers: bearer(fourth.accessToken), payload: { currentPassword: PASSWORD, newPassword } })
    t.equal(changed.statusCode, 200)
    const afterChange = json(changed)
    t.equal((await app.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(afterChange.accessToken) })).statusCode, 204)

    const events = lines.filter((line) => typeof line.event === 'string')
    t.same(events.map((line) => line.event), [
      'login', 'login-failed', 'login-locked', 'login-failed', 'refresh-reuse', 'login', 'login', 'logout', 'revocation', 'login', 'password-change', 'revocation'
    ], 'one line per event, in order; a rotation writes none')
    for (const line of events) {
      t.equal(line.level, 30, `${String(line.event)} at info`)
      t.match(line.reqId, /^req-/, `${String(line.event)} carries its request id`)
      t.ok('userId' in line && 'sessionId' in line, `${String(line.event)} names user and session`)
    }
    const urls = urlsByRequestId(lines)
    t.same(events.map((line) => urls.get(line.reqId)), [
      '/auth/login', '/auth/login', '/auth/login', '/auth/login', '/auth/refresh', '/auth/login', '/auth/login', '/auth/logout',
      `/auth/sessions/${sessionIdOf(third.accessToken)}`, '/auth/login', '/auth/password', '/auth/logout-all'
    ], 'each line belongs to the request it happened in')

    const [loginLine, failed, lockout, unknownFailed, reuse, , , logout, deleted, , passwordChange, logoutAll] = events as Line[]
    t.match(loginLine, { userId: alice.user.id, sessionId: sessionIdOf(first.accessToken) })
    t.match(failed, { userId: mallory.user.id, sessionId: null })
    t.match(lockout, { userId: mallory.user.id, sessionId: null })
    t.match(unknownFailed, { userId: null }, 'an unknown account has no id, and its typed name is not logged')
    t.match(reuse, { userId: alice.user.id, sessionId: sessionIdOf(first.accessToken) })
    t.match(logout, { userId: alice.user.id, sessionId: sessionIdOf(second.accessToken) })
    t.match(deleted, { reason: 'deleted', userId: alice.user.id, sessionId: sessionIdOf(third.accessToken) })
    t.match(passwordChange, { userId: alice.user.id, sessionId: sessionIdOf(afterChange.accessToken) })
    t.match(logoutAll, { reason: 'logout-all', userId: alice.user.id, sessionId: null })

    const everything = JSON.stringify(lines)
    t.ok(everything.includes(alice.user.id), 'positive control: the search finds what is there')
    const secrets = [PASSWORD, newPassword, 'a wrong password', nobody,
      first.refreshToken, first.accessToken, rotated.refreshToken, rotated.accessToken, second.refreshToken, fourth.accessToken, afterChange.refreshToken]
    for (const secret of secrets) t.notOk(everything.includes(secret), 'no token, password or typed username in the log')
  })
}

function sessionIdOf (accessToken: string): string {
  return JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()).sid
}

t.test('an event outside any request (the domain called directly) is still logged, without a request id', async (t) => {
  const lines: Line[] = []
  const app = await testApp(t, { logLines: lines })
  const account = await register(app)
  const tokens = await login(app, account.username)
  await app.sessions.revokeSession(sessionIdOf(tokens.accessToken), 'deleted', account.user.id)
  const line = lines.find((candidate) => candidate.event === 'revocation')
  t.match(line, { reason: 'deleted', userId: account.user.id, sessionId: sessionIdOf(tokens.accessToken) })
  t.notOk(line?.reqId, 'no request, no request id')
})

t.test('readable lines on a development terminal, JSON everywhere else', async (t) => {
  const config = loadConfig({ DATABASE_URL: 'file:./data/x.db', JWT_SECRET: TEST_SECRET })
  const production = { ...config, env: 'production' }
  t.equal(wantsPrettyLogs(config, true), true, 'development on a TTY')
  t.equal(wantsPrettyLogs(config, false), false, 'development piped to a file or a collector')
  t.equal(wantsPrettyLogs(production, true), false, 'production, even on a TTY')
  t.match(loggerOptions(config, true), { transport: { target: 'pino-pretty' } })
  t.notOk((loggerOptions(config, false) as Record<string, unknown>).transport, 'JSON lines: no transport')
  t.ok(import.meta.resolve('pino-pretty'), 'pino-pretty is installed')
  t.equal((loggerOptions(config, true) as { formatters: { log: unknown } }).formatters.log, censorSecrets, 'pretty lines are censored alike')
})
